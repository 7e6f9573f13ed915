"""Every equation of the model against values computed by hand (docs/model.md has the equations)."""

from __future__ import annotations

import pytest

import factories as f
from controller.model import constraints, cost, delay
from controller.model.cost import Move, ObjectiveWeights, classify_move
from controller.model.evaluator import Outcome, StepEvaluator
from controller.model.reward import RewardWeights, reward
from controller.model.substrate import HostKind

# s1 - s2 - s3 in a line; server m1 under s2, m2 under s3.
LINKS = [("s1", "s2", 10.0, 0.1), ("s2", "s3", 20.0, 0.2), ("s2", "m1", 10.0, 0.05), ("s3", "m2", 40.0, 0.1)]
PRICES = [0.002, 0.003, 0.001, 0.004]


@pytest.fixture
def sub():
    topo = f.topology_dict(["s1", "s2", "s3"], ["m1", "m2"], LINKS)
    return f.substrate(topo, [f.vnf("fw", 200.0, server_mbps=1000.0, accesses=3), f.vnf("cl", 10.0, accesses=1)], PRICES)


def host(sub, name):
    return sub.hosts[sub.host_index[name]]


def test_eq2_it_cost_per_host_kind(sub):
    assert cost.it_cost(200.0, host(sub, "m1")) == pytest.approx(200 / 1024 * 0.01)
    assert cost.it_cost(200.0, host(sub, "em:s2")) == pytest.approx(200 * 0.0015)
    assert cost.it_cost(10.0, host(sub, "lm:s1")) == pytest.approx(10 * 0.002)


def test_eq3_bandwidth_cost():
    # 80 Mbps for two hours is 10 MB/s * 7200 s = 70.3125 GB, over links priced 0.002 and 0.003
    assert cost.bandwidth_cost(80.0, 7200.0, [0.002, 0.003]) == pytest.approx(70.3125 * 0.005)


def test_eq5_migration_and_eq6_programming_cost():
    assert cost.migration_cost(200.0, [0.001, 0.003, 0.004]) == pytest.approx(200 / 1024 * 0.008)
    assert cost.programming_cost(200.0, 0.005) == pytest.approx(200 / 1024 * 0.005)


def test_eq4_and_eq1_totals():
    assert cost.reconfiguration_cost(0.25, 0.5) == 0.75
    assert cost.total_cost(1.0, 2.0, 3.0, ObjectiveWeights(1.0, 2.0, 3.0)) == 14.0


def test_moves_follow_the_cases_of_eq5_and_eq6(sub):
    m1, m2, lm1, em1, em2 = (host(sub, n) for n in ("m1", "m2", "lm:s1", "em:s1", "em:s2"))
    assert classify_move(m1, m1) is Move.STAY
    assert classify_move(m1, m2) is Move.MIGRATION
    assert classify_move(m1, em1) is Move.PROGRAMMING
    assert classify_move(em2, em1) is Move.PROGRAMMING
    assert classify_move(lm1, em1) is Move.PROGRAMMING
    assert classify_move(em1, m1) is Move.INSTANTIATION


def test_eq13_eq14_eq15_delays():
    assert delay.migration_delay_ms(200.0, 10_000.0) == pytest.approx(160.0)  # 200 MB at 1250 MB/s
    assert delay.programming_delay_ms(200.0, 50.0) == pytest.approx(32.0)  # 200 MB at 6250 MB/s
    assert delay.rdma_delay_ms_per_mb(3, 1500.0) == pytest.approx(0.0045)


def test_eq18_processing_delay_per_host_kind(sub):
    fw, cl = sub.vnf_types
    assert delay.processing_delay_ms_per_mb(fw, host(sub, "m1")) == 0.5
    assert delay.processing_delay_ms_per_mb(fw, host(sub, "lm:s2")) == 0.002
    assert delay.processing_delay_ms_per_mb(fw, host(sub, "em:s2")) == pytest.approx(0.002 + 3 * 1500e-6)
    # 80 Mbps = 10 MB/s through fw in EM and cl on a server
    assert delay.processing_delay_ms(80.0, [0.0065, 0.5]) == pytest.approx(5.065)


