"""The day-long optimum of one workload: one mixed-integer program over all its steps, solved by HiGHS.

An oracle with the whole day: it reads every step's rates and deadlines, which no policy may; that
is what makes it a ceiling for policies that move instances a step ahead, where the per-step optimum
(exact.py, myopic: it sees one step and the previous placement) is not.

The program (a `StepProgram` of exact.py per step, all in one set of columns):
- per step t the step's rows with its own x[k,h,t], y[r,t]: placement (eq. 8), storage and RDMA table
  (eq. 7), processing capacity (eq. 10), links (eq. 11) and every accepted request's deadline (eq.
  13-19) on the program's fixed paths, with the scenario's `rejected_traffic` reading;
- step 0 moves from the workload's initial placement, as in exact.py. From step 1 the previous
  placement is step t-1's x, and each instance's move into its host at t (eq. 13/14's delay in step
  t's deadline rows, eq. 5/6's cost in step t's cost) is linked to both steps' x:
  - a destination every other host reaches with the same delay and cost (switch memory: programming,
    eq. 6/14, the same from any host) gets mv[k,h,t] >= x[k,h,t] - x[k,h,t-1];
  - the others (servers: a migration from another server, eq. 5/13, depends on the path; from a
    switch it is free) get one row per origin h' for the delay and one for the cost:
    D[k,t] >= sum_h M[h',h] x[k,h,t] - max_h M[h',h] (1 - x[k,h',t-1]).
  Both are exact for binary x (the program pushes mv and D down: they only tighten deadline rows and
  add cost), so the moves are the evaluator's, not a relaxation of them.
- objective, lexicographic as exact.py's per step: first the most requests accepted over the day
  (summed over the steps), then, with that many, the least day cost (eq. 1 summed over the steps,
  the scenario's weights and reading of rejected traffic).

What the program is of: the close relative of the model that exact.py optimises (fixed fewest-hop
paths, free admission; see its docstring), over the day. Its proven bound on accepted requests is a
bound for that relative; the answer reported is judged by the step evaluator, step by step from the
initial placement, and is the better (by the evaluator: accepted, then cost) of the program's
incumbent and the placements it was started from, so it never accepts fewer than its start.

How it is solved (`solve_day`), because the whole program is too large to solve outright: on
`paper` it has about 88,000 columns, 40,000 rows and 510,000 nonzeros, and HiGHS spends minutes in
its root node's cuts without moving the bound (measured: 90 s on a two-step part of it). So:
1. The ceiling (the reported bound): per step, the step's program with no previous placement and no
   move charged, as if every instance were in place already (step 0 from the initial placement), solved
   to its own bound. Its rows are the day program's for that step minus the move delays, so the sum
   over the steps bounds the day program's accepted requests: a relaxation (`step_ceilings`), exact
   only where moves do not bind. The whole program's LP bound is no better (on `small` it was every
   open request; its big-M deadline rows and fractional packing let moves cost nothing).
2. Starts: the day offered (`start`, e.g. the best method's placements; `greedy_day` computes
   greedy-slack's), keeping the initial placement all day, the ceiling's in-place placements, and each
   improved by `move_earlier` (a local search by the evaluator that makes a move a step ahead).
3. Phase one (most accepted), then phase two (least cost with that many): HiGHS on the whole program
   with every step's placement fixed but those of a window of two consecutive steps, one window after
   another, each warm-started from the incumbent (so never worse). In phase one a window first frees
   only the instances in play (`DayProgram.in_play`), then all of them if that was proven in time. A
   window that is the whole day (two steps) is the exact program: its proofs are the day's.
Every answer is reported with the ceiling: `accepted_gap` is the MIP gap against it.

Measured on the first 4 `paper` test workloads (120 s each, one HiGHS thread, a shared 2-core machine;
the program has 79,000-88,000 columns, 36,000-40,000 rows, 440,000-510,000 nonzeros): ceilings of
525-532 of 540 requests; from greedy-slack's day (495-502 accepted; the per-step optimum's 495-504)
the answer accepts 508-514 in 88-103 s, MIP gap 3.1-3.6%; from schedule-foresight's day (first 3:
511-520) 515-520, gap 1.3-2.7%. The whole two-step windows stayed in HiGHS's root node for 60-90 s
without a better incumbent; the windows on the instances in play and `move_earlier` make the gains.
On `small` a workload goes from greedy-slack's 250 to 267, its ceiling, in 40 s.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import highspy
import numpy as np

from controller.errors import SremError
from controller.exact import FEASIBILITY_TOLERANCE, Expr, ProgramSize, StepProgram, _found, _Program, _highs, _warm
from controller.model.constraints import storage_violations
from controller.model.cost import ObjectiveWeights
from controller.model.dataset import Dataset
from controller.model.evaluator import StepEvaluator, StepResult
from controller.model.substrate import HostKind, Substrate
from controller.model.workload import Placement, Workload

DAY_OPTIMUM = "day-optimum"
"""The label of the day-long optimum in reports."""

MoveTable = dict[tuple[int, int], tuple[float, float]]
"""(origin host, destination host) -> the move's delay (eq. 13/14, ms) and cost (eq. 5/6)."""


