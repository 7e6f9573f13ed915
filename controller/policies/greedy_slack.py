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

The delay estimate is the model's own, evaluated for all hosts at once: eq. 16 (`end_to_end_delay_ms`)
of the reconfiguration delay of the chain's moved instances (eq. 13, 14 through `StepEvaluator.move`,
the slowest one as eq. 17 says), processing (eq. 18, `processing_delay_ms`) and transmission over the
fewest-hop paths (eq. 19, `transmission_delay_ms`), taking for every pair of nodes the largest
propagation delay and the largest rate term over its fewest-hop paths (the router picks one of them
by load, so the estimate errs on the late side). Link bandwidth (eq. 11) is not checked: on the
`paper` test set no request of greedy-slack's was refused for it. Starting from a placement that
respects storage, every placement it returns does too: an instance only moves to a host with room.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from controller.errors import SremError
from controller.model.constraints import CAPACITY_EPSILON, rdma_table_used_mb
from controller.model.cost import it_cost
from controller.model.delay import end_to_end_delay_ms, processing_delay_ms, transmission_delay_ms
from controller.model.evaluator import StepEvaluator
from controller.model.feasibility import Capacities, capacities, fits
from controller.model.substrate import Substrate
from controller.model.units import gb_carried
from controller.model.workload import Placement, Workload
from controller.policies.base import Observation, Policy, register

MAX_PASSES = 3
"""Passes over the instances per decision, a bound on its time. On the `paper` test set 88% of the
decisions end with a pass that moves nothing; allowing 6 passes changed the working-hours acceptance
on 100 training workloads by nothing and the day cost by -0.6%, for twice the time."""


@dataclass(frozen=True, eq=False)
class SubstrateTables:
    """What the greedy needs of a substrate, as arrays; built once per substrate."""

    capacities: Capacities
    host_node: np.ndarray
    """(hosts,): the graph node that processes a host's traffic."""
    move_delay_ms: np.ndarray
    """(instances, hosts, hosts): eq. 13/14 delay of moving the instance from one host to another."""
    move_cost: np.ndarray
    """(instances, hosts, hosts): eq. 5/6 cost of that move."""
    it_cost: np.ndarray
    """(instances, hosts): eq. 2."""
    inverse_bandwidth: np.ndarray
    """(nodes, nodes): eq. 19's term per Mbps (the sum of 1/B), the largest over the fewest-hop paths."""
    propagation_ms: np.ndarray
    """(nodes, nodes): eq. 19's sum of link delays, the largest over the fewest-hop paths."""
    price_per_gb: np.ndarray
    """(nodes, nodes): mean over the fewest-hop paths of the sum of link prices."""


