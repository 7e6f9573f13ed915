"""A workload: one day of SFC requests with the initial placement and assignment (one train or test workload).

`generate_workload` draws one from a scenario: requests with random ordered chains of distinct VNF
types between random switches, their rate and deadline per step from the working-hours or evening
ranges; the initial placement puts every VNF instance on the cheapest server with room; the initial
assignment maps each VNF of a request to a random instance of its type with room for its traffic in
the first step (to the one with the most room left when none has enough).

What a controller knows of a day is less than the workload holds: `Workload.known_until(step)` is
the day as seen when deciding `step` - every request's rate and deadline up to that step (the
forecast of the step being decided and the past), and the public `Schedule` (which service class
each request belongs to and at which steps each class is busy), nothing later.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from controller.model.scenario import Scenario
from controller.model.substrate import HostKind, Substrate

DEFAULT_CLASS = "all"
"""The one service class of a scenario without classes: busy in the working hours."""

Placement = tuple[int, ...]
"""Host index of every VNF instance (eq. 8: exactly one host each)."""


@dataclass(frozen=True)
class Request:
    id: int
    chain: tuple[int, ...]
    """VNF type indices in chain order."""
    source: int
    target: int
    rate_mbps: tuple[float, ...]
    """lambda_r(t), one per step."""
    deadline_ms: tuple[float, ...]
    """D_r(t), one per step."""


@dataclass(frozen=True)
class Schedule:
    """The public part of a day: each request's service class and the steps at which each class is
    busy (draws working-hours traffic). Operators publish it; it says nothing of the rates."""

    classes: tuple[str, ...]
    busy_steps: tuple[frozenset[int], ...]
    """Per class, the steps at which it is busy."""
    request_class: tuple[int, ...]
    """Per request, its class (an index into `classes`)."""
    num_steps: int

    def busy(self, request: int, step: int) -> bool:
        return step in self.busy_steps[self.request_class[request]]

    def busy_classes(self, step: int) -> list[int]:
        return [c for c, steps in enumerate(self.busy_steps) if step in steps]


@dataclass(frozen=True)
class Workload:
    id: int
    requests: tuple[Request, ...]
    initial_placement: Placement
    assignment: tuple[tuple[int, ...], ...]
    """Instance index for every VNF of every request, in chain order; kept across steps (eq. 9)."""
    schedule: Schedule

    @property
    def num_steps(self) -> int:
        return self.schedule.num_steps

    @property
    def known_steps(self) -> int:
        """Steps whose rates and deadlines this workload holds (all of them, or those up to a decision)."""
        return len(self.requests[0].rate_mbps) if self.requests else self.num_steps

    def busy_instances(self, step: int, num_instances: int) -> np.ndarray:
        """(instances,) bool: the instance serves a request whose class is busy at `step` (none past the day)."""
        busy = np.zeros(num_instances, dtype=bool)
        for r, instances in enumerate(self.assignment):
            if step < self.num_steps and self.schedule.busy(r, step):
                busy[list(instances)] = True
        return busy

    def known_until(self, step: int) -> Workload:
        """The day as a controller knows it when deciding `step`: rates and deadlines of steps
        0..`step` only (none for `step` -1: what is known before the day starts)."""
        requests = tuple(replace(r, rate_mbps=r.rate_mbps[:step + 1], deadline_ms=r.deadline_ms[:step + 1])
                         for r in self.requests)
        return replace(self, requests=requests)


def cheapest_server_placement(substrate: Substrate) -> Placement:
    """Every instance on the cheapest server (price per GB) that still has storage for it."""
    servers = sorted((h for h in substrate.hosts if h.kind is HostKind.SERVER), key=lambda h: (h.price, h.index))
    free = {h.index: h.storage_mb for h in servers}
    placement = []
    for inst in substrate.instances:
        size = inst.type.storage_mb
        host = next((h.index for h in servers if free[h.index] >= size), None)
        if host is None:
            raise ValueError(f"no server has room for {inst.name} ({size} MB)")
        free[host] -= size
        placement.append(host)
    return tuple(placement)


def random_assignment(
    substrate: Substrate, requests: list[Request], placement: Placement, step: int, rng: np.random.Generator
) -> tuple[tuple[int, ...], ...]:
    """Each VNF to a random instance of its type with room for the request's rate at `step`."""
    room = [substrate.instance_capacity_mbps(k, placement[k]) for k in range(len(substrate.instances))]
    assignment = []
    for req in requests:
        rate = req.rate_mbps[step]
        chosen = []
        for vtype in req.chain:
            candidates = substrate.instances_of_type[vtype]
            fitting = [k for k in candidates if room[k] >= rate]
            if fitting:
                k = fitting[int(rng.integers(len(fitting)))]
            else:
                k = max(candidates, key=lambda c: (room[c], -c))
            room[k] -= rate
            chosen.append(k)
        assignment.append(tuple(chosen))
    return tuple(assignment)


