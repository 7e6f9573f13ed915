"""The policy interface: a policy sees an observation of the coming step and returns a placement.

Policies register under a name; `make_policy("name")` or `make_policy("name:ARG")` builds one, and
an unknown name is an error listing the known ones. Users add their own policy by subclassing
`Policy` and decorating it with `@register("my-policy")`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from controller.errors import SremError
from controller.model.dataset import Dataset
from controller.model.evaluator import StepResult
from controller.model.substrate import Substrate
from controller.model.workload import Placement, Workload


@dataclass(frozen=True)
class Observation:
    """What a policy knows when it decides the placement for `step`."""

    substrate: Substrate
    workload: Workload
    """The day's requests, with their rates and deadlines for every step, and the assignment."""
    step: int
    hour: int
    working_hours: bool
    placement: Placement
    """Where every instance is now (the previous step's placement, or the initial one)."""
    last: StepResult | None
    """The evaluation of the previous step; None before the first step."""


class Policy(ABC):
    name: str = ""

    def bind(self, dataset: Dataset) -> None:
        """Called once before a dataset is evaluated (a trained policy loads and checks its checkpoint here)."""

    def reset(self, substrate: Substrate, workload: Workload) -> None:
        """Called before the first step of every workload."""

    @abstractmethod
    def decide(self, observation: Observation) -> Placement:
        """The host of every instance for the coming step."""


PolicyFactory = Callable[[str | None], Policy]
_REGISTRY: dict[str, PolicyFactory] = {}


def register(name: str) -> Callable[[type[Policy]], type[Policy]]:
    """Class decorator: make a policy available as `name`; its constructor takes the optional `:ARG` text."""

    def add(cls: type[Policy]) -> type[Policy]:
        if name in _REGISTRY:
            raise ValueError(f"policy {name!r} registered twice")
        cls.name = name
        _REGISTRY[name] = cls  # type: ignore[assignment]
        return cls

    return add


def policy_names() -> list[str]:
    return sorted(_REGISTRY)


def make_policy(spec: str) -> Policy:
    """`name` or `name:ARG` (e.g. `srem:policy.pt`) -> a policy instance."""
    name, _, arg = spec.partition(":")
    factory = _REGISTRY.get(name)
    if factory is None:
        raise SremError(f"unknown policy {name!r} (known: {', '.join(policy_names())})", where="--policy")
    return factory(arg or None)