def move_table(evaluator: StepEvaluator, k: int, hosts: Sequence[int]) -> MoveTable:
    """Every move of instance k between two of `hosts`, as the evaluator charges it."""
    table = {}
    for before in hosts:
        for after in hosts:
            if before != after:
                _, delay, migration, programming = evaluator.move(k, before, after)
                table[before, after] = (delay, migration + programming)
    return table


@dataclass
class _Move:
    """The columns of one instance's move into its host at one step (module docstring)."""

    delay: Expr
    """Its delay (ms), for the deadline rows."""
    cost: Expr
    """Its eq. 5/6 cost (unweighted)."""
    uniform: dict[int, int]
    """Destination reached alike from every other host -> its mv column."""
    spread: set[int]
    """The other destinations."""
    scaled: list[tuple[int, float, int]]
    """(D column, scale, 0 for delay / 1 for cost): the column times the scale is that part of the table."""
    migrated: dict[int, tuple[int, frozenset[int]]] = field(default_factory=dict)
    """Spread destination -> (its w column, the origins from which moving there takes time); see `_DayStep`."""


def _link_move(prog: _Program, table: MoveTable, hosts: Sequence[int], before: dict[int, int],
               after: dict[int, int]) -> _Move:
    """Columns and rows tying one instance's move at a step to its x at the step before (`before`) and at
    the step (`after`), host -> column."""
    uniform: dict[int, int] = {}
    spread = set()
    delay: Expr = {}
    cost: Expr = {}
    for h in hosts:
        into = {table[o, h] for o in hosts if o != h}
        if len(into) > 1:
            spread.add(h)
        elif into and max(next(iter(into))) > 0.0:  # mv >= x[h,t] - x[h,t-1]
            d, c = next(iter(into))
            uniform[h] = col = prog.var()
            prog.row(0.0, np.inf, {col: 1.0, after[h]: -1.0, before[h]: 1.0})
            delay[col], cost[col] = d, c
    scaled = []
    for part, expr in ((0, delay), (1, cost)):
        origins = {o: {h: table[o, h][part] for h in spread if h != o and table[o, h][part] > 0.0} for o in hosts}
        top = max((v for row in origins.values() for v in row.values()), default=0.0)
        if top <= 0.0:
            continue
        col = prog.var()
        expr[col] = top
        scaled.append((col, top, part))
        for o, row in origins.items():  # top D >= sum_h M[o,h] x[h,t] - max M[o,.] (1 - x[o,t-1])
            if row:
                worst = max(row.values())
                prog.row(-worst, np.inf, {col: top, **{after[h]: -v for h, v in row.items()}, before[o]: -worst})
    return _Move(delay, cost, uniform, spread, scaled)


def _fill_move(move: _Move, table: MoveTable, values: np.ndarray, before: int, after: int) -> None:
    """Set a move's columns to the instance's move from host `before` to `after` (their least feasible values)."""
    if before == after:
        return
    if after in move.uniform:
        values[move.uniform[after]] = 1.0
    if after in move.spread:
        for col, scale, part in move.scaled:
            values[col] = table[before, after][part] / scale
        if after in move.migrated and before in move.migrated[after][1]:
            values[move.migrated[after][0]] = 1.0


