"""The exact optimum of one step as a mixed-integer program, solved by HiGHS (highspy).

Why HiGHS: an open-source MIP solver of competitive speed that installs as one pinned wheel from
PyPI with no licence or system library, and takes a time limit and reports the proven bound and gap.

The program, for step t of a workload, given the previous placement:
- x[k,h] binary: instance k on host h (only hosts whose storage can ever hold it: eq. 8 + static filter);
- y[r] binary: request r accepted;
- z[r,j,a,b] in [0,1]: virtual link j of r runs from node a to node b; z >= (x-sums at a and b) + y_r - 2,
  so it is 1 exactly on an accepted request's segment (it only appears where minimising pushes it down);
- storage per host and RDMA table per switch (eq. 7); an instance's admitted traffic within the
  capacity of its host (eq. 10); link loads within bandwidth (eq. 11); an accepted request's
  reconfiguration + processing + transmission delay within its deadline (eq. 13-19, big-M).
- objective: first the most accepted requests, then (with that many fixed) the least cost (eq. 1).

What differs from the step evaluator (evaluator.py), so the optimum is of a close relative of the
model, not of the model itself: each virtual link between two nodes takes one fixed fewest-hop path
(the evaluator balances load over all of them), and the program chooses freely which requests to
admit (the evaluator admits greedily in id order). Every solution is also evaluated by the step
evaluator, so what a method is compared with is the optimum's placement judged like theirs.
"""

from __future__ import annotations

from dataclasses import dataclass

import highspy
import numpy as np

from controller.model.cost import ObjectiveWeights, bandwidth_cost, it_cost
from controller.model.delay import processing_delay_ms, transmission_delay_ms
from controller.model.evaluator import StepEvaluator
from controller.model.feasibility import capacities
from controller.model.substrate import HostKind
from controller.model.workload import Placement, Workload


class _Program:
    """Columns and rows of a MIP, kept as plain lists until they are handed to HiGHS."""

    def __init__(self) -> None:
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.integer: list[bool] = []
        self.rows: list[tuple[float, float, list[int], list[float]]] = []

    def var(self, lower: float = 0.0, upper: float = 1.0, integer: bool = False) -> int:
        self.lower.append(lower)
        self.upper.append(upper)
        self.integer.append(integer)
        return len(self.lower) - 1

    def row(self, lower: float, upper: float, terms: dict[int, float]) -> None:
        self.rows.append((lower, upper, list(terms), list(terms.values())))

    def to_highs(self, cost: dict[int, float], maximise: bool) -> highspy.HighsLp:
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(self.lower), len(self.rows)
        costs = np.zeros(len(self.lower))
        for col, value in cost.items():
            costs[col] = value
        lp.col_cost_ = costs
        lp.col_lower_, lp.col_upper_ = np.array(self.lower), np.array(self.upper)
        lp.row_lower_ = np.array([r[0] for r in self.rows])
        lp.row_upper_ = np.array([r[1] for r in self.rows])
        lp.sense_ = highspy.ObjSense.kMaximize if maximise else highspy.ObjSense.kMinimize
        lp.integrality_ = [highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous for i in self.integer]
        starts, index, values = [0], [], []
        for _, _, cols, vals in self.rows:
            index.extend(cols)
            values.extend(vals)
            starts.append(len(index))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = np.array(starts), np.array(index), np.array(values)
        return lp


@dataclass(frozen=True)
class ExactSolution:
    placement: Placement
    accepted: int
    """Requests the program accepts (with its fixed paths and free admission)."""
    cost: float
    status: str
    """'optimal', 'time limit' (best found, with its gap) or 'no solution' (none found in time: the
    previous placement is kept)."""
    gap: float
    """Relative MIP gap of the cost phase (0 when optimal)."""
    accepted_bound: float
    """Upper bound on accepted requests proven in phase one."""
    seconds: float


