"""`static`: never reconfigure; every step keeps the current (initially the cheapest-server) placement."""

from __future__ import annotations

from controller.errors import SremError
from controller.model.workload import Placement
from controller.policies.base import Observation, Policy, register


@register("static")
class StaticPolicy(Policy):
    def __init__(self, arg: str | None = None) -> None:
        if arg is not None:
            raise SremError(f"policy static takes no argument, got {arg!r}", where="--policy")

    def decide(self, observation: Observation) -> Placement:
        return observation.placement
