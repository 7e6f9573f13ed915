"""Load-balanced link mapping: Dijkstra over the links that have room, with the links' current loads in the weights.

The paper maps every virtual link with "a Dijkstra-based shortest path method at which the load of
links are the weights". Pure load weights would send traffic through idle detours of any length,
so we weigh a link 1 + u/|V|, with u its utilisation (load / capacity) counting what is already
admitted: hop count first, and among the paths of fewest hops the least loaded one. Links without
room for the flow are left out (constraint 11), so a full shortest path gives way to a longer one.

Because every path weighs between its hop count h and h + 1, the result equals "the least-loaded
path among the fewest-hop paths with room", ties going to the path met first when the fewest-hop
paths are listed depth first in link order. `Router.route` computes exactly that. Where the
fewest-hop paths are few (a fat-tree) it scores their list; where they are many (a 16x16 grid has
155 million between opposite corners) it never lists them: one pass over the fewest-hop DAG finds
the lowest score, one pass back finds from which prefix scores each node still reaches it, and a
walk from the source takes the first link that keeps it in reach. Only when no fewest-hop path
has room does it run a real Dijkstra on the pruned graph. All passes are loops, no recursion, so a
2,000-switch line routes like a fat-tree. Paths are tuples of link indices.
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Mapping, Sequence

from controller.errors import SremError, clip
from controller.model.constraints import within_capacity
from controller.model.substrate import Substrate

Path = tuple[int, ...]

SCORED_ONE_BY_ONE = 64
"""Up to this many fewest-hop paths between two nodes, `route` scores their cached list: faster than the
passes over the DAG while they are few (8 between the pods of `paper`, 16 of `large`), the same result."""

MAX_LISTED_PATHS = 4096
"""`min_hop_paths` lists every fewest-hop path; beyond this many between two nodes it refuses rather than
run out of memory (k-ary fat-trees have (k/2)^2 between pods: 16 for `large`, 256 for k = 32)."""


def largest_prefix(step: float, total: float) -> float:
    """The largest float x with x + step <= total as floats compute it.

    Rounding makes this differ from total - step by up to half an ulp of total, which decides whether
    a prefix score still reaches a lowest total exactly. fsum gives total + ulp/2 - step correctly
    rounded; the true answer is that or a neighbour, settled with the addition itself."""
    x = math.fsum((total, math.ulp(total) / 2, -step))
    while x + step > total:
        x = math.nextafter(x, -math.inf)
    while math.nextafter(x, math.inf) + step <= total:
        x = math.nextafter(x, math.inf)
    return x


class Router:
    def __init__(self, substrate: Substrate) -> None:
        self.node_names = substrate.node_names
        self.where = f"topology {clip(substrate.spec.topology.name)}"
        self.num_nodes = len(substrate.node_names)
        self.capacity = [link.capacity_mbps for link in substrate.links]
        self.ends = [(link.a, link.b) for link in substrate.links]
        self.adjacency: list[list[tuple[int, int]]] = [[] for _ in range(self.num_nodes)]
        for link in substrate.links:
            self.adjacency[link.a].append((link.b, link.index))
            self.adjacency[link.b].append((link.a, link.index))
        self._hops_to: dict[int, list[int]] = {}
        self._path_counts: dict[tuple[int, int], int] = {}
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

    def closer(self, node: int, dist: list[int]) -> list[tuple[int, int]]:
        """(neighbour, link) of `node` one hop closer to the target of `dist`, in link order: its out-links in the fewest-hop DAG."""
        return [(nbr, link) for nbr, link in self.adjacency[node] if dist[nbr] == dist[node] - 1]

    def layers(self, source: int, target: int) -> list[list[int]]:
        """The nodes of the fewest-hop paths from `source` to `target`, by hops from `source`; [] when unreachable."""
        dist = self.hops_to(target)
        if dist[source] < 0:
            return []
        layers = [[source]]
        for _ in range(dist[source]):
            seen: dict[int, None] = {}
            for node in layers[-1]:
                for nbr, _ in self.closer(node, dist):
                    seen[nbr] = None
            layers.append(list(seen))
        return layers

    def min_hop_path_count(self, source: int, target: int) -> int:
        """How many fewest-hop paths join `source` to `target`, counted over the DAG without listing them (cached)."""
        count = self._path_counts.get((source, target))
        if count is None:
            dist = self.hops_to(target)
            below = {target: 1}
            for layer in reversed(self.layers(source, target)[:-1]):
                for node in layer:
                    below[node] = sum(below[nbr] for nbr, _ in self.closer(node, dist))
            count = self._path_counts[source, target] = below.get(source, 0)
        return count

    def min_hop_paths(self, source: int, target: int) -> list[Path]:
        """Every path of fewest hops from source to target, depth first in link order (cached).

        Refused beyond MAX_LISTED_PATHS, counted first: their number grows exponentially with the
        hops of a grid."""
        count = self.min_hop_path_count(source, target)
        if count > MAX_LISTED_PATHS:
            raise SremError(f"{count} fewest-hop paths between {self.node_names[source]} and {self.node_names[target]}, "
                            f"more than the {MAX_LISTED_PATHS} that can be listed one by one", where=self.where)
        key = (source, target)
        paths = self._min_hop_paths.get(key)
        if paths is None:
            paths = self._min_hop_paths[key] = self._list_paths(source, target)
        return paths

    def _list_paths(self, source: int, target: int) -> list[Path]:
        """Depth first in link order, with a stack of iterators rather than recursion."""
        if source == target:
            return [()]
        dist = self.hops_to(target)
        paths: list[Path] = []
        links: list[int] = []
        stack = [iter(self.closer(source, dist))]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                if links:
                    links.pop()
                continue
            nbr, link = step
            links.append(link)
            if nbr == target:
                paths.append(tuple(links))
                links.pop()
            else:
                stack.append(iter(self.closer(nbr, dist)))
        return paths

    def fits(self, link: int, load: Sequence[float], pending: Mapping[int, float], rate: float) -> bool:
        """Constraint 11 for one link: admitted load, this request's other segments and this flow fit."""
        return within_capacity(load[link] + pending.get(link, 0.0), rate, self.capacity[link])

    def route(self, source: int, target: int, rate: float, load: Sequence[float], pending: Mapping[int, float]) -> Path | None:
        """The load-balanced shortest path for a flow of `rate` Mbps, or None when no path has room (eq. 11-12).

        `load` is the admitted load per link (Mbps); `pending` what the same request already put on links.
        A path's score is its links' utilisations summed from the source, as floats add them; the
        result is the first fewest-hop path with room, depth first in link order, of the lowest score."""
        if source == target:
            return ()
        if self.min_hop_path_count(source, target) <= SCORED_ONE_BY_ONE:
            best = self._least_loaded_listed(source, target, rate, load, pending)
        else:
            best = self._least_loaded_on_dag(source, target, rate, load, pending)
        return best if best is not None else self.dijkstra(source, target, rate, load, pending)

    def _least_loaded_listed(self, source: int, target: int, rate: float, load: Sequence[float],
                             pending: Mapping[int, float]) -> Path | None:
        """`route`'s rule over the listed fewest-hop paths, scoring each."""
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
        return best

    def _least_loaded_on_dag(self, source: int, target: int, rate: float, load: Sequence[float],
                             pending: Mapping[int, float]) -> Path | None:
        """`route`'s rule in three passes over the fewest-hop DAG, linear in its links."""
        layers = self.layers(source, target)
        dist = self.hops_to(target)
        down = {node: self.closer(node, dist) for layer in layers for node in layer}
        capacity = self.capacity
        usage: dict[int, float] = {}  # utilisation of every DAG link with room for the flow
        best = {source: 0.0}  # the lowest score of a prefix with room from the source to each node
        for layer in layers[:-1]:
            for node in layer:
                score = best.get(node)
                if score is None:
                    continue
                for nbr, link in down[node]:
                    if not self.fits(link, load, pending, rate):
                        continue
                    usage[link] = (load[link] + pending.get(link, 0.0)) / capacity[link]
                    reached = score + usage[link]
                    if reached < best.get(nbr, math.inf):
                        best[nbr] = reached
        if target not in best:
            return None
        # reach[v]: the largest prefix score at v from which a path of the lowest score still completes.
        reach = {target: best[target]}
        for layer in reversed(layers[:-1]):
            for node in layer:
                limits = [largest_prefix(usage[link], reach[nbr]) for nbr, link in down[node] if link in usage and nbr in reach]
                if limits:
                    reach[node] = max(limits)
        path: list[int] = []
        node, score = source, 0.0
        while node != target:
            node, link = next((nbr, link) for nbr, link in down[node]
                              if link in usage and nbr in reach and score + usage[link] <= reach[nbr])
            path.append(link)
            score += usage[link]
        return tuple(path)

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
        """The min-hop path with the largest bottleneck bandwidth: how an instance migrates (eq. 5, 13).

        Ties go to the path met first depth first in link order. One pass over the fewest-hop DAG finds
        the widest bottleneck, one pass back the nodes that keep it, and a walk takes the first link that does."""
        if source == target:
            return ()
        layers = self.layers(source, target)
        dist = self.hops_to(target)
        down = {node: self.closer(node, dist) for layer in layers for node in layer}
        capacity = self.capacity
        width = {source: math.inf}
        for layer in layers[:-1]:
            for node in layer:
                for nbr, link in down[node]:
                    width[nbr] = max(width.get(nbr, 0.0), min(width[node], capacity[link]))
        widest = width[target]
        keeps = {target}  # nodes from which a path to the target stays at least `widest` wide
        for layer in reversed(layers[:-1]):
            for node in layer:
                if any(nbr in keeps and capacity[link] >= widest for nbr, link in down[node]):
                    keeps.add(node)
        path: list[int] = []
        node = source
        while node != target:
            node, link = next((nbr, link) for nbr, link in down[node] if nbr in keeps and capacity[link] >= widest)
            path.append(link)
        return tuple(path)
