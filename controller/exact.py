"""The exact optimum of one step as a mixed-integer program, solved by HiGHS (highspy).

Why HiGHS: an open-source MIP solver of competitive speed that installs as one pinned wheel from
PyPI with no licence or system library, and takes a time limit and reports the proven bound and gap.

The program, for step t of a workload, given the previous placement:
- x[k,h] binary: instance k on host h (only hosts whose storage can ever hold it: eq. 8 + static filter);
- y[r] binary: request r accepted;
- storage per host and RDMA table per switch (eq. 7); the traffic of an instance's accepted requests
  within its processing capacity on its host (eq. 10); link loads within bandwidth (eq. 11); an
  accepted request's reconfiguration + processing + transmission delay within its deadline (eq. 13-19);
- objective: first the most accepted requests, then, with that many fixed, the least cost (eq. 1 with
  the scenario's weights).

Paths. Every virtual link between two nodes takes one fixed fewest-hop path (the router's first), which
sets its links' load and its price; its transmission delay (eq. 19) is the largest over all its
fewest-hop paths, because the evaluator's router picks one of them by load: a request the program
accepts meets its deadline whichever it takes.

Formulation (what keeps it small enough for `paper`):
- A segment's attributes depend on the pair of nodes at its two ends. Segments that start or end at a
  request's fixed source or target are linear in x. Between two instances, a node that is a leaf (a
  server, one link to its edge switch) is reached only through its neighbour, so a path is: the
  leaf's link + a path between the two attachment switches + the other leaf's link. The leaf parts are
  linear in x; only the pair of attachment switches needs a product variable
  z[k,k',s,t] = [k attached at s][k' attached at t], one set per ordered instance pair that follows
  each other in some chain (shared by all the requests with that segment), tied to x by both
  marginals (sum_t z[s,t] = k's x at s, sum_s z[s,t] = k''s x at t): exact for binary x, and as strong
  as a product linearisation gets in the LP relaxation. Two instances on the same server use no link
  at all; e[k,k',m] <= both x's at m takes the two leaf-link crossings back.
- Per request: which hosts of each of its instances could still meet its deadline (a lower bound on
  the delay of the rest of the chain: fastest hosts elsewhere, no other move, the shortest transmission
  through that host), y[r] <= sum of x over those hosts; a request with no such host for one instance
  is fixed rejected. A deadline row per instance that may move (reconfiguration is the slowest move,
  eq. 17), with big-M the largest delay the row can reach; rows that can never bind are left out, as
  are capacity and link rows whose largest possible load fits.
- Warm start: every placement offered (a heuristic's, and the previous one) is evaluated with the
  program's own delays and constraints (requests admitted in id order, each when its deadline and its
  instances' capacity allow) and the best is handed to HiGHS as its first incumbent. When it already
  accepts every request not fixed rejected, the first phase is proven without running.
- The cost phase solves a program of its own (`StepProgram` with `accept_all`, `light`, `colocation`):
  the accepted requests fixed when the first phase accepted all it could, light-traffic pairs in a
  compact form, and co-location configurations of the heavy-traffic instances in every switch, which
  lift the LP bound where plain product columns let neighbours share a switch fractionally. Its answer
  is checked in the full program (every row, all traffic on the links); should a light pair's traffic
  overfill a link there, the full program is solved for the time left instead.

Size and time on the first 9 `paper` test workloads (54 steps, one thread on a shared 2-core machine):
the plain program had 78,350 columns, 77,736 rows and 665,072 nonzeros at every step, and its first
phase alone ran out of 60 s on a busy step with 1 request accepted against a bound of 80; the full
program now has about 14,200 columns, 5,400 rows and 50,000-78,000 nonzeros, the cost phase's 4,500-8,300
columns, 2,800-5,800 rows and 32,000-91,000 nonzeros on busy steps. Every step was proven optimal:
busy steps in 7 s (median; at most 25 s), evening steps in 1.3 s.

What the rejected requests cost follows the objective's `rejected_traffic` reading as the evaluator
applies it: `dropped`, only an accepted request's traffic loads links and is charged; `carried`, every
request's traffic is carried and charged (the evaluator drops a request's traffic only when a
virtual link finds no path with room, which the program does not model: it keeps all traffic within
link capacity instead).

What differs from the step evaluator (evaluator.py), so the optimum is of a close relative of the
model, not of the model itself: the fixed paths above (the evaluator balances load over them), and the
program chooses freely which requests to admit (the evaluator admits in id order, and with `carried`
a late request still uses its instances' processing capacity). Every solution is also evaluated by the
step evaluator, so what a method is compared with is the optimum's placement judged like theirs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import highspy
import numpy as np

from controller.model.constraints import CAPACITY_EPSILON, placement_errors
from controller.model.cost import ObjectiveWeights, bandwidth_cost, it_cost
from controller.model.delay import processing_delay_ms, transmission_delay_ms
from controller.model.evaluator import StepEvaluator
from controller.model.feasibility import capacities
from controller.model.routing import Path
from controller.model.substrate import HostKind, Substrate
from controller.model.workload import Placement, Workload

Expr = dict[int, float]
"""A linear expression: column -> coefficient."""

FEASIBILITY_TOLERANCE = 1e-6
"""How far a warm start may be over a row's bound (HiGHS's own MIP feasibility tolerance)."""


class _Program:
    """Columns and rows of a MIP, kept as plain lists until they are handed to HiGHS."""

    def __init__(self) -> None:
        self.lower: list[float] = []
        self.upper: list[float] = []
        self.integer: list[bool] = []
        self.rows: list[tuple[float, float, Expr]] = []

    def var(self, lower: float = 0.0, upper: float = 1.0, integer: bool = False) -> int:
        self.lower.append(lower)
        self.upper.append(upper)
        self.integer.append(integer)
        return len(self.lower) - 1

    def row(self, lower: float, upper: float, terms: Expr) -> None:
        self.rows.append((lower, upper, {c: v for c, v in terms.items() if v != 0.0}))

    @property
    def nonzeros(self) -> int:
        return sum(len(terms) for _, _, terms in self.rows)

    def worst_violation(self, values: np.ndarray) -> float:
        """The largest amount by which `values` breaks a bound or a row (0 when feasible)."""
        worst = float(max(np.max(np.array(self.lower) - values), np.max(values - np.array(self.upper)), 0.0))
        for lower, upper, terms in self.rows:
            activity = sum(values[c] * v for c, v in terms.items())
            worst = max(worst, lower - activity, activity - upper)
        return worst

    def to_highs(self, cost: Expr, maximise: bool) -> highspy.HighsLp:
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
        for _, _, terms in self.rows:
            index.extend(terms)
            values.extend(terms.values())
            starts.append(len(index))
        lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
        lp.a_matrix_.start_, lp.a_matrix_.index_, lp.a_matrix_.value_ = np.array(starts), np.array(index), np.array(values)
        return lp


@dataclass(frozen=True, eq=False)
class _Geometry:
    """The program's fixed paths of a substrate, split at leaves (see the module docstring)."""

    attach: list[int]
    """Node -> the node where its traffic enters the rest of the network: a leaf's one neighbour, itself otherwise."""
    leaf_link: list[int | None]
    """Node -> its one link when it is a leaf."""
    core_path: dict[tuple[int, int], Path]
    """(attachment node, attachment node) -> the first fewest-hop path between them."""
    core_index: dict[int, int]
    """Attachment node -> its row in the arrays below."""
    inverse_bandwidth: np.ndarray
    """(a, a, paths): eq. 19's term per Mbps (sum of 1/B) of each fewest-hop path between two attachment nodes (0-padded)."""
    propagation_ms: np.ndarray
    """(a, a, paths): eq. 19's propagation (sum of g) of each fewest-hop path (-inf padded, so a max skips it)."""
    core_price: np.ndarray
    """(a, a): the sum of link prices of the first fewest-hop path between two attachment nodes."""
    shortest_inverse: np.ndarray
    """(nodes, nodes): the least sum of 1/B over any path (a lower bound on every path's)."""
    shortest_propagation: np.ndarray
    """(nodes, nodes): the least sum of g over any path."""