def solve_step(evaluator: StepEvaluator, workload: Workload, step: int, previous: Placement,
               time_limit_s: float = 60.0, weights: ObjectiveWeights | None = None) -> ExactSolution:
    sub, router = evaluator.substrate, evaluator.router
    weights = weights or evaluator.weights
    mask = capacities(sub).can_ever_hold()
    prog = _Program()
    x = {(k, h): prog.var(integer=True) for k in range(len(sub.instances)) for h in range(len(sub.hosts)) if mask[k, h]}
    y = [prog.var(integer=True) for _ in workload.requests]
    cost: dict[int, float] = {}
    for k in range(len(sub.instances)):
        prog.row(1.0, 1.0, {x[k, h]: 1.0 for h in range(len(sub.hosts)) if (k, h) in x})
    for h, host in enumerate(sub.hosts):
        terms = {x[k, h]: sub.instances[k].type.storage_mb for k in range(len(sub.instances)) if (k, h) in x}
        if terms:
            prog.row(-np.inf, host.storage_mb, terms)
        if host.kind is HostKind.EM:  # the RDMA table of the switch indexes its EM-hosted instances
            index = {col: size * sub.rdma_index_fraction for col, size in terms.items()}
            if index:
                prog.row(-np.inf, sub.rdma_table_mb(host.node), index)
    nodes_of = {k: {} for k in range(len(sub.instances))}
    for (k, h), col in x.items():
        nodes_of[k].setdefault(sub.hosts[h].node, []).append(col)
    move_delay = {}
    for (k, h), col in x.items():
        _, delay_ms, migration, programming = evaluator.move(k, previous[k], h)
        move_delay[k, h] = delay_ms
        cost[col] = weights.it * it_cost(sub.instances[k].type.storage_mb, sub.hosts[h]) + weights.reconfiguration * (migration + programming)
    link_terms: list[dict[int, float]] = [dict() for _ in sub.links]
    instance_terms: list[dict[int, float]] = [dict() for _ in sub.instances]
    for r, (req, instances) in enumerate(zip(workload.requests, workload.assignment)):
        rate, deadline = req.rate_mbps[step], req.deadline_ms[step]
        big_m = deadline + 10_000.0
        delay: dict[int, float] = {}
        reconf = prog.var(0.0, np.inf)
        delay[reconf] = 1.0
        for k in instances:
            instance_terms[k][y[r]] = rate
            prog.row(0.0, np.inf, {reconf: 1.0, **{x[k, h]: -move_delay[k, h] for (kk, h) in x if kk == k}})
            for (kk, h), col in x.items():
                if kk == k:
                    delay[col] = delay.get(col, 0.0) + processing_delay_ms(rate, [evaluator.per_mb_delay[k][h]])
        ends = [{req.source: None}] + [nodes_of[k] for k in instances] + [{req.target: None}]
        for j in range(len(ends) - 1):
            for a, a_cols in ends[j].items():
                for b, b_cols in ends[j + 1].items():
                    path = router.min_hop_paths(a, b)[0] if a != b else ()
                    z = prog.var(0.0, 1.0)
                    lower = {z: 1.0, y[r]: -1.0}
                    fixed = 1.0
                    for cols in (a_cols, b_cols):
                        if cols is not None:
                            for col in cols:
                                lower[col] = lower.get(col, 0.0) - 1.0
                            fixed += 1.0
                    prog.row(1.0 - fixed, np.inf, lower)
                    for l in path:
                        link_terms[l][z] = link_terms[l].get(z, 0.0) + rate
                    delay[z] = transmission_delay_ms(rate, [(evaluator.link_capacity[l], evaluator.link_delay[l]) for l in path])
                    cost[z] = weights.bandwidth * bandwidth_cost(rate, sub.step_seconds, [evaluator.link_price[l] for l in path])
        delay[y[r]] = big_m
        prog.row(-np.inf, deadline + big_m, delay)
    for k, terms in enumerate(instance_terms):
        if terms:
            cap = {x[k, h]: -sub.instance_capacity_mbps(k, h) for (kk, h) in x if kk == k}
            prog.row(-np.inf, 0.0, {**terms, **cap})
    for l, terms in enumerate(link_terms):
        if terms:
            prog.row(-np.inf, evaluator.link_capacity[l], terms)
    return _solve(prog, x, y, cost, time_limit_s, previous)


def _highs(time_limit_s: float) -> highspy.Highs:
    """A quiet, single-threaded, seeded solver: the same model gives the same answer."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", time_limit_s)
    return h


def _found(h: highspy.Highs) -> bool:
    return h.getInfo().primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible


def _solve(prog: _Program, x: dict, y: list[int], cost: dict[int, float], time_limit_s: float,
           previous: Placement) -> ExactSolution:
    h = _highs(time_limit_s / 2)
    h.passModel(prog.to_highs({col: 1.0 for col in y}, maximise=True))
    h.run()
    first_optimal = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    info = h.getInfo()
    bound = float(info.mip_dual_bound)
    # Without an incumbent the first phase proved nothing: accepting none is always feasible.
    best = round(float(info.objective_function_value)) if _found(h) else 0
    seconds = h.getRunTime()
    prog.row(best - 0.5, np.inf, {col: 1.0 for col in y})
    h2 = _highs(max(time_limit_s - seconds, 1.0))
    h2.passModel(prog.to_highs(cost, maximise=False))
    h2.run()
    if not _found(h2):
        return ExactSolution(placement=previous, accepted=0, cost=float("nan"), status="no solution", gap=float("inf"),
                             accepted_bound=bound, seconds=seconds + h2.getRunTime())
    status = "optimal" if first_optimal and h2.getModelStatus() == highspy.HighsModelStatus.kOptimal else "time limit"
    values = h2.getSolution().col_value
    placement = [0] * len(previous)
    for (k, host), col in x.items():
        if values[col] > 0.5:
            placement[k] = host
    info2 = h2.getInfo()
    return ExactSolution(
        placement=tuple(placement),
        accepted=int(round(sum(values[col] for col in y))),
        cost=float(info2.objective_function_value),
        status=status,
        gap=float(info2.mip_gap) if status != "optimal" else 0.0,
        accepted_bound=bound,
        seconds=seconds + h2.getRunTime(),
    )
