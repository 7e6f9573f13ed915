"""The exact solver (controller/exact.py, policy `ilp`): its optimum against a plain reference
formulation, its cost against the evaluator, its warm start, and its refusals."""

from __future__ import annotations

import math
from dataclasses import replace
from functools import cache

import highspy
import numpy as np
import pytest

import factories as f
from controller import exact
from controller.errors import SremError
from controller.model.cost import ObjectiveWeights, bandwidth_cost, it_cost
from controller.model.dataset import SUBSTRATE_STREAM, workload_rng
from controller.model.delay import processing_delay_ms, transmission_delay_ms
from controller.model.evaluator import StepEvaluator
from controller.model.feasibility import capacities
from controller.model.scenario import load_scenario
from controller.model.substrate import HostKind, Substrate, draw_substrate
from controller.model.workload import Placement, Workload, generate_workload
from controller.policies import make_policy
from controller.policies.base import observe, start_day
from controller.policies.greedy_slack import GreedySlackPolicy

CARRIED = ObjectiveWeights(rejected_traffic="carried")
DROPPED = ObjectiveWeights(rejected_traffic="dropped")


@cache
def paper_step() -> tuple[StepEvaluator, Workload, Placement]:
    """Test workload 0 of `paper`'s default dataset, drawn alone (the dataset takes 15 s to generate),
    and greedy-slack's placement for its first (busy) step."""
    scenario = load_scenario("paper")
    seed = scenario.spec.dataset.seed
    substrate = Substrate(draw_substrate(scenario, np.random.default_rng([seed, SUBSTRATE_STREAM])))
    workload = generate_workload(scenario, substrate, 0, workload_rng(seed, "test", 0))
    greedy = GreedySlackPolicy()
    start_day(greedy, substrate, workload)
    observation = observe(substrate, workload, 0, scenario.hours[0], True, workload.initial_placement, None)
    evaluator = StepEvaluator(substrate, ObjectiveWeights(**scenario.spec.objective.model_dump()))
    return evaluator, workload, greedy.decide(observation)


# -- a reference: the plain formulation, one product column per request, virtual link and pair of nodes --

