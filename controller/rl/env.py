"""SR-EM as a Gymnasium environment, so any RL library can train on the model.

- reset: a random workload of the split (or `options={"workload": i}`), at the first step;
- step(action): action = a host index for every VNF instance (MultiDiscrete); the step evaluator
  judges it, and the placement carries over to the next step; an episode is the day's steps;
- observation: the state features of section V-A (features.py) of the encoder given (default the paper's),
  computed from what a controller knows at the step (no later step's traffic);
- reward: eq. 20 by default, normalised by the cost of the initial configuration in the same step;
  another reward function can be passed (DDQN-CM's is);
- info: `result` (the StepResult), `reference_cost`, `hour`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from controller.model.dataset import Dataset
from controller.model.estimates import ChainEstimator
from controller.model.evaluator import StepEvaluator, StepResult
from controller.model.reward import reward as eq20_reward
from controller.model.workload import Workload
from controller.rl.features import StateEncoder, offered_demand_mbps

RewardFn = Callable[[StepResult, float], float]


class SremEnv(gym.Env):
    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, dataset: Dataset, split: str = "train", reward_fn: RewardFn | None = None, limit: int | None = None,
                 encoder: StateEncoder | None = None) -> None:
        self.dataset = dataset
        self.workloads: list[Workload] = dataset.split(split, limit)
        self.substrate = dataset.substrate
        self.evaluator = StepEvaluator(self.substrate, dataset.objective_weights)
        self.encoder = encoder or StateEncoder(self.substrate)
        weights = dataset.reward_weights
        self.reward_fn: RewardFn = reward_fn or (lambda r, ref: eq20_reward(r.acceptance_ratio, r.cost.total, ref, r.feasible, weights))
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(self.encoder.size,), dtype=np.float32)
        self.action_space = gym.spaces.MultiDiscrete([len(self.substrate.hosts)] * len(self.substrate.instances))
        self._reference: dict[tuple[int, int], float] = {}
        self._demand: dict[int, np.ndarray] = {}
        self._estimators: dict[int, ChainEstimator] = {}

    def reference_cost(self, index: int, step: int) -> float:
        """Cost of keeping the initial configuration at `step` (eq. 20's normaliser), cached."""
        key = (index, step)
        if key not in self._reference:
            wl = self.workloads[index]
            self._reference[key] = self.evaluator.evaluate(wl, step, wl.initial_placement, wl.initial_placement).cost.total
        return self._reference[key]

    def demand(self, index: int) -> np.ndarray:
        if index not in self._demand:
            self._demand[index] = offered_demand_mbps(self.substrate, self.workloads[index])
        return self._demand[index]

    def estimator(self, index: int) -> ChainEstimator | None:
        if not self.encoder.host_estimates:
            return None
        if index not in self._estimators:
            self._estimators[index] = ChainEstimator(self.substrate, self.workloads[index])
        return self._estimators[index]

    def _observe(self) -> np.ndarray:
        """The state as the agent may know it: the workload cut to the steps up to this one."""
        hour = self.dataset.hours[self.step_index]
        return self.encoder.encode(self.demand(self.index)[self.step_index], self.step_index,
                                   self.workload.known_until(self.step_index), self.dataset.is_working_hour(hour),
                                   self.placement, self.last, self.estimator(self.index))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        if options and "workload" in options:
            self.index = int(options["workload"])
        else:
            self.index = int(self.np_random.integers(len(self.workloads)))
        self.workload = self.workloads[self.index]
        self.step_index = 0
        self.placement = self.workload.initial_placement
        self.last: StepResult | None = None
        return self._observe(), {"hour": self.dataset.hours[0]}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        placement = tuple(int(h) for h in action)
        step = self.step_index
        result = self.evaluator.evaluate(self.workload, step, self.placement, placement)
        reference = self.reference_cost(self.index, step)
        reward = float(self.reward_fn(result, reference))
        self.placement, self.last = placement, result
        self.step_index += 1
        terminated = self.step_index == len(self.dataset.hours)
        info = {"result": result, "reference_cost": reference, "hour": self.dataset.hours[step]}
        obs = self._observe() if not terminated else np.zeros(self.encoder.size, dtype=np.float32)
        return obs, reward, terminated, False, info
