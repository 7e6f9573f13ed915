"""The substrate: the network with every resource's capacity, price and delay drawn, the VNF catalogue, and the hosts.

`draw_substrate` draws a concrete substrate from a scenario's ranges; `SubstrateFile` is its JSON form
(the `substrate.json` of a dataset, docs/formats.md); `Substrate` is the indexed form the evaluator uses.

Hosts are indexed: servers 0..M-1, then the local memory (LM) of switches M..M+W-1, then their
external memory (EM) M+W..M+2W-1. A host's `node` is the graph node that processes its traffic:
the server itself, or the switch for its LM and EM.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt

from controller.errors import ConfigError, SremError, clip, excerpt
from controller.model.scenario import Scenario
from controller.model.topology import Topology, TopologyFile, check_structure
from controller.model.units import gbps_to_mbps
from controller.validation import MAX_INSTANCES, MAX_VNF_TYPES, validate


class HostKind(IntEnum):
    SERVER = 0
    LM = 1
    EM = 2


HOST_PREFIX = {HostKind.LM: "lm", HostKind.EM: "em"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ServerResources(_Strict):
    storage_gb: PositiveFloat
    price_per_gb: NonNegativeFloat
    processing_delay_ms_per_mb: NonNegativeFloat


class SwitchResources(_Strict):
    local_memory_mb: PositiveFloat
    external_memory_mb: PositiveFloat
    rdma_table_mb: PositiveFloat
    lm_price_per_mb: NonNegativeFloat
    em_price_per_mb: NonNegativeFloat
    processing_delay_ms_per_mb: NonNegativeFloat
    rdma_access_delay_ns: NonNegativeFloat


class VnfTypeSpec(_Strict):
    name: str = Field(max_length=32, pattern=r"^[a-z][a-z0-9_]*$")
    storage_mb: PositiveFloat
    instances: int = Field(gt=0, le=MAX_INSTANCES)
    server_capacity_mbps: PositiveFloat
    switch_capacity_mbps: PositiveFloat
    rdma_accesses: PositiveInt
    programming_mb: NonNegativeFloat


class ControllerLink(_Strict):
    bandwidth_gbps: PositiveFloat
    price_per_gb: NonNegativeFloat


class SubstrateFile(_Strict):
    format: Literal["srem-substrate"] = "srem-substrate"
    version: Literal[1] = 1
    topology: TopologyFile
    link_price_per_gb: list[NonNegativeFloat]
    """One price per link of `topology.links`, in the same order."""
    controller_link: ControllerLink
    rdma_index_fraction: PositiveFloat
    servers: dict[str, ServerResources]
    switches: dict[str, SwitchResources]
    vnf_types: list[VnfTypeSpec] = Field(min_length=1, max_length=MAX_VNF_TYPES)
    step_seconds: PositiveFloat


@dataclass(frozen=True)
class VnfType:
    index: int
    name: str
    storage_mb: float
    server_capacity_mbps: float
    switch_capacity_mbps: float
    rdma_accesses: int
    programming_mb: float


@dataclass(frozen=True)
class VnfInstance:
    index: int
    type: VnfType
    ordinal: int

    @property
    def name(self) -> str:
        return f"{self.type.name}#{self.ordinal}"


@dataclass(frozen=True)
class Host:
    index: int
    kind: HostKind
    node: int
    name: str
    storage_mb: float
    price: float
    """Per GB of storage and step on a server, per MB and step in LM or EM (eq. 2)."""
    processing_delay_ms_per_mb: float
    rdma_access_delay_ns: float


@dataclass(frozen=True)
class Link:
    index: int
    a: int
    b: int
    capacity_mbps: float
    delay_ms: float
    price_per_gb: float


class Substrate:
    """The indexed substrate the evaluator works on; built once from a `SubstrateFile`."""

    def __init__(self, spec: SubstrateFile) -> None:
        self.spec = spec
        self.switch_names = [s.name for s in spec.topology.switches]
        self.server_names = [s.name for s in spec.topology.servers]
        self.node_names = self.switch_names + self.server_names
        self.node_index = {name: i for i, name in enumerate(self.node_names)}
        self.switch_roles = [s.role for s in spec.topology.switches]
        self.links = [
            Link(i, self.node_index[l.a], self.node_index[l.b], gbps_to_mbps(l.bandwidth_gbps), l.delay_ms, price)
            for i, (l, price) in enumerate(zip(spec.topology.links, spec.link_price_per_gb))
        ]
        self.controller_link = spec.controller_link
        self.rdma_index_fraction = spec.rdma_index_fraction
        self.step_seconds = spec.step_seconds
        self.vnf_types = [
            VnfType(i, t.name, t.storage_mb, t.server_capacity_mbps, t.switch_capacity_mbps, t.rdma_accesses, t.programming_mb)
            for i, t in enumerate(spec.vnf_types)
        ]
        self.type_index = {t.name: t.index for t in self.vnf_types}
        self.instances: list[VnfInstance] = []
        self.instances_of_type: list[list[int]] = []
        for vtype, tspec in zip(self.vnf_types, spec.vnf_types):
            ids = []
            for ordinal in range(tspec.instances):
                ids.append(len(self.instances))
                self.instances.append(VnfInstance(len(self.instances), vtype, ordinal))
            self.instances_of_type.append(ids)
        self.instance_index = {inst.name: inst.index for inst in self.instances}
        self.hosts = self._build_hosts()
        self.host_index = {h.name: h.index for h in self.hosts}
        self.num_switches = len(self.switch_names)
        self.num_servers = len(self.server_names)

    def _build_hosts(self) -> list[Host]:
        hosts: list[Host] = []
        for name in self.server_names:
            r = self.spec.servers[name]
            hosts.append(Host(len(hosts), HostKind.SERVER, self.node_index[name], name, r.storage_gb * 1024.0,
                              r.price_per_gb, r.processing_delay_ms_per_mb, 0.0))
        for kind in (HostKind.LM, HostKind.EM):
            for name in self.switch_names:
                r = self.spec.switches[name]
                storage = r.local_memory_mb if kind is HostKind.LM else r.external_memory_mb
                price = r.lm_price_per_mb if kind is HostKind.LM else r.em_price_per_mb
                hosts.append(Host(len(hosts), kind, self.node_index[name], f"{HOST_PREFIX[kind]}:{name}", storage, price,
                                  r.processing_delay_ms_per_mb, r.rdma_access_delay_ns))
        return hosts

    def rdma_table_mb(self, switch_node: int) -> float:
        return self.spec.switches[self.node_names[switch_node]].rdma_table_mb

    def instance_capacity_mbps(self, instance: int, host: int) -> float:
        """C^srv_f on a server, C^sw_f in a switch's LM or EM."""
        vtype = self.instances[instance].type
        return vtype.server_capacity_mbps if self.hosts[host].kind is HostKind.SERVER else vtype.switch_capacity_mbps

    def to_dict(self) -> dict[str, Any]:
        return self.spec.model_dump(mode="json")


