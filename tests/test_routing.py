"""Load-balanced link mapping (routing.py): fewest hops, least load among them, detours only when full."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import factories as f
from controller.model.routing import Router
from controller.model.substrate import Substrate, draw_substrate
from controller.model.scenario import load_scenario
from topologies import builtin_path


@pytest.fixture(scope="module")
def paper_router() -> tuple[Substrate, Router]:
    sub = Substrate(draw_substrate(load_scenario("paper"), np.random.default_rng(0)))
    return sub, Router(sub)


def test_fat_tree_has_eight_equal_cost_paths_between_pods(paper_router):
    sub, router = paper_router
    e1, e3 = sub.node_index["e1"], sub.node_index["e3"]
    paths = router.min_hop_paths(e1, e3)
    assert len(paths) == 8 and all(len(p) == 4 for p in paths)
    assert len(set(paths)) == 8
    m1, m12 = sub.node_index["m1"], sub.node_index["m12"]
    assert len(router.min_hop_paths(m1, m12)) == 8


def test_route_avoids_the_loaded_path(paper_router):
    sub, router = paper_router
    e1, e3 = sub.node_index["e1"], sub.node_index["e3"]
    load = [0.0] * len(sub.links)
    first = router.route(e1, e3, 100.0, load, {})
    for link in first:
        load[link] = 1000.0
    second = router.route(e1, e3, 100.0, load, {})
    assert len(second) == 4 and not set(first) & set(second)


def test_pending_load_of_the_same_request_counts(paper_router):
    sub, router = paper_router
    e1, m1 = sub.node_index["e1"], sub.node_index["m1"]
    (link,) = router.route(e1, m1, 1.0, [0.0] * len(sub.links), {})
    cap = router.capacity[link]
    assert router.route(e1, m1, cap / 2, [0.0] * len(sub.links), {link: cap / 2}) == (link,)
    assert router.route(e1, m1, cap / 2, [0.0] * len(sub.links), {link: cap / 2 + 1}) is None


def test_detour_when_every_shortest_path_is_full():
    # s1 reaches s4 in two hops via s2 or s3, or in three via s5 - s6
    topo = f.topology_dict(["s1", "s2", "s3", "s4", "s5", "s6"], [],
                           [("s1", "s2", 1, 0.1), ("s2", "s4", 1, 0.1), ("s1", "s3", 1, 0.1), ("s3", "s4", 1, 0.1),
                            ("s1", "s5", 1, 0.1), ("s5", "s6", 1, 0.1), ("s6", "s4", 1, 0.1)])
    sub = f.substrate(topo, [f.vnf("fw", 1.0)])
    router = Router(sub)
    s1, s4 = sub.node_index["s1"], sub.node_index["s4"]
    load = [0.0] * 7
    load[0] = load[2] = 950.0  # s1-s2 and s1-s3 have 50 Mbps left
    assert len(router.route(s1, s4, 40.0, load, {})) == 2
    assert router.route(s1, s4, 100.0, load, {}) == (4, 5, 6)
    load[4] = 950.0
    assert router.route(s1, s4, 100.0, load, {}) is None


def _weight(router: Router, path, load) -> float:
    return sum(1.0 + load[l] / router.capacity[l] / router.num_nodes for l in path)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_route_matches_a_full_dijkstra(paper_router, data):
    """The min-hop shortcut returns a path exactly as good as Dijkstra over the pruned graph (routing.py's claim)."""
    sub, router = paper_router
    n = len(sub.node_names)
    src = data.draw(st.integers(0, n - 1))
    dst = data.draw(st.integers(0, n - 1))
    load = [data.draw(st.floats(0.0, 1.0)) * c for c in router.capacity]
    rate = data.draw(st.floats(1.0, 20_000.0))
    fast = router.route(src, dst, rate, load, {})
    full = router.dijkstra(src, dst, rate, load, {}) if src != dst else ()
    assert (fast is None) == (full is None)
    if fast is not None:
        assert _weight(router, fast, load) == pytest.approx(_weight(router, full, load), abs=1e-9)
        nodes = router.nodes_of(src, fast)
        assert nodes[-1] == dst and len(set(nodes)) == len(nodes)
        assert all(load[l] + rate <= router.capacity[l] * (1 + 1e-9) for l in fast)


# --- The model's path rule without listing the paths (issue 20, finding 2) ---------------------------------------

def _reference_paths(router: Router, source: int, target: int) -> list[tuple[int, ...]]:
    """The fewest-hop paths as the model first listed them: recursively, depth first in link order."""
    dist = router.hops_to(target)
    paths: list[tuple[int, ...]] = []

    def extend(node: int, links: list[int]) -> None:
        if node == target:
            paths.append(tuple(links))
            return
        for nbr, link in router.adjacency[node]:
            if dist[nbr] == dist[node] - 1:
                extend(nbr, [*links, link])

    extend(source, [])
    return paths


def _reference_route(router: Router, source, target, rate, load, pending):
    """The rule by brute force: the first listed fewest-hop path with room of the lowest score, else Dijkstra."""
    if source == target:
        return ()
    best, best_score = None, 0.0
    for path in _reference_paths(router, source, target):
        if all(router.fits(l, load, pending, rate) for l in path):
            score = 0.0
            for l in path:
                score += (load[l] + pending.get(l, 0.0)) / router.capacity[l]
            if best is None or score < best_score:
                best, best_score = path, score
    return best if best is not None else router.dijkstra(source, target, rate, load, pending)


def _reference_widest(router: Router, source, target):
    return max(_reference_paths(router, source, target), key=lambda p: min((router.capacity[l] for l in p), default=float("inf")))


@pytest.fixture(params=["listed", "dag"])
def scoring(request, monkeypatch):
    """Both ways `route` applies the rule: scoring the listed paths, and the passes over the DAG (forced here)."""
    import controller.model.routing as routing

    if request.param == "dag":
        monkeypatch.setattr(routing, "SCORED_ONE_BY_ONE", 0)
    return request.param


def _loads(router: Router, rng: np.random.Generator) -> list[float]:
    # Utilisations from a few decimal fractions: equal sums and sums that differ in the last bit, where ties are decided.
    return [float(rng.choice([0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1 / 3])) * c for c in router.capacity]


@pytest.mark.parametrize("name", ["paper", "fat-tree-k4", "fat-tree-k8"])
def test_route_equals_the_listing_rule_on_the_builtin_topologies(name, scoring):
    sub = f.substrate(json.loads(builtin_path(name).read_text()), [f.vnf("fw", 1.0)])
    router = Router(sub)
    rng = np.random.default_rng(7)
    n = len(sub.node_names)
    for _ in range(300):
        s, t = (int(v) for v in rng.integers(0, n, 2))
        load = _loads(router, rng)
        pending = {int(l): float(rng.uniform(0, 500)) for l in rng.integers(0, len(load), 3)}
        rate = float(rng.choice([1.0, 100.0, 3000.0, 9000.0]))
        assert router.route(s, t, rate, load, pending) == _reference_route(router, s, t, rate, load, pending)
        assert router.widest_min_hop_path(s, t) == _reference_widest(router, s, t)
        assert router.min_hop_paths(s, t) == (_reference_paths(router, s, t) if s != t else [()])


@st.composite
def _graphs(draw):
    n = draw(st.integers(2, 8))
    pairs = {(i - 1, i) for i in range(1, n)} | {tuple(sorted(p)) for p in draw(st.lists(
        st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)).filter(lambda p: p[0] != p[1]), max_size=14))}
    order = draw(st.permutations(sorted(pairs)))  # link order decides ties
    bandwidth = st.sampled_from([1.0, 2.0, 4.0])
    links = [(f"s{a}", f"s{b}", draw(bandwidth), 0.1) for a, b in order]
    return f.substrate(f.topology_dict([f"s{i}" for i in range(n)], [], links), [f.vnf("fw", 1.0)])


