"""schedule-foresight: the next busy class's instances move into switch memory a step ahead, where its quiet
step's deadline absorbs the programming delay that its busy step's cannot."""

from __future__ import annotations

import factories as f
from controller.evaluation import run_day
from controller.model.evaluator import StepEvaluator
from controller.model.substrate import HostKind
from controller.model.workload import Schedule
from controller.policies import make_policy
from controller.model.estimates import busy_forecast

LINKS = [("s1", "s2", 40.0, 0.1), ("s1", "m1", 40.0, 0.1), ("s2", "m2", 40.0, 0.1)]


class TwoSteps:
    """What run_day needs of a dataset: two steps, both working hours."""

    hours = [10, 12]

    @staticmethod
    def is_working_hour(hour: int) -> bool:
        return True


def case():  # type: ignore[no-untyped-def]
    """Two 10 MB firewalls on slow servers (200 Mbps at 2 ms/MB: 50 ms against 20 ms deadlines). Programming a
    switch over a 2 Gbps controller link takes 40 ms: a quiet step's 80 ms deadline absorbs it, a busy one's
    20 ms does not. Class a (fw#0) is busy at step 0, class b (fw#1) at step 1."""
    topo = f.topology_dict(["s1", "s2"], ["m1", "m2"], LINKS)
    sub = f.substrate(topo, [f.vnf("fw", 10.0, instances=2)], controller_gbps=2.0,
                      servers={"m1": f.server(delay=2.0, price_per_gb=0.001), "m2": f.server(delay=2.0, price_per_gb=0.001)},
                      switches={"s1": f.switch(lm=5.0), "s2": f.switch(lm=5.0)})
    requests = [(["fw"], "s1", "s2", [200.0, 0.2], [20.0, 80.0]), (["fw"], "s1", "s2", [0.2, 200.0], [80.0, 20.0])]
    schedule = Schedule(("a", "b"), (frozenset({0}), frozenset({1})), (0, 1), 2)
    wl = f.workload(sub, requests, {"fw#0": "m1", "fw#1": "m1"}, [["fw#0"], ["fw#1"]], schedule)
    return sub, wl


def test_foresight_moves_the_next_busy_class_ahead_and_keeps_its_deadline() -> None:
    sub, wl = case()
    evaluator = StepEvaluator(sub)
    greedy = run_day(evaluator, TwoSteps, wl, make_policy("greedy-slack"))  # type: ignore[arg-type]
    foresight = run_day(evaluator, TwoSteps, wl, make_policy("schedule-foresight"))  # type: ignore[arg-type]
    assert [r.requests[1].accepted for r in greedy] == [True, False]
    assert [r.requests[1].accepted for r in foresight] == [True, True]
    assert sub.hosts[foresight[0].placement[1]].kind is HostKind.EM  # moved at step 0, in its quiet step
    assert foresight[1].placement[1] == foresight[0].placement[1]  # and stays in its busy step
    assert all(r.feasible for r in foresight)


def test_no_busy_step_seen_yet_means_no_forecast_and_no_move_ahead() -> None:
    sub, wl = case()
    quiet_first = Schedule(("a", "b"), (frozenset(), frozenset({1})), (0, 1), 2)
    wl = f.workload(sub, [(["fw"], "s1", "s2", [0.2, 0.2], [80.0, 80.0]), (["fw"], "s1", "s2", [0.2, 200.0], [80.0, 20.0])],
                    {"fw#0": "m1", "fw#1": "m1"}, [["fw#0"], ["fw#1"]], quiet_first)
    assert busy_forecast(wl.known_until(0), 0) is None
    assert busy_forecast(wl.known_until(1), 1) == (200.0, 20.0)
    days = run_day(StepEvaluator(sub), TwoSteps, wl, make_policy("schedule-foresight"))  # type: ignore[arg-type]
    assert sub.hosts[days[0].placement[1]].kind is HostKind.SERVER
