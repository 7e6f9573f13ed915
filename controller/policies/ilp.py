"""`ilp[:SECONDS]`: the exact optimum of every step (controller/exact.py), with a time limit per step (default 60 s)."""

from __future__ import annotations

from controller.errors import SremError
from controller.exact import ExactSolution, solve_step
from controller.model.evaluator import StepEvaluator
from controller.model.substrate import Substrate
from controller.model.workload import Placement, Workload
from controller.policies.base import Observation, Policy, register


@register("ilp")
class IlpPolicy(Policy):
    def __init__(self, arg: str | None = None) -> None:
        try:
            self.time_limit_s = float(arg) if arg is not None else 60.0
        except ValueError:
            raise SremError(f"policy ilp takes a time limit in seconds, got {arg!r}", where="--policy") from None
        if self.time_limit_s <= 0:
            raise SremError(f"time limit must be positive, got {arg!r}", where="--policy")
        self.evaluator: StepEvaluator | None = None
        self.solutions: list[ExactSolution] = []

    def reset(self, substrate: Substrate, workload: Workload) -> None:
        if self.evaluator is None or self.evaluator.substrate is not substrate:
            self.evaluator = StepEvaluator(substrate)
        self.workload = workload

    def decide(self, observation: Observation) -> Placement:
        assert self.evaluator is not None
        solution = solve_step(self.evaluator, self.workload, observation.step, observation.placement, self.time_limit_s)
        self.solutions.append(solution)
        return solution.placement
