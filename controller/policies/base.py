"""The policy interface and its registry: a policy sees an observation of the coming step and returns a placement.

`make_policy(spec)` builds one from a spec:

- `NAME` or `NAME:ARG` - a built-in policy (`srem`, `ddqn-cm`, `lag`, `random`, `static`, `ilp`),
  one that an installed package declares in the `srem.policies` entry-point group, or one that
  code already imported registered with `@register("NAME")`;
- `module.path:ClassName` or `module.path:ClassName:ARG` - any importable `Policy` subclass (a
  name that is not a policy's, followed by a class name).

A policy's module is imported only when it is asked for, so listing policies or running a plain
one never loads torch or the MILP solver. The constructor takes the optional ARG text.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points

from controller.errors import SremError
from controller.model.cost import ObjectiveWeights
from controller.model.evaluator import StepResult
from controller.model.substrate import Substrate
from controller.model.workload import Placement, Workload

ENTRY_POINT_GROUP = "srem.policies"
"""Packages add policies by name here: `[project.entry-points."srem.policies"] my-policy = "pkg.mod:MyPolicy"`."""


@dataclass(frozen=True)
class Observation:
    """What a policy knows when it decides the placement for `step`: no later step's rates or deadlines.

    Built with `observe`, which cuts the workload to what is known; constructing one with more
    is refused, so no caller can hand a policy the future by mistake."""

    substrate: Substrate
    workload: Workload
    """The day as known now (`Workload.known_until(step)`): every request's chain, endpoints and
    instances, its rate and deadline at steps 0..`step` (the coming step's forecast and the past),
    and the public schedule of the whole day (`workload.schedule`)."""
    step: int
    hour: int
    working_hours: bool
    placement: Placement
    """Where every instance is now (the previous step's placement, or the initial one)."""
    last: StepResult | None
    """The evaluation of the previous step; None before the first step."""

    def __post_init__(self) -> None:
        # A day without requests has no rates to leak (and no length to read them from).
        if self.workload.requests and self.workload.known_steps != self.step + 1:
            raise ValueError(f"an observation of step {self.step} holds rates of {self.workload.known_steps} steps; "
                             "build it with observe()")


def observe(substrate: Substrate, workload: Workload, step: int, hour: int, working_hours: bool, placement: Placement,
            last: StepResult | None) -> Observation:
    """The observation of `step` of the day `workload` (which may hold every step's rates: the truth)."""
    return Observation(substrate, workload.known_until(step), step, hour, working_hours, placement, last)


def start_day(policy: Policy, substrate: Substrate, workload: Workload) -> None:
    """`policy.reset` before the first step, with what is known before the day: no rates, the schedule."""
    policy.reset(substrate, workload.known_until(-1))


class Policy(ABC):
    name: str = ""

    def bind(self, substrate: Substrate) -> None:
        """Called once before the policy runs on a substrate (a trained policy loads its checkpoint and
        checks that it was trained on this substrate here)."""

    def reset(self, substrate: Substrate, workload: Workload) -> None:
        """Called before the first step of every workload, with the day as known before it starts
        (`start_day`): chains, endpoints, instances and the public schedule, no rates or deadlines."""

    def use_objective(self, weights: ObjectiveWeights) -> None:
        """Called before the policy runs with the scenario's objective (eq. 1's weights and the reading of
        rejected traffic), for a policy that optimises it (the exact solver); others need not care."""

    @abstractmethod
    def decide(self, observation: Observation) -> Placement:
        """The host of every instance for the coming step."""


BUILTIN: dict[str, str] = {
    "srem": "controller.policies.srem:SremPolicy",
    "ddqn-cm": "controller.policies.ddqn_cm:DdqnCmPolicy",
    "lag": "controller.policies.lag:LagPolicy",
    "random": "controller.policies.random_policy:RandomPolicy",
    "static": "controller.policies.static:StaticPolicy",
    "ilp": "controller.policies.ilp:IlpPolicy",
    "greedy-slack": "controller.policies.greedy_slack:GreedySlackPolicy",
    "schedule-foresight": "controller.policies.schedule_foresight:ScheduleForesightPolicy",
    "best-schedule": "controller.policies.best_schedule:BestSchedulePolicy",
    "fixed": "controller.policies.fixed:FixedPolicy",
}
"""Built-in policies by name -> `module:Class`, imported on first use."""

_REGISTERED: dict[str, type[Policy]] = {}


def register(name: str) -> Callable[[type[Policy]], type[Policy]]:
    """Class decorator: make a policy available as `name` to code that imported it."""

    def add(cls: type[Policy]) -> type[Policy]:
        if name in _REGISTERED and _REGISTERED[name] is not cls:
            raise ValueError(f"policy {name!r} registered twice")
        cls.name = name
        _REGISTERED[name] = cls
        return cls

    return add


def _declared() -> dict[str, str]:
    """Name -> `module:Class` of the built-in policies and of those installed packages declare."""
    declared = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return {**declared, **BUILTIN}


def policy_names() -> list[str]:
    return sorted(set(_declared()) | set(_REGISTERED))


def _load_class(target: str, where: str) -> type[Policy]:
    """`module.path:ClassName` -> the class, checked to be a Policy."""
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SremError(f"cannot import {module_name!r}: {exc}", where=where) from None
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        raise SremError(f"{module_name} has no Policy subclass {class_name!r}", where=where)
    return cls


def _is_class_path(module: str, rest: str) -> bool:
    """`module.path` and `ClassName[:ARG]`: dotted identifiers before the colon, an identifier after it."""
    return all(part.isidentifier() for part in module.split(".")) and rest.partition(":")[0].isidentifier()


def make_policy(spec: str) -> Policy:
    """A policy instance from `NAME[:ARG]` or `module.path:ClassName[:ARG]` (e.g. `srem:policy.pt`)."""
    name, _, arg = spec.partition(":")
    if name in _REGISTERED:
        cls = _REGISTERED[name]
    elif name in (declared := _declared()):
        cls = _load_class(declared[name], "--policy")
        cls.name = cls.name or name
    elif _is_class_path(name, arg):
        class_name, _, arg = arg.partition(":")
        cls = _load_class(f"{name}:{class_name}", "--policy")
        cls.name = cls.name or f"{name}:{class_name}"
    else:
        raise SremError(f"unknown policy {name[:40]!r} (known: {', '.join(policy_names())}; "
                        "or module.path:ClassName[:ARG] for your own)", where="--policy")
    return cls(arg or None)  # type: ignore[call-arg]