class _DayStep(StepProgram):
    """Step t >= 1 of the day program: a StepProgram in the day's columns whose moves are linked to step t-1.

    Its deadline rows are big-M rows, which the LP relaxation satisfies with y a little below 1
    whatever the move costs. So each open
    request r also gets y[r,t] + (k moved where the move alone breaks r's deadline) <= 1 for every
    instance k of its chain: a host h is such a destination when k's move into h (at least its
    fastest one) plus `delay_floor` exceeds the deadline. Moving into a switch memory is mv[k,h,t];
    moving into a server from a server that takes time is w[k,h,t] >= x[k,h,t] + sum of those
    servers' x[k,.,t-1] - 1. Valid rows (the move alone already makes r late), exact for binary x.
    """

    def __init__(self, evaluator: StepEvaluator, workload: Workload, step: int, weights: ObjectiveWeights,
                 prog: _Program, before: StepProgram, tables: dict[int, MoveTable]) -> None:
        self.before, self.tables = before, tables
        self.moves: dict[int, _Move] = {}
        super().__init__(evaluator, workload, step, None, weights, prog=prog)
        for k in self.hosts:  # instances no open request uses still pay for their moves
            self._move_terms(k)
        for r in self.open:
            self._late_if_moved(r)

    def _late_if_moved(self, r: int) -> None:
        req, chain = self.workload.requests[r], self.workload.assignment[r]
        rate, deadline = req.rate_mbps[self.step], req.deadline_ms[self.step] * (1.0 + 1e-9)
        for k, floor in zip(chain, self.delay_floor(rate, chain, req.source, req.target)):
            move, table, late = self.moves[k], self.tables[k], {}
            for h, col in move.uniform.items():
                if floor[h] + move.delay[col] > deadline:
                    late[col] = 1.0
            for h in move.spread:
                origins = frozenset(o for o in self.hosts[k] if o != h and table[o, h][0] > 0.0)
                if origins and floor[h] + min(table[o, h][0] for o in origins) > deadline:
                    late[self._migrated(k, h, origins)] = 1.0
            if late:
                self.prog.row(-np.inf, 1.0, {self.y[r]: 1.0, **late})

    def _migrated(self, k: int, h: int, origins: frozenset[int]) -> int:
        """w[k,h,t] >= x[k,h,t] + sum over `origins` of x[k,o,t-1] - 1: k moved into h from one of them."""
        move = self.moves[k]
        if h not in move.migrated:
            col = self.prog.var()
            self.prog.row(-1.0, np.inf, {col: 1.0, self.x[k, h]: -1.0, **{self.before.x[k, o]: -1.0 for o in origins}})
            move.migrated[h] = (col, origins)
        return move.migrated[h][0]

    def _move_terms(self, k: int) -> Expr:
        if k not in self.moves:
            hosts = self.hosts[k]
            move = _link_move(self.prog, self.tables[k], hosts, {h: self.before.x[k, h] for h in hosts},
                              {h: self.x[k, h] for h in hosts})
            for col in (*move.uniform.values(), *(c for c, _, _ in move.scaled)):
                self.group[col] = ("move", k)  # at most one kind of move per instance and step: upper_bound's max
            self.moves[k] = move
        return self.moves[k].delay


def _moves(step: StepProgram) -> dict[int, _Move]:
    """A step's move columns by instance (none at step 0: its moves are in its x columns, from the initial placement)."""
    return step.moves if isinstance(step, _DayStep) else {}