@lru_cache(maxsize=8)
def substrate_tables(substrate: Substrate) -> SubstrateTables:
    evaluator = StepEvaluator(substrate)
    router = evaluator.router
    hosts, instances, links = substrate.hosts, substrate.instances, substrate.links
    n_nodes = len(substrate.node_names)
    inverse = np.zeros((n_nodes, n_nodes))
    propagation = np.zeros((n_nodes, n_nodes))
    price = np.zeros((n_nodes, n_nodes))
    for a in range(n_nodes):
        for b in range(n_nodes):
            paths = router.min_hop_paths(a, b) if a != b else []
            if paths:
                # Eq. 19 is linear in the rate: its value at 0 Mbps is the propagation, the rest grows per Mbps.
                on_paths = [[(links[l].capacity_mbps, links[l].delay_ms) for l in p] for p in paths]
                propagation[a, b] = max(transmission_delay_ms(0.0, hops) for hops in on_paths)
                inverse[a, b] = max(transmission_delay_ms(1.0, hops) - transmission_delay_ms(0.0, hops) for hops in on_paths)
                price[a, b] = float(np.mean([sum(links[l].price_per_gb for l in p) for p in paths]))
    n_hosts = len(hosts)
    move_delay = np.zeros((len(instances), n_hosts, n_hosts))
    move_cost = np.zeros((len(instances), n_hosts, n_hosts))
    for k in range(len(instances)):
        for before in range(n_hosts):
            for after in range(n_hosts):
                _, delay, migration, programming = evaluator.move(k, before, after)
                move_delay[k, before, after] = delay
                move_cost[k, before, after] = migration + programming
    return SubstrateTables(
        capacities=capacities(substrate),
        host_node=np.array([h.node for h in hosts]),
        move_delay_ms=move_delay,
        move_cost=move_cost,
        it_cost=np.array([[it_cost(i.type.storage_mb, h) for h in hosts] for i in instances]),
        inverse_bandwidth=inverse,
        propagation_ms=propagation,
        price_per_gb=price,
    )


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
        self.step_seconds = substrate.step_seconds
        requests = workload.requests
        width = max((len(a) for a in workload.assignment), default=0)
        # Chains as a padded (requests, longest chain) matrix; `valid` marks the real positions.
        self.chains = np.zeros((len(requests), width), dtype=int)
        self.valid = np.zeros((len(requests), width), dtype=bool)
        for r, instances in enumerate(workload.assignment):
            self.chains[r, :len(instances)] = instances
            self.valid[r, :len(instances)] = True
        self.source = np.array([r.source for r in requests], dtype=int)
        self.target = np.array([r.target for r in requests], dtype=int)
        self.rates = np.array([r.rate_mbps for r in requests]).reshape(len(requests), -1)
        self.deadlines = np.array([r.deadline_ms for r in requests]).reshape(len(requests), -1)
        # Per instance: the requests using it (in id order, the evaluator's admission order) and where in their chain.
        self.users: list[tuple[np.ndarray, np.ndarray]] = []
        for k in range(len(substrate.instances)):
            r, position = np.nonzero((self.chains == k) & self.valid)
            self.users.append((r, position))

    def decide(self, observation: Observation) -> Placement:
        t = self.tables
        assert t is not None, "reset() the policy on a workload first"
        step = observation.step
        previous = np.array(observation.placement)
        placement = previous.copy()
        rate, deadline = self.rates[:, step], self.deadlines[:, step]
        sizes = t.capacities.sizes_mb
        room = t.capacities.room_left_mb(placement)
        table_room = t.capacities.table_mb.copy()
        for node, used in rdma_table_used_mb(t.capacities.substrate, placement).items():
            table_room[(t.host_node == node) & np.isfinite(t.capacities.table_mb)] -= used
        demand = [rate[r].sum() for r, _ in self.users]
        order = sorted(range(len(placement)), key=lambda k: (-demand[k], k))
        placed = np.zeros(len(placement), dtype=bool)
        for _ in range(MAX_PASSES):
            changed = False
            for k in order:
                here = placement[k]
                room[here] += sizes[k]
                table_room[here] += t.capacities.index_mb[k, here]
                allowed = fits(room, sizes[k]) & fits(table_room, t.capacities.index_mb[k])
                chosen = self.best_host(k, placement, previous, placed, rate, deadline, allowed) if allowed.any() else here
                placement[k] = chosen
                placed[k] = True
                room[chosen] -= sizes[k]
                table_room[chosen] -= t.capacities.index_mb[k, chosen]
                changed |= chosen != here
            if not changed:
                break
        return tuple(int(h) for h in placement)

    def best_host(self, k: int, placement: np.ndarray, previous: np.ndarray, placed: np.ndarray, rate: np.ndarray,
                  deadline: np.ndarray, allowed: np.ndarray) -> int:
        """Among the allowed hosts, the one keeping the most of `k`'s requests; ties to the cheapest.

        `placed`: the instances already placed in this decision. The reach cost leaves out the links to
        a chain neighbour not placed yet: where it is now says little about where it will be, and
        counting it anchors every instance to the first one's old host (measured: the cheapest
        server's edge switch, far from most chains' endpoints)."""
        t = self.tables
        assert t is not None
        r, position = self.users[k]
        nodes = t.host_node
        kept_count = np.zeros(len(nodes), dtype=int)
        reach = np.zeros(len(nodes))
        if len(r):
            chains, valid = self.chains[r], self.valid[r]
            on = placement[chains]
            rows = np.arange(len(r))
            # Every request's chain as it stands, `k` left out: the others' move delays, per-MB delays, segments.
            moves = np.where(valid, t.move_delay_ms[chains, previous[chains], on], 0.0)
            moves[rows, position] = 0.0
            per_mb = np.where(valid, t.capacities.delay_ms_per_mb[chains, on], 0.0)
            per_mb[rows, position] = 0.0
            sequence = np.column_stack([self.source[r], np.where(valid, nodes[on], self.target[r][:, None]), self.target[r]])
            a, b = sequence[:, :-1], sequence[:, 1:]
            ru = rate[r]
            segments = ru[:, None] * t.inverse_bandwidth[a, b] + t.propagation_ms[a, b]
            segments[rows, position] = segments[rows, position + 1] = 0.0
            before, after = sequence[rows, position], sequence[rows, position + 2]
            # (requests, hosts): eq. 16 with `k` on each host. Eq. 17 is the slowest move of the chain.
            reconfiguration = np.maximum(moves.max(axis=1)[:, None], t.move_delay_ms[k, previous[k]][None, :])
            processing = processing_delay_ms(ru[:, None], (per_mb.sum(axis=1)[:, None], t.capacities.delay_ms_per_mb[k][None, :]))
            transmission = (segments.sum(axis=1)[:, None]
                            + ru[:, None] * (t.inverse_bandwidth[before][:, nodes] + t.inverse_bandwidth[after][:, nodes])
                            + t.propagation_ms[before][:, nodes] + t.propagation_ms[after][:, nodes])
            delay = end_to_end_delay_ms(reconfiguration, processing, transmission)
            kept = delay <= deadline[r][:, None]
            kept_count = self.admitted(kept, ru, t.capacities.processing_mbps[k])
            width = chains.shape[1]
            first, last = position == 0, position + 1 >= valid.sum(axis=1)
            known_before = first | placed[chains[rows, np.maximum(position - 1, 0)]]
            known_after = last | placed[chains[rows, np.minimum(position + 1, width - 1)]]
            gb = np.array([gb_carried(x, self.step_seconds) for x in ru])
            reach = ((gb * known_before) @ t.price_per_gb[before][:, nodes]
                     + (gb * known_after) @ t.price_per_gb[after][:, nodes])
        cost = t.it_cost[k] + t.move_cost[k, previous[k]] + reach
        candidates = np.flatnonzero(allowed)
        return int(min(candidates, key=lambda h: (-kept_count[h], cost[h], h)))

    @staticmethod
    def admitted(kept: np.ndarray, rate: np.ndarray, capacity: np.ndarray) -> np.ndarray:
        """Per host: the kept requests its processing capacity holds, first-fit in request order (eq. 10)."""
        count = kept.sum(axis=0)
        load = rate @ kept
        for h in np.flatnonzero(load > capacity * (1.0 + CAPACITY_EPSILON)):
            used, fitted = 0.0, 0
            for x in rate[kept[:, h]]:
                if used + x <= capacity[h] * (1.0 + CAPACITY_EPSILON):
                    used += x
                    fitted += 1
            count[h] = fitted
        return count