def _shortest(weights: np.ndarray) -> np.ndarray:
    """All-pairs least path weight (Floyd-Warshall); `weights` has inf where there is no link."""
    dist = weights.copy()
    np.fill_diagonal(dist, 0.0)
    for k in range(len(dist)):
        dist = np.minimum(dist, dist[:, k, None] + dist[None, k, :])
    return dist


@lru_cache(maxsize=8)
def _geometry(substrate: Substrate) -> _Geometry:
    evaluator = StepEvaluator(substrate)
    router = evaluator.router
    n = len(substrate.node_names)
    links_of: list[list[int]] = [[] for _ in range(n)]
    for link in substrate.links:
        links_of[link.a].append(link.index)
        links_of[link.b].append(link.index)
    leaf_link: list[int | None] = [None] * n
    attach = list(range(n))
    for node, links in enumerate(links_of):
        if len(links) == 1:
            a, b = router.ends[links[0]]
            other = b if a == node else a
            if len(links_of[other]) > 1:  # two nodes joined only to each other are both their own attachment
                leaf_link[node], attach[node] = links[0], other
    cores = sorted(set(attach))
    core_index = {c: i for i, c in enumerate(cores)}
    paths = {(s, t): router.min_hop_paths(s, t) if s != t else [()] for s in cores for t in cores}
    width = max(len(p) for p in paths.values())
    inverse = np.zeros((len(cores), len(cores), width))
    propagation = np.full((len(cores), len(cores), width), -np.inf)
    for (s, t), options in paths.items():
        for p, path in enumerate(options):
            hops = [(evaluator.link_capacity[l], evaluator.link_delay[l]) for l in path]
            propagation[core_index[s], core_index[t], p] = transmission_delay_ms(0.0, hops)
            inverse[core_index[s], core_index[t], p] = transmission_delay_ms(1.0, hops) - transmission_delay_ms(0.0, hops)
    inv_w, prop_w = np.full((n, n), np.inf), np.full((n, n), np.inf)
    for link in substrate.links:
        for a, b in ((link.a, link.b), (link.b, link.a)):
            inv_w[a, b] = min(inv_w[a, b], 1.0 / link.capacity_mbps)
            prop_w[a, b] = min(prop_w[a, b], link.delay_ms)
    price = np.array([[sum(substrate.links[l].price_per_gb for l in paths[s, t][0]) for t in cores] for s in cores])
    return _Geometry(attach, leaf_link, {key: options[0] for key, options in paths.items()}, core_index, inverse,
                     propagation, price, _shortest(inv_w), _shortest(prop_w))


@dataclass
class _Start:
    """A placement as a solution of a program: every column's value, its accepted requests and cost."""

    placement: Placement
    values: np.ndarray
    accepted: frozenset[int]
    cost: float


@dataclass(frozen=True)
class ProgramSize:
    columns: int
    integers: int
    rows: int
    nonzeros: int


LIGHT_SHARE = 0.01
"""A pair of consecutive instances whose traffic is below this share of the heaviest pair's is
formulated compactly in the cost phase (see `StepProgram`)."""

MAX_CONFIGURATIONS = 5000
"""Co-location configurations are enumerated only up to this many (their number grows with the
cube of the instances that carry heavy traffic); beyond it the program goes without them."""


def segment_rates(workload: Workload, step: int) -> dict[tuple[int, int], float]:
    """Per ordered pair of instances that follow each other in some chain: the traffic (Mbps) between them."""
    rates: dict[tuple[int, int], float] = {}
    for req, chain in zip(workload.requests, workload.assignment):
        for k, k2 in zip(chain, chain[1:]):
            if k != k2:
                rates[k, k2] = rates.get((k, k2), 0.0) + req.rate_mbps[step]
    return rates


