"""`random` (the paper's RANDOM): every instance to a random host - server, LM or EM - that can hold it.

"Can hold it" is the dynamic filter's test: instances are placed one after the other, largest
first, each on a random host with storage left for it, so RANDOM never violates storage.
"""

from __future__ import annotations

import numpy as np

from controller.errors import SremError
from controller.model.substrate import Substrate
from controller.model.workload import Placement, Workload
from controller.policies.base import Observation, Policy, register
from controller.rl.filters import choose_placement, placement_order, static_mask


@register("random")
class RandomPolicy(Policy):
    def __init__(self, arg: str | None = None) -> None:
        try:
            self.seed = int(arg) if arg is not None else 0
        except ValueError:
            raise SremError(f"policy random takes an integer seed, got {arg!r}", where="--policy") from None
        self.rng = np.random.default_rng(self.seed)

    def reset(self, substrate: Substrate, workload: Workload) -> None:
        self.rng = np.random.default_rng([self.seed, workload.id])
        self.mask = static_mask(substrate)
        self.sizes = np.array([i.type.storage_mb for i in substrate.instances])
        self.storage = np.array([h.storage_mb for h in substrate.hosts])
        self.order = placement_order(substrate)

    def decide(self, observation: Observation) -> Placement:
        return choose_placement(np.zeros(self.mask.shape), self.mask, self.sizes, self.storage, self.order, True, self.rng)
