"""Trains the per-instance Q-networks with epsilon-greedy Q-learning (section V-B), or double DQN (DDQN-CM).

Each environment step is one transition (state, placement, reward, next state). The target of
instance k's output for its chosen host is the Bellman target r + gamma * max_h Q_k(s', h), the
maximum taken over the hosts the filters allow; the loss is the squared error averaged over the
instances. Transitions go through a replay memory and a target network (as in Mnih et al. 2015,
the paper's [14]). Exploration: with probability epsilon a random placement through the filters,
else the best (or each instance on its own, `exploration="instance"`); epsilon decays linearly to its
final value (2%) at the last episode. With `credit="instance"` each instance's target uses its own
share of the reward (credit.py) instead of the step's.

With a teacher (`TrainConfig.teacher`), its days on training workloads, replayed through the
environment, are demonstration transitions kept apart from the replay memory: the networks first
learn from them alone, then every update adds a batch of them to the agent's own. On demonstrations
the loss adds DQfD's large margin (Hester et al. 2018): each instance's hosts other than the
teacher's are pushed `margin` below it, so the networks start from the teacher's choices and the
Bellman targets move them only where the rewards say so.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from controller.errors import SremError
from controller.model.dataset import Dataset
from controller.model.reward import RewardWeights
from controller.model.workload import Placement
from controller.rl.agent import VARIANTS, Agent, TrainConfig
from controller.rl.checkpoint import load_checkpoint, save_checkpoint
from controller.rl.credit import instance_rewards
from controller.rl.env import RewardFn, SremEnv
from controller.rl.network import PlacementQNetwork
from srem_formats.progress import progress as progress_of


@dataclass
class TrainingRun:
    rewards: list[float] = field(default_factory=list)
    """Total reward of every episode so far, resumed ones included."""
    seconds: float = 0.0
    """Wall time of this run (not of the episodes it resumed from)."""
    start_episode: int = 0

    @property
    def episodes_per_second(self) -> float:
        return (len(self.rewards) - self.start_episode) / self.seconds if self.seconds else 0.0


def _seed_everything(seed: int) -> np.random.Generator:
    # The tensors are tiny: intra-op threads cost more in synchronisation than they win (15x slower
    # on 2 cores), and one thread also makes a run repeatable.
    torch.set_num_threads(1)
    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


TeacherDays = Sequence[tuple[int, Sequence[Placement]]]
"""(training workload index, the teacher's placement at every step of that day)."""


def train(
    dataset: Dataset,
    config: TrainConfig,
    checkpoint: Path | None = None,
    resume: bool = False,
    reward_fn: RewardFn | None = None,
    progress: bool = True,
    limit: int | None = None,
    on_checkpoint: Callable[[int, Agent], None] | None = None,
    teacher_days: TeacherDays = (),
) -> tuple[Agent, TrainingRun]:
    """Train for `config.episodes` episodes (continuing a checkpoint with `resume`); checkpoint as it
    goes, and tell `on_checkpoint(episodes done, agent)` at every checkpoint (with or without a file).
    `teacher_days`: the days of `config.teacher` (required with a teacher)."""
    if config.variant not in VARIANTS:
        raise SremError(f"unknown variant {config.variant!r} (known: {', '.join(VARIANTS)})", where="--variant")
    if (config.teacher is None) != (not teacher_days):
        raise SremError("a teacher needs its days and days need a teacher", where="--teacher")
    rng = _seed_everything(config.seed)
    agent = Agent(dataset.substrate, config)
    env = SremEnv(dataset, "train", reward_fn, limit, agent.encoder)
    target = config.network(agent.encoder, agent.mask)
    optimizer = torch.optim.SGD(agent.net.parameters(), lr=config.learning_rate)
    run = TrainingRun()
    start_episode = 0
    if resume and checkpoint is not None and checkpoint.exists():
        doc = load_checkpoint(checkpoint, dataset.substrate, dataset.manifest.scenario_hash)
        if "target" not in doc:
            raise SremError("a deployable checkpoint (no optimizer or target network) cannot be resumed; train afresh",
                            where=checkpoint)
        if {k: v for k, v in doc["config"].items() if k != "episodes"} != _config_doc(config, exclude_episodes=True):
            raise SremError("checkpoint was trained with another configuration; start afresh or use the same flags", where=checkpoint)
        start_episode = run.start_episode = _episodes_done(doc, config, checkpoint)
        agent.net.load_state_dict(doc["state_dict"])
        target.load_state_dict(doc["target"])
        try:
            optimizer.load_state_dict(doc["optimizer"])
        except (KeyError, TypeError, ValueError) as exc:
            raise SremError(f"optimizer: not this network's optimizer state ({str(exc)[:120]})", where=checkpoint) from None
        run.rewards = [float(r) for r in doc["rewards"]]
        rng = np.random.default_rng([config.seed, start_episode])
    else:
        target.load_state_dict(agent.net.state_dict())
    weights = dataset.reward_weights
    shown = _demonstrations(env, agent, teacher_days, weights, config)
    if shown and start_episode == 0:
        for _ in progress_of(range(config.pretrain_updates), desc=f"learning from {config.teacher}", unit="batch",
                             show=progress):
            _learn(agent, target, optimizer, [], rng, config, shown)
        target.load_state_dict(agent.net.state_dict())
    env.reset(seed=int(rng.integers(2**31)))

    memory: deque = deque(maxlen=config.replay_size)
    steps = 0
    started = time.perf_counter()
    span = max(config.episodes - 1, 1)
    for episode in progress_of(range(start_episode, config.episodes), desc=f"training {config.variant}", unit="episode",
                               initial=start_episode, total=config.episodes, show=progress):
        epsilon = config.epsilon_start + (config.epsilon_end - config.epsilon_start) * min(episode / span, 1.0)
        state, _ = env.reset()
        total, done = 0.0, False
        while not done:
            action = agent.act_exploring(state, epsilon, rng)
            next_state, reward, done, _, info = env.step(action)
            learned = _learned(info, env, action, reward, weights, config)
            memory.append((state, action, learned, next_state, done, agent.next_state_mask(action)))
            state = next_state
            total += reward
            steps += 1
            if len(memory) >= config.batch_size:
                _learn(agent, target, optimizer, memory, rng, config, shown)
            if steps % config.target_sync_steps == 0:
                target.load_state_dict(agent.net.state_dict())
        run.rewards.append(total)
        if (episode + 1) % config.checkpoint_every == 0 or episode + 1 == config.episodes:
            if checkpoint is not None:
                save_checkpoint(checkpoint, dataset, {
                    "config": _config_doc(config), "episode": episode + 1, "state_dict": agent.net.state_dict(),
                    "target": target.state_dict(), "optimizer": optimizer.state_dict(), "rewards": run.rewards,
                })
            if on_checkpoint is not None:
                on_checkpoint(episode + 1, agent)
    run.seconds = time.perf_counter() - started
    return agent, run


def _episodes_done(doc: dict, config: TrainConfig, checkpoint: Path) -> int:
    """The episodes a checkpoint to resume has done, refused in one line unless its record of them is
    whole (a reward per episode) and within the run asked for (resuming never shortens a run silently)."""
    episode, rewards = doc.get("episode"), doc.get("rewards")
    if not isinstance(episode, int) or isinstance(episode, bool) or episode < 0:
        raise SremError("episode: not a count of episodes", where=checkpoint)
    if (not isinstance(rewards, list) or len(rewards) != episode
            or not all(isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r) for r in rewards)):
        raise SremError(f"rewards: not one finite reward for each of its {episode} episodes", where=checkpoint)
    if episode > config.episodes:
        raise SremError(f"has done {episode} episodes, more than --episodes {config.episodes}: "
                        f"give --episodes {episode} or more to continue it", where=checkpoint)
    return episode


