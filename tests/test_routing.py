"""Load-balanced link mapping (routing.py): fewest hops, least load among them, detours only when full."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import factories as f
from controller.model.routing import Router
from controller.model.substrate import Substrate, draw_substrate
from controller.model.scenario import load_scenario


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
