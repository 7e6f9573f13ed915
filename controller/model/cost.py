"""The cost of a configuration, eq. 1-6 of the paper: IT resources, bandwidth and reconfiguration.

Prices are per step (two hours). Server storage is priced per GB, switch memory per MB, traffic per GB.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

from controller.model.substrate import Host, HostKind
from controller.model.units import MB_PER_GB, gb_carried


class Move(Enum):
    """How an instance reaches its new host (the cases of eq. 5 and 6)."""

    STAY = "stay"
    MIGRATION = "migration"
    """server to another server: its state crosses the network (eq. 5, 13)."""
    PROGRAMMING = "programming"
    """into a switch's LM or EM from a server, from another switch, or from the other memory of the same
    switch (our reading): the controller programs it over its link to the switch (eq. 6, 14)."""
    INSTANTIATION = "instantiation"
    """switch to server: the paper's eq. 5 and 6 count no cost or delay for it, so neither do we."""


def classify_move(previous: Host, current: Host) -> Move:
    if previous.index == current.index:
        return Move.STAY
    if current.kind is HostKind.SERVER:
        return Move.MIGRATION if previous.kind is HostKind.SERVER else Move.INSTANTIATION
    return Move.PROGRAMMING


def it_cost(storage_mb: float, host: Host) -> float:
    """Eq. 2, one instance: s_f/1024 * p_m on a server, s_f * p^L_w in LM, s_f * p^E_w in EM."""
    if host.kind is HostKind.SERVER:
        return storage_mb / MB_PER_GB * host.price
    return storage_mb * host.price


def bandwidth_cost(rate_mbps: float, step_seconds: float, link_prices: Iterable[float]) -> float:
    """Eq. 3, one flow: the GB it carries in the step times the price of every link it crosses."""
    return gb_carried(rate_mbps, step_seconds) * sum(link_prices)


def migration_cost(storage_mb: float, link_prices: Iterable[float]) -> float:
    """Eq. 5, one instance: its s_f carried over the path between the two servers, priced like traffic."""
    return storage_mb / MB_PER_GB * sum(link_prices)


def programming_cost(programming_mb: float, controller_price_per_gb: float) -> float:
    """Eq. 6, one instance: pi_f carried over the controller's link to the switch."""
    return programming_mb / MB_PER_GB * controller_price_per_gb


def reconfiguration_cost(migration: float, programming: float) -> float:
    """Eq. 4: C_RC = C_mig + C_prog."""
    return migration + programming


RejectedTraffic = Literal["dropped", "carried"]


@dataclass(frozen=True)
class ObjectiveWeights:
    """a1, a2, a3 of eq. 1, and what the bandwidth cost counts of a request that is not accepted."""

    it: float = 1.0
    bandwidth: float = 1.0
    reconfiguration: float = 1.0
    rejected_traffic: RejectedTraffic = "dropped"
    """dropped: the chain's source switch drops a rejected request, which then carries nothing and
    costs nothing; carried: a request that misses its deadline or finds no processing capacity left
    still crosses the network on its paths and pays for it (docs/model.md, "Rejected traffic")."""


def total_cost(it: float, bandwidth: float, reconfiguration: float, weights: ObjectiveWeights) -> float:
    """Eq. 1, one step: a1 * C_IT + a2 * C_BW + a3 * C_RC."""
    return weights.it * it + weights.bandwidth * bandwidth + weights.reconfiguration * reconfiguration