def test_eq19_eq17_eq16():
    assert delay.transmission_delay_ms(80.0, [(10_000.0, 0.1), (20_000.0, 0.2)]) == pytest.approx(0.312)
    assert delay.reconfiguration_delay_ms([0.0, 32.0, 160.0]) == 160.0
    assert delay.reconfiguration_delay_ms([]) == 0.0
    assert delay.end_to_end_delay_ms(1.0, 2.0, 3.5) == 6.5


def test_eq20_reward():
    w = RewardWeights(acceptance=1.0, cost=0.1)
    assert reward(0.5, 2.0, 4.0, True, w) == pytest.approx(0.45)
    assert reward(0.5, 2.0, 4.0, False, w) == 0.0


def test_eq7_storage_including_rdma_table(sub):
    ok = f.placement_of(sub, {"fw#0": "em:s1", "cl#0": "lm:s1"})
    assert constraints.storage_violations(sub, ok) == {}
    too_big_for_lm = f.placement_of(sub, {"fw#0": "lm:s1", "cl#0": "lm:s1"})
    assert set(constraints.storage_violations(sub, too_big_for_lm)) == {sub.host_index["lm:s1"]}
    topo = f.topology_dict(["s1"], [], [])
    tiny_table = f.substrate(topo, [f.vnf("fw", 200.0)], [], switches={"s1": f.switch(table=1.0)})
    # the index of a 200 MB instance is 2 MB, over a 1 MB RDMA table
    violations = constraints.storage_violations(tiny_table, (tiny_table.host_index["em:s1"],))
    assert "RDMA table" in violations[tiny_table.host_index["em:s1"]]


def test_eq8_eq9_eq12_structure(sub):
    assert constraints.placement_errors(sub, (0,)) == ["placement has 1 hosts for 2 instances"]
    assert constraints.placement_errors(sub, (0, 99)) == ["instance 1 placed on unknown host 99"]
    assert constraints.assignment_errors(sub, [0, 1], [0, 1]) == []
    assert constraints.assignment_errors(sub, [0, 1], [1, 0]) != []
    assert constraints.is_flow_conserving([0, 1, 2], 0, 2)
    assert not constraints.is_flow_conserving([0, 1, 0, 2], 0, 2)


def test_eq10_eq11_capacity_check():
    assert constraints.within_capacity(900.0, 100.0, 1000.0)
    assert not constraints.within_capacity(900.0, 100.1, 1000.0)


def test_one_step_by_hand(sub):
    """cl in LM of s1, fw on m1; one request s1 -> s3 through [cl, fw] at 80 Mbps, one at 950 Mbps."""
    wl = f.workload(sub, [(["cl", "fw"], "s1", "s3", [80.0], [20.0]), (["cl", "fw"], "s1", "s3", [950.0], [20.0])],
                    {"cl#0": "lm:s1", "fw#0": "m1"})
    ev = StepEvaluator(sub)
    r = ev.evaluate(wl, 0, wl.initial_placement, wl.initial_placement)
    first, second = r.requests
    assert first.outcome is Outcome.ACCEPTED
    # paths: s1 -> s1 (cl), s1 -> m1 over s1-s2, s2-m1, then m1 -> s3 over s2-m1, s2-s3
    assert first.paths == ((), (0, 2), (2, 1))
    assert first.processing_ms == pytest.approx(10 * (0.002 + 0.5))
    assert first.transmission_ms == pytest.approx((0.008 + 0.1) + 2 * (0.008 + 0.05) + (0.004 + 0.2))
    assert first.reconfiguration_ms == 0.0
    # the second would push fw past its 1000 Mbps on the server: rejected, and carries nothing
    assert second.outcome is Outcome.PROCESSING
    assert r.link_load_mbps == [80.0, 80.0, 160.0, 0.0]
    assert r.instance_load_mbps == [80.0, 80.0]
    assert r.cost.it == pytest.approx(200 / 1024 * 0.01 + 10 * 0.002)
    assert r.cost.bandwidth == pytest.approx(70.3125 * (0.002 + 0.001 + 0.001 + 0.003))
    assert r.cost.reconfiguration == 0.0
    assert r.cost.total == pytest.approx(r.cost.it + r.cost.bandwidth)


