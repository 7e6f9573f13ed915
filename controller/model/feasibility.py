"""Where a VNF instance can go: the per-host capacity tables, the room a placement leaves on every
host (eq. 7's slack), which hosts can ever hold an instance, and placing instances one after the
other so that none overfills a host.

Every policy, the state features, the exact solver and the evaluator read these from here, so
"fits" means one thing everywhere. The two filters of section V-B are expressed with them:

- static: a host whose total storage can never hold an instance is cut (`Capacities.can_ever_hold`);
- dynamic: at each step only hosts with room left for the instance are eligible, eq. 7 in full:
  storage, and on an EM host room in its switch's RDMA table for the instance's index entry
  (`Capacities.admits`, with the evaluator's own capacity check `within_capacity`; used by
  `place_one_by_one` with `dynamic=True`, and `Capacities.could_move_to` for a whole state).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from controller.model.constraints import CAPACITY_EPSILON, storage_used_mb, within_capacity
from controller.model.delay import processing_delay_ms_per_mb
from controller.model.substrate import HostKind, Substrate


@dataclass(frozen=True, eq=False)
class Capacities:
    """What does not change between steps of one substrate, as arrays indexed [instance] and [instance, host]."""

    substrate: Substrate
    sizes_mb: np.ndarray
    """s_f of every instance."""
    storage_mb: np.ndarray
    """Storage of every host."""
    kinds: np.ndarray
    """HostKind of every host."""
    processing_mbps: np.ndarray
    """(instances, hosts): the instance's processing capacity on that host (eq. 10's C_f)."""
    delay_ms_per_mb: np.ndarray
    """(instances, hosts): the instance's processing delay per MB on that host (eq. 17)."""
    index_mb: np.ndarray
    """(instances, hosts): the RDMA-table entry the instance takes on an EM host (eq. 7; 0 elsewhere)."""
    table_mb: np.ndarray
    """(hosts,): an EM host's switch's RDMA table; infinite for the other hosts."""

    def used_mb(self, placement: Sequence[int]) -> np.ndarray:
        """Eq. 7, left-hand side, per host."""
        return np.asarray(storage_used_mb(self.substrate, placement))

    def index_used_mb(self, placement: Sequence[int]) -> np.ndarray:
        """Eq. 7's RDMA-table part, left-hand side, per host: the index entries of the instances an EM
        host holds (a switch has one EM host, so this is its switch's table use); 0 elsewhere."""
        p = np.asarray(placement)
        return np.bincount(p, weights=self.index_mb[np.arange(len(p)), p], minlength=len(self.storage_mb))

    def admits(self, k: int | np.ndarray, storage_used: np.ndarray, index_used: np.ndarray) -> np.ndarray:
        """Eq. 7 for instance(s) `k` joining each host on top of what is used: storage and, on an EM host,
        its switch's RDMA table - the evaluator's own check (`within_capacity`, as `storage_violations`).
        For an array of instances, `storage_used` and `index_used` may be (instances, hosts)."""
        return (within_capacity(storage_used, np.asarray(self.sizes_mb[k])[..., None], self.storage_mb)
                & within_capacity(index_used, self.index_mb[k], self.table_mb))

    def room_left_mb(self, placement: Sequence[int]) -> np.ndarray:
        """Eq. 7's slack per host: storage minus what `placement` puts there (negative when overfilled)."""
        return self.storage_mb - self.used_mb(placement)

    def can_ever_hold(self, allowed_kinds: tuple[HostKind, ...] = tuple(HostKind)) -> np.ndarray:
        """(instances, hosts) bool: the host's whole storage holds the instance, and it is of an allowed kind."""
        kind_ok = np.isin(self.kinds, np.array(allowed_kinds, dtype=int))
        return (self.storage_mb[None, :] >= self.sizes_mb[:, None]) & kind_ok[None, :]

    def could_move_to(self, placement: Sequence[int], eligible: np.ndarray) -> np.ndarray:
        """(instances, hosts) bool: eligible hosts with room for the instance if it alone moved there (eq. 7).

        The dynamic filter applied to a whole state (for the Bellman target's max). An instance
        left without any such host keeps its eligible row, as `place_one_by_one` does."""
        p = np.asarray(placement)
        rows = np.arange(len(p))
        here = np.arange(len(self.storage_mb))[None, :] == p[:, None]
        # What every host holds without the instance itself (it leaves where it is).
        storage = self.used_mb(placement)[None, :] - np.where(here, self.sizes_mb[:, None], 0.0)
        index = self.index_used_mb(placement)[None, :] - np.where(here, self.index_mb[rows, p][:, None], 0.0)
        allowed = eligible & self.admits(rows, storage, index)
        return np.where(allowed.any(axis=1, keepdims=True), allowed, eligible)

    def placement_order(self) -> list[int]:
        """Instances largest first, so the big ones find room before the small ones fill it."""
        return sorted(range(len(self.sizes_mb)), key=lambda k: (-self.sizes_mb[k], k))