def reference_optimum(ev: StepEvaluator, wl: Workload, step: int, previous: Placement) -> tuple[int, float]:
    """(most accepted requests, least cost with that many) of the step, by a deliberately naive program
    with the model's semantics as exact.py states them: the router's first fewest-hop path per pair of
    nodes for load and price, the slowest fewest-hop path for delay, free admission, and rejected
    traffic carried or dropped as the weights say. Nothing pruned, aggregated, or split at leaves."""
    sub, weights = ev.substrate, ev.weights
    carried = weights.rejected_traffic == "carried"
    mask = capacities(sub).can_ever_hold()
    lower, upper, integer, rows = [], [], [], []

    def var(binary: bool = False, top: float = 1.0) -> int:
        lower.append(0.0)
        upper.append(top)
        integer.append(binary)
        return len(lower) - 1

    x = {(k, h): var(True) for k in range(len(sub.instances)) for h in range(len(sub.hosts)) if mask[k, h]}
    y = [var(True) for _ in wl.requests]
    cost: dict[int, float] = {}
    for k in range(len(sub.instances)):
        rows.append((1.0, 1.0, {x[k, h]: 1.0 for h in range(len(sub.hosts)) if (k, h) in x}))
    for h, host in enumerate(sub.hosts):
        held = {x[k, h]: sub.instances[k].type.storage_mb for k in range(len(sub.instances)) if (k, h) in x}
        rows.append((-np.inf, host.storage_mb, held))
        if host.kind is HostKind.EM:
            rows.append((-np.inf, sub.rdma_table_mb(host.node), {c: v * sub.rdma_index_fraction for c, v in held.items()}))
    for (k, h), col in x.items():
        _, _, migration, programming = ev.move(k, previous[k], h)
        cost[col] = (weights.it * it_cost(sub.instances[k].type.storage_mb, sub.hosts[h])
                     + weights.reconfiguration * (migration + programming))
    link_load: list[dict[int, float]] = [{} for _ in sub.links]
    instance_load: list[dict[int, float]] = [{} for _ in sub.instances]
    for r, (req, chain) in enumerate(zip(wl.requests, wl.assignment)):
        rate, deadline = req.rate_mbps[step], req.deadline_ms[step]
        reconfiguration = var(top=np.inf)
        delay = {reconfiguration: 1.0}
        for k in chain:
            instance_load[k][y[r]] = instance_load[k].get(y[r], 0.0) + rate
            moves = {x[k, h]: -ev.move(k, previous[k], h)[1] for (kk, h) in x if kk == k}
            rows.append((0.0, np.inf, {reconfiguration: 1.0, **moves}))
            for (kk, h), col in x.items():
                if kk == k:
                    delay[col] = delay.get(col, 0.0) + processing_delay_ms(rate, [ev.per_mb_delay[k][h]])
        nodes = [{req.source: []}] + [{} for _ in chain] + [{req.target: []}]
        for j, k in enumerate(chain):
            for (kk, h), col in x.items():
                if kk == k:
                    nodes[j + 1].setdefault(sub.hosts[h].node, []).append(col)
        for j in range(len(chain) + 1):
            # z[a, b]: the virtual link runs from node a to node b. They carry one unit when the request's
            # traffic is carried (always with `carried`, when accepted with `dropped`), out of no more
            # than the x at a and at b: for binary x exactly the carried pair of nodes.
            link = {(a, b): var() for a in nodes[j] for b in nodes[j + 1]}
            ones = dict.fromkeys(link.values(), 1.0)
            rows.append((1.0, 1.0, ones) if carried else (0.0, 0.0, {**ones, y[r]: -1.0}))
            for end, cols_at in ((0, nodes[j]), (1, nodes[j + 1])):
                for n, cols in cols_at.items():
                    if cols:
                        out_of = {z: 1.0 for key, z in link.items() if key[end] == n}
                        rows.append((-np.inf, 0.0, {**out_of, **{c: -1.0 for c in cols}}))
            for (a, b), z in link.items():
                paths = ev.router.min_hop_paths(a, b) if a != b else [()]
                delay[z] = max(transmission_delay_ms(rate, [(ev.link_capacity[l], ev.link_delay[l]) for l in p]) for p in paths)
                cost[z] = weights.bandwidth * bandwidth_cost(rate, sub.step_seconds, [ev.link_price[l] for l in paths[0]])
                for l in paths[0]:
                    link_load[l][z] = link_load[l].get(z, 0.0) + rate
        big_m = 10_000.0  # ms: above any delay the scenarios' ranges allow
        rows.append((-np.inf, deadline + big_m, {**delay, y[r]: big_m}))
    for k, terms in enumerate(instance_load):
        rows.append((-np.inf, 0.0, {**terms, **{x[k, h]: -sub.instance_capacity_mbps(k, h) for (kk, h) in x if kk == k}}))
    for l, terms in enumerate(link_load):
        rows.append((-np.inf, ev.link_capacity[l], terms))

    def solve(objective: dict[int, float], maximise: bool) -> float:
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(lower), len(rows)
        lp.col_cost_ = np.array([objective.get(c, 0.0) for c in range(len(lower))])
        lp.col_lower_, lp.col_upper_ = np.array(lower), np.array(upper)
        lp.row_lower_, lp.row_upper_ = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
        lp.sense_ = highspy.ObjSense.kMaximize if maximise else highspy.ObjSense.kMinimize
        lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous for i in integer]
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_ = np.cumsum([0] + [len(r[2]) for r in rows])
        lp.a_matrix_.index_ = np.array([c for r in rows for c in r[2]])
        lp.a_matrix_.value_ = np.array([v for r in rows for v in r[2].values()])
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("threads", 1)
        h.passModel(lp)
        h.run()
        assert h.getModelStatus() == highspy.HighsModelStatus.kOptimal
        return float(h.getInfo().objective_function_value)

    best = round(solve({c: 1.0 for c in y}, True))
    rows.append((best - 0.5, np.inf, {c: 1.0 for c in y}))
    return best, solve(cost, False)


def first_requests(wl: Workload, n: int) -> Workload:
    return replace(wl, requests=wl.requests[:n], assignment=wl.assignment[:n])


@pytest.mark.parametrize(("weights", "index"), [(CARRIED, 0), (DROPPED, 1)], ids=["carried", "dropped"])
def test_tightened_program_has_the_reference_optimum(small_dataset, weights, index):
    """Pruned hosts and requests, products split at leaves, compact light pairs, co-location
    configurations and the warm start change the program, not its optimum: on the first 8 requests of
    a `small` workload (one per reading), every step (from the previous step's answer) has the
    reference's accepted count and cost. Costs agree within twice HiGHS's relative optimality
    tolerance (1e-4), the slack each of the two optimal answers may have."""
    ev = StepEvaluator(small_dataset.substrate, weights)
    wl = first_requests(small_dataset.test[index], 8)
    previous = wl.initial_placement
    light = 0
    for step in range(wl.num_steps):
        solution = exact.solve_step(ev, wl, step, previous, 30.0)
        accepted, cost = reference_optimum(ev, wl, step, previous)
        assert solution.status == "optimal"
        assert solution.accepted == accepted
        assert solution.cost == pytest.approx(cost, rel=2e-4, abs=1e-9)
        assert ev.evaluate(wl, step, previous, solution.placement).feasible
        previous = solution.placement
        light += bool(exact.light_pairs(wl, step))
    assert light >= 2  # the busy steps, where the compact parts are used