def substrate_hash(substrate: Substrate) -> str:
    """SHA-256 of the substrate file's canonical JSON: what a trained policy or a placement file was made for.

    Here, with the model, so a policy that checks it (a placement file) need not import torch."""
    return hashlib.sha256(json.dumps(substrate.to_dict(), sort_keys=True).encode()).hexdigest()


def check_made_for(doc: Any, substrate: Substrate, fmt: str, version: int, what: str, where: Path) -> dict[str, Any]:
    """A policy file's content (checkpoint, placement), refused in one line unless it is of `fmt` and
    `version` and was made for `substrate`."""
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise SremError(f"not a {fmt} file", where=where)
    if doc.get("version") != version:
        raise SremError(f"{what} version {doc.get('version')!r}, this srem reads {version}", where=where)
    ours = substrate_hash(substrate)
    if doc.get("substrate_hash") != ours:
        raise SremError(f"{what} is for another network: scenario {doc.get('scenario')}, substrate "
                        f"{str(doc.get('substrate_hash'))[:12]}; this one is substrate {ours[:12]}", where=where)
    return doc


def substrate_from_dict(data: Any, where: str) -> Substrate:
    """Validate a substrate file's content: schema, topology structure, one resource entry per node and link."""
    spec = validate(SubstrateFile, data, where)
    check_structure(spec.topology, where)
    if len(spec.link_price_per_gb) != len(spec.topology.links):
        raise ConfigError(
            f"{len(spec.link_price_per_gb)} link prices for {len(spec.topology.links)} links", where=where, key="link_price_per_gb"
        )
    for section, names in (("servers", [s.name for s in spec.topology.servers]), ("switches", [s.name for s in spec.topology.switches])):
        table = getattr(spec, section)
        missing = [n for n in names if n not in table]
        unknown = [n for n in table if n not in names]
        if missing:
            raise ConfigError(f"no resources for {missing[0]!r}", where=where, key=section)
        if unknown:
            raise ConfigError(f"resources for unknown node {excerpt(unknown[0])}", where=where, key=f"{section}.{clip(unknown[0])}")
    names = [t.name for t in spec.vnf_types]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise ConfigError(f"duplicate VNF type {name!r}", where=where, key=f"vnf_types[{i}].name")
    instances = sum(t.instances for t in spec.vnf_types)
    if instances > MAX_INSTANCES:
        raise ConfigError(f"{instances} VNF instances in all, more than the limit of {MAX_INSTANCES}", where=where, key="vnf_types")
    return Substrate(spec)


