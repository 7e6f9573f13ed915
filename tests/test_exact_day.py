"""The day-long optimum (controller/exact_day.py): its moves are the evaluator's, it moves a step ahead
where the per-step optimum cannot, it never reports less than its start, its bound holds, and its
placements respect storage."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import factories as f
from controller import exact, exact_day
from controller.errors import SremError
from controller.model.constraints import storage_violations
from controller.model.cost import ObjectiveWeights
from controller.model.evaluator import StepEvaluator
from controller.model.feasibility import capacities
from controller.model.substrate import HostKind, Substrate
from controller.model.workload import Workload

CARRIED = ObjectiveWeights(rejected_traffic="carried")
DROPPED = ObjectiveWeights(rejected_traffic="dropped")


def ahead_case() -> tuple[Substrate, Workload]:
    """One firewall on a server, one request from switch a to b: light with an evening deadline at step 0,
    heavy with a 10 ms deadline at step 1. The server is too slow for step 1 (400 Mbps = 50 MB/s x 0.5 ms/MB
    = 25 ms), and programming it into switch memory takes 60 MB over a 10 Gbps controller link = 48 ms:
    step 0's 100 ms absorb that, step 1's 10 ms do not."""
    topo = f.topology_dict(["a", "b"], ["m1"], [("a", "b", 10.0, 0.1), ("a", "m1", 10.0, 0.1)])
    sub = f.substrate(topo, [f.vnf("fw", 60.0, server_mbps=5000.0)], switches={"a": f.switch(lm=80.0), "b": f.switch(lm=80.0)},
                      controller_gbps=10.0)
    wl = f.workload(sub, [(["fw"], "a", "b", [0.5, 400.0], [100.0, 10.0])], {"fw#0": "m1"})
    return sub, wl


def test_the_day_optimum_moves_a_step_ahead_where_the_per_step_optimum_cannot():
    sub, wl = ahead_case()
    ev = StepEvaluator(sub)
    previous, per_step = wl.initial_placement, 0
    for step in range(wl.num_steps):
        solution = exact.solve_step(ev, wl, step, previous, 30.0)
        per_step += ev.evaluate(wl, step, previous, solution.placement).accepted
        previous = solution.placement
    assert per_step == 1  # step 0 keeps the cheap server; at step 1 the move is too slow

    day = exact_day.solve_day(ev, wl, 30.0)
    assert day.status == "optimal" and day.accepted == 2 and day.accepted_bound == 2
    assert sub.hosts[day.placements[0][0]].kind is not HostKind.SERVER  # programmed at step 0, in its evening
    assert day.results[0].moves[0].value == "programming" and day.results[1].moves[0].value == "stay"


def test_the_local_search_makes_a_late_move_a_step_ahead():
    """`move_earlier` on the myopic day (server, then switch memory at step 1, too late) programs the
    firewall at step 0 instead, and the evaluator then accepts both steps' request."""
    sub, wl = ahead_case()
    ev = StepEvaluator(sub)
    lm = f.placement_of(sub, {"fw#0": "lm:a"})
    late = [wl.initial_placement, lm]
    assert [r.accepted for r in exact_day.judge_day(ev, wl, late)] == [1, 0]
    ahead = exact_day.move_earlier(ev, wl, late, 10.0)
    assert ahead == [lm, lm]
    assert [r.accepted for r in exact_day.judge_day(ev, wl, ahead)] == [1, 1]