# -- the cost phase against the evaluator ----------------------------------------------------------

def tree_substrate() -> tuple[Substrate, Workload]:
    """Two edge switches under one core, a server under each edge: one path between any two nodes,
    so the program's paths are the router's, and capacities far above the traffic."""
    topo = f.topology_dict(["core", "e1", "e2"], ["m1", "m2"],
                           [("core", "e1", 10.0, 0.2), ("core", "e2", 10.0, 0.3),
                            ("e1", "m1", 10.0, 0.1), ("e2", "m2", 10.0, 0.1)])
    sub = f.substrate(topo, [f.vnf("fw", 60.0, server_mbps=5000.0), f.vnf("nat", 60.0, server_mbps=5000.0, instances=2)],
                      link_prices=[0.004, 0.002, 0.001, 0.003])
    # deadlines from tight (only fast, unmoved placements meet them) to loose; rates large enough that servers are slow
    requests = [(["fw", "nat"], "e1", "e2", [400.0, 400.0], [deadline, deadline]) for deadline in (12.0, 16.0, 20.0, 60.0)]
    requests += [(["nat"], "e2", "core", [300.0, 300.0], [8.0, 8.0]), (["nat", "fw"], "core", "e1", [200.0, 200.0], [30.0, 30.0])]
    assignment = [["fw#0", "nat#0"], ["fw#0", "nat#1"], ["fw#0", "nat#0"], ["fw#0", "nat#1"], ["nat#1"], ["nat#0", "fw#0"]]
    wl = f.workload(sub, requests, {"fw#0": "em:e1", "nat#0": "m2", "nat#1": "em:core"}, assignment)
    return sub, wl


@pytest.mark.parametrize("weights", [CARRIED, DROPPED], ids=["carried", "dropped"])
def test_the_program_judges_a_placement_as_the_evaluator_does(weights):
    """Where the paths are unique and no capacity binds, the program admits exactly the evaluator's
    requests and charges exactly its cost (eq. 1 with the weights, rejected traffic as the reading
    says), for every placement that respects storage; some reject requests, so both readings differ."""
    sub, wl = tree_substrate()
    ev = StepEvaluator(sub, replace(weights, it=0.5, bandwidth=2.0, reconfiguration=3.0))
    program = exact.StepProgram(ev, wl, 1, wl.initial_placement, ev.weights)
    mask = capacities(sub).can_ever_hold()
    hosts = [np.flatnonzero(mask[k]) for k in range(len(sub.instances))]
    rejected_somewhere = compared = 0
    for placement in np.array(np.meshgrid(*hosts)).T.reshape(-1, len(hosts)):
        placement = tuple(int(h) for h in placement)
        judged = ev.evaluate(wl, 1, wl.initial_placement, placement)
        start = program.start(placement)
        if not judged.feasible:
            assert start is None
            continue
        assert start is not None
        assert start.accepted == {r for r, result in enumerate(judged.requests) if result.accepted}
        assert start.cost == pytest.approx(judged.cost.total, rel=1e-12)
        rejected_somewhere += judged.accepted < len(wl.requests)
        compared += 1
    assert compared > 20 and 0 < rejected_somewhere < compared


# -- the warm start ---------------------------------------------------------------------------------

def test_the_heuristic_start_is_a_solution_that_highs_takes():
    """greedy-slack's placement on a busy `paper` step is a solution of both phases' programs (every
    row holds), and HiGHS reports it as its incumbent before searching at all."""
    ev, wl, greedy = paper_step()
    full = exact.StepProgram(ev, wl, 0, wl.initial_placement, ev.weights)
    start = full.start(greedy)
    assert start is not None and full.prog.worst_violation(start.values) == 0.0
    assert 0 < len(start.accepted) <= full.acceptable
    h = exact._run(full, {col: 1.0 for col in full.y.values()}, True, start, 1e-3)
    assert exact._found(h) and h.getInfo().objective_function_value >= len(start.accepted)

    cost_phase = exact.StepProgram(ev, wl, 0, wl.initial_placement, ev.weights, light=exact.light_pairs(wl, 0), colocation=True)
    cost_phase.prog.row(len(start.accepted) - 0.5, np.inf, {col: 1.0 for col in cost_phase.y.values()})
    again = cost_phase.start(greedy, start.accepted)
    assert again is not None and again.cost == pytest.approx(start.cost, rel=1e-12)
    assert cost_phase.configurations and cost_phase.light_cols  # the compact parts are there to be checked
    h = exact._run(cost_phase, cost_phase.cost, False, again, 1e-3)
    assert exact._found(h) and h.getInfo().objective_function_value <= again.cost * (1 + 1e-9)


