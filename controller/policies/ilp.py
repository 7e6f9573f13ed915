"""`ilp[:SECONDS]`: the exact optimum of every step (controller/exact.py), with a time limit per step (default 60 s).

Each step's program is warm-started from the better (by the program's own judgement) of
greedy-slack's placement for the step and keeping the previous placement. The program needs the
scenario's objective (eq. 1's weights and the `rejected_traffic` reading): `use_objective`, which
whoever runs a policy calls (evaluate_policy, the live loop); left unset, the model's default weights
apply.
"""

from __future__ import annotations

import math

from controller.errors import SremError
from controller.exact import ExactSolution, solve_step
from controller.model.cost import ObjectiveWeights
from controller.model.evaluator import StepEvaluator
from controller.model.substrate import Substrate
from controller.model.workload import Placement, Workload
from controller.policies.base import Observation, Policy, register
from controller.policies.greedy_slack import GreedySlackPolicy


@register("ilp")
class IlpPolicy(Policy):
    def __init__(self, arg: str | None = None) -> None:
        try:
            self.time_limit_s = float(arg) if arg is not None else 60.0
        except ValueError:
            raise SremError(f"policy ilp takes a time limit in seconds, got {arg!r}", where="--policy") from None
        if not (self.time_limit_s > 0 and math.isfinite(self.time_limit_s)):
            raise SremError(f"policy ilp: the time limit must be a positive number of seconds, got {arg!r}", where="--policy")
        self.objective: ObjectiveWeights | None = None
        """The scenario's objective; None: the model's default (ObjectiveWeights())."""
        self.evaluator: StepEvaluator | None = None
        self.greedy = GreedySlackPolicy()
        self.solutions: list[ExactSolution] = []

    def bind(self, substrate: Substrate) -> None:
        self.greedy.bind(substrate)

    def use_objective(self, weights: ObjectiveWeights) -> None:
        self.objective = weights

    def reset(self, substrate: Substrate, workload: Workload) -> None:
        weights = self.objective or ObjectiveWeights()
        if self.evaluator is None or self.evaluator.substrate is not substrate or self.evaluator.weights != weights:
            self.evaluator = StepEvaluator(substrate, weights)
        self.greedy.reset(substrate, workload)

    def decide(self, observation: Observation) -> Placement:
        assert self.evaluator is not None, "reset() the policy on a workload first"
        heuristic = self.greedy.decide(observation)
        solution = solve_step(self.evaluator, observation.workload, observation.step, observation.placement, self.time_limit_s,
                              starts=[heuristic])
        self.solutions.append(solution)
        return solution.placement