def test_programming_delay_counts_against_the_deadline(sub):
    """fw programmed from m1 into EM of s2 takes 32 ms (eq. 14): a 20 ms deadline is missed, a 50 ms one met."""
    tight = f.workload(sub, [(["fw"], "s1", "s3", [80.0], [20.0])], {"cl#0": "lm:s1", "fw#0": "m1"})
    loose = f.workload(sub, [(["fw"], "s1", "s3", [80.0], [50.0])], {"cl#0": "lm:s1", "fw#0": "m1"})
    moved = f.placement_of(sub, {"cl#0": "lm:s1", "fw#0": "em:s2"})
    ev = StepEvaluator(sub)
    r = ev.evaluate(tight, 0, tight.initial_placement, moved)
    assert r.requests[0].reconfiguration_ms == pytest.approx(32.0)
    assert r.requests[0].outcome is Outcome.DEADLINE
    assert r.cost.programming == pytest.approx(200 / 1024 * 0.005)
    assert r.cost.bandwidth == 0.0
    assert ev.evaluate(loose, 0, loose.initial_placement, moved).requests[0].accepted


def test_migration_uses_the_widest_min_hop_path(sub):
    wl = f.workload(sub, [(["fw"], "s1", "s3", [8.0], [500.0])], {"cl#0": "lm:s1", "fw#0": "m1"})
    moved = f.placement_of(sub, {"cl#0": "lm:s1", "fw#0": "m2"})
    r = StepEvaluator(sub).evaluate(wl, 0, wl.initial_placement, moved)
    assert r.moves[sub.instance_index["fw#0"]] is Move.MIGRATION
    assert r.cost.migration == pytest.approx(200 / 1024 * (0.001 + 0.003 + 0.004))
    assert r.requests[0].reconfiguration_ms == pytest.approx(160.0)  # bottleneck s2-m1 at 10 Gbps


def test_host_kinds_are_indexed_servers_lm_em(sub):
    kinds = [h.kind for h in sub.hosts]
    assert kinds == [HostKind.SERVER] * 2 + [HostKind.LM] * 3 + [HostKind.EM] * 3


def test_carried_rejected_traffic_loads_and_pays_for_its_paths(sub):
    """The `carried` reading: the 950 Mbps request over fw's capacity and a late one still cross the
    network and are charged; only the late one is processed (loads its instances); neither is accepted."""
    wl = f.workload(sub, [(["cl", "fw"], "s1", "s3", [80.0], [20.0]), (["cl", "fw"], "s1", "s3", [950.0], [20.0]),
                          (["cl"], "s1", "s3", [40.0], [0.1])],
                    {"cl#0": "lm:s1", "fw#0": "m1"})
    dropped = StepEvaluator(sub).evaluate(wl, 0, wl.initial_placement, wl.initial_placement)
    carried = StepEvaluator(sub, ObjectiveWeights(rejected_traffic="carried")).evaluate(wl, 0, wl.initial_placement,
                                                                                     wl.initial_placement)
    assert [r.outcome for r in carried.requests] == [r.outcome for r in dropped.requests] == \
        [Outcome.ACCEPTED, Outcome.PROCESSING, Outcome.DEADLINE]
    assert [r.carried for r in dropped.requests] == [True, False, False]
    assert [r.carried for r in carried.requests] == [True, True, True]
    assert dropped.link_load_mbps == [80.0, 80.0, 160.0, 0.0]
    # 950 on s1-s2 (to m1), m1-s2 twice, s2-s3; the late cl request s1 -> s3 over s1-s2, s2-s3
    assert carried.link_load_mbps == [80.0 + 950.0 + 40.0, 80.0 + 950.0 + 40.0, 2 * (80.0 + 950.0), 0.0]
    assert dropped.instance_load_mbps == [80.0, 80.0]
    assert carried.instance_load_mbps == [80.0, 80.0 + 40.0]  # fw#0, cl#0
    per_mbps = 70.3125 / 80.0  # GB carried in the step per Mbps
    assert carried.cost.bandwidth == pytest.approx(dropped.cost.bandwidth + per_mbps * (
        950.0 * (0.002 + 0.001 + 0.001 + 0.003) + 40.0 * (0.002 + 0.003)))
    assert carried.acceptance_ratio == dropped.acceptance_ratio == pytest.approx(1 / 3)