class DayProgram:
    """The whole day's program (module docstring) and the maps from its columns back to placements."""

    def __init__(self, evaluator: StepEvaluator, workload: Workload, weights: ObjectiveWeights) -> None:
        known = {len(r.rate_mbps) for r in workload.requests} | {len(r.deadline_ms) for r in workload.requests}
        if workload.num_steps < 1 or known != {workload.num_steps}:
            raise SremError(f"workload {workload.id}: the day optimum needs the rates and deadlines of all its "
                            f"{workload.num_steps} steps, got {sorted(known)}", where="day optimum")
        self.evaluator, self.workload, self.weights = evaluator, workload, weights
        self.prog = _Program()
        first = StepProgram(evaluator, workload, 0, workload.initial_placement, weights, prog=self.prog)
        self.tables = {k: move_table(evaluator, k, hosts) for k, hosts in first.hosts.items()}
        self.steps: list[StepProgram] = [first]
        for t in range(1, workload.num_steps):
            self.steps.append(_DayStep(evaluator, workload, t, weights, self.prog, self.steps[-1], self.tables))
        self.cost: Expr = {}
        for step in self.steps:
            moved = [m.cost for m in _moves(step).values()]
            for expr, weight in ((step.cost, 1.0), *((c, weights.reconfiguration) for c in moved)):
                for col, v in expr.items():
                    self.cost[col] = self.cost.get(col, 0.0) + weight * v
        self.accepted_sum: Expr = {col: 1.0 for step in self.steps for col in step.y.values()}

    @property
    def size(self) -> ProgramSize:
        return ProgramSize(len(self.prog.lower), sum(self.prog.integer), len(self.prog.rows), self.prog.nonzeros)

    @property
    def acceptable(self) -> int:
        """Requests not fixed rejected, over the day: a bound on the accepted."""
        return sum(step.acceptable for step in self.steps)

    def start(self, placements: Sequence[Placement]) -> np.ndarray | None:
        """The day's placements as a solution (requests admitted in id order per step), or None when they are not one."""
        if len(placements) != len(self.steps):
            raise ValueError(f"a day of {len(placements)} placements for {len(self.steps)} steps")
        values = np.zeros(len(self.prog.lower))
        previous = self.workload.initial_placement
        for step, placement in zip(self.steps, placements):
            placement = tuple(int(h) for h in placement)
            for k, move in _moves(step).items():
                _fill_move(move, self.tables[k], values, previous[k], placement[k])
            if not step.fill(placement, values):
                return None
            previous = placement
        return values if self.prog.worst_violation(values) <= FEASIBILITY_TOLERANCE else None

    def accepted(self, values: np.ndarray) -> int:
        return sum(len(step.accepted(values)) for step in self.steps)

    def in_play(self, values: np.ndarray, window: Sequence[int]) -> set[int]:
        """The instances a window's search moves (`solve_day`): those of the requests `values` could accept but
        does not at the window's steps, and those in switch memory there (they make room)."""
        sub, free = self.evaluator.substrate, set()
        for t in window:
            step = self.steps[t]
            for r in set(step.open) - step.accepted(values):
                free |= set(self.workload.assignment[r])
            free |= {k for k, h in enumerate(step.placement_of(values)) if sub.hosts[h].kind is not HostKind.SERVER}
        return free

    def placements(self, values: np.ndarray) -> tuple[Placement, ...]:
        return tuple(step.placement_of(values) for step in self.steps)

    def run(self, lp: highspy.HighsLp, start: np.ndarray, time_limit_s: float, window: Sequence[int],
            free: Collection[int] | None = None) -> highspy.Highs:
        """HiGHS on `lp` (the program, as `_Program.to_highs` made it) with the placements of the steps outside
        `window` fixed to `start`'s, and inside it those of the instances not in `free` (None: all free)."""
        lower, upper = np.array(self.prog.lower), np.array(self.prog.upper)
        for t, step in enumerate(self.steps):
            fixed = [c for (k, _), c in step.x.items() if t not in window or (free is not None and k not in free)]
            if fixed:
                cols = np.array(fixed)
                lower[cols] = upper[cols] = np.round(start[cols])
        lp.col_lower_, lp.col_upper_ = lower, upper
        h = _highs(time_limit_s)
        h.passModel(lp)
        _warm(h, start)
        h.run()
        return h


