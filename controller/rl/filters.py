"""The static and dynamic filters of section V-B, and the placement an agent picks through them.

- static: a host whose total storage can never hold an instance gets no output neuron in that
  instance's network (`static_mask`);
- dynamic: at each step, only hosts whose remaining storage can take the instance are eligible,
  in exploration and exploitation alike. We apply it while placing the instances one after the
  other (largest first), each taking the storage it uses, so a placement picked through the
  dynamic filter never overfills a host (eq. 7).
"""

from __future__ import annotations

import numpy as np

from controller.model.substrate import HostKind, Substrate


def static_mask(substrate: Substrate, allowed_kinds: tuple[HostKind, ...] = tuple(HostKind)) -> np.ndarray:
    """(instances, hosts) bool: host can ever hold the instance, and is of an allowed kind."""
    size = np.array([i.type.storage_mb for i in substrate.instances])[:, None]
    storage = np.array([h.storage_mb for h in substrate.hosts])[None, :]
    kind_ok = np.array([h.kind in allowed_kinds for h in substrate.hosts])[None, :]
    return (storage >= size) & kind_ok


def placement_order(substrate: Substrate) -> list[int]:
    """Instances largest first, so the big ones find room before the small ones fill it."""
    return sorted(range(len(substrate.instances)), key=lambda k: (-substrate.instances[k].type.storage_mb, k))


def choose_placement(
    scores: np.ndarray,
    eligible: np.ndarray,
    sizes: np.ndarray,
    free_storage: np.ndarray,
    order: list[int],
    dynamic: bool,
    rng: np.random.Generator | None = None,
) -> tuple[int, ...]:
    """Pick a host per instance: the best score among eligible hosts, or a random eligible one when `rng` is given.

    scores: (instances, hosts) with -inf where the static filter cut the output; eligible: the static
    mask; with `dynamic`, hosts without room left are skipped too. If the dynamic filter leaves no
    host for an instance (its storage is all taken), it falls back to the static mask.
    """
    free = free_storage.astype(float).copy()
    choice = [0] * len(sizes)
    for k in order:
        allowed = eligible[k]
        if dynamic:
            room = allowed & (free >= sizes[k] - 1e-9)
            allowed = room if room.any() else allowed
        candidates = np.flatnonzero(allowed)
        if rng is not None:
            host = int(candidates[rng.integers(len(candidates))])
        else:
            host = int(candidates[np.argmax(scores[k, candidates])])
        choice[k] = host
        free[host] -= sizes[k]
    return tuple(choice)