def tree_day() -> tuple[Substrate, Workload]:
    """A tree (one path between any two nodes, so the program's paths are the router's) with two servers,
    capacities far above the traffic, three steps and deadlines that a migration (60 MB over 10 Gbps =
    48 ms) or programming (60 MB over 50 Gbps = 9.6 ms) may or may not break."""
    topo = f.topology_dict(["core", "e1", "e2"], ["m1", "m2"],
                           [("core", "e1", 10.0, 0.2), ("core", "e2", 10.0, 0.3), ("e1", "m1", 10.0, 0.1), ("e2", "m2", 10.0, 0.1)])
    sub = f.substrate(topo, [f.vnf("fw", 60.0, server_mbps=5000.0), f.vnf("nat", 60.0, server_mbps=5000.0, instances=2)],
                      link_prices=[0.004, 0.002, 0.001, 0.003])
    requests = [(["fw", "nat"], "e1", "e2", [300.0, 1.0, 300.0], [12.0, 60.0, 15.0]),
                (["fw", "nat"], "e1", "e2", [1.0, 300.0, 1.0], [55.0, 11.0, 80.0]),
                (["nat"], "e2", "core", [200.0, 1.0, 200.0], [8.0, 50.0, 20.0]),
                (["nat", "fw"], "core", "e1", [1.0, 1.0, 100.0], [90.0, 40.0, 30.0])]
    assignment = [["fw#0", "nat#0"], ["fw#0", "nat#1"], ["nat#1"], ["nat#0", "fw#0"]]
    return sub, f.workload(sub, requests, {"fw#0": "m1", "nat#0": "m2", "nat#1": "m1"}, assignment)


@pytest.mark.parametrize("weights", [CARRIED, DROPPED], ids=["carried", "dropped"])
def test_the_day_program_judges_a_day_as_the_evaluator_does(weights):
    """Where paths are unique and no capacity binds, the day program admits exactly the evaluator's requests
    at every step and charges exactly its day cost - moves (programming, server-to-server migration,
    back to a server) included - for days of placements drawn at random, some of which the moves make
    reject requests."""
    sub, wl = tree_day()
    ev = StepEvaluator(sub, replace(weights, it=0.5, bandwidth=2.0, reconfiguration=3.0))
    day = exact_day.DayProgram(ev, wl, ev.weights)
    mask = capacities(sub).can_ever_hold()
    hosts = [np.flatnonzero(mask[k]) for k in range(len(sub.instances))]
    rng = np.random.default_rng(0)
    compared = late = 0
    for _ in range(150):
        placements = [tuple(int(rng.choice(h)) for h in hosts) for _ in range(wl.num_steps)]
        judged = exact_day.judge_day(ev, wl, placements)
        values = day.start(placements)
        if not all(r.feasible for r in judged):
            assert values is None
            continue
        assert values is not None
        assert [len(step.accepted(values)) for step in day.steps] == [r.accepted for r in judged]
        assert exact_day._value(day.cost, values) == pytest.approx(sum(r.cost.total for r in judged), rel=1e-9)
        late += any(r.reconfiguration_ms > 0 and not r.accepted for res in judged for r in res.requests)
        compared += 1
    assert compared > 50 and late > 0


def first_requests(wl: Workload, n: int) -> Workload:
    return replace(wl, requests=wl.requests[:n], assignment=wl.assignment[:n])


def test_on_small_the_day_optimum_beats_its_start_within_its_bound(small_dataset):
    """On the first 15 requests of a `small` workload, from greedy-slack's day: the reported day accepts at
    least as many as greedy-slack (by the evaluator), its results are the evaluator's verdict on its
    placements, the program's bound is at least what the program accepts, and no placement breaks eq. 7."""
    ev = StepEvaluator(small_dataset.substrate, small_dataset.objective_weights)
    wl = first_requests(small_dataset.test[0], 15)
    greedy = exact_day.greedy_day(ev, small_dataset, wl)
    start = exact_day.judge_day(ev, wl, greedy)
    day = exact_day.solve_day(ev, wl, 40.0, greedy)
    assert day.start_accepted == sum(r.accepted for r in start)
    assert day.accepted >= day.start_accepted
    assert day.accepted > day.start_accepted or day.cost <= day.start_cost + 1e-9
    assert day.accepted_bound >= day.program_accepted and day.accepted_bound <= len(wl.requests) * wl.num_steps
    assert [r.accepted for r in exact_day.judge_day(ev, wl, day.placements)] == [r.accepted for r in day.results]
    assert all(not storage_violations(small_dataset.substrate, p) for p in day.placements)
    working = [t for t, hour in enumerate(small_dataset.hours) if small_dataset.is_working_hour(hour)]
    assert 0 < day.accepted_at(working) <= day.accepted