def _uniform(rng: np.random.Generator, pair: tuple[float, float], digits: int) -> float:
    return round(float(rng.uniform(pair[0], pair[1])), digits)


def link_prices(topology: Topology, price_range: tuple[float, float]) -> list[float]:
    """p_uv proportional to bandwidth: the topology's slowest link gets the low price, its fastest the high one."""
    bandwidths = [l.bandwidth_gbps for l in topology.spec.links]
    lo, hi = min(bandwidths), max(bandwidths)
    span = hi - lo
    return [
        round(price_range[0] + ((b - lo) / span if span else 0.5) * (price_range[1] - price_range[0]), 6) for b in bandwidths
    ]


def draw_substrate(scenario: Scenario, rng: np.random.Generator) -> SubstrateFile:
    """Draw every server, switch and VNF-type parameter from the scenario's ranges."""
    spec = scenario.spec
    servers = {
        s: ServerResources(
            storage_gb=_uniform(rng, spec.servers.storage_gb, 2),
            price_per_gb=_uniform(rng, spec.servers.price_per_gb, 5),
            processing_delay_ms_per_mb=_uniform(rng, spec.servers.processing_delay_ms_per_mb, 5),
        )
        for s in scenario.topology.server_names
    }
    switches = {}
    for w in scenario.topology.switch_names:
        sw = spec.switches
        lm = _uniform(rng, sw.local_memory_mb, 2)
        lm_price = _uniform(rng, sw.lm_price_per_mb, 6)
        switches[w] = SwitchResources(
            local_memory_mb=lm,
            external_memory_mb=_uniform(rng, sw.external_memory_mb, 2),
            rdma_table_mb=lm if sw.rdma_table_mb is None else _uniform(rng, sw.rdma_table_mb, 2),
            lm_price_per_mb=lm_price,
            em_price_per_mb=max(0.0, round(lm_price - _uniform(rng, sw.em_discount_per_mb, 6), 6)),
            processing_delay_ms_per_mb=_uniform(rng, sw.processing_delay_ms_per_mb, 6),
            rdma_access_delay_ns=_uniform(rng, sw.rdma_access_delay_ns, 1),
        )
    vnf_types = []
    for t in spec.vnfs:
        storage = _uniform(rng, t.storage_mb, 2)
        vnf_types.append(
            VnfTypeSpec(
                name=t.name,
                storage_mb=storage,
                instances=t.instances,
                server_capacity_mbps=_uniform(rng, t.server_capacity_mbps, 1),
                switch_capacity_mbps=gbps_to_mbps(t.switch_capacity_gbps),
                rdma_accesses=int(rng.integers(t.rdma_accesses[0], t.rdma_accesses[1] + 1)),
                programming_mb=round(t.programming_factor * storage, 2),
            )
        )
    return SubstrateFile(
        topology=scenario.topology.spec,
        link_price_per_gb=link_prices(scenario.topology, spec.network.link_price_per_gb),
        controller_link=ControllerLink(
            bandwidth_gbps=spec.network.controller_link_gbps, price_per_gb=spec.network.controller_link_price_per_gb
        ),
        rdma_index_fraction=spec.switches.rdma_index_fraction,
        servers=servers,
        switches=switches,
        vnf_types=vnf_types,
        step_seconds=scenario.step_seconds,
    )
