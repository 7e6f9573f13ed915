"""The topology file: its schema, loading by built-in name or path, and the checks a network must pass.

The file format (docs/formats.md) is what `topologies/` commits and what the Mininet testbed reads,
so the simulator and the testbed never disagree about the network.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, NonNegativeFloat

from controller.errors import ConfigError, clip, excerpt
from controller.validation import MAX_LINKS, MAX_SERVERS, MAX_SWITCHES, names_a_file, read_json, validate
from topologies import builtin_names, builtin_path

NodeName = str


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class SwitchSpec(_Strict):
    name: NodeName = Field(min_length=1, max_length=10, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    role: Literal["core", "aggregation", "edge", "switch"] = "switch"
    pod: int | None = None


class ServerSpec(_Strict):
    name: NodeName = Field(min_length=1, max_length=10, pattern=r"^[A-Za-z][A-Za-z0-9_]*$")
    pod: int | None = None


class LinkSpec(_Strict):
    a: NodeName
    b: NodeName
    bandwidth_gbps: PositiveFloat
    delay_ms: NonNegativeFloat


class TopologyFile(_Strict):
    format: Literal["srem-topology"]
    version: Literal[1]
    name: str
    switches: list[SwitchSpec] = Field(min_length=1, max_length=MAX_SWITCHES)
    servers: list[ServerSpec] = Field(default_factory=list, max_length=MAX_SERVERS)
    links: list[LinkSpec] = Field(max_length=MAX_LINKS)


@dataclass(frozen=True)
class Topology:
    """A validated network. Nodes are indexed switches first, then servers."""

    name: str
    spec: TopologyFile
    source: str

    @property
    def switch_names(self) -> list[NodeName]:
        return [s.name for s in self.spec.switches]

    @property
    def server_names(self) -> list[NodeName]:
        return [s.name for s in self.spec.servers]

    @property
    def node_names(self) -> list[NodeName]:
        return self.switch_names + self.server_names

    def to_dict(self) -> dict[str, Any]:
        return self.spec.model_dump(mode="json")


def check_structure(spec: TopologyFile, where: str) -> None:
    """Unique names, links between known nodes, no self-loops or parallel links, servers attached only to switches, connected."""
    names: dict[str, str] = {}
    for kind, items in (("switches", spec.switches), ("servers", spec.servers)):
        for i, node in enumerate(items):
            if node.name in names:
                raise ConfigError(f"duplicate node name {node.name!r}", where=where, key=f"{kind}[{i}].name")
            names[node.name] = kind
    seen: set[frozenset[str]] = set()
    adjacency: dict[str, list[str]] = {n: [] for n in names}
    for i, link in enumerate(spec.links):
        for end in ("a", "b"):
            if getattr(link, end) not in names:
                raise ConfigError(f"unknown node {excerpt(getattr(link, end))}", where=where, key=f"links[{i}].{end}")
        if link.a == link.b:
            raise ConfigError(f"self-loop on {link.a!r}", where=where, key=f"links[{i}]")
        pair = frozenset((link.a, link.b))
        if pair in seen:
            raise ConfigError(f"parallel link {link.a}-{link.b}", where=where, key=f"links[{i}]")
        if names[link.a] == names[link.b] == "servers":
            raise ConfigError(f"servers {link.a!r} and {link.b!r} linked directly; a server attaches to a switch", where=where, key=f"links[{i}]")
        seen.add(pair)
        adjacency[link.a].append(link.b)
        adjacency[link.b].append(link.a)
    start = spec.switches[0].name
    reached = {start}
    queue = deque([start])
    while queue:
        for nxt in adjacency[queue.popleft()]:
            if nxt not in reached:
                reached.add(nxt)
                queue.append(nxt)
    unreached = [n for n in names if n not in reached]
    if unreached:
        raise ConfigError(f"disconnected topology: {', '.join(unreached[:5])} unreachable from {start}", where=where, key="links")


def topology_from_dict(data: Any, where: str) -> Topology:
    spec = validate(TopologyFile, data, where)
    check_structure(spec, where)
    return Topology(name=spec.name, spec=spec, source=where)


def resolve_topology_path(name_or_path: str, relative_to: Path | None = None) -> Path:
    """A built-in name (`paper`, `fat-tree-k4`, ...) or a file path, relative paths resolved against `relative_to`."""
    if name_or_path in builtin_names():
        return builtin_path(name_or_path)
    path = Path(name_or_path)
    if not path.is_absolute() and relative_to is not None:
        path = relative_to / path
    if not names_a_file(path):
        raise ConfigError(
            f"no built-in topology or file of that name (built-in: {', '.join(builtin_names())})", where=clip(name_or_path)
        )
    return path


def load_topology(name_or_path: str, relative_to: Path | None = None) -> Topology:
    path = resolve_topology_path(name_or_path, relative_to)
    return topology_from_dict(read_json(path), str(path))
