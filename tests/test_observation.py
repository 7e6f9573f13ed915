"""What a policy can know (issue 19): no later step's rates or deadlines, the public schedule, eq. 7 in full in the dynamic filter."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import factories as f
from controller.evaluation import evaluate_policy
from controller.model.constraints import storage_violations
from controller.model.feasibility import capacities, place_one_by_one
from controller.model.substrate import HostKind
from controller.model.workload import Placement, Workload
from controller.policies.base import Observation, Policy, observe


class Spy(Policy):
    """Records what it was shown and tries to read the future."""

    name = "spy"

    def __init__(self) -> None:
        self.reset_known: list[int] = []
        self.decide_known: list[tuple[int, int]] = []
        self.future_reads: list[str] = []

    def reset(self, substrate, workload: Workload) -> None:  # type: ignore[no-untyped-def]
        self.reset_known.append(workload.known_steps)

    def decide(self, observation: Observation) -> Placement:
        wl = observation.workload
        self.decide_known.append((observation.step, wl.known_steps))
        assert wl.num_steps == 6 and wl.schedule.num_steps == 6  # the day's length and schedule are public
        for field in ("rate_mbps", "deadline_ms"):
            try:
                getattr(wl.requests[0], field)[observation.step + 1]
            except IndexError:
                continue
            self.future_reads.append(f"{field} at step {observation.step + 1}")
        return observation.placement


def test_a_policy_cannot_read_a_later_step(small_dataset) -> None:
    spy = Spy()
    evaluate_policy(small_dataset, spy, "test", limit=3, progress=False)
    assert spy.reset_known == [0, 0, 0]  # before the day: no rates at all
    assert spy.decide_known == [(step, step + 1) for _ in range(3) for step in range(6)]
    assert spy.future_reads == []


def test_the_known_rates_are_the_true_ones_up_to_the_step(small_dataset) -> None:
    wl = small_dataset.test[0]
    seen = observe(small_dataset.substrate, wl, 2, 14, True, wl.initial_placement, None).workload
    for true, known in zip(wl.requests, seen.requests):
        assert known.rate_mbps == true.rate_mbps[:3] and known.deadline_ms == true.deadline_ms[:3]
        assert (known.chain, known.source, known.target) == (true.chain, true.source, true.target)
    assert seen.schedule == wl.schedule and seen.assignment == wl.assignment


def test_an_observation_holding_the_future_is_refused(small_dataset) -> None:
    wl = small_dataset.test[0]
    with pytest.raises(ValueError, match="observe"):
        Observation(small_dataset.substrate, wl, 0, 10, True, wl.initial_placement, None)


def test_the_schedule_tells_each_requests_busy_step(small_dataset) -> None:
    """`small` has three classes busy at 10, 12 and 14 h, each with its own instances (j mod 3)."""
    sub = small_dataset.substrate
    for wl in small_dataset.test[:5]:
        schedule = wl.schedule
        assert schedule.classes == ("web", "voip", "gaming")
        assert [sorted(s) for s in schedule.busy_steps] == [[0], [1], [2]]
        for r, (req, chain) in enumerate(zip(wl.requests, wl.assignment)):
            busy = [s for s in range(6) if schedule.busy(r, s)]
            assert busy == [schedule.request_class[r]]
            # Working-hours traffic exactly at the busy step (rates of 100-500 Mbps against 0.1-0.5).
            assert [s for s in range(6) if req.rate_mbps[s] >= 100.0] == busy
            assert {sub.instances[k].ordinal % 3 for k in chain} == {schedule.request_class[r]}


# --- the dynamic filter is eq. 7 in full --------------------------------------------------------------------

LINKS = [("s1", "s2", 40.0, 0.1), ("s1", "m1", 40.0, 0.1), ("s2", "m2", 40.0, 0.1)]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(em=st.lists(st.floats(40.0, 300.0), min_size=2, max_size=2), lm=st.lists(st.floats(5.0, 60.0), min_size=2, max_size=2),
       table=st.lists(st.floats(0.05, 1.2), min_size=2, max_size=2), sizes=st.lists(st.floats(5.0, 50.0), min_size=1, max_size=3),
       copies=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_the_dynamic_filter_never_admits_an_eq7_violation(em, lm, table, sizes, copies, seed) -> None:  # type: ignore[no-untyped-def]
    """Random substrates whose RDMA tables (0.05-1.2 MB) bind before EM storage (index 1% of 5-50 MB):
    whatever the scores, the filtered placement and every single move the filter allows from it keep
    storage and the RDMA tables (eq. 7), and EMs are still used where they have room."""
    topo = f.topology_dict(["s1", "s2"], ["m1", "m2"], LINKS)
    sub = f.substrate(topo, [f.vnf(f"t{i}", size, instances=copies) for i, size in enumerate(sizes)],
                      switches={s: f.switch(lm=lm[i], em=em[i], table=table[i]) for i, s in enumerate(("s1", "s2"))})
    tables = capacities(sub)
    rng = np.random.default_rng(seed)
    em_hosts = [h.index for h in sub.hosts if h.kind is HostKind.EM]
    # Scores that want every instance in an EM: the filter alone keeps the tables.
    scores = rng.random((len(sub.instances), len(sub.hosts)))
    scores[:, em_hosts] += 10.0
    eligible = tables.can_ever_hold()
    for placement in (place_one_by_one(tables, scores, eligible, True),
                      place_one_by_one(tables, scores, eligible, True, rng=rng)):
        assert storage_violations(sub, placement) == {}
        allowed = tables.could_move_to(placement, eligible)
        for k, h in zip(*np.nonzero(allowed)):
            moved = placement[:k] + (int(h),) + placement[k + 1:]
            assert storage_violations(sub, moved) == {}, (k, sub.hosts[h].name)
    if any(em[i] >= size and table[i] >= 0.01 * size for i in range(2) for size in sizes):
        assert any(sub.hosts[h].kind is HostKind.EM for h in place_one_by_one(tables, scores, eligible, True))


def test_a_full_rdma_table_keeps_instances_out_of_its_em() -> None:
    """The defect of issue 19: EM storage for ten 10 MB instances, an RDMA table for one index entry (0.1 MB)."""
    topo = f.topology_dict(["s1", "s2"], ["m1", "m2"], LINKS)
    sub = f.substrate(topo, [f.vnf("fw", 10.0, instances=10)],
                      switches={"s1": f.switch(lm=5.0, em=1000.0, table=0.15), "s2": f.switch(lm=5.0, em=1000.0, table=0.15)})
    tables = capacities(sub)
    scores = np.zeros((10, len(sub.hosts)))
    scores[:, [h.index for h in sub.hosts if h.kind is HostKind.EM]] = 1.0
    placement = place_one_by_one(tables, scores, tables.can_ever_hold(), True)
    assert sorted(sub.hosts[h].name for h in placement if sub.hosts[h].kind is HostKind.EM) == ["em:s1", "em:s2"]
    assert storage_violations(sub, placement) == {}
