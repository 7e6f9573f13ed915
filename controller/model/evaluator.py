"""Evaluates one step: (workload, step, previous placement, new placement) -> what every request experiences and what it costs.

Admission follows srem-model.md: requests in id order each take their share of the instances and
links they use; a request is accepted when its instances stay within storage (eq. 7) and processing
capacity (eq. 10), every virtual link finds a path with room (eq. 11, routing.py), and its end-to-end
delay (eq. 16) meets its deadline. What a rejected request costs depends on the objective's
`rejected_traffic`: `dropped` (it carries no traffic and costs nothing) or `carried` (one that found
paths still loads and pays for them, and one that only missed its deadline still loads its
instances: its traffic is processed, late).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from controller.model.constraints import placement_errors, storage_used_mb, storage_violations, within_capacity
from controller.model.cost import (
    Move,
    ObjectiveWeights,
    bandwidth_cost,
    classify_move,
    it_cost,
    migration_cost,
    programming_cost,
    reconfiguration_cost,
    total_cost,
)
from controller.model.delay import (
    end_to_end_delay_ms,
    migration_delay_ms,
    processing_delay_ms,
    programming_delay_ms,
    reconfiguration_delay_ms,
    transmission_delay_ms,
)
from controller.model.feasibility import capacities
from controller.model.routing import Path, Router
from controller.model.substrate import HostKind, Substrate
from controller.model.workload import Placement, Workload


class Outcome(Enum):
    ACCEPTED = "accepted"
    STORAGE = "storage"
    """an instance of the chain sits on a host over its storage (eq. 7)."""
    PROCESSING = "processing"
    """an instance of the chain has no processing capacity left for the request (eq. 10)."""
    BANDWIDTH = "bandwidth"
    """a virtual link found no path with room (eq. 11)."""
    DEADLINE = "deadline"
    """the end-to-end delay (eq. 16) exceeds the deadline."""


@dataclass(frozen=True)
class RequestResult:
    request: int
    outcome: Outcome
    reconfiguration_ms: float
    processing_ms: float
    transmission_ms: float
    deadline_ms: float
    paths: tuple[Path, ...] | None
    """One path per virtual link (source -> VNF 1 -> ... -> target); None when one found no room."""
    carried: bool
    """Its traffic crosses the network on `paths` (and is charged): when accepted, or with the
    `carried` reading of rejected traffic, when it found paths but missed its deadline or capacity."""

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPTED

    @property
    def delay_ms(self) -> float:
        return end_to_end_delay_ms(self.reconfiguration_ms, self.processing_ms, self.transmission_ms)


@dataclass(frozen=True)
class CostBreakdown:
    it: float
    bandwidth: float
    migration: float
    programming: float
    total: float
    """Eq. 1 with the scenario's weights."""

    @property
    def reconfiguration(self) -> float:
        return reconfiguration_cost(self.migration, self.programming)


@dataclass(frozen=True)
class StepResult:
    step: int
    placement: Placement
    requests: list[RequestResult]
    cost: CostBreakdown
    moves: list[Move]
    storage_used_mb: list[float]
    instance_load_mbps: list[float]
    link_load_mbps: list[float]
    violations: dict[int, str] = field(default_factory=dict)
    """Hosts over storage (eq. 7) -> why. Empty for a feasible placement."""

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.requests if r.accepted)

    @property
    def acceptance_ratio(self) -> float:
        return self.accepted / len(self.requests) if self.requests else 1.0

    @property
    def feasible(self) -> bool:
        return not self.violations


