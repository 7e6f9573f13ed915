"""Builds fat-tree topologies as plain topology-file dictionaries (no I/O, no validation).

Two shapes:
- `paper_fat_tree`: the SR-EM paper's Fig. 4 as we read it (the figure is lost in our copy):
  2 core, 4 aggregation and 4 edge switches in 2 pods; every aggregation switch linked to both
  cores and to both edge switches of its pod; 3 servers under each edge switch (12 servers).
- `k_ary_fat_tree`: the standard k-ary fat-tree (Al-Fares et al.): (k/2)^2 cores, k pods of k/2
  aggregation and k/2 edge switches, k/2 servers under each edge switch.

Link bandwidths and delays are drawn uniformly from the given ranges with a seeded generator,
so a builder called with the same arguments always returns the same network.
"""

from __future__ import annotations

import random
from typing import Any

TopologyDict = dict[str, Any]

PAPER_BANDWIDTH_GBPS = (10.0, 40.0)
PAPER_DELAY_MS = (0.05, 0.2)
FORMAT = "srem-topology"
VERSION = 1


class _Builder:
    """Accumulates switches, servers and links, drawing each link's bandwidth and delay."""

    def __init__(self, name: str, bandwidth_gbps: tuple[float, float], delay_ms: tuple[float, float], seed: int) -> None:
        self.name = name
        self.bandwidth_gbps = bandwidth_gbps
        self.delay_ms = delay_ms
        self.rng = random.Random(seed)
        self.switches: list[dict[str, Any]] = []
        self.servers: list[dict[str, Any]] = []
        self.links: list[dict[str, Any]] = []

    def switch(self, name: str, role: str, pod: int | None) -> str:
        self.switches.append({"name": name, "role": role, "pod": pod})
        return name

    def server(self, name: str, pod: int) -> str:
        self.servers.append({"name": name, "pod": pod})
        return name

    def link(self, a: str, b: str) -> None:
        bandwidth = round(self.rng.uniform(*self.bandwidth_gbps), 1)
        delay = round(self.rng.uniform(*self.delay_ms), 3)
        self.links.append({"a": a, "b": b, "bandwidth_gbps": bandwidth, "delay_ms": delay})

    def result(self) -> TopologyDict:
        return {
            "format": FORMAT,
            "version": VERSION,
            "name": self.name,
            "switches": self.switches,
            "servers": self.servers,
            "links": self.links,
        }


def paper_fat_tree(
    bandwidth_gbps: tuple[float, float] = PAPER_BANDWIDTH_GBPS,
    delay_ms: tuple[float, float] = PAPER_DELAY_MS,
    seed: int = 0,
) -> TopologyDict:
    """The paper's 10-switch, 12-server fat-tree (Fig. 4 as we read it)."""
    b = _Builder("paper", bandwidth_gbps, delay_ms, seed)
    cores = [b.switch(f"c{i}", "core", None) for i in (1, 2)]
    server_no = 0
    for pod in (1, 2):
        aggs = [b.switch(f"a{2 * (pod - 1) + j}", "aggregation", pod) for j in (1, 2)]
        edges = [b.switch(f"e{2 * (pod - 1) + j}", "edge", pod) for j in (1, 2)]
        for agg in aggs:
            for core in cores:
                b.link(agg, core)
            for edge in edges:
                b.link(agg, edge)
        for edge in edges:
            for _ in range(3):
                server_no += 1
                b.link(edge, b.server(f"m{server_no}", pod))
    return b.result()


def k_ary_fat_tree(
    k: int,
    bandwidth_gbps: tuple[float, float] = PAPER_BANDWIDTH_GBPS,
    delay_ms: tuple[float, float] = PAPER_DELAY_MS,
    seed: int = 0,
) -> TopologyDict:
    """The standard k-ary fat-tree: 5k^2/4 switches and k^3/4 servers (k even)."""
    if k < 2 or k % 2:
        raise ValueError(f"fat-tree arity k must be an even number >= 2, got {k}")
    half = k // 2
    b = _Builder(f"fat-tree-k{k}", bandwidth_gbps, delay_ms, seed)
    cores = [b.switch(f"c{i + 1}", "core", None) for i in range(half * half)]
    agg_no = edge_no = server_no = 0
    for pod in range(1, k + 1):
        aggs, edges = [], []
        for _ in range(half):
            agg_no += 1
            aggs.append(b.switch(f"a{agg_no}", "aggregation", pod))
        for _ in range(half):
            edge_no += 1
            edges.append(b.switch(f"e{edge_no}", "edge", pod))
        for j, agg in enumerate(aggs):
            for core in cores[j * half:(j + 1) * half]:
                b.link(agg, core)
            for edge in edges:
                b.link(agg, edge)
        for edge in edges:
            for _ in range(half):
                server_no += 1
                b.link(edge, b.server(f"m{server_no}", pod))
    return b.result()


def builtin_topologies() -> dict[str, TopologyDict]:
    """Every committed topology file, by name, as the builders make it."""
    return {
        "paper": paper_fat_tree(),
        "fat-tree-k4": k_ary_fat_tree(4),
        "fat-tree-k8": k_ary_fat_tree(8),
    }