@dataclass(frozen=True)
class DaySolution:
    """The day-long optimum of one workload (an oracle with the whole day; module docstring)."""

    status: str
    """'optimal' (the program's most accepted requests proven, and its least cost to HiGHS's relative tolerance of
    1e-4: only where one window is the whole day), 'time limit' (the incumbent, with the bound) or 'no solution'
    (no start is a solution of the program: the best start is reported)."""
    placements: tuple[Placement, ...]
    """Per step: the reported placement (the best of the program's incumbent and the starts, by the evaluator)."""
    results: tuple[StepResult, ...]
    """The evaluator's judgement of `placements`, step by step from the initial placement."""
    accepted_bound: float
    """Upper bound on the requests the program accepts over the day: the ceiling of `step_ceilings` (or, where one
    window is the whole day and lower, HiGHS's dual bound)."""
    program_accepted: int
    """Requests the program's incumbent accepts by the program's own judgement."""
    cost_gap: float
    """Relative MIP gap of the cost phase (0 when optimal, inf when it did not run to a bound)."""
    start_accepted: int
    """Accepted requests over the day of the better offered start (`start`, or keeping the initial placement), by the evaluator."""
    start_cost: float
    """Its day cost (eq. 1 summed over the steps), by the evaluator."""
    seconds: float
    """Wall time: building the program, the ceiling, the starts and both phases (a few seconds over the limit
    on `paper`: building and judging are not cut short)."""
    size: ProgramSize
    from_program: bool
    """The reported placements are the program's incumbent (not a start or what `move_earlier` made of one)."""

    @property
    def accepted(self) -> int:
        """Requests accepted over the day, by the evaluator."""
        return sum(r.accepted for r in self.results)

    @property
    def cost(self) -> float:
        """The day's cost (eq. 1 summed over the steps), by the evaluator."""
        return sum(r.cost.total for r in self.results)

    @property
    def accepted_gap(self) -> float:
        """The MIP gap of phase one: how far the program's incumbent may be from its most accepted requests, relative to the bound."""
        return (self.accepted_bound - self.program_accepted) / self.accepted_bound if self.accepted_bound > 0 else 0.0

    def accepted_at(self, steps: Sequence[int]) -> int:
        """Accepted requests in the given steps (e.g. the working hours), by the evaluator."""
        return sum(self.results[t].accepted for t in steps)


def judge_day(evaluator: StepEvaluator, workload: Workload, placements: Sequence[Placement]) -> tuple[StepResult, ...]:
    """The evaluator's verdict on a day of placements, step by step from the initial placement."""
    previous = workload.initial_placement
    results = []
    for step, placement in enumerate(placements):
        results.append(evaluator.evaluate(workload, step, previous, tuple(placement)))
        previous = tuple(placement)
    return tuple(results)


def _rank(results: Sequence[StepResult]) -> tuple[int, float]:
    """The evaluator's order of days: more accepted, then less cost."""
    return sum(r.accepted for r in results), -sum(r.cost.total for r in results)


def step_ceilings(evaluator: StepEvaluator, workload: Workload, weights: ObjectiveWeights, time_limit_s: float,
                  starts: Sequence[Placement]) -> tuple[list[float], list[Placement]]:
    """Per step, a bound on the requests the program can accept at that step, and the best placement found
    for it (what the step would take were its instances in place already).

    Step 0 moves from the initial placement as in the day program; a later step has no previous
    placement and charges no move (its instances could all be in place already): its rows are the day
    program's for that step without the move delays, which only tighten them, so the bounds' sum is a
    bound on the day program's accepted requests (a relaxation: the decomposed ceiling). `starts`: a
    placement per step to warm-start each from; `time_limit_s` is shared by the steps."""
    began = time.perf_counter()
    bounds, placements = [], []
    for t, placement in enumerate(starts):
        step = StepProgram(evaluator, workload, t, workload.initial_placement if t == 0 else None, weights)
        start = step.start(placement)
        placements.append(tuple(placement))
        if start is not None and len(start.accepted) == step.acceptable:
            bounds.append(float(step.acceptable))
            continue
        share = (time_limit_s - (time.perf_counter() - began)) / (len(starts) - t)
        h = _highs(share)
        h.passModel(step.prog.to_highs({col: 1.0 for col in step.y.values()}, True))
        if start is not None:
            _warm(h, start.values)
        h.run()
        dual = float(h.getInfo().mip_dual_bound)  # infinite when stopped before the first LP
        bounds.append(min(float(step.acceptable), math.floor(dual + 1e-6)) if math.isfinite(dual) else float(step.acceptable))
        if _found(h):
            placements[-1] = step.placement_of(np.array(h.getSolution().col_value))
    return bounds, placements