@settings(max_examples=150, deadline=None)
@given(sub=_graphs(), data=st.data())
def test_route_equals_the_listing_rule_on_random_graphs(sub, data):
    import controller.model.routing as routing

    router = Router(sub)
    n = len(sub.node_names)
    fraction = st.sampled_from([0.0, 0.1, 0.2, 0.3, 0.5, 0.7, 1 / 3, 0.95])
    load = [data.draw(fraction) * c for c in router.capacity]
    pending = {l: data.draw(fraction) * router.capacity[l] for l in data.draw(st.sets(st.integers(0, len(load) - 1), max_size=2))}
    rate = data.draw(st.sampled_from([1.0, 150.0, 600.0, 1500.0]))
    s, t = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, n - 1))
    expected = _reference_route(router, s, t, rate, load, pending)
    listed = router.route(s, t, rate, load, pending)
    old = routing.SCORED_ONE_BY_ONE
    routing.SCORED_ONE_BY_ONE = 0
    try:
        on_dag = Router(sub).route(s, t, rate, load, pending)
    finally:
        routing.SCORED_ONE_BY_ONE = old
    assert listed == expected and on_dag == expected
    assert router.widest_min_hop_path(s, t) == _reference_widest(router, s, t)
    assert router.min_hop_path_count(s, t) == len(_reference_paths(router, s, t))
    assert router.min_hop_paths(s, t) == (_reference_paths(router, s, t) if s != t else [()])


def test_a_tie_made_by_rounding_goes_to_the_first_listed_path(scoring):
    """s-a-v-t scores 0.1 + 0.2 + 0.5 and s-b-v-t 0.0 + 0.3 + 0.5: 0.30000000000000004 > 0.3 at v, but both
    round to 0.8 at t, so the first listed path wins, although its prefix at v is not the lowest."""
    topo = f.topology_dict(["s", "a", "b", "v", "t"], [],
                           [("s", "a", 1, 0.1), ("a", "v", 1, 0.1), ("s", "b", 1, 0.1), ("b", "v", 1, 0.1), ("v", "t", 1, 0.1)])
    sub = f.substrate(topo, [f.vnf("fw", 1.0)])
    router = Router(sub)
    load = [100.0, 200.0, 0.0, 300.0, 500.0]
    assert 0.1 + 0.2 > 0.0 + 0.3 and 0.1 + 0.2 + 0.5 == 0.0 + 0.3 + 0.5
    s, t = sub.node_index["s"], sub.node_index["t"]
    assert router.route(s, t, 1.0, load, {}) == (0, 1, 4) == _reference_route(router, s, t, 1.0, load, {})