class StepEvaluator:
    """Holds what does not change between steps of a substrate: the router and per-host delay and capacity tables."""

    def __init__(self, substrate: Substrate, weights: ObjectiveWeights = ObjectiveWeights()) -> None:
        self.substrate = substrate
        self.weights = weights
        self.router = Router(substrate)
        tables = capacities(substrate)
        # Python lists: the per-request loop below indexes single cells, where lists are faster than arrays.
        self.per_mb_delay: list[list[float]] = tables.delay_ms_per_mb.tolist()
        self.capacity: list[list[float]] = tables.processing_mbps.tolist()
        self.link_capacity = [l.capacity_mbps for l in substrate.links]
        self.link_delay = [l.delay_ms for l in substrate.links]
        self.link_price = [l.price_per_gb for l in substrate.links]

    def check_placement(self, placement: Placement) -> None:
        errors = placement_errors(self.substrate, placement)
        if errors:
            raise ValueError("; ".join(errors))

    def move(self, instance: int, before: int, after: int) -> tuple[Move, float, float, float]:
        """One instance from host `before` to `after`: how it moves, its delay (eq. 13, 14), migration and programming cost (eq. 5, 6)."""
        sub = self.substrate
        vtype = sub.instances[instance].type
        move = classify_move(sub.hosts[before], sub.hosts[after])
        if move is Move.MIGRATION:
            path = self.router.widest_min_hop_path(sub.hosts[before].node, sub.hosts[after].node)
            cost = migration_cost(vtype.storage_mb, (self.link_price[l] for l in path))
            return move, migration_delay_ms(vtype.storage_mb, min(self.link_capacity[l] for l in path)), cost, 0.0
        if move is Move.PROGRAMMING:
            ctrl = sub.controller_link
            cost = programming_cost(vtype.programming_mb, ctrl.price_per_gb)
            return move, programming_delay_ms(vtype.programming_mb, ctrl.bandwidth_gbps), 0.0, cost
        return move, 0.0, 0.0, 0.0

    def reconfigure(self, previous: Placement, placement: Placement) -> tuple[list[Move], list[float], float, float]:
        """Per instance: how it moves and how long that takes; the step's total migration and programming cost."""
        moves, delays = [], []
        migration = programming = 0.0
        for inst, (before, after) in enumerate(zip(previous, placement)):
            move, delay, mig, prog = self.move(inst, before, after)
            moves.append(move)
            delays.append(delay)
            migration += mig
            programming += prog
        return moves, delays, migration, programming

    def evaluate(self, workload: Workload, step: int, previous: Placement, placement: Placement) -> StepResult:
        self.check_placement(placement)
        sub = self.substrate
        hosts = sub.hosts
        overloaded = storage_violations(sub, placement)
        moves, move_delay, migration, programming = self.reconfigure(previous, placement)
        it = sum(it_cost(sub.instances[k].type.storage_mb, hosts[h]) for k, h in enumerate(placement))
        nodes_of_instance = [hosts[h].node for h in placement]
        capacity = [self.capacity[k][h] for k, h in enumerate(placement)]
        per_mb = [self.per_mb_delay[k][h] for k, h in enumerate(placement)]
        instance_load = [0.0] * len(placement)
        link_load = [0.0] * len(sub.links)
        link_capacity, link_delay, link_price = self.link_capacity, self.link_delay, self.link_price
        route = self.router.route
        carry_rejected = self.weights.rejected_traffic == "carried"
        bandwidth = 0.0
        results = []
        for req, instances in zip(workload.requests, workload.assignment):
            rate = req.rate_mbps[step]
            deadline = req.deadline_ms[step]
            pending: dict[int, float] = {}
            paths: list[Path] | None = []
            here = req.source
            for hop in [*(nodes_of_instance[k] for k in instances), req.target]:
                path = route(here, hop, rate, link_load, pending)
                if path is None:
                    paths = None
                    break
                for link in path:
                    pending[link] = pending.get(link, 0.0) + rate
                paths.append(path)
                here = hop
            reconf = reconfiguration_delay_ms(move_delay[k] for k in instances)
            proc = processing_delay_ms(rate, (per_mb[k] for k in instances))
            if paths is None:
                trans = float("nan")
                outcome = Outcome.BANDWIDTH
            else:
                trans = transmission_delay_ms(rate, ((link_capacity[l], link_delay[l]) for p in paths for l in p))
                outcome = Outcome.ACCEPTED
            if any(placement[k] in overloaded for k in instances):
                outcome = Outcome.STORAGE
            elif not all(within_capacity(instance_load[k], rate, capacity[k]) for k in instances):
                outcome = Outcome.PROCESSING
            elif outcome is Outcome.ACCEPTED and end_to_end_delay_ms(reconf, proc, trans) > deadline:
                outcome = Outcome.DEADLINE
            processed = outcome is Outcome.ACCEPTED or (carry_rejected and outcome is Outcome.DEADLINE)
            carried = outcome is Outcome.ACCEPTED or (carry_rejected and paths is not None)
            if processed:
                for k in instances:
                    instance_load[k] += rate
            if carried:
                for link, amount in pending.items():
                    link_load[link] += amount
                bandwidth += bandwidth_cost(rate, sub.step_seconds, (link_price[l] for p in paths for l in p))  # type: ignore[union-attr]
            results.append(
                RequestResult(req.id, outcome, reconf, proc, trans, deadline, tuple(paths) if paths is not None else None, carried)
            )
        cost = CostBreakdown(
            it=it,
            bandwidth=bandwidth,
            migration=migration,
            programming=programming,
            total=total_cost(it, bandwidth, reconfiguration_cost(migration, programming), self.weights),
        )
        return StepResult(
            step=step,
            placement=placement,
            requests=results,
            cost=cost,
            moves=moves,
            storage_used_mb=storage_used_mb(sub, placement),
            instance_load_mbps=instance_load,
            link_load_mbps=link_load,
            violations=overloaded,
        )


def host_kind_shares(substrate: Substrate, placement: Placement) -> dict[HostKind, float]:
    """Fraction of instances on servers, in LM and in EM."""
    counts = {kind: 0 for kind in HostKind}
    for h in placement:
        counts[substrate.hosts[h].kind] += 1
    return {kind: n / len(placement) for kind, n in counts.items()}