def class_assignment(substrate: Substrate, requests: list[Request], classes: list[int], num_classes: int,
                     placement: Placement, rng: np.random.Generator) -> tuple[tuple[int, ...], ...]:
    """Each VNF to a random instance of its type in its request's class pool (instance ordinal j
    serves class j mod num_classes) with room for the request's peak rate; to the pool's instance
    with the most room left when none has enough. The peak, not the first step's rate: a class's
    busy step may be any step."""
    room = [substrate.instance_capacity_mbps(k, placement[k]) for k in range(len(substrate.instances))]
    assignment = []
    for req, cls in zip(requests, classes):
        rate = max(req.rate_mbps)
        chosen = []
        for vtype in req.chain:
            pool = [k for k in substrate.instances_of_type[vtype] if substrate.instances[k].ordinal % num_classes == cls]
            fitting = [k for k in pool if room[k] >= rate]
            k = fitting[int(rng.integers(len(fitting)))] if fitting else max(pool, key=lambda c: (room[c], -c))
            room[k] -= rate
            chosen.append(k)
        assignment.append(tuple(chosen))
    return tuple(assignment)


def endpoint_nodes(scenario: Scenario, substrate: Substrate) -> list[int]:
    if scenario.spec.requests.endpoints == "edge":
        return [i for i, role in enumerate(substrate.switch_roles) if role == "edge"]
    return list(range(substrate.num_switches))


def class_busy_steps(scenario: Scenario, rng: np.random.Generator) -> list[frozenset[int]]:
    """Per service class, the steps at which it is busy: its busy hours, or, with `busy_order:
    random`, another class's (a random permutation per workload). Without classes, one class busy
    in the working hours."""
    spec = scenario.spec.requests
    if not spec.classes:
        return [frozenset(s for s, h in enumerate(scenario.hours) if scenario.is_working_hour(h))]
    busy = [c.busy_hours for c in spec.classes]
    if spec.busy_order == "random":
        busy = [busy[int(i)] for i in rng.permutation(len(busy))]
    return [frozenset(s for s, h in enumerate(scenario.hours) if h in hours) for hours in busy]


def generate_workload(scenario: Scenario, substrate: Substrate, workload_id: int, rng: np.random.Generator) -> Workload:
    spec = scenario.spec.requests
    endpoints = endpoint_nodes(scenario, substrate)
    num_types = len(substrate.vnf_types)
    busy_steps = class_busy_steps(scenario, rng)
    periods_of_class = [[spec.working_hours if s in busy else spec.evening for s in range(len(scenario.hours))]
                        for busy in busy_steps]
    requests, classes = [], []
    for rid in range(spec.per_workload):
        length = int(rng.integers(spec.chain_length[0], spec.chain_length[1] + 1))
        chain = tuple(int(t) for t in rng.permutation(num_types)[:length])
        source, target = (int(endpoints[i]) for i in rng.choice(len(endpoints), size=2, replace=False))
        # Without classes nothing more is drawn, so such scenarios generate what they always did.
        cls = int(rng.integers(len(spec.classes))) if spec.classes else 0
        periods = periods_of_class[cls]
        rates = tuple(round(float(rng.uniform(*p.rate_mbps)), 4) for p in periods)
        deadlines = tuple(round(float(rng.uniform(*p.deadline_ms)), 3) for p in periods)
        requests.append(Request(rid, chain, source, target, rates, deadlines))
        classes.append(cls)
    placement = cheapest_server_placement(substrate)
    if spec.classes:
        assignment = class_assignment(substrate, requests, classes, len(spec.classes), placement, rng)
    else:
        assignment = random_assignment(substrate, requests, placement, 0, rng)
    names = tuple(c.name for c in spec.classes) or (DEFAULT_CLASS,)
    schedule = Schedule(names, tuple(busy_steps), tuple(classes), len(scenario.hours))
    return Workload(workload_id, tuple(requests), placement, assignment, schedule)