def _config_doc(config: TrainConfig, exclude_episodes: bool = False) -> dict:
    doc = asdict(config)
    doc["host_kinds"] = list(config.host_kinds)
    if exclude_episodes:
        doc.pop("episodes")
    return doc


def _learned(info: dict, env: SremEnv, action: Sequence[int], reward: float, weights: RewardWeights,
             config: TrainConfig) -> np.ndarray:
    """What every instance's network learns of a step: its own share (credit.py) or the step's reward."""
    if config.credit == "instance":
        return instance_rewards(info["result"], env.workload, len(action), info["reference_cost"], weights)
    return np.full(len(action), reward, dtype=np.float32)


def _demonstrations(env: SremEnv, agent: Agent, days: TeacherDays, weights: RewardWeights,
                    config: TrainConfig) -> list[tuple]:
    """The teacher's days replayed through the environment as transitions, as the agent would record them."""
    shown = []
    for index, placements in days:
        state, _ = env.reset(options={"workload": index})
        for placement in placements:
            action = tuple(int(h) for h in placement)
            next_state, reward, done, _, info = env.step(action)
            shown.append((state, action, _learned(info, env, action, reward, weights, config), next_state, done,
                          agent.next_state_mask(action)))
            state = next_state
    return shown


def _learn(agent: Agent, target: PlacementQNetwork, optimizer: torch.optim.Optimizer, memory: Sequence[tuple],
           rng: np.random.Generator, config: TrainConfig, shown: Sequence[tuple] = ()) -> None:
    """One gradient step on a batch of the agent's transitions and, with demonstrations, one of theirs
    with the large-margin term."""
    loss = _td_loss(agent, target, [memory[i] for i in rng.integers(len(memory), size=config.batch_size)], config) \
        if memory else torch.zeros(())
    if shown:
        batch = [shown[i] for i in rng.integers(len(shown), size=config.batch_size)]
        loss = loss + _td_loss(agent, target, batch, config) + config.margin_weight * _margin_loss(agent, batch, config)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(agent.net.parameters(), config.gradient_clip)
    optimizer.step()


