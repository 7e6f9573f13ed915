"""`lag`: the layered-auxiliary-graph heuristic of Li and Zhu (IEEE TNSM 2022, the paper's [4]) as SR-EM uses it.

Taken from the SR-EM paper's description: servers and switch LMs only (no EM); each chain split
into segments between adjacent VNFs, each mapped on a copy of the substrate (a layer) from which
the nodes that cannot meet the segment's latency or bandwidth demand are removed; per VNF the
cheapest node that can host it; VNFs connected by shortest paths; it minimises IT, bandwidth and
reconfiguration cost.

How we realise it for shared instances (the cited paper's own algorithm is not in our material):
every step, instances are placed one by one, busiest first. For an instance, a host survives the
layer pruning when it has storage left, processing capacity for all the traffic its requests offer
in the coming step, and a latency budget: its processing delay plus the delay of moving there fits
the median deadline of its requests. Among survivors it takes the one of least cost: IT cost, plus
reconfiguration cost, plus the bandwidth cost of reaching it - every request's traffic over the
fewest-hop paths from the chain's previous node to the host and on to the next (the source, the
target, or where the neighbouring VNFs sit). With no survivor, it stays where it is. Routing itself is the model's shortest paths (routing.py).
"""

from __future__ import annotations

import statistics

import numpy as np

from controller.errors import SremError
from controller.model.cost import bandwidth_cost, it_cost
from controller.model.delay import processing_delay_ms
from controller.model.evaluator import StepEvaluator
from controller.model.feasibility import capacities, fits
from controller.model.substrate import HostKind, Substrate
from controller.model.workload import Placement, Workload
from controller.policies.base import Observation, Policy, register


@register("lag")
class LagPolicy(Policy):
    def __init__(self, arg: str | None = None) -> None:
        if arg is not None:
            raise SremError(f"policy lag takes no argument, got {arg!r}", where="--policy")

    def reset(self, substrate: Substrate, workload: Workload) -> None:
        if getattr(self, "substrate", None) is not substrate:
            self.substrate = substrate
            self.evaluator = StepEvaluator(substrate)
            self.tables = capacities(substrate)
            self.router = self.evaluator.router
            self.hosts = [h for h in substrate.hosts if h.kind in (HostKind.SERVER, HostKind.LM)]
            self.mean_price = float(np.mean([l.price_per_gb for l in substrate.links]))
        self.users: list[list[tuple[int, int]]] = [[] for _ in substrate.instances]
        for r, instances in enumerate(workload.assignment):
            for position, k in enumerate(instances):
                self.users[k].append((r, position))

    def hops(self, a: int, b: int) -> int:
        return 0 if a == b else self.router.hops_to(b)[a]

    def decide(self, observation: Observation) -> Placement:
        sub, wl, step = self.substrate, observation.workload, observation.step
        placement = list(observation.placement)
        demand = [sum(wl.requests[r].rate_mbps[step] for r, _ in users) for users in self.users]
        free = self.tables.room_left_mb(placement)
        for k in sorted(range(len(placement)), key=lambda k: -demand[k]):
            vtype = sub.instances[k].type
            free[placement[k]] += vtype.storage_mb
            deadlines = [wl.requests[r].deadline_ms[step] for r, _ in self.users[k]]
            budget = statistics.median(deadlines) if deadlines else float("inf")
            best, best_cost = None, float("inf")
            for host in self.hosts:
                if not fits(free[host.index], vtype.storage_mb):
                    continue
                capacity = self.tables.processing_mbps[k, host.index]
                _, move_delay, migration, programming = self.evaluator.move(k, observation.placement[k], host.index)
                move_cost = migration + programming
                peak = max((wl.requests[r].rate_mbps[step] for r, _ in self.users[k]), default=0.0)
                latency = move_delay + processing_delay_ms(peak, [self.tables.delay_ms_per_mb[k, host.index]])
                if capacity < demand[k] or latency > budget:
                    continue
                cost = it_cost(vtype.storage_mb, host) + move_cost + self.reach_cost(k, host.node, placement, wl, step)
                if cost < best_cost:
                    best, best_cost = host.index, cost
            if best is None:
                stay = fits(free[placement[k]], vtype.storage_mb)
                best = placement[k] if stay else max((h.index for h in self.hosts), key=lambda h: free[h])
            chosen = best
            placement[k] = chosen
            free[chosen] -= vtype.storage_mb
        return tuple(placement)

    def reach_cost(self, instance: int, node: int, placement: list[int], wl: Workload, step: int) -> float:
        """Bandwidth cost of every request of `instance` detouring to `node` from its chain neighbours (fewest hops)."""
        sub = self.substrate
        total = 0.0
        for r, position in self.users[instance]:
            req, chain = wl.requests[r], wl.assignment[r]
            before = req.source if position == 0 else sub.hosts[placement[chain[position - 1]]].node
            after = req.target if position == len(chain) - 1 else sub.hosts[placement[chain[position + 1]]].node
            hops = self.hops(before, node) + self.hops(node, after)
            total += bandwidth_cost(req.rate_mbps[step], sub.step_seconds, [self.mean_price] * hops)
        return total
