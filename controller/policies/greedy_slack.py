"""`greedy-slack`: every instance to the cheapest host that keeps its chains' deadlines - servers, LM and EM.

A baseline the paper did not have: it sees external memory (LAG and DDQN-CM do not) and checks every
request's end-to-end deadline with the model's own delay equations instead of a latency budget.

Every step, starting from the current placement, instances are placed one at a time, busiest first
(most traffic offered by their requests in the coming step): the busiest instance decides the fate
of the most requests and needs the most processing capacity, so it picks while the others are still
where they were. (Ordering by the tightest deadline slack at the current placement instead, measured
on the first 100 `paper` training workloads, gave the same working-hours acceptance to the third
decimal, 0.800 / 0.998 / 0.999, at a 0.5% higher day cost.)

For an instance, a host is a candidate when it has storage left for it (eq. 7) and, in a switch's
EM, room in that switch's RDMA table for its index entry (eq. 7 too). Among the candidates it takes
the one that keeps the most of its requests: a request is kept when its estimated end-to-end delay
(eq. 16) meets its deadline with this instance on that host and every other instance of its chain
where it currently is, and the host's processing capacity (eq. 10) still holds it, first-fit in
request order as the evaluator admits them. Ties (in particular all the hosts that keep every
request) go to the cheapest: IT cost (eq. 2), reconfiguration cost (eq. 5, 6) and the bandwidth cost
of reaching the host from the chain neighbours already placed in this decision, every request's
traffic priced over the fewest-hop paths (eq. 3; LAG's reach cost with real link prices). Passes
over the instances repeat until none changes host (at most `MAX_PASSES`), because an instance placed
early saw the later ones where they were. It looks at the coming step only: it may keep a busy
instance on a server at 10:00, where moving it would make some requests wait for the programming,
and then pay that wait at 12:00.

The delay and cost estimates are the model's own, evaluated for all hosts at once
(controller/model/estimates.py). Link bandwidth (eq. 11) is not checked: on the `paper` test set no
request of greedy-slack's was refused for it. Starting from a placement that
respects storage, every placement it returns does too: an instance only moves to a host with room.
"""

from __future__ import annotations

import numpy as np

from controller.errors import SremError
from controller.model.estimates import ChainEstimator, SubstrateTables, step_traffic, substrate_tables
from controller.model.substrate import Substrate
from controller.model.workload import Placement, Workload
from controller.policies.base import Observation, Policy, register

MAX_PASSES = 3
"""Passes over the instances per decision, a bound on its time. On the `paper` test set 88% of the
decisions end with a pass that moves nothing; allowing 6 passes changed the working-hours acceptance
on 100 training workloads by nothing and the day cost by -0.6%, for twice the time."""


@register("greedy-slack")
class GreedySlackPolicy(Policy):
    def __init__(self, arg: str | None = None) -> None:
        if arg is not None:
            raise SremError(f"policy greedy-slack takes no argument, got {arg!r}", where="--policy")
        self.tables: SubstrateTables | None = None

    def bind(self, substrate: Substrate) -> None:
        self.tables = substrate_tables(substrate)

    def reset(self, substrate: Substrate, workload: Workload) -> None:
        if self.tables is None or self.tables.capacities.substrate is not substrate:
            self.bind(substrate)
        self.estimator = ChainEstimator(substrate, workload)

    def decide(self, observation: Observation) -> Placement:
        return self.place(observation)

    def place(self, observation: Observation, pinned: np.ndarray | None = None, rank: np.ndarray | None = None) -> Placement:
        """The greedy's placement for the coming step. For rules built on it: `pinned` (instances,) bool
        keeps those instances where they are; `rank` (instances, hosts) orders hosts that keep as many
        requests before their cost does (lower first)."""
        t = self.tables
        assert t is not None, "reset() the policy on a workload first"
        caps = t.capacities
        previous = np.array(observation.placement)
        placement = previous.copy()
        rate, deadline = step_traffic(observation.workload, observation.step)
        storage, index = caps.used_mb(placement), caps.index_used_mb(placement)
        demand = [rate[r].sum() for r, _ in self.estimator.users]
        order = sorted(range(len(placement)), key=lambda k: (-demand[k], k))
        placed = np.zeros(len(placement), dtype=bool) if pinned is None else pinned.copy()
        rank = np.zeros((len(placement), len(t.host_node)), dtype=int) if rank is None else rank
        for _ in range(MAX_PASSES):
            changed = False
            for k in order:
                if pinned is not None and pinned[k]:
                    continue
                here = placement[k]
                storage[here] -= caps.sizes_mb[k]
                index[here] -= caps.index_mb[k, here]
                allowed = caps.admits(k, storage, index)
                chosen = self.best_host(k, placement, previous, placed, rate, deadline, allowed, rank[k]) if allowed.any() else here
                placement[k] = chosen
                placed[k] = True
                storage[chosen] += caps.sizes_mb[k]
                index[chosen] += caps.index_mb[k, chosen]
                changed |= chosen != here
            if not changed:
                break
        return tuple(int(h) for h in placement)

    def best_host(self, k: int, placement: np.ndarray, previous: np.ndarray, placed: np.ndarray, rate: np.ndarray,
                  deadline: np.ndarray, allowed: np.ndarray, rank: np.ndarray) -> int:
        """Among the allowed hosts, the one keeping the most of `k`'s requests; ties to the lower rank, then the cheapest."""
        kept_count, cost = self.estimator.host_scores(k, placement, previous, placed, rate, deadline)
        candidates = np.flatnonzero(allowed)
        return int(min(candidates, key=lambda h: (-kept_count[h], rank[h], cost[h], h)))