def move_earlier(evaluator: StepEvaluator, workload: Workload, placements: Sequence[Placement],
                 time_limit_s: float) -> list[Placement]:
    """A local search by the evaluator over a day: an instance's move at step t made at t-1 instead (where
    step t-1's deadlines may absorb its delay: a step ahead), with the instances that leave its new host
    at t leaving at t-1 too when it would not fit otherwise; or left out (it stays where it was). Each
    change is kept when the two steps it touches accept more, or as many for less cost; passes until
    none is kept or the time is up."""
    began = time.perf_counter()
    day = [tuple(p) for p in placements]
    judged = list(judge_day(evaluator, workload, day))
    improved = True
    while improved and time.perf_counter() - began < time_limit_s:
        improved = False
        for t in range(1, len(day)):
            for k in range(len(day[t])):
                if day[t][k] == day[t - 1][k]:
                    continue
                for s, placement in _earlier_or_stay(evaluator.substrate, day, t, k):
                    trial = [*day[:s], placement, *day[s + 1:]]
                    touched = [u for u in (s, s + 1) if u < len(day)]
                    after = [evaluator.evaluate(workload, u, trial[u - 1] if u else workload.initial_placement, trial[u])
                             for u in touched]
                    if _rank(after) > _rank([judged[u] for u in touched]):
                        day, improved = trial, True
                        for u, result in zip(touched, after):
                            judged[u] = result
                        break
    return day


def _earlier_or_stay(substrate: Substrate, day: Sequence[Placement], t: int, k: int) -> list[tuple[int, Placement]]:
    """`move_earlier`'s changes for instance k's move at step t: (step, its new placement) that respect eq. 7."""
    host = day[t][k]
    earlier = list(day[t - 1])
    earlier[k] = host
    if storage_violations(substrate, earlier):  # make room: who leaves `host` at t leaves it at t-1
        for j, h in enumerate(day[t - 1]):
            if h == host and day[t][j] != host:
                earlier[j] = day[t][j]
    stay = list(day[t])
    stay[k] = day[t - 1][k]
    return [(s, tuple(p)) for s, p in ((t - 1, earlier), (t, stay)) if not storage_violations(substrate, p)]


WINDOW = 2
"""Steps searched at once: two consecutive steps are what moving an instance a step ahead needs."""

CEILING_SHARE = 1 / 4
"""Of the time limit, what the decomposed ceiling may take (on `paper` it takes a few seconds)."""

SEARCH_SHARE = 1 / 6
"""Of the time left after the ceiling, what `move_earlier` may take (over its three days)."""

ACCEPTANCE_SHARE = 2 / 3
"""Of the time left after the ceiling, what phase one (the most accepted) may take; phase two gets the rest."""


def _windows(steps: int) -> list[tuple[int, ...]]:
    return [tuple(range(t, min(t + WINDOW, steps))) for t in range(max(steps - WINDOW + 1, 1))]


