"""The paper's Fig. 2 motivation scenario, end to end through the step evaluator.

Two chains leave `src`: {VNF1, VNF2} to d1 and {VNF3, VNF1} to d2. VNF3 is small and runs in the
switch before the servers; VNF1 and VNF2 are large and run on servers 1 and 2 (a). When the second
chain's traffic rises, VNF1's server capacity no longer holds both chains. Programming VNF1 into the
external memory of switch 1 (b) - it is too large for the local memory - accepts both, on shorter
paths that cost less bandwidth.
"""

from __future__ import annotations

import pytest

import factories as f
from controller.model.cost import Move
from controller.model.evaluator import Outcome, StepEvaluator

LOW, HIGH = 200.0, 400.0


@pytest.fixture
def fig2():
    topo = f.topology_dict(
        ["src", "sw1", "d1", "d2"], ["srv1", "srv2"],
        [("src", "sw1", 10.0, 0.1), ("sw1", "d1", 10.0, 0.1), ("sw1", "d2", 10.0, 0.1),
         ("sw1", "srv1", 10.0, 0.1), ("sw1", "srv2", 10.0, 0.1)],
    )
    sub = f.substrate(topo, [f.vnf("vnf1", 300.0, server_mbps=500.0), f.vnf("vnf2", 300.0, server_mbps=500.0),
                             f.vnf("vnf3", 10.0, server_mbps=500.0)])
    # step 0: both chains at 200 Mbps; step 1: the second chain rises to 400 Mbps
    wl = f.workload(sub, [(["vnf1", "vnf2"], "src", "d1", [LOW, LOW], [100.0, 100.0]),
                          (["vnf3", "vnf1"], "src", "d2", [LOW, HIGH], [100.0, 100.0])],
                    {"vnf1#0": "srv1", "vnf2#0": "srv2", "vnf3#0": "lm:src"})
    config_b = f.placement_of(sub, {"vnf1#0": "em:sw1", "vnf2#0": "srv2", "vnf3#0": "lm:src"})
    return sub, wl, wl.initial_placement, config_b


def test_rise_in_traffic_overloads_vnf1_on_its_server(fig2):
    sub, wl, a, _ = fig2
    ev = StepEvaluator(sub)
    assert [r.outcome for r in ev.evaluate(wl, 0, a, a).requests] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert [r.outcome for r in ev.evaluate(wl, 1, a, a).requests] == [Outcome.ACCEPTED, Outcome.PROCESSING]


def test_vnf1_is_too_large_for_local_memory(fig2):
    sub, wl, a, _ = fig2
    in_lm = f.placement_of(sub, {"vnf1#0": "lm:sw1", "vnf2#0": "srv2", "vnf3#0": "lm:src"})
    result = StepEvaluator(sub).evaluate(wl, 1, a, in_lm)
    assert not result.feasible
    assert all(r.outcome is Outcome.STORAGE for r in result.requests)


def test_vnf1_in_external_memory_accepts_both_chains(fig2):
    sub, wl, a, b = fig2
    result = StepEvaluator(sub).evaluate(wl, 1, a, b)
    assert result.feasible
    assert [r.outcome for r in result.requests] == [Outcome.ACCEPTED, Outcome.ACCEPTED]
    assert result.moves[sub.instance_index["vnf1#0"]] is Move.PROGRAMMING
    assert result.cost.programming > 0 and result.cost.migration == 0


def test_external_memory_shortens_paths_and_cuts_bandwidth_cost(fig2):
    sub, wl, a, b = fig2
    ev = StepEvaluator(sub)
    before, after = ev.evaluate(wl, 0, a, a), ev.evaluate(wl, 0, b, b)
    assert before.accepted == after.accepted == 2
    for r_a, r_b in zip(before.requests, after.requests):
        assert sum(map(len, r_b.paths)) < sum(map(len, r_a.paths))
    assert after.cost.bandwidth < before.cost.bandwidth
    # and per Mbps carried after the rise, (b) still spends less on bandwidth than (a)
    rise_a, rise_b = ev.evaluate(wl, 1, a, a), ev.evaluate(wl, 1, a, b)
    assert rise_b.cost.bandwidth / (LOW + HIGH) < rise_a.cost.bandwidth / LOW
