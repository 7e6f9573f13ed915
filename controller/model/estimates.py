"""The model's estimate of one VNF instance on every host at once: how many of its requests would keep
their deadlines and fit its processing capacity there, and what putting it there costs.

Deciders read it (greedy-slack, schedule-foresight, SR-EM's host features): it evaluates eq. 16's
delay of every request of the instance with the instance on each host and the rest of its chain where
a placement has it, without running the evaluator once per host. The estimate is the model's own
equations: the reconfiguration delay of the chain's moved instances (eq. 13, 14 through
`StepEvaluator.move`, the slowest one as eq. 17 says), processing (eq. 18, `processing_delay_ms`)
and transmission over the fewest-hop paths (eq. 19, `transmission_delay_ms`), taking for every pair
of nodes the largest propagation delay and the largest rate term over its fewest-hop paths (the
router picks one of them by load, so the estimate errs on the late side). Link bandwidth (eq. 11)
is not checked. Costs: IT (eq. 2), reconfiguration (eq. 5, 6) and the bandwidth of reaching the host
from the chain neighbours (eq. 3, every request's traffic priced over the fewest-hop paths).

For the step after the one being decided, whose rates are not known yet, `next_step_traffic` expects
a request of a class the schedule says is busy then at the mean rate and deadline of the busy steps
seen so far (`busy_forecast`), and every other request as it is now.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from controller.model.constraints import CAPACITY_EPSILON
from controller.model.cost import it_cost
from controller.model.delay import end_to_end_delay_ms, processing_delay_ms, transmission_delay_ms
from controller.model.evaluator import StepEvaluator
from controller.model.feasibility import Capacities, capacities
from controller.model.substrate import Substrate
from controller.model.units import gb_carried
from controller.model.workload import Workload


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


class ChainEstimator:
    """The estimate for the requests of one workload (its chains, endpoints and instances)."""

    def __init__(self, substrate: Substrate, workload: Workload) -> None:
        self.tables = substrate_tables(substrate)
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
        # Per instance: the requests using it (in id order, the evaluator's admission order) and where in their chain.
        self.users: list[tuple[np.ndarray, np.ndarray]] = []
        for k in range(len(substrate.instances)):
            r, position = np.nonzero((self.chains == k) & self.valid)
            self.users.append((r, position))

    def host_scores(self, k: int, placement: np.ndarray, previous: np.ndarray, placed: np.ndarray, rate: np.ndarray,
                    deadline: np.ndarray, arrived: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Per host, with `k` there and every other instance where `placement` has it: how many of `k`'s
        requests keep their deadline and fit its processing capacity, and the cost of putting it there.
        `arrived`: `k` is on each host already (a step after it moved there), so its own move costs
        neither delay nor money.

        `placed`: the instances already placed in this decision. The reach cost leaves out the links to
        a chain neighbour not placed yet: where it is now says little about where it will be, and
        counting it anchors every instance to the first one's old host (measured: the cheapest
        server's edge switch, far from most chains' endpoints)."""
        t = self.tables
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
            own_move = np.zeros(len(nodes)) if arrived else t.move_delay_ms[k, previous[k]]
            reconfiguration = np.maximum(moves.max(axis=1)[:, None], own_move[None, :])
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
        return kept_count, t.it_cost[k] + (0.0 if arrived else t.move_cost[k, previous[k]]) + reach

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


def busy_forecast(workload: Workload, step: int) -> tuple[float, float] | None:
    """The mean rate and deadline of the busy (request, step) pairs up to `step`; None when there were none."""
    schedule = workload.schedule
    seen = [(r.rate_mbps[s], r.deadline_ms[s]) for i, r in enumerate(workload.requests) for s in range(step + 1)
            if schedule.busy(i, s)]
    if not seen:
        return None
    rates, deadlines = zip(*seen)
    return float(np.mean(rates)), float(np.mean(deadlines))


def step_traffic(workload: Workload, step: int) -> tuple[np.ndarray, np.ndarray]:
    """(requests,) rates and deadlines at `step` (a step the workload knows)."""
    return (np.array([r.rate_mbps[step] for r in workload.requests]),
            np.array([r.deadline_ms[step] for r in workload.requests]))


def next_step_traffic(workload: Workload, step: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The expected rates and deadlines at `step` + 1, as the module docstring says; None when no busy
    step has been seen yet or `step` is the day's last."""
    forecast = busy_forecast(workload, step)
    if forecast is None or step + 1 >= workload.num_steps:
        return None
    rate, deadline = step_traffic(workload, step)
    busy = np.array([workload.schedule.busy(r, step + 1) for r in range(len(workload.requests))])
    return np.where(busy, forecast[0], rate), np.where(busy, forecast[1], deadline)
