"""One training run of SR-EM measured as it learns (Fig. 5): at checkpoints during training, the
greedy policy's (no exploration) reward and working-hours acceptance on fixed test workloads.

The reward is eq. 20 as the environment computes it, summed over the day's steps like the training
reward, and averaged over the test workloads. Measuring does not change the run: the networks are
copied from the checkpoints training writes anyway (`checkpoint_every`), scored once training is
done, and the same seed gives the same run as `srem train`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from controller.model.dataset import Dataset
from controller.rl.agent import Agent, TrainConfig
from controller.rl.env import SremEnv
from controller.rl.training import train


@dataclass(frozen=True)
class LearningRun:
    variant: str
    seed: int
    training_rewards: list[float]
    """Total reward of every training episode (exploring)."""
    episodes_per_second: float
    """Training only: measuring happens after."""
    checkpoints: list[int]
    """Episodes done at each measurement."""
    test_reward: list[float]
    """Per checkpoint: mean over the test workloads of the greedy policy's day reward (eq. 20 summed over the steps)."""
    test_acceptance: list[float]
    """Per checkpoint: accepted / requests over the working-hours steps of the test workloads."""


def greedy_score(agent: Agent, env: SremEnv) -> tuple[float, float]:
    """The agent's best placements (no exploration) on every workload of `env`: the mean day reward
    and the working-hours acceptance (accepted / requests over those steps of all the workloads)."""
    days, accepted, requests = [], 0, 0
    for index in range(len(env.workloads)):
        state, _ = env.reset(options={"workload": index})
        total, done = 0.0, False
        while not done:
            state, reward, done, _, info = env.step(agent.act(state))
            total += reward
            if env.dataset.is_working_hour(info["hour"]):
                accepted += info["result"].accepted
                requests += len(info["result"].requests)
        days.append(total)
    return float(np.mean(days)), accepted / requests if requests else 1.0


def learning_run(dataset: Dataset, variant: str, seed: int, episodes: int, every: int, test_workloads: int,
                 progress: bool = False) -> LearningRun:
    """Train `variant` with `seed` for `episodes` (the other settings TrainConfig's defaults) and score
    the networks every `every` episodes and at the end on the first `test_workloads` test workloads."""
    config = TrainConfig(variant=variant, episodes=episodes, seed=seed, checkpoint_every=every)  # type: ignore[arg-type]
    networks: dict[int, dict[str, torch.Tensor]] = {}

    def keep(done: int, agent: Agent) -> None:
        networks[done] = {name: tensor.clone() for name, tensor in agent.net.state_dict().items()}

    agent, run = train(dataset, config, progress=progress, on_checkpoint=keep)
    env = SremEnv(dataset, "test", limit=test_workloads, encoder=agent.encoder)
    checkpoints, rewards, acceptance = [], [], []
    for episode, network in sorted(networks.items()):
        agent.net.load_state_dict(network)
        reward, accepted = greedy_score(agent, env)
        checkpoints.append(episode)
        rewards.append(reward)
        acceptance.append(accepted)
    return LearningRun(variant, seed, list(run.rewards), run.episodes_per_second, checkpoints, rewards, acceptance)