def solve_day(evaluator: StepEvaluator, workload: Workload, time_limit_s: float,
              start: Sequence[Placement] | None = None) -> DaySolution:
    """The day-long optimum of `workload` within `time_limit_s` (seconds of wall time in all), the steps of the
    module docstring; `start`: a day of placements (one per step) to start from, such as the best method's."""
    if not (time_limit_s > 0 and math.isfinite(time_limit_s)):
        raise SremError(f"the day optimum's time limit must be a positive number of seconds, got {time_limit_s!r}",
                        where="day optimum")
    if start is not None and len(start) != workload.num_steps:
        raise SremError(f"a start of {len(start)} steps for a workload of {workload.num_steps}", where="day optimum")
    began = time.perf_counter()
    left = lambda: time_limit_s - (time.perf_counter() - began)  # noqa: E731
    day = DayProgram(evaluator, workload, evaluator.weights)
    kept = [workload.initial_placement] * workload.num_steps
    offered = [[tuple(int(h) for h in p) for p in start], kept] if start is not None else [kept]
    best_start = max(offered, key=lambda p: _rank(judge_day(evaluator, workload, p)))
    start_accepted, start_cost = _rank(judge_day(evaluator, workload, best_start))
    ceilings, in_place = step_ceilings(evaluator, workload, evaluator.weights, left() * CEILING_SHARE, best_start)
    bound = min(float(day.acceptable), sum(ceilings))
    # More starts: each offered day and the day of the steps' in-place placements, moved a step ahead where it pays.
    searched = [move_earlier(evaluator, workload, p, left() * SEARCH_SHARE / 3) for p in (*offered, in_place)]
    candidates = [*offered, *searched]
    judged = [judge_day(evaluator, workload, p) for p in candidates]
    best = max(range(len(candidates)), key=lambda i: _rank(judged[i]))
    solutions = [v for v in (day.start(p) for p in candidates) if v is not None]
    incumbent = max(solutions, key=lambda v: (day.accepted(v), -_value(day.cost, v)), default=None)
    windows = _windows(workload.num_steps)
    whole = len(windows) == 1  # the one window is the whole day: HiGHS's answers are the day's
    first_optimal = second_optimal = False
    cost_gap = math.inf
    if incumbent is not None:
        # Phase one: the most accepted requests over the day, a window of steps at a time (the rest fixed).
        # Only windows with a step below its ceiling can gain; in the order of the day (measured on `small`:
        # the windows furthest below first ended at 261 where this order reached 266).
        below = [ceilings[t] - len(step.accepted(incumbent)) for t, step in enumerate(day.steps)]
        short = [w for w in windows if any(below[t] > 0 for t in w)]
        phase_one_ends = time.perf_counter() + left() * ACCEPTANCE_SHARE
        most_accepted = day.prog.to_highs(day.accepted_sum, True)
        # A window searches first the instances in play (`in_play`: on `paper` the whole window stays in
        # HiGHS's root node), then, when that is proven and time is left, all of them.
        for i, window in enumerate(short):
            if day.accepted(incumbent) >= bound:
                break
            window_ends = time.perf_counter() + (phase_one_ends - time.perf_counter()) / (len(short) - i)
            for free in ([None] if whole else [day.in_play(incumbent, window), None]):
                h = day.run(most_accepted, incumbent, max(window_ends - time.perf_counter(), 1e-3), window, free)
                if _found(h) and day.accepted(found := np.array(h.getSolution().col_value)) > day.accepted(incumbent):
                    incumbent = found
                if whole and math.isfinite(dual := float(h.getInfo().mip_dual_bound)):
                    bound = min(bound, math.floor(dual + 1e-6))
                if h.getModelStatus() != highspy.HighsModelStatus.kOptimal or window_ends - time.perf_counter() < 1.0:
                    break
        most = day.accepted(incumbent)
        first_optimal = most >= bound
        # Phase two: the least day cost with that many accepted, a window at a time.
        day.prog.row(most - 0.5, np.inf, day.accepted_sum)
        least_cost = day.prog.to_highs(day.cost, False)
        for i, window in enumerate(windows):
            h = day.run(least_cost, incumbent, max(left() / (len(windows) - i), 1e-3), window)
            if _found(h) and _value(day.cost, found := np.array(h.getSolution().col_value)) < _value(day.cost, incumbent):
                incumbent = found
            if whole:
                second_optimal = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
                lower, cost = float(h.getInfo().mip_dual_bound), _value(day.cost, incumbent)
                cost_gap = 0.0 if second_optimal else (cost - lower) / abs(cost) if cost else math.inf
    results, placements, from_program = judged[best], tuple(candidates[best]), False
    if incumbent is not None:
        mine = judge_day(evaluator, workload, day.placements(incumbent))
        if _rank(mine) > _rank(results):
            results, placements, from_program = mine, day.placements(incumbent), True
    status = "no solution" if incumbent is None else "optimal" if first_optimal and second_optimal else "time limit"
    return DaySolution(status, placements, results, bound, day.accepted(incumbent) if incumbent is not None else 0,
                       cost_gap, start_accepted, -start_cost, time.perf_counter() - began, day.size, from_program)


def _value(expr: Expr, values: np.ndarray) -> float:
    return sum(values[c] * v for c, v in expr.items())


def greedy_day(evaluator: StepEvaluator, dataset: Dataset, workload: Workload) -> list[Placement]:
    """greedy-slack's placements over the day (a warm start for `solve_day`)."""
    from controller.evaluation import run_day
    from controller.policies.greedy_slack import GreedySlackPolicy

    policy = GreedySlackPolicy()
    policy.bind(dataset.substrate)
    policy.use_objective(evaluator.weights)
    return [r.placement for r in run_day(evaluator, dataset, workload, policy)]
