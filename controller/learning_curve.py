"""One training run of SR-EM measured as it learns (Fig. 5): at checkpoints during training, the
greedy policy's (no exploration) reward and working-hours acceptance on fixed test workloads.

The reward is eq. 20 as the environment computes it, summed over the day's steps like the training
reward, and averaged over the test workloads. Measuring does not change the run: the networks are
copied from the checkpoints training writes anyway (`checkpoint_every`), scored once training is
done, and the same seed gives the same run as `srem train`.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from controller.model.dataset import Dataset
from controller.model.evaluator import StepResult
from controller.model.reward import reward as eq20_reward
from controller.rl.agent import Agent, TrainConfig
from controller.rl.checkpoint import load_checkpoint
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


class CheckpointTap:
    """Eq. 20 as the environment computes it, passed to `train` as its reward function, that also
    keeps the networks of every checkpoint training has written so far.

    `train` calls nothing of ours between episodes but the reward function, and it writes each
    checkpoint at the end of an episode, before the next episode's first reward; so looking at the
    file at every reward (a stat) sees each checkpoint. `poll` after training picks up the last one.
    """

    def __init__(self, dataset: Dataset, path: Path) -> None:
        self.dataset = dataset
        self.path = path
        self.weights = dataset.reward_weights
        self.networks: dict[int, dict[str, torch.Tensor]] = {}
        """episodes done -> the network's state_dict then."""
        self._seen: tuple[int, int, int] | None = None

    def __call__(self, result: StepResult, reference_cost: float) -> float:
        self.poll()
        return eq20_reward(result.acceptance_ratio, result.cost.total, reference_cost, result.feasible, self.weights)

    def poll(self) -> None:
        try:
            stat = os.stat(self.path)
        except FileNotFoundError:
            return
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # a checkpoint is written anew (os.replace) each time
        if key != self._seen:
            self._seen = key
            doc = load_checkpoint(self.path, self.dataset.substrate)
            self.networks[int(doc["episode"])] = doc["state_dict"]


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
    with tempfile.TemporaryDirectory(prefix="srem-fig5-") as tmp:
        tap = CheckpointTap(dataset, Path(tmp) / "run.pt")
        agent, run = train(dataset, config, checkpoint=tap.path, reward_fn=tap, progress=progress)
        tap.poll()
    env = SremEnv(dataset, "test", limit=test_workloads)
    checkpoints, rewards, acceptance = [], [], []
    for episode, network in sorted(tap.networks.items()):
        agent.net.load_state_dict(network)
        reward, accepted = greedy_score(agent, env)
        checkpoints.append(episode)
        rewards.append(reward)
        acceptance.append(accepted)
    return LearningRun(variant, seed, list(run.rewards), run.episodes_per_second, checkpoints, rewards, acceptance)