def test_an_answer_is_at_least_the_warm_start_even_without_time():
    """With a millisecond per step the answer is still the warm start or better, and a valid placement."""
    ev, wl, greedy = paper_step()
    solution = exact.solve_step(ev, wl, 0, wl.initial_placement, 1e-3, starts=[greedy])
    start = exact.StepProgram(ev, wl, 0, wl.initial_placement, ev.weights).start(greedy)
    assert start is not None and solution.start_accepted == len(start.accepted)
    assert solution.accepted > solution.start_accepted or (
        solution.accepted == solution.start_accepted and solution.cost <= solution.start_cost * (1 + 1e-9))
    assert ev.evaluate(wl, 0, wl.initial_placement, solution.placement).feasible


def test_the_policy_solves_with_the_scenarios_objective(small_dataset):
    """`ilp` with the dataset's objective: every step of a `small` workload (its first 20 requests)
    proven optimal, each accepting at least as many as its warm start (greedy-slack's placement for
    the step, or the previous one), and solved with the dataset's weights."""
    from controller.evaluation import run_day

    policy = make_policy("ilp:30")
    policy.use_objective(small_dataset.objective_weights)
    policy.bind(small_dataset.substrate)
    ev = StepEvaluator(small_dataset.substrate, small_dataset.objective_weights)
    wl = first_requests(small_dataset.test[2], 20)
    results = run_day(ev, small_dataset, wl, policy)
    solutions = policy.solutions  # type: ignore[attr-defined]
    assert [s.status for s in solutions] == ["optimal"] * len(results)
    assert all(s.accepted >= s.start_accepted for s in solutions)
    assert policy.evaluator.weights == small_dataset.objective_weights  # type: ignore[attr-defined]


# -- small hand-made steps --------------------------------------------------------------------------

def test_exact_solver_is_optimal_on_the_motivation_scenario():
    """Fig. 2 with a free choice of hosts: the optimum accepts both chains after the rise, and at least
    as cheaply as config (b)."""
    topo = f.topology_dict(["src", "sw1", "d1", "d2"], ["srv1", "srv2"],
                           [("src", "sw1", 10.0, 0.1), ("sw1", "d1", 10.0, 0.1), ("sw1", "d2", 10.0, 0.1),
                            ("sw1", "srv1", 10.0, 0.1), ("sw1", "srv2", 10.0, 0.1)])
    sub = f.substrate(topo, [f.vnf("vnf1", 300.0, server_mbps=500.0), f.vnf("vnf2", 300.0, server_mbps=500.0),
                             f.vnf("vnf3", 10.0, server_mbps=500.0)])
    wl = f.workload(sub, [(["vnf1", "vnf2"], "src", "d1", [200.0, 200.0], [100.0, 100.0]),
                          (["vnf3", "vnf1"], "src", "d2", [200.0, 400.0], [100.0, 100.0])],
                    {"vnf1#0": "srv1", "vnf2#0": "srv2", "vnf3#0": "lm:src"})
    ev = StepEvaluator(sub)
    solution = exact.solve_step(ev, wl, 1, wl.initial_placement, time_limit_s=30)
    assert solution.status == "optimal" and solution.accepted == 2
    judged = ev.evaluate(wl, 1, wl.initial_placement, solution.placement)
    config_b = f.placement_of(sub, {"vnf1#0": "em:sw1", "vnf2#0": "srv2", "vnf3#0": "lm:src"})
    assert judged.accepted == 2
    assert judged.cost.total <= ev.evaluate(wl, 1, wl.initial_placement, config_b).cost.total + 1e-9


# -- refusals ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("arg", ["0", "-5", "nan", "inf", "soon"])
def test_a_bad_time_limit_is_refused_in_one_line(arg):
    with pytest.raises(SremError) as err:
        make_policy(f"ilp:{arg}")
    assert err.value.where == "--policy" and arg in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("limit", [0.0, -1.0, math.nan])
def test_solve_step_refuses_a_time_limit_that_is_not_positive(small_dataset, limit):
    ev = StepEvaluator(small_dataset.substrate, small_dataset.objective_weights)
    wl = small_dataset.test[0]
    with pytest.raises(ValueError, match="time limit must be positive"):
        exact.solve_step(ev, wl, 0, wl.initial_placement, limit)
