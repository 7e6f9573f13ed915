"""Load-balanced link mapping: Dijkstra over the links that have room, with the links' current loads in the weights.

The paper maps every virtual link with "a Dijkstra-based shortest path method at which the load of
links are the weights". Pure load weights would send traffic through idle detours of any length,
so we weigh a link 1 + u/|V|, with u its utilisation (load / capacity) counting what is already
admitted: hop count first, and among the paths of fewest hops the least loaded one. Links without
room for the flow are left out (constraint 11), so a full shortest path gives way to a longer one.

Because every path weighs between its hop count h and h + 1, the result equals "the least-loaded
path among the fewest-hop paths with room". `Router.route` computes it that way, from the min-hop
paths of each node pair enumerated once, and falls back to a real Dijkstra run on the pruned graph
only when every min-hop path is full. Paths are tuples of link indices.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Mapping, Sequence

from controller.model.constraints import within_capacity
from controller.model.substrate import Substrate

Path = tuple[int, ...]


class Router:
    def __init__(self, substrate: Substrate) -> None:
        self.num_nodes = len(substrate.node_names)
        self.capacity = [link.capacity_mbps for link in substrate.links]
        self.ends = [(link.a, link.b) for link in substrate.links]
        self.adjacency: list[list[tuple[int, int]]] = [[] for _ in range(self.num_nodes)]
        for link in substrate.links:
            self.adjacency[link.a].append((link.b, link.index))
            self.adjacency[link.b].append((link.a, link.index))
        self._hops_to: dict[int, list[int]] = {}
        self._min_hop_paths: dict[tuple[int, int], list[Path]] = {}

    def hops_to(self, target: int) -> list[int]:
        """Hop distance of every node to `target` (BFS, cached)."""
        dist = self._hops_to.get(target)
        if dist is None:
            dist = [-1] * self.num_nodes
            dist[target] = 0
            queue = deque([target])
            while queue:
                node = queue.popleft()
                for nbr, _ in self.adjacency[node]:
                    if dist[nbr] < 0:
                        dist[nbr] = dist[node] + 1
                        queue.append(nbr)
            self._hops_to[target] = dist
        return dist

    def min_hop_paths(self, source: int, target: int) -> list[Path]:
        """Every path of fewest hops from source to target, in a fixed order (cached)."""
        key = (source, target)
        paths = self._min_hop_paths.get(key)
        if paths is None:
            dist = self.hops_to(target)
            paths = []

            def extend(node: int, links: list[int]) -> None:
                if node == target:
                    paths.append(tuple(links))
                    return
                for nbr, link in self.adjacency[node]:
                    if dist[nbr] == dist[node] - 1:
                        links.append(link)
                        extend(nbr, links)
                        links.pop()

            extend(source, [])
            self._min_hop_paths[key] = paths
        return paths

    def fits(self, link: int, load: Sequence[float], pending: Mapping[int, float], rate: float) -> bool:
        """Constraint 11 for one link: admitted load, this request's other segments and this flow fit."""
        return within_capacity(load[link] + pending.get(link, 0.0), rate, self.capacity[link])

    def route(self, source: int, target: int, rate: float, load: Sequence[float], pending: Mapping[int, float]) -> Path | None:
        """The load-balanced shortest path for a flow of `rate` Mbps, or None when no path has room.

        `load` is the admitted load per link (Mbps); `pending` what the same request already put on links.
        """
        if source == target:
            return ()
        best: Path | None = None
        best_score = 0.0
        capacity = self.capacity
        for path in self.min_hop_paths(source, target):
            score = 0.0
            for link in path:
                if not self.fits(link, load, pending, rate):
                    break
                score += (load[link] + pending.get(link, 0.0)) / capacity[link]
            else:
                if best is None or score < best_score:
                    best, best_score = path, score
        if best is None:
            best = self.dijkstra(source, target, rate, load, pending)
        return best

    def dijkstra(self, source: int, target: int, rate: float, load: Sequence[float], pending: Mapping[int, float]) -> Path | None:
        """Dijkstra with weight 1 + u/|V| over the links with room for `rate`."""
        scale = 1.0 / self.num_nodes
        best = [float("inf")] * self.num_nodes
        via: list[tuple[int, int] | None] = [None] * self.num_nodes
        best[source] = 0.0
        heap = [(0.0, source)]
        while heap:
            cost, node = heapq.heappop(heap)
            if node == target:
                break
            if cost > best[node]:
                continue
            for nbr, link in self.adjacency[node]:
                if not self.fits(link, load, pending, rate):
                    continue
                weight = 1.0 + scale * (load[link] + pending.get(link, 0.0)) / self.capacity[link]
                if cost + weight < best[nbr]:
                    best[nbr] = cost + weight
                    via[nbr] = (node, link)
                    heapq.heappush(heap, (cost + weight, nbr))
        if via[target] is None:
            return None
        links: list[int] = []
        node = target
        while node != source:
            prev, link = via[node]  # type: ignore[misc]
            links.append(link)
            node = prev
        return tuple(reversed(links))

    def nodes_of(self, source: int, path: Path) -> list[int]:
        """The node sequence a path visits, starting at `source`."""
        nodes = [source]
        for link in path:
            a, b = self.ends[link]
            nodes.append(b if nodes[-1] == a else a)
        return nodes

    def widest_min_hop_path(self, source: int, target: int) -> Path:
        """The min-hop path with the largest bottleneck bandwidth: how an instance migrates (eq. 5, 13)."""
        paths = self.min_hop_paths(source, target)
        return max(paths, key=lambda p: min((self.capacity[l] for l in p), default=float("inf")))