def fits(room_mb: np.ndarray | float, size_mb: np.ndarray | float) -> np.ndarray | bool:
    """Eq. 7 for one more instance: what is left holds it (the same relative slack as the evaluator's check)."""
    return room_mb >= size_mb - CAPACITY_EPSILON * np.maximum(size_mb, 1.0)


@lru_cache(maxsize=16)
def capacities(substrate: Substrate) -> Capacities:
    """The tables of `substrate`, built once per substrate object."""
    hosts, instances = substrate.hosts, substrate.instances
    em = np.array([h.kind is HostKind.EM for h in hosts])
    sizes = np.array([i.type.storage_mb for i in instances])
    return Capacities(
        substrate=substrate,
        sizes_mb=sizes,
        storage_mb=np.array([h.storage_mb for h in hosts]),
        kinds=np.array([int(h.kind) for h in hosts]),
        processing_mbps=np.array([[substrate.instance_capacity_mbps(i.index, h.index) for h in hosts] for i in instances]),
        delay_ms_per_mb=np.array([[processing_delay_ms_per_mb(i.type, h) for h in hosts] for i in instances]),
        index_mb=np.where(em[None, :], substrate.rdma_index_fraction * sizes[:, None], 0.0),
        table_mb=np.array([substrate.rdma_table_mb(h.node) if h.kind is HostKind.EM else np.inf for h in hosts]),
    )


def place_one_by_one(
    tables: Capacities,
    scores: np.ndarray,
    eligible: np.ndarray,
    dynamic: bool,
    rng: np.random.Generator | None = None,
    order: list[int] | None = None,
) -> tuple[int, ...]:
    """A host per instance, in `order` (default largest first): the best score among eligible hosts,
    or a random eligible one when `rng` is given.

    scores: (instances, hosts); eligible: (instances, hosts) bool (e.g. the static filter). With
    `dynamic`, hosts without room left are skipped too, each placed instance taking its storage, so
    the placement never overfills a host (eq. 7: storage, and an EM host's RDMA table). If no host
    has room for an instance (all of it is taken), it falls back to the eligible hosts."""
    storage = np.zeros(len(tables.storage_mb))
    index = np.zeros(len(tables.storage_mb))
    choice = [0] * len(tables.sizes_mb)
    for k in tables.placement_order() if order is None else order:
        allowed = eligible[k]
        if dynamic:
            room = allowed & tables.admits(k, storage, index)
            allowed = room if room.any() else allowed
        candidates = np.flatnonzero(allowed)
        if rng is not None:
            host = int(candidates[rng.integers(len(candidates))])
        else:
            host = int(candidates[np.argmax(scores[k, candidates])])
        choice[k] = host
        storage[host] += tables.sizes_mb[k]
        index[host] += tables.index_mb[k, host]
    return tuple(choice)