def _margin_loss(agent: Agent, batch: Sequence[tuple], config: TrainConfig) -> torch.Tensor:
    """DQfD's J_E: max over hosts of Q + margin (0 for the teacher's host) minus Q of the teacher's host."""
    states = torch.as_tensor(np.stack([b[0] for b in batch]))
    shown = torch.as_tensor(np.array([b[1] for b in batch]), dtype=torch.long).unsqueeze(2)
    q = agent.net(states)
    margins = torch.full_like(q, config.margin).scatter(2, shown, 0.0)
    return ((q + margins).max(dim=2).values - q.gather(2, shown).squeeze(2)).mean()


def _td_loss(agent: Agent, target: PlacementQNetwork, batch: Sequence[tuple], config: TrainConfig) -> torch.Tensor:
    states = torch.as_tensor(np.stack([b[0] for b in batch]))
    actions = torch.as_tensor(np.array([b[1] for b in batch]), dtype=torch.long)
    rewards = torch.as_tensor(np.stack([b[2] for b in batch]))
    next_states = torch.as_tensor(np.stack([b[3] for b in batch]))
    not_done = torch.as_tensor([0.0 if b[4] else 1.0 for b in batch])
    next_mask = torch.as_tensor(np.stack([b[5] for b in batch]))
    q = agent.net(states).gather(2, actions.unsqueeze(2)).squeeze(2)
    with torch.no_grad():
        next_target = target(next_states).masked_fill(~next_mask, float("-inf"))
        if config.double_q:
            best = agent.net(next_states).masked_fill(~next_mask, float("-inf")).argmax(dim=2, keepdim=True)
            next_q = next_target.gather(2, best).squeeze(2)
        else:
            next_q = next_target.max(dim=2).values
        y = rewards + config.discount * not_done.unsqueeze(1) * next_q
    return torch.nn.functional.mse_loss(q, y)
