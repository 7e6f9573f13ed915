"""The delay a request sees in a step, eq. 13-19 of the paper, in milliseconds.

Traffic rates are in Mbps and turned into MB/s (lambda / 8) where a delay "per MB of traffic" applies,
as srem-model.md prescribes: processing is lambda_MB * d, with d in ms per MB.
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.model.substrate import Host, HostKind, VnfType
from controller.model.units import MS_PER_S, gbps_to_mb_per_s, mbps_to_mb_per_s, ns_to_ms


def migration_delay_ms(storage_mb: float, bottleneck_mbps: float) -> float:
    """Eq. 13: s_f over the bottleneck bandwidth of the migration path."""
    return storage_mb / mbps_to_mb_per_s(bottleneck_mbps) * MS_PER_S


def programming_delay_ms(programming_mb: float, controller_link_gbps: float) -> float:
    """Eq. 14: pi_f over the bandwidth of the controller's link to the switch."""
    return programming_mb / gbps_to_mb_per_s(controller_link_gbps) * MS_PER_S


def rdma_delay_ms_per_mb(rdma_accesses: int, access_delay_ns: float) -> float:
    """Eq. 15: the entries are fetched n_f times per unit of traffic, delta_w each."""
    return rdma_accesses * ns_to_ms(access_delay_ns)


def processing_delay_ms_per_mb(vnf: VnfType, host: Host) -> float:
    """The per-MB processing delay of one VNF on its host (the terms of eq. 18): d^srv, d^L, or d^L plus eq. 15 in EM."""
    if host.kind is HostKind.EM:
        return host.processing_delay_ms_per_mb + rdma_delay_ms_per_mb(vnf.rdma_accesses, host.rdma_access_delay_ns)
    return host.processing_delay_ms_per_mb


def processing_delay_ms(rate_mbps: float, per_mb_delays: Iterable[float]) -> float:
    """Eq. 18: lambda_MB times the per-MB delay of every VNF of the chain on its host."""
    return mbps_to_mb_per_s(rate_mbps) * sum(per_mb_delays)


def transmission_delay_ms(rate_mbps: float, links: Iterable[tuple[float, float]]) -> float:
    """Eq. 19: over the links (capacity in Mbps, propagation delay in ms) of all the chain's paths, lambda/B + g.

    lambda/B is the share of the link the flow occupies; srem-model.md counts it in ms like g.
    """
    return sum(rate_mbps / capacity + delay for capacity, delay in links)


def reconfiguration_delay_ms(instance_delays: Iterable[float]) -> float:
    """Eq. 17: migrations and programming run in parallel, so the slowest one of the chain's instances counts."""
    return max(instance_delays, default=0.0)


def end_to_end_delay_ms(reconfiguration: float, processing: float, transmission: float) -> float:
    """Eq. 16: reconfiguration + processing + transmission, compared against the deadline D_r(t)."""
    return reconfiguration + processing + transmission