def test_the_step_ceilings_bound_every_step_of_any_day(small_dataset):
    """The decomposed ceiling: no day of placements accepts more at a step than its ceiling (by the program)."""
    ev = StepEvaluator(small_dataset.substrate, small_dataset.objective_weights)
    wl = first_requests(small_dataset.test[1], 10)
    greedy = exact_day.greedy_day(ev, small_dataset, wl)
    ceilings, _ = exact_day.step_ceilings(ev, wl, ev.weights, 30.0, greedy)
    day = exact_day.DayProgram(ev, wl, ev.weights)
    for placements in (greedy, [wl.initial_placement] * wl.num_steps, [greedy[0]] * wl.num_steps):
        values = day.start(placements)
        if values is not None:
            assert all(len(step.accepted(values)) <= c for step, c in zip(day.steps, ceilings))


@pytest.mark.parametrize("limit", [0.0, -1.0, float("nan"), float("inf")])
def test_a_bad_time_limit_is_refused_in_one_line(limit):
    sub, wl = ahead_case()
    with pytest.raises(SremError) as err:
        exact_day.solve_day(StepEvaluator(sub), wl, limit)
    assert "time limit" in str(err.value) and "\n" not in str(err.value)


def test_a_start_of_the_wrong_length_is_refused_in_one_line():
    sub, wl = ahead_case()
    with pytest.raises(SremError) as err:
        exact_day.solve_day(StepEvaluator(sub), wl, 5.0, [wl.initial_placement])
    assert "1 steps" in str(err.value) and "\n" not in str(err.value)



def test_the_gap_report_has_both_optima(small_dataset, tmp_path):
    """`optimality_gap` on one `small` workload: the day-long optimum, started from the best method's day,
    accepts at least as many as every method; each method's gaps are its acceptance minus the day optimum's
    and minus the ceiling, which is at least the day optimum's; the files carry the new columns."""
    from controller import experiments

    methods = experiments.bind_methods(small_dataset, {"static": "static", "greedy-slack": "greedy-slack"}, [])
    result = experiments.optimality_gap(small_dataset, methods, 5.0, 1, tmp_path, progress=False, day_time_limit_s=10.0)
    rows = {r.label: r for r in result.rows}
    assert list(rows) == ["static", "greedy-slack", experiments.OPTIMUM, experiments.DAY_OPTIMUM]
    day = rows[experiments.DAY_OPTIMUM]
    assert all(r.accepted_total <= day.accepted_total for r in rows.values())
    assert result.day_acceptance_ceiling >= day.acceptance_ratio
    for r in rows.values():
        assert r.day_acceptance_gap == pytest.approx(r.acceptance_ratio - day.acceptance_ratio)
        assert r.day_ceiling_gap == pytest.approx(r.acceptance_ratio - result.day_acceptance_ceiling)
    assert result.days[0].start in rows and result.days[0].accepted == day.accepted_total
    assert "day_ceiling_gap" in (tmp_path / "gap.csv").read_text().splitlines()[0]
    assert (tmp_path / "gap-day.csv").read_text().count("\n") == 2 and "day ceiling" in (tmp_path / "gap.md").read_text()


def test_a_workload_cut_short_is_refused_in_one_line():
    """The oracle needs every step's rates: a workload as a policy sees it mid-day is refused."""
    sub, wl = ahead_case()
    seen = replace(wl, requests=tuple(replace(r, rate_mbps=r.rate_mbps[:1], deadline_ms=r.deadline_ms[:1]) for r in wl.requests))
    with pytest.raises(SremError) as err:
        exact_day.solve_day(StepEvaluator(sub), seen, 5.0)
    assert "all its 2 steps" in str(err.value) and "\n" not in str(err.value)
