"""How many random exploratory instance choices SR-EM's two filters remove (section V-B; Fig. 5).

Unfiltered exploration (the `none` variant) gives each instance a uniformly random host of an
allowed kind. Of those instance choices:

- the static filter removes the ones whose host can never hold the instance (its whole storage is
  too small: `Capacities.can_ever_hold`);
- the dynamic filter removes the ones whose host has no room left for the instance once the
  instances placed before it in the same placement are counted, largest first, as
  `place_one_by_one(..., dynamic=True)` decides. Each step decides the whole placement afresh, from
  empty hosts, so the placement before the step does not enter.

Every host the static filter removes has no room for the instance either, so the dynamic filter
removes at least as much; `dynamic_not_static` is what it removes beyond the static filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from controller.model.feasibility import Capacities, fits
from controller.model.substrate import HostKind


@dataclass(frozen=True)
class FilterRemoval:
    placements: int
    choices: int
    """Instance choices looked at: placements x instances."""
    static: float
    """Share of the choices the static filter removes."""
    dynamic: float
    """Share of the choices the dynamic filter removes."""
    dynamic_not_static: float
    """Share the dynamic filter removes and the static filter keeps."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def allowed_hosts(tables: Capacities, allowed_kinds: Sequence[HostKind]) -> np.ndarray:
    """Indices of the hosts of the allowed kinds: what unfiltered exploration draws from."""
    return np.flatnonzero(np.isin(tables.kinds, np.array(allowed_kinds, dtype=int)))


def unfiltered_placements(tables: Capacities, allowed_kinds: Sequence[HostKind], count: int,
                          rng: np.random.Generator) -> np.ndarray:
    """(count, instances): each instance on a uniformly random host of an allowed kind."""
    hosts = allowed_hosts(tables, allowed_kinds)
    return hosts[rng.integers(len(hosts), size=(count, len(tables.sizes_mb)))]


def removed_choices(tables: Capacities, placements: np.ndarray | Sequence[Sequence[int]],
                    allowed_kinds: Sequence[HostKind] = tuple(HostKind)) -> FilterRemoval:
    """What each filter removes of the instance choices of `placements` (each a host per instance)."""
    placements = np.asarray(placements, dtype=int).reshape(-1, len(tables.sizes_mb))
    never = ~tables.can_ever_hold(tuple(allowed_kinds))
    order = tables.placement_order()
    static = dynamic = both = 0
    for placement in placements:
        free = tables.storage_mb.astype(float)
        for k in order:
            host = placement[k]
            no_room = not fits(free[host], tables.sizes_mb[k])
            static += bool(never[k, host])
            dynamic += no_room
            both += no_room and bool(never[k, host])
            free[host] -= tables.sizes_mb[k]  # unfiltered: the instance goes there all the same
    n = max(placements.size, 1)
    return FilterRemoval(len(placements), placements.size, static / n, dynamic / n, (dynamic - both) / n)


def filter_removal(tables: Capacities, allowed_kinds: Sequence[HostKind], placements: int, seed: int) -> FilterRemoval:
    """`removed_choices` over `placements` unfiltered random placements drawn with `seed`."""
    rng = np.random.default_rng(seed)
    return removed_choices(tables, unfiltered_placements(tables, allowed_kinds, placements, rng), allowed_kinds)