def light_pairs(workload: Workload, step: int) -> frozenset[tuple[int, int]]:
    """The pairs whose traffic is below LIGHT_SHARE of the heaviest pair's."""
    rates = segment_rates(workload, step)
    heaviest = max(rates.values(), default=0.0)
    return frozenset(p for p, rate in rates.items() if rate < LIGHT_SHARE * heaviest)


class StepProgram:
    """The MIP of one step (module docstring), with the maps from its columns back to the model.

    `accept_all`: the cost phase's program when the first phase accepted every request it could (the
    usual case): those requests are then accepted outright, so an instance keeps only the hosts on
    which all its requests can meet their deadlines and fit its capacity, and no y column is needed.

    `light` (cost phase, with every request's traffic charged): pairs of consecutive instances with
    little traffic get no z columns. Their cost and each of their requests' transmission delay are
    exact all the same, by one column each bounded below by one row per attachment of the first
    instance (big-M on its x: exact for binary x, weak in the LP, which matters little for light
    traffic); their core links' load is left out of the link rows, which makes the program a
    relaxation: its solution is checked against the full program (`solve_step`).

    `colocation` (cost phase): the LP relaxation of the z columns lets chain neighbours share a
    switch fractionally at no cost, far beyond what the switch's memory could hold at once (measured
    on `paper`: the LP bound of a busy step was 31% below the optimum). For every switch, the sets
    of heavy-traffic instances its memories can hold together are enumerated, a column each; an
    instance is in the switch's memory exactly as much as the sets holding it are chosen, at most one
    set is, and two instances attach to the switch together at most as much as the sets holding both
    (or servers behind it). With them the bound of that step rose to 10% below the optimum.

    `previous` None and `prog` (exact_day.py): the step is one of a day's program, whose columns it
    adds to `prog`; where each instance was before is decided there, so this step charges no move
    itself (its deadline rows take each instance's move delay from `_move_terms`).
    """

    def __init__(self, evaluator: StepEvaluator, workload: Workload, step: int, previous: Placement | None,
                 weights: ObjectiveWeights, accept_all: bool = False, light: frozenset[tuple[int, int]] = frozenset(),
                 colocation: bool = False, prog: _Program | None = None) -> None:
        self.evaluator, self.workload, self.step, self.previous, self.weights = evaluator, workload, step, previous, weights
        self.accept_all = accept_all
        sub = evaluator.substrate
        self.substrate = sub
        self.geo = _geometry(sub)
        self.carried = weights.rejected_traffic == "carried"
        self.light = light if (self.carried or accept_all) else frozenset()
        self.prog = prog if prog is not None else _Program()
        self.cost: Expr = {}
        self.group: dict[int, tuple[str, object]] = {}
        """Column -> a set of columns of which at most one is 1 (one instance's hosts, one pair's z or e)."""
        mask = capacities(sub).can_ever_hold()
        self.hosts = {k: [h for h in range(len(sub.hosts)) if mask[k, h]] for k in range(len(sub.instances))}
        moves = {(k, h): evaluator.move(k, previous[k], h) if previous is not None else (None, 0.0, 0.0, 0.0)
                 for k, hosts in self.hosts.items() for h in hosts}
        self.move_delay = {k: {h: moves[k, h][1] for h in hosts} for k, hosts in self.hosts.items()}
        self.move_cost = {k: {h: moves[k, h][2] + moves[k, h][3] for h in hosts} for k, hosts in self.hosts.items()}
        self.in_time = {r: self._hosts_in_time(req.rate_mbps[step], req.deadline_ms[step], chain, req.source, req.target)
                        for r, (req, chain) in enumerate(zip(workload.requests, workload.assignment))}
        self.open = [r for r, hosts in self.in_time.items() if all(hosts)]
        """Requests that may be accepted; the others are fixed rejected."""
        self.total_rate: dict[int, float] = {}
        """Per instance: the traffic of its open requests, the most it can ever be asked to process."""
        for r in self.open:
            for k in workload.assignment[r]:
                self.total_rate[k] = self.total_rate.get(k, 0.0) + workload.requests[r].rate_mbps[step]
        if accept_all:
            for r in self.open:
                for k, hosts in zip(workload.assignment[r], self.in_time[r]):
                    self.hosts[k] = [h for h in self.hosts[k] if h in hosts]
            for k, total in self.total_rate.items():
                self.hosts[k] = [h for h in self.hosts[k] if total <= sub.instance_capacity_mbps(k, h) * (1.0 + CAPACITY_EPSILON)]
            if not all(self.hosts.values()):
                raise ValueError("accept_all: some instance has no host on which all its requests can be accepted")
        self.x: dict[tuple[int, int], int] = {}
        for k, hosts in self.hosts.items():
            for h in hosts:
                self.x[k, h] = col = self.prog.var(integer=True)
                self.group[col] = ("x", k)
        self.attached = {k: self._attached(k) for k in self.hosts}
        """Instance -> attachment node -> the x columns of its hosts there."""
        self.pairs: dict[tuple[int, int], tuple[dict[tuple[int, int], int], dict[int, int]]] = {}
        """Pair of consecutive instances -> its z columns by attachment pair (none for a light pair), its e columns by server."""
        self.light_cost: dict[tuple[int, int], dict[tuple[int, int], float]] = {}
        """Light pair -> the cost of its traffic by attachment pair."""
        self.light_cols: list[tuple[int, float, tuple[int, int], dict[tuple[int, int], float]]] = []
        """(column, scale, light pair, value by attachment pair): the column times the scale is the value at
        the pair's attachments (a light pair's cost, or one request's transmission delay over it)."""
        self.configurations: dict[int, dict[frozenset[int], int]] = {}
        """Switch node -> the sets of heavy-traffic instances its memories can hold together -> column."""
        self.y: dict[int, int] = {}
        """Open request -> its acceptance column (none with `accept_all`)."""
        self.link_use: dict[int, list[tuple[int, int, Expr]]] = {}
        """With `dropped`: request -> (link, its g column, its crossings of the link) for the links with a row."""
        self.bandwidth: dict[int, tuple[int, Expr]] = {}
        """With `dropped`: request -> (its b column, its bandwidth cost when accepted)."""
        self._placement_rows()
        self._request_rows()
        for pair, costs in self.light_cost.items():
            self._light_column(pair, costs, cost=True)
        if colocation:
            self._colocation_rows()

    # -- building blocks --------------------------------------------------------------------------

    def node(self, h: int) -> int:
        return self.substrate.hosts[h].node

    def _attached(self, k: int) -> dict[int, list[int]]:
        at: dict[int, list[int]] = {}
        for h in self.hosts[k]:
            at.setdefault(self.geo.attach[self.node(h)], []).append(self.x[k, h])
        return at

    def _placement_rows(self) -> None:
        sub, prog = self.substrate, self.prog
        for k, hosts in self.hosts.items():
            prog.row(1.0, 1.0, {self.x[k, h]: 1.0 for h in hosts})
            for h in hosts:
                self.cost[self.x[k, h]] = (self.weights.it * it_cost(sub.instances[k].type.storage_mb, sub.hosts[h])
                                           + self.weights.reconfiguration * self.move_cost[k][h])
        for h, host in enumerate(sub.hosts):
            terms = {self.x[k, h]: sub.instances[k].type.storage_mb for k in self.hosts if (k, h) in self.x}
            if sum(terms.values()) > host.storage_mb * (1.0 + CAPACITY_EPSILON):
                prog.row(-np.inf, host.storage_mb, terms)
            if host.kind is HostKind.EM:  # the RDMA table of the switch indexes its EM-hosted instances
                index = {col: size * sub.rdma_index_fraction for col, size in terms.items()}
                if sum(index.values()) > sub.rdma_table_mb(host.node) * (1.0 + CAPACITY_EPSILON):
                    prog.row(-np.inf, sub.rdma_table_mb(host.node), index)

    def _pair(self, k: int, k2: int) -> tuple[dict[tuple[int, int], int], dict[int, int]]:
        """The z columns (by attachment pair) and e columns (by shared leaf node) of instances k then k2."""
        if (k, k2) not in self.pairs:
            prog, at, at2 = self.prog, self.attached[k], self.attached[k2]
            z = {(s, t): prog.var() for s in at for t in at2}
            for col in z.values():
                self.group[col] = ("z", (k, k2))
            for s, cols in at.items():
                prog.row(0.0, 0.0, {**{z[s, t]: 1.0 for t in at2}, **{c: -1.0 for c in cols}})
            for t, cols in at2.items():
                prog.row(0.0, 0.0, {**{z[s, t]: 1.0 for s in at}, **{c: -1.0 for c in cols}})
            self.pairs[k, k2] = (z, self._shared_servers(k, k2))
        return self.pairs[k, k2]

    def _shared_servers(self, k: int, k2: int) -> dict[int, int]:
        """e[m] <= both instances' x at leaf node m: both on the same server."""
        e = {}
        shared = {self.node(h) for h in self.hosts[k]} & {self.node(h) for h in self.hosts[k2]}
        for m in sorted(shared):
            if self.geo.leaf_link[m] is not None:
                e[m] = col = self.prog.var()
                self.group[col] = ("e", (k, k2))
                for kk in (k, k2):
                    self.prog.row(-np.inf, 0.0, {col: 1.0, **{self.x[kk, h]: -1.0 for h in self.hosts[kk] if self.node(h) == m}})
        return e

    def _light_column(self, pair: tuple[int, int], values: dict[tuple[int, int], float], cost: bool) -> int | None:
        """A column whose value times its scale is at least values[attachment of k, attachment of k2] (module docstring)."""
        scale = max(values.values(), default=0.0)
        if scale <= 0.0:
            return None
        k, k2 = pair
        col = self.prog.var()
        self.group[col] = ("light", (pair, len(self.light_cols)))
        for s, cols in self.attached[k].items():
            big_m = max((v for (a, _), v in values.items() if a == s), default=0.0)
            if big_m > 0.0:  # scale col >= sum_t values[s, t] x2(t) - M_s (1 - x(s))
                terms = {col: scale, **{c: -big_m for c in cols}}
                for t, cols2 in self.attached[k2].items():
                    for c in cols2:
                        terms[c] = terms.get(c, 0.0) - values.get((s, t), 0.0)
                self.prog.row(-big_m, np.inf, terms)
        self.light_cols.append((col, scale, pair, values))
        if cost:
            self.cost[col] = scale
        return col

    def _move_terms(self, k: int) -> Expr:
        """Eq. 13/14: the delay of instance k's move into its host, as an expression in the columns."""
        return {self.x[k, h]: self.move_delay[k][h] for h in self.hosts[k]}

    def upper_bound(self, expr: Expr) -> float:
        """The largest value `expr` takes on any placement: at most one column of each group is 1."""
        best: dict[tuple[str, object], float] = {}
        for col, v in expr.items():
            g = self.group[col]
            best[g] = max(best.get(g, 0.0), v)
        return sum(best.values())

    def value(self, expr: Expr, values: np.ndarray) -> float:
        return sum(values[c] * v for c, v in expr.items())

    def _segments(self, rate: float, chain: Sequence[int], source: int, target: int,
                  core_delay: np.ndarray) -> tuple[Expr, Expr, dict[int, Expr], list[tuple[int, int]]]:
        """A chain's virtual links on the program's paths: (transmission delay, sum of link prices,
        crossings per link, the light pairs whose core part is left to the caller)."""
        geo, ev = self.geo, self.evaluator
        delay: Expr = {}
        price: Expr = {}
        use: dict[int, Expr] = {}
        light = []

        def leaf_delay(n: int) -> float:
            l = geo.leaf_link[n]
            return 0.0 if l is None else transmission_delay_ms(rate, [(ev.link_capacity[l], ev.link_delay[l])])

        def add(col: int, d: float, links: Sequence[int], times: float = 1.0) -> None:
            delay[col] = delay.get(col, 0.0) + times * d
            price[col] = price.get(col, 0.0) + times * sum(ev.link_price[l] for l in links)
            for l in links:
                use.setdefault(l, {})
                use[l][col] = use[l].get(col, 0.0) + times

        def between(a: int, b: int) -> tuple[float, list[int]]:
            """Delay and links of the program's path from a fixed endpoint to a host's node (or back)."""
            if a == b:
                return 0.0, []
            s, t = geo.attach[a], geo.attach[b]
            links = [l for l in (geo.leaf_link[a], *geo.core_path[s, t], geo.leaf_link[b]) if l is not None]
            core = float(core_delay[geo.core_index[s], geo.core_index[t]]) if s != t else 0.0
            return leaf_delay(a) + core + leaf_delay(b), links

        for h in self.hosts[chain[0]]:
            add(self.x[chain[0], h], *between(source, self.node(h)))
        for h in self.hosts[chain[-1]]:
            add(self.x[chain[-1], h], *between(self.node(h), target))
        for k, k2 in zip(chain, chain[1:]):
            if k == k2:
                continue
            for kk in (k, k2):  # the leaf links at both ends
                for h in self.hosts[kk]:
                    l = geo.leaf_link[self.node(h)]
                    if l is not None:
                        add(self.x[kk, h], leaf_delay(self.node(h)), [l])
            if (k, k2) in self.light:
                light.append((k, k2))
                if (k, k2) not in self.pairs:
                    self.pairs[k, k2] = ({}, self._shared_servers(k, k2))
                e = self.pairs[k, k2][1]
            else:
                z, e = self._pair(k, k2)
                for (s, t), col in z.items():
                    if s != t:
                        add(col, float(core_delay[geo.core_index[s], geo.core_index[t]]), geo.core_path[s, t])
            for m, col in e.items():  # both on the same server: no link at all, so both leaf crossings come back off
                add(col, leaf_delay(m), [geo.leaf_link[m]], times=-2.0)  # type: ignore[list-item]
        return delay, price, use, light

    def _core_values(self, pair: tuple[int, int], core: np.ndarray) -> dict[tuple[int, int], float]:
        """`core` (by attachment-node indices) at every pair of attachments of the two instances; 0 at the same one."""
        geo = self.geo
        return {(s, t): float(core[geo.core_index[s], geo.core_index[t]]) if s != t else 0.0
                for s in self.attached[pair[0]] for t in self.attached[pair[1]]}

    def _hosts_in_time(self, rate: float, deadline: float, chain: Sequence[int], source: int, target: int) -> list[list[int]]:
        """Per instance of the chain, the hosts on which the request can still meet its deadline and fit its
        capacity: where k's move there plus `delay_floor` is within the deadline."""
        ok = []
        for k, floor in zip(chain, self.delay_floor(rate, chain, source, target)):
            ok.append([h for h, bound in floor.items() if self.move_delay[k][h] + bound <= deadline * (1.0 + 1e-9) and
                       rate * chain.count(k) <= self.substrate.instance_capacity_mbps(k, h) * (1.0 + CAPACITY_EPSILON)])
        return ok

    def delay_floor(self, rate: float, chain: Sequence[int], source: int, target: int) -> list[dict[int, float]]:
        """Per instance k of the chain and host h: a lower bound on the request's delay with k on h, but for k's move.

        k's processing there, every other instance on its fastest host without a move, and the least
        transmission from the source through h's node to the target (shortest paths in 1/B and in g
        separately: every chain of virtual links through that node is at least that long)."""
        ev, geo = self.evaluator, self.geo
        proc = [{h: processing_delay_ms(rate, [ev.per_mb_delay[k][h]]) for h in self.hosts[k]} for k in chain]
        fastest = sum(min(p.values()) for p in proc)
        inv, prop = geo.shortest_inverse, geo.shortest_propagation
        floors = []
        for j, k in enumerate(chain):
            floor = {}
            for h in self.hosts[k]:
                n = self.node(h)
                trans = rate * (inv[source, n] + inv[n, target]) + prop[source, n] + prop[n, target]
                floor[h] = proc[j][h] + fastest - min(proc[j].values()) + trans
            floors.append(floor)
        return floors

    def _request_rows(self) -> None:
        sub, prog, ev, step, geo = self.substrate, self.prog, self.evaluator, self.step, self.geo
        link_terms: list[Expr] = [{} for _ in sub.links]
        """Link -> the traffic that crosses it whatever is accepted (with `carried`, or with `accept_all`)."""
        dropped_use: list[list[tuple[int, float, Expr]]] = [[] for _ in sub.links]
        instance_load: dict[int, Expr] = {}
        is_open = set(self.open)
        self.deadline_rows: dict[int, tuple[list[Expr], float]] = {}
        """Open request -> (the delay expressions of its deadline rows, its deadline)."""
        for r, (req, chain) in enumerate(zip(self.workload.requests, self.workload.assignment)):
            if not chain:
                raise ValueError(f"request {req.id} has no VNF")
            if r not in is_open and not self.carried:
                continue  # never accepted, and with `dropped` then without traffic: nothing of it is in the program
            rate, deadline = req.rate_mbps[step], req.deadline_ms[step]
            core_delay = (rate * geo.inverse_bandwidth + geo.propagation_ms).max(axis=2)
            delay, price, use, light = self._segments(rate, chain, req.source, req.target, core_delay)
            gb_price = self.weights.bandwidth * bandwidth_cost(rate, sub.step_seconds, [1.0])
            bandwidth = {col: gb_price * p for col, p in price.items()}
            always = self.carried or self.accept_all
            if always:  # its traffic is carried whatever the program decides
                for col, v in bandwidth.items():
                    self.cost[col] = self.cost.get(col, 0.0) + v
                for l, expr in use.items():
                    for col, v in expr.items():
                        link_terms[l][col] = link_terms[l].get(col, 0.0) + rate * v
                for pair in light:
                    costs = self.light_cost.setdefault(pair, {})
                    for key, v in self._core_values(pair, gb_price * geo.core_price).items():
                        costs[key] = costs.get(key, 0.0) + v
            if r not in is_open:
                continue
            y: int | None = None
            if not self.accept_all:
                self.y[r] = y = prog.var(integer=True)
                self.group[y] = ("y", r)
                for k, hosts in zip(chain, self.in_time[r]):
                    if len(hosts) < len(self.hosts[k]):
                        prog.row(-np.inf, 0.0, {y: 1.0, **{self.x[k, h]: -1.0 for h in hosts}})
                    instance_load.setdefault(k, {})[y] = instance_load.get(k, {}).get(y, 0.0) + rate
            for k in chain:
                for h in self.hosts[k]:
                    delay[self.x[k, h]] = delay.get(self.x[k, h], 0.0) + processing_delay_ms(rate, [ev.per_mb_delay[k][h]])
            light_delays = [self._core_values(pair, core_delay) for pair in light]
            # Eq. 17: the reconfiguration delay is the slowest move of the chain, so each instance that may
            # move slowly has its own deadline row; big-M is the largest delay that row can reach.
            moves = [self._move_terms(k) for k in sorted(set(chain))]
            reach = self.upper_bound(delay) + sum(max(v.values(), default=0.0) for v in light_delays)
            slowest = [self.upper_bound(m) for m in moves]
            if light_delays and reach + max(slowest) > deadline:  # a row will need the light pairs' delays
                for pair, values in zip(light, light_delays):
                    col = self._light_column(pair, values, cost=False)
                    if col is not None:
                        delay[col] = max(values.values())
            rows = []
            for move in [m for m in moves if self.upper_bound(m) > 0.0] or [{}]:
                expr = dict(delay)
                for col, v in move.items():
                    expr[col] = expr.get(col, 0.0) + v
                rows.append(expr)
                big_m = self.upper_bound(expr) - deadline
                if big_m > 0.0:
                    prog.row(-np.inf, deadline, expr) if y is None else prog.row(-np.inf, deadline + big_m, {**expr, y: big_m})
            self.deadline_rows[r] = (rows, deadline)
            if not always:  # with `dropped`: b >= bandwidth - B (1 - y), an accepted request's bandwidth cost
                assert y is not None
                b = prog.var(0.0, np.inf)
                self.group[b] = ("b", r)
                self.cost[b] = 1.0
                self.bandwidth[r] = (b, bandwidth)
                big = self.upper_bound(bandwidth)
                prog.row(-big, np.inf, {b: 1.0, **{c: -v for c, v in bandwidth.items()}, y: -big})
                for l, expr in use.items():
                    dropped_use[l].append((r, rate, expr))
        for k, terms in instance_load.items():
            caps = {h: self.capacity(k, h) for h in self.hosts[k]}
            if self.total_rate[k] > min(caps.values()) * (1.0 + CAPACITY_EPSILON):
                prog.row(-np.inf, 0.0, {**terms, **{self.x[k, h]: -cap for h, cap in caps.items()}})
        for l, terms in enumerate(link_terms):
            if terms and self.upper_bound(terms) > ev.link_capacity[l] * (1.0 + CAPACITY_EPSILON):
                prog.row(-np.inf, ev.link_capacity[l], terms)
        for l, uses in enumerate(dropped_use):
            bounds = [(r, rate, expr, self.upper_bound(expr)) for r, rate, expr in uses]
            if sum(rate * u for _, rate, _, u in bounds) <= ev.link_capacity[l] * (1.0 + CAPACITY_EPSILON):
                continue
            load: Expr = {}
            for r, rate, expr, u in bounds:  # g >= use - U (1 - y): the link crossings of an accepted request
                g = prog.var(0.0, np.inf)
                self.group[g] = ("g", (r, l))
                self.link_use.setdefault(r, []).append((l, g, expr))
                prog.row(-u, np.inf, {g: 1.0, **{c: -v for c, v in expr.items()}, self.y[r]: -u})
                load[g] = rate
            prog.row(-np.inf, ev.link_capacity[l], load)

    def _colocation_rows(self) -> None:
        """Co-location configurations of the heavy-traffic instances in every switch (class docstring)."""
        sub = self.substrate
        heavy = sorted({k for pair in self.pairs if pair not in self.light for k in pair})
        own = {}  # switch node -> its LM and EM hosts
        for h, host in enumerate(sub.hosts):
            if host.kind is not HostKind.SERVER:
                own.setdefault(host.node, []).append(h)
        found: dict[int, list[frozenset[int]]] = {}
        for node, hosts in own.items():
            found[node] = self._configurations(heavy, hosts)
            if sum(len(c) for c in found.values()) > MAX_CONFIGURATIONS:
                return
        for node, configurations in found.items():
            if not configurations:
                continue
            cols = self.configurations[node] = {c: self.prog.var() for c in configurations}
            self.prog.row(-np.inf, 1.0, {col: 1.0 for col in cols.values()})
            for k in heavy:
                held = {col: 1.0 for c, col in cols.items() if k in c}
                xs = {self.x[k, h]: -1.0 for h in own[node] if (k, h) in self.x}
                if held or xs:
                    self.prog.row(0.0, 0.0, {**held, **xs})
            a = self.geo.attach[node]
            for (k, k2), (z, _) in self.pairs.items():
                if (a, a) in z:  # together at the switch: in one configuration, or (one of them) on a server behind it
                    behind = {self.x[kk, h]: -1.0 for kk in (k, k2) for h in self.hosts[kk]
                              if self.geo.attach[self.node(h)] == a and h not in own[node]}
                    both = {col: -1.0 for c, col in cols.items() if k in c and k2 in c}
                    self.prog.row(-np.inf, 0.0, {z[a, a]: 1.0, **both, **behind})

    def _configurations(self, heavy: Sequence[int], hosts: Sequence[int]) -> list[frozenset[int]]:
        """The non-empty sets of `heavy` instances that `hosts` (one switch's memories) hold together (eq. 7)."""
        sub = self.substrate
        candidates = [k for k in heavy if any((k, h) in self.x for h in hosts)]
        size = {k: sub.instances[k].type.storage_mb for k in candidates}

        def fits(chosen: tuple[int, ...], room: dict[int, float]) -> bool:
            if not chosen:
                return True
            k, rest = chosen[0], chosen[1:]
            for h in hosts:
                if (k, h) in self.x and room[h] >= size[k] * (1.0 - CAPACITY_EPSILON):
                    room[h] -= size[k]
                    ok = fits(rest, room)
                    room[h] += size[k]
                    if ok:
                        return True
            return False

        result: list[frozenset[int]] = []

        def grow(chosen: tuple[int, ...], start: int) -> None:
            for i in range(start, len(candidates)):
                bigger = (*chosen, candidates[i])
                if fits(bigger, {h: sub.hosts[h].storage_mb for h in hosts}):
                    result.append(frozenset(bigger))
                    if len(result) > MAX_CONFIGURATIONS:
                        return
                    grow(bigger, i + 1)

        grow((), 0)
        return result

    def capacity(self, k: int, h: int) -> float:
        """Eq. 10's capacity of instance k on host h, cut to what its requests could ever send it (a tighter row)."""
        return min(self.substrate.instance_capacity_mbps(k, h), self.total_rate.get(k, 0.0))

    # -- solutions ----------------------------------------------------------------------------------

    @property
    def size(self) -> ProgramSize:
        return ProgramSize(len(self.prog.lower), sum(self.prog.integer), len(self.prog.rows), self.prog.nonzeros)

    @property
    def acceptable(self) -> int:
        """Requests not fixed rejected: a bound on the accepted."""
        return len(self.open)

    def accepted(self, values: np.ndarray) -> frozenset[int]:
        return frozenset(self.open) if self.accept_all else frozenset(r for r, y in self.y.items() if values[y] > 0.5)

    def start(self, placement: Placement, accepted: Iterable[int] | None = None) -> _Start | None:
        """`placement` as a solution of the program, or None when it is not one (a host the program
        leaves out, a request of `accepted` it cannot accept, with `carried` more traffic than a link
        holds). Without `accepted`, requests are admitted in id order, each when all its deadline
        rows hold and its instances' capacity (and with `dropped` its links) still has room for it."""
        values = np.zeros(len(self.prog.lower))
        if not self.fill(placement, values, accepted) or self.prog.worst_violation(values) > FEASIBILITY_TOLERANCE:
            return None
        return _Start(tuple(placement), values, self.accepted(values), self.value(self.cost, values))

    def fill(self, placement: Placement, values: np.ndarray, accepted: Iterable[int] | None = None) -> bool:
        """Set this step's columns in `values` to `placement` as `start` does (the columns of `_move_terms`
        set already); False when it is not a solution of the step. Only the step's admission is checked
        here: `start` then checks every row."""
        if placement_errors(self.substrate, placement) or any((k, h) not in self.x for k, h in enumerate(placement)):
            return False
        for k, h in enumerate(placement):
            values[self.x[k, h]] = 1.0
        geo = self.geo
        at = [geo.attach[self.node(h)] for h in placement]
        for (k, k2), (z, e) in self.pairs.items():
            if z:
                values[z[at[k], at[k2]]] = 1.0
            a = self.node(placement[k])
            if a == self.node(placement[k2]) and a in e:
                values[e[a]] = 1.0
        for col, scale, (k, k2), by_attachment in self.light_cols:
            values[col] = by_attachment.get((at[k], at[k2]), 0.0) / scale
        for node, cols in self.configurations.items():
            held = frozenset(k for k, h in enumerate(placement) if self.node(h) == node and self.substrate.hosts[h].kind
                             is not HostKind.SERVER and any(k in c for c in cols))
            if held:
                if held not in cols:
                    return False
                values[cols[held]] = 1.0
        chosen = None if accepted is None else set(accepted)
        if chosen is not None and (not chosen <= set(self.open) or (self.accept_all and chosen != set(self.open))):
            return False
        load: dict[int, float] = {}
        link_load = [0.0] * len(self.substrate.links)
        for r in self.open:
            rate = self.workload.requests[r].rate_mbps[self.step]
            chain = self.workload.assignment[r]
            rows, deadline = self.deadline_rows[r]
            crossings = [(l, g, self.value(expr, values)) for l, g, expr in self.link_use.get(r, [])]
            accept = (all(self.value(expr, values) <= deadline for expr in rows)
                      and all(load.get(k, 0.0) + rate * chain.count(k) <= self.capacity(k, placement[k]) for k in set(chain))
                      and all(link_load[l] + rate * n <= self.evaluator.link_capacity[l] for l, _, n in crossings))
            wanted = (r in chosen) if chosen is not None else (accept or self.accept_all)
            if wanted and not accept:
                return False
            if not wanted:
                continue
            if r in self.y:
                values[self.y[r]] = 1.0
            for k in chain:
                load[k] = load.get(k, 0.0) + rate
            for l, g, n in crossings:
                link_load[l] += rate * n
                values[g] = n
            if r in self.bandwidth:
                b, expr = self.bandwidth[r]
                values[b] = self.value(expr, values)
        return True

    def placement_of(self, values: np.ndarray) -> Placement:
        placement = [0] * len(self.hosts)
        for (k, h), col in self.x.items():
            if values[col] > 0.5:
                placement[k] = h
        return tuple(placement)