@settings(max_examples=300, deadline=None)
@given(step=st.floats(0.0, 4.0), total=st.floats(0.0, 8.0))
def test_largest_prefix_is_the_largest_float_that_still_fits(step, total):
    import math
    import struct

    from controller.model.routing import largest_prefix

    def bits(x: float) -> int:
        return struct.unpack("<q", struct.pack("<d", x))[0]

    def value(b: int) -> float:
        return struct.unpack("<d", struct.pack("<q", b))[0]

    x = largest_prefix(step, total)
    assert x + step <= total and math.nextafter(x, math.inf) + step > total
    if x >= 0.0:  # on non-negative floats the bit pattern orders like the value: bisect it as a check
        lo, hi = 0, bits(8.0)
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if value(mid) + step <= total else (lo, mid - 1)
        assert x == value(lo)


def _grid(n: int) -> Substrate:
    names = [f"s{r}_{c}" for r in range(n) for c in range(n)]
    links = [(f"s{r}_{c}", f"s{r}_{c + 1}", 10, 0.1) for r in range(n) for c in range(n - 1)]
    links += [(f"s{r}_{c}", f"s{r + 1}_{c}", 10, 0.1) for r in range(n - 1) for c in range(n)]
    topo = f.topology_dict(names, ["m1", "m2"], [*links, ("m1", names[0], 10, 0.1), ("m2", names[-1], 10, 0.1)])
    return f.substrate(topo, [f.vnf("fw", 1.0)])


def _line(n: int) -> Substrate:
    names = [f"s{i}" for i in range(n)]
    links = [(f"s{i}", f"s{i + 1}", 10, 0.1) for i in range(n - 1)]
    topo = f.topology_dict(names, ["m1", "m2"], [*links, ("m1", names[0], 10, 0.1), ("m2", names[-1], 10, 0.1)])
    return f.substrate(topo, [f.vnf("fw", 1.0)])


def _evaluate_far_apart(sub: Substrate, first: str, last: str):
    """Five requests end to end through an instance that migrates from one end's server to the other's."""
    import tracemalloc

    from controller.model.evaluator import StepEvaluator

    tracemalloc.start()
    try:
        ev = StepEvaluator(sub)
        wl = f.workload(sub, [(["fw"], first, last, [100.0], [1e6])] * 5, {"fw#0": "m1"})
        result = ev.evaluate(wl, 0, f.placement_of(sub, {"fw#0": "m1"}), f.placement_of(sub, {"fw#0": "m2"}))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return ev, result, peak


def test_grid_16x16_routes_without_enumerating():
    """155,117,520 fewest-hop paths join opposite corners: routed, migrated and counted, none listed."""
    from math import comb

    sub = _grid(16)
    ev, result, peak = _evaluate_far_apart(sub, "s0_0", "s15_15")
    corner, opposite = sub.node_index["s0_0"], sub.node_index["s15_15"]
    assert ev.router.min_hop_path_count(corner, opposite) == comb(30, 15)
    assert result.accepted == 5
    for request in result.requests:
        (to_instance, to_target) = request.paths
        assert len(to_instance) == 30 + 1 and to_target == (len(sub.links) - 1,)
        nodes = ev.router.nodes_of(corner, to_instance)
        assert nodes[-1] == sub.node_index["m2"] and len(set(nodes)) == len(nodes)
    listed = [path for paths in ev.router._min_hop_paths.values() for path in paths]
    assert listed == [(len(sub.links) - 1,)], "only the one-hop path m2 - s15_15 was listed"
    assert peak < 20 * 2**20, f"{peak / 2**20:.0f} MiB"


def test_listing_too_many_paths_is_refused_in_one_line():
    from controller.errors import SremError

    sub = _grid(16)
    router = Router(sub)
    with pytest.raises(SremError) as err:
        router.min_hop_paths(sub.node_index["s0_0"], sub.node_index["s15_15"])
    assert str(err.value) == "topology hand: 155117520 fewest-hop paths between s0_0 and s15_15, more than the 4096 that can be listed one by one"


def test_line_of_2000_switches_routes_without_recursion():
    sub = _line(2000)
    ev, result, peak = _evaluate_far_apart(sub, "s0", "s1999")
    assert result.accepted == 5
    assert [len(p) for p in result.requests[0].paths] == [2000, 1]
    assert ev.router.widest_min_hop_path(sub.node_index["m1"], sub.node_index["m2"]) == (1999, *range(1999), 2000)
    assert peak < 100 * 2**20, f"{peak / 2**20:.0f} MiB"
