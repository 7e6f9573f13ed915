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
    return _Geometry(attach, leaf_link, {key: options[0] for key, options in paths.items()}, core_index, inverse,
                     propagation, _shortest(inv_w), _shortest(prop_w))


@dataclass
class _Start:
    """A placement as a solution of the program: every column's value, its accepted requests and cost."""

    placement: Placement
    values: np.ndarray
    accepted: int
    cost: float


@dataclass(frozen=True)
class ProgramSize:
    columns: int
    integers: int
    rows: int
    nonzeros: int


class StepProgram:
    """The MIP of one step (module docstring), with the maps from its columns back to the model.

    `accept_all`: the second phase's program when the first accepted every request it could (the
    usual case): those requests are then accepted outright, so an instance keeps only the hosts on
    which all its requests can meet their deadlines and fit its capacity, and no y column is needed."""

    def __init__(self, evaluator: StepEvaluator, workload: Workload, step: int, previous: Placement,
                 weights: ObjectiveWeights, accept_all: bool = False) -> None:
        self.evaluator, self.workload, self.step, self.previous, self.weights = evaluator, workload, step, previous, weights
        self.accept_all = accept_all
        sub = evaluator.substrate
        self.substrate = sub
        self.geo = _geometry(sub)
        self.carried = weights.rejected_traffic == "carried"
        self.prog = _Program()
        self.cost: Expr = {}
        self.group: dict[int, tuple[str, object]] = {}
        """Column -> a set of columns of which at most one is 1 (one instance's hosts, one pair's z or e)."""
        mask = capacities(sub).can_ever_hold()
        self.hosts = {k: [h for h in range(len(sub.hosts)) if mask[k, h]] for k in range(len(sub.instances))}
        moves = {(k, h): evaluator.move(k, previous[k], h) for k, hosts in self.hosts.items() for h in hosts}
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
        self.pairs: dict[tuple[int, int], tuple[dict[tuple[int, int], int], dict[int, int]]] = {}
        self.y: dict[int, int] = {}
        """Open request -> its acceptance column (none with `accept_all`)."""
        self.deadline_rows: dict[int, tuple[list[Expr], float]] = {}
        """Open request -> (the delay expressions of its deadline rows, its deadline), to judge a warm start."""
        self.link_use: dict[int, list[tuple[int, int, Expr]]] = {}
        """With `dropped`: request -> (link, its g column, its crossings of the link) for the links with a row."""
        self.bandwidth: dict[int, tuple[int, Expr]] = {}
        """With `dropped`: request -> (its b column, its bandwidth cost when accepted)."""
        self._placement_rows()
        self._request_rows()

    # -- building blocks --------------------------------------------------------------------------

    def node(self, h: int) -> int:
        return self.substrate.hosts[h].node

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
            geo, prog = self.geo, self.prog
            at = {kk: {} for kk in (k, k2)}
            for kk in (k, k2):
                for h in self.hosts[kk]:
                    at[kk].setdefault(geo.attach[self.node(h)], []).append(self.x[kk, h])
            z = {(s, t): prog.var() for s in at[k] for t in at[k2]}
            for col in z.values():
                self.group[col] = ("z", (k, k2))
            for s, cols in at[k].items():
                prog.row(0.0, 0.0, {**{z[s, t]: 1.0 for t in at[k2]}, **{c: -1.0 for c in cols}})
            for t, cols in at[k2].items():
                prog.row(0.0, 0.0, {**{z[s, t]: 1.0 for s in at[k]}, **{c: -1.0 for c in cols}})
            e = {}
            shared = {self.node(h) for h in self.hosts[k]} & {self.node(h) for h in self.hosts[k2]}
            for m in sorted(shared):
                if geo.leaf_link[m] is not None:
                    e[m] = col = prog.var()
                    self.group[col] = ("e", (k, k2))
                    for kk in (k, k2):
                        prog.row(-np.inf, 0.0, {col: 1.0, **{self.x[kk, h]: -1.0 for h in self.hosts[kk] if self.node(h) == m}})
            self.pairs[k, k2] = (z, e)
        return self.pairs[k, k2]

    def upper_bound(self, expr: Expr) -> float:
        """The largest value `expr` takes on any placement: at most one column of each group is 1."""
        best: dict[tuple[str, object], float] = {}
        for col, v in expr.items():
            g = self.group[col]
            best[g] = max(best.get(g, 0.0), v)
        return sum(best.values())

    def value(self, expr: Expr, values: np.ndarray) -> float:
        return sum(values[c] * v for c, v in expr.items())

    def _segments(self, rate: float, chain: Sequence[int], source: int, target: int) -> tuple[Expr, Expr, dict[int, Expr]]:
        """A chain's virtual links on the program's paths: (transmission delay, sum of link prices, crossings per link)."""
        geo, ev = self.geo, self.evaluator
        delay: Expr = {}
        price: Expr = {}
        use: dict[int, Expr] = {}
        core_delay = (rate * geo.inverse_bandwidth + geo.propagation_ms).max(axis=2)

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
            z, e = self._pair(k, k2)
            for kk in (k, k2):  # the leaf links at both ends
                for h in self.hosts[kk]:
                    l = geo.leaf_link[self.node(h)]
                    if l is not None:
                        add(self.x[kk, h], leaf_delay(self.node(h)), [l])
            for (s, t), col in z.items():
                if s != t:
                    add(col, float(core_delay[geo.core_index[s], geo.core_index[t]]), geo.core_path[s, t])
            for m, col in e.items():  # both on the same server: no link at all, so both leaf crossings come back off
                add(col, leaf_delay(m), [geo.leaf_link[m]], times=-2.0)  # type: ignore[list-item]
        return delay, price, use

    def _hosts_in_time(self, rate: float, deadline: float, chain: Sequence[int], source: int, target: int) -> list[list[int]]:
        """Per instance of the chain, the hosts on which the request can still meet its deadline and fit its capacity.

        A lower bound on the delay with instance k on host h: k's move and processing there, every other
        instance on its fastest host without a move, and the least transmission from the source through
        h's node to the target (shortest paths in 1/B and in g separately: every chain of virtual links
        through that node is at least that long)."""
        ev, geo = self.evaluator, self.geo
        proc = [{h: processing_delay_ms(rate, [ev.per_mb_delay[k][h]]) for h in self.hosts[k]} for k in chain]
        fastest = sum(min(p.values()) for p in proc)
        inv, prop = geo.shortest_inverse, geo.shortest_propagation
        ok = []
        for j, k in enumerate(chain):
            hosts = []
            for h in self.hosts[k]:
                n = self.node(h)
                trans = rate * (inv[source, n] + inv[n, target]) + prop[source, n] + prop[n, target]
                bound = self.move_delay[k][h] + proc[j][h] + fastest - min(proc[j].values()) + trans
                if bound <= deadline * (1.0 + 1e-9) and \
                        rate * chain.count(k) <= self.substrate.instance_capacity_mbps(k, h) * (1.0 + CAPACITY_EPSILON):
                    hosts.append(h)
            ok.append(hosts)
        return ok

    def _request_rows(self) -> None:
        sub, prog, ev, step = self.substrate, self.prog, self.evaluator, self.step
        link_terms: list[Expr] = [{} for _ in sub.links]
        """Link -> the traffic that crosses it whatever is accepted (with `carried`, or with `accept_all`)."""
        dropped_use: list[list[tuple[int, float, Expr]]] = [[] for _ in sub.links]
        instance_load: dict[int, Expr] = {}
        is_open = set(self.open)
        for r, (req, chain) in enumerate(zip(self.workload.requests, self.workload.assignment)):
            if not chain:
                raise ValueError(f"request {req.id} has no VNF")
            if r not in is_open and not self.carried:
                continue  # never accepted, and with `dropped` then without traffic: nothing of it is in the program
            rate, deadline = req.rate_mbps[step], req.deadline_ms[step]
            delay, price, use = self._segments(rate, chain, req.source, req.target)
            bandwidth = {col: self.weights.bandwidth * bandwidth_cost(rate, sub.step_seconds, [p]) for col, p in price.items()}
            always = self.carried or self.accept_all
            if always:  # its traffic is carried whatever the program decides
                for col, v in bandwidth.items():
                    self.cost[col] = self.cost.get(col, 0.0) + v
                for l, expr in use.items():
                    for col, v in expr.items():
                        link_terms[l][col] = link_terms[l].get(col, 0.0) + rate * v
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
            # Eq. 17: the reconfiguration delay is the slowest move of the chain, so each instance that may
            # move slowly has its own deadline row; big-M is the largest delay that row can reach.
            moves = [{self.x[k, h]: self.move_delay[k][h] for h in self.hosts[k]} for k in sorted(set(chain))]
            rows = []
            for move in [m for m in moves if max(m.values()) > 0.0] or [{}]:
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

    def accepted(self, values: np.ndarray) -> int:
        return self.acceptable if self.accept_all else round(sum(values[y] for y in self.y.values()))

    def start(self, placement: Placement) -> _Start | None:
        """`placement` as a solution of the program, or None when it is not one (a host the program
        leaves out, with `carried` more traffic than a link holds, or with `accept_all` a request it
        cannot accept). Requests are admitted in id order, each when all its deadline rows hold and
        its instances' capacity (and with `dropped` its links) still has room for it."""
        if placement_errors(self.substrate, placement) or any((k, h) not in self.x for k, h in enumerate(placement)):
            return None
        values = np.zeros(len(self.prog.lower))
        for k, h in enumerate(placement):
            values[self.x[k, h]] = 1.0
        geo = self.geo
        for (k, k2), (z, e) in self.pairs.items():
            a, b = self.node(placement[k]), self.node(placement[k2])
            values[z[geo.attach[a], geo.attach[b]]] = 1.0
            if a == b and a in e:
                values[e[a]] = 1.0
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
            if not accept and self.accept_all:
                return None
            if not accept:
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
        if self.prog.worst_violation(values) > FEASIBILITY_TOLERANCE:
            return None
        return _Start(tuple(placement), values, self.accepted(values), self.value(self.cost, values))

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
    """'optimal' (both phases proven), 'time limit' (best found, with its gaps) or 'no solution' (none
    found: the previous placement is kept)."""
    gap: float
    """Relative MIP gap of the cost phase (0 when optimal)."""
    accepted_bound: float
    """Upper bound on accepted requests proven in phase one."""
    seconds: float
    """Wall time of the whole step: building the program, the warm start and both phases."""
    start_accepted: int = 0
    """Accepted requests of the best warm start (the program's judgement of the offered placements)."""
    start_cost: float = math.nan
    size: ProgramSize | None = None

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
    h.setOptionValue("time_limit", max(time_limit_s, 1e-3))
    return h