@dataclass(frozen=True)
class ExactSolution:
    placement: Placement
    accepted: int
    """Requests the program accepts (with its fixed paths and free admission)."""
    cost: float
    """The program's eq. 1 for the step (with `carried`, every request's traffic)."""
    status: str
    """'optimal' (both phases proven, the cost phase to HiGHS's relative tolerance of 1e-4), 'time limit'
    (the best found, with its gaps) or 'no solution' (none found: the previous placement is kept)."""
    gap: float
    """Relative MIP gap of the cost phase (0 when optimal)."""
    accepted_bound: float
    """Upper bound on accepted requests proven in phase one."""
    seconds: float
    """Wall time of the whole step: building the programs, the warm start and both phases."""
    start_accepted: int = 0
    """Accepted requests of the best warm start (the program's judgement of the offered placements)."""
    start_cost: float = math.nan
    size: ProgramSize | None = None
    """The cost phase's program."""
    first_seconds: float = 0.0
    """Of `seconds`, until the first phase ended (building the full program, the warm start, phase one)."""

    @property
    def accepted_gap(self) -> float:
        """How far phase one may be from the most accepted requests, relative to its bound (0 when proven)."""
        return (self.accepted_bound - self.accepted) / self.accepted_bound if self.accepted_bound > 0 else 0.0

    def within(self, tolerance: float) -> bool:
        """Both phases proven optimal up to `tolerance` relative gap."""
        return self.status != "no solution" and self.accepted_gap <= tolerance and self.gap <= tolerance


