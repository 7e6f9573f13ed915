"""Unit conversions used by the model; every quantity crossing a module boundary carries its unit in its name."""

from __future__ import annotations

MB_PER_GB = 1024.0
"""The paper prices server storage per GB and switch memory per MB; s_f/1024 converts (srem-model.md, eq. 2)."""

MS_PER_S = 1000.0
MS_PER_NS = 1e-6


def mbps_to_mb_per_s(rate_mbps: float) -> float:
    """Megabits per second to megabytes per second (lambda in Mbps / 8)."""
    return rate_mbps / 8.0


def gbps_to_mbps(rate_gbps: float) -> float:
    return rate_gbps * 1000.0


def gbps_to_mb_per_s(rate_gbps: float) -> float:
    return gbps_to_mbps(rate_gbps) / 8.0


def ns_to_ms(delay_ns: float) -> float:
    return delay_ns * MS_PER_NS


def gb_carried(rate_mbps: float, seconds: float) -> float:
    """Gigabytes a flow of `rate_mbps` carries in `seconds`."""
    return mbps_to_mb_per_s(rate_mbps) * seconds / MB_PER_GB