def _found(h: highspy.Highs) -> bool:
    return h.getInfo().primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible


def _warm(h: highspy.Highs, values: np.ndarray) -> None:
    solution = highspy.HighsSolution()
    solution.col_value = list(values)
    solution.value_valid = True
    h.setSolution(solution)


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
    program = StepProgram(evaluator, workload, step, previous, weights)
    candidates = [s for s in (program.start(p) for p in offered) if s is not None]
    best_start = max(candidates, key=lambda s: (s.accepted, -s.cost), default=None)
    left = lambda: time_limit_s - (time.perf_counter() - began)  # noqa: E731

    bound = float(program.acceptable)
    first: _Start | None = best_start
    first_optimal = best_start is not None and best_start.accepted == program.acceptable
    if not first_optimal:  # (otherwise every request that can be accepted is: nothing to search)
        h = _highs(left() / 2)
        h.passModel(program.prog.to_highs({col: 1.0 for col in program.y.values()}, maximise=True))
        if best_start is not None:
            _warm(h, best_start.values)
        h.run()
        if _found(h):
            values = np.array(h.getSolution().col_value)
            first = _Start(program.placement_of(values), values, program.accepted(values), program.value(program.cost, values))
        bound = min(bound, math.floor(float(h.getInfo().mip_dual_bound) + 1e-6))
        first_optimal = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    if first is None:
        return ExactSolution(previous, 0, math.nan, "no solution", math.inf, bound, time.perf_counter() - began,
                             size=program.size)
    best = first.accepted
    first_optimal = first_optimal or best >= bound
    if best == program.acceptable:
        program = StepProgram(evaluator, workload, step, previous, weights, accept_all=True)
        seconds = [s for s in (program.start(p) for p in (*offered, first.placement)) if s is not None]
    else:
        program.prog.row(best - 0.5, np.inf, {col: 1.0 for col in program.y.values()})
        seconds = [first, *(s for s in candidates if s.accepted >= best)]
    second = min(seconds, key=lambda s: s.cost)
    h2 = _highs(left())
    h2.passModel(program.prog.to_highs(program.cost, maximise=False))
    _warm(h2, second.values)
    h2.run()
    values = np.array(h2.getSolution().col_value) if _found(h2) else second.values
    second_optimal = h2.getModelStatus() == highspy.HighsModelStatus.kOptimal
    return ExactSolution(
        placement=program.placement_of(values),
        accepted=program.accepted(values),
        cost=program.value(program.cost, values),
        status="optimal" if first_optimal and second_optimal else "time limit",
        gap=0.0 if second_optimal else float(h2.getInfo().mip_gap),
        accepted_bound=bound,
        seconds=time.perf_counter() - began,
        start_accepted=best_start.accepted if best_start else 0,
        start_cost=best_start.cost if best_start else math.nan,
        size=program.size,
    )