def _highs(time_limit_s: float) -> highspy.Highs:
    """A quiet, single-threaded, seeded solver: the same model gives the same answer."""
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("random_seed", 0)
    h.setOptionValue("threads", 1)
    # No strong branching: on `paper`'s busy steps it took half the cost phase's time (its LPs are
    # large) and the search without it closed the same steps about twice as fast.
    h.setOptionValue("mip_pscost_minreliable", 0)
    h.setOptionValue("time_limit", max(time_limit_s, 1e-3))
    return h


def _found(h: highspy.Highs) -> bool:
    return h.getInfo().primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible


def _warm(h: highspy.Highs, values: np.ndarray) -> None:
    solution = highspy.HighsSolution()
    solution.col_value = list(values)
    solution.value_valid = True
    h.setSolution(solution)


def _run(program: StepProgram, cost: Expr, maximise: bool, start: _Start | None, time_limit_s: float) -> highspy.Highs:
    h = _highs(time_limit_s)
    h.passModel(program.prog.to_highs(cost, maximise))
    if start is not None:
        _warm(h, start.values)
    h.run()
    return h


def solve_step(evaluator: StepEvaluator, workload: Workload, step: int, previous: Placement,
               time_limit_s: float = 60.0, weights: ObjectiveWeights | None = None,
               starts: Sequence[Placement] = ()) -> ExactSolution:
    """The step's optimum within `time_limit_s` (seconds of wall time for the whole step), warm-started
    from the best of `starts` and `previous` (see the module docstring)."""
    if not time_limit_s > 0:
        raise ValueError(f"time limit must be positive, got {time_limit_s!r}")
    began = time.perf_counter()
    weights = weights or evaluator.weights
    offered = [*starts, previous]
    full = StepProgram(evaluator, workload, step, previous, weights)
    candidates = [s for s in (full.start(p) for p in offered) if s is not None]
    warm = max(candidates, key=lambda s: (len(s.accepted), -s.cost), default=None)
    left = lambda: time_limit_s - (time.perf_counter() - began)  # noqa: E731

    # Phase one: the most accepted requests. Nothing to search when the warm start accepts every open one.
    bound = float(full.acceptable)
    first = warm
    first_optimal = warm is not None and len(warm.accepted) == full.acceptable
    if not first_optimal:
        h = _run(full, {col: 1.0 for col in full.y.values()}, True, warm, left() / 2)
        if _found(h):
            values = np.array(h.getSolution().col_value)
            first = _Start(full.placement_of(values), values, full.accepted(values), full.value(full.cost, values))
        proven = float(h.getInfo().mip_dual_bound)  # infinite when stopped before the first LP
        if math.isfinite(proven):
            bound = min(bound, math.floor(proven + 1e-6))
        first_optimal = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    if first is None:
        return ExactSolution(previous, 0, math.nan, "no solution", math.inf, bound, time.perf_counter() - began,
                             size=full.size)
    best = len(first.accepted)
    first_optimal = first_optimal or best >= bound
    first_seconds = time.perf_counter() - began

    # Phase two: the least cost with that many accepted, in the compact program; its answer checked in the full one.
    known = [first, *(s for s in candidates if len(s.accepted) >= best)]
    accept_all = best == full.acceptable
    light = light_pairs(workload, step)
    program = StepProgram(evaluator, workload, step, previous, weights, accept_all=accept_all, light=light, colocation=True)
    if not accept_all:
        program.prog.row(best - 0.5, np.inf, {col: 1.0 for col in program.y.values()})
    seconds = [s for s in (program.start(k.placement, k.accepted) for k in known) if s is not None]
    h2 = _run(program, program.cost, False, min(seconds, key=lambda s: s.cost, default=None), left())
    found = None
    if _found(h2):
        values = np.array(h2.getSolution().col_value)
        found = full.start(program.placement_of(values), program.accepted(values))
    if found is None and _found(h2):  # the light pairs' links overflow: solve the full program for the time left
        full.prog.row(best - 0.5, np.inf, {col: 1.0 for col in full.y.values()})
        h2 = _run(full, full.cost, False, min(known, key=lambda s: s.cost), left())
        program = full
        if _found(h2):
            values = np.array(h2.getSolution().col_value)
            found = _Start(full.placement_of(values), values, full.accepted(values), full.value(full.cost, values))
    answer = found or min(known, key=lambda s: s.cost)
    second_optimal = found is not None and h2.getModelStatus() == highspy.HighsModelStatus.kOptimal
    lower = float(h2.getInfo().mip_dual_bound) if found is not None else -math.inf  # -inf: stopped before the first LP
    return ExactSolution(
        placement=answer.placement,
        accepted=len(answer.accepted),
        cost=answer.cost,
        status="optimal" if first_optimal and second_optimal else "time limit",
        gap=0.0 if second_optimal else (answer.cost - lower) / abs(answer.cost) if answer.cost else math.inf,
        accepted_bound=bound,
        seconds=time.perf_counter() - began,
        start_accepted=len(warm.accepted) if warm else 0,
        start_cost=warm.cost if warm else math.nan,
        size=program.size,
        first_seconds=first_seconds,
    )
