"""The constraints of a configuration, eq. 7-12 of the paper."""

from __future__ import annotations

from collections.abc import Sequence

from controller.model.substrate import HostKind, Substrate

CAPACITY_EPSILON = 1e-9
"""Relative slack when comparing to a capacity, so float rounding never rejects an exact fit."""


def within_capacity(used: float, demand: float, capacity: float) -> bool:
    """Eq. 10 (an instance's processing capacity) and eq. 11 (a link's bandwidth): used + demand fits."""
    return used + demand <= capacity * (1.0 + CAPACITY_EPSILON)


def storage_used_mb(substrate: Substrate, placement: Sequence[int]) -> list[float]:
    """Eq. 7, left-hand side: MB of instance storage on every host."""
    used = [0.0] * len(substrate.hosts)
    for instance, host in enumerate(placement):
        used[host] += substrate.instances[instance].type.storage_mb
    return used


def rdma_table_used_mb(substrate: Substrate, placement: Sequence[int]) -> dict[int, float]:
    """MB of RDMA-table index per switch node: one entry per EM-hosted instance, a fraction of its s_f."""
    used: dict[int, float] = {}
    for instance, host in enumerate(placement):
        h = substrate.hosts[host]
        if h.kind is HostKind.EM:
            used[h.node] = used.get(h.node, 0.0) + substrate.rdma_index_fraction * substrate.instances[instance].type.storage_mb
    return used


def storage_violations(substrate: Substrate, placement: Sequence[int]) -> dict[int, str]:
    """Eq. 7 for every server, LM and EM, and the RDMA table of every switch: overloaded host -> why."""
    overloaded: dict[int, str] = {}
    for host, used in enumerate(storage_used_mb(substrate, placement)):
        h = substrate.hosts[host]
        if not within_capacity(used, 0.0, h.storage_mb):
            overloaded[host] = f"storage of {h.name}: {used:.1f} MB placed, {h.storage_mb:.1f} MB available"
    for node, used in rdma_table_used_mb(substrate, placement).items():
        table = substrate.rdma_table_mb(node)
        if not within_capacity(used, 0.0, table):
            em = substrate.host_index[f"em:{substrate.node_names[node]}"]
            overloaded.setdefault(em, f"RDMA table of {substrate.node_names[node]}: {used:.2f} MB of index, {table:.2f} MB available")
    return overloaded


def placement_errors(substrate: Substrate, placement: Sequence[int]) -> list[str]:
    """Eq. 8: exactly one known host per instance."""
    errors = []
    if len(placement) != len(substrate.instances):
        errors.append(f"placement has {len(placement)} hosts for {len(substrate.instances)} instances")
    for instance, host in enumerate(placement):
        if not 0 <= host < len(substrate.hosts):
            errors.append(f"instance {instance} placed on unknown host {host}")
    return errors


def assignment_errors(substrate: Substrate, chain: Sequence[int], instances: Sequence[int]) -> list[str]:
    """Eq. 9: every VNF of a chain uses exactly one instance, and of its own type."""
    if len(chain) != len(instances):
        return [f"{len(instances)} instances for a chain of {len(chain)} VNFs"]
    return [
        f"VNF {substrate.vnf_types[t].name} assigned to {substrate.instances[k].name}"
        for t, k in zip(chain, instances)
        if not (0 <= k < len(substrate.instances) and substrate.instances[k].type.index == t)
    ]


def is_flow_conserving(nodes: Sequence[int], source: int, target: int) -> bool:
    """Eq. 12: a path's node sequence leaves the source, enters the target, and in = out everywhere between."""
    return bool(nodes) and nodes[0] == source and nodes[-1] == target and len(set(nodes)) == len(nodes)
