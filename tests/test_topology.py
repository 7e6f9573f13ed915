"""Topology builders, the committed files, and the checks a topology file must pass."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from controller.errors import ConfigError
from controller.model.topology import load_topology, topology_from_dict
from topologies import builtin_names, builtin_path
from topologies.__main__ import render
from topologies.fattree import builtin_topologies, k_ary_fat_tree, paper_fat_tree


def test_committed_files_are_what_the_builders_make():
    built = builtin_topologies()
    assert sorted(built) == builtin_names()
    for name, topology in built.items():
        assert builtin_path(name).read_text() == render(topology), f"regenerate with `python -m topologies` ({name})"


def test_paper_fat_tree_matches_fig4():
    t = paper_fat_tree()
    roles = Counter(s["role"] for s in t["switches"])
    assert roles == {"core": 2, "aggregation": 4, "edge": 4}
    assert len(t["servers"]) == 12
    links = {frozenset((l["a"], l["b"])) for l in t["links"]}
    pod = {s["name"]: s["pod"] for s in t["switches"]}
    aggs = [s["name"] for s in t["switches"] if s["role"] == "aggregation"]
    edges = [s["name"] for s in t["switches"] if s["role"] == "edge"]
    for agg in aggs:
        assert {frozenset((agg, c)) for c in ("c1", "c2")} <= links
        for edge in edges:
            assert (frozenset((agg, edge)) in links) == (pod[agg] == pod[edge])
    per_edge = Counter(l["a"] for l in t["links"] if l["b"].startswith("m"))
    assert per_edge == {e: 3 for e in edges}
    assert len(t["links"]) == 8 + 8 + 12


@pytest.mark.parametrize("k,switches,servers", [(4, 20, 16), (8, 80, 128)])
def test_k_ary_fat_tree_sizes(k, switches, servers):
    t = k_ary_fat_tree(k)
    assert len(t["switches"]) == switches and len(t["servers"]) == servers
    assert len(t["links"]) == 3 * k**3 // 4  # k^3/4 each: edge-server, edge-agg, agg-core
    degree = Counter()
    for l in t["links"]:
        degree[l["a"]] += 1
        degree[l["b"]] += 1
    assert all(degree[s["name"]] == k for s in t["switches"])


def test_builders_are_deterministic_and_within_ranges():
    assert paper_fat_tree(seed=3) == paper_fat_tree(seed=3)
    assert paper_fat_tree(seed=3) != paper_fat_tree(seed=4)
    for l in paper_fat_tree()["links"]:
        assert 10 <= l["bandwidth_gbps"] <= 40 and 0.05 <= l["delay_ms"] <= 0.2


def _broken(mutate) -> dict:
    t = json.loads(json.dumps(paper_fat_tree()))
    mutate(t)
    return t


@pytest.mark.parametrize(
    "mutate,key,words",
    [
        (lambda t: t.update(links=[l for l in t["links"] if "m12" not in (l["a"], l["b"])]), "links", "disconnected"),
        (lambda t: t["links"][3].update(b="nowhere"), "links[3].b", "unknown node"),
        (lambda t: t["links"][0].update(bandwidth_gbps=-10), "links[0].bandwidth_gbps", "greater than 0"),
        (lambda t: t["switches"][1].update(name="c1"), "switches[1].name", "duplicate"),
        (lambda t: t["switches"][0].update(colour="red"), "switches[0].colour", "unknown key"),
        (lambda t: t.update(version=2), "version", "1"),
        (lambda t: t["links"].append(dict(t["links"][0])), "links[28]", "parallel"),
    ],
)
def test_bad_topology_is_one_clear_error(mutate, key, words):
    with pytest.raises(ConfigError) as err:
        topology_from_dict(_broken(mutate), "net.json")
    assert err.value.where == "net.json" and err.value.key == key
    assert words in err.value.message
    assert "\n" not in str(err.value)


def test_load_by_name_and_by_path(tmp_path):
    assert load_topology("paper").name == "paper"
    path = tmp_path / "mine.json"
    path.write_text(render(k_ary_fat_tree(4)))
    assert len(load_topology(str(path)).server_names) == 16
    with pytest.raises(ConfigError, match="no built-in topology"):
        load_topology("nope")
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="malformed JSON"):
        load_topology(str(path))
