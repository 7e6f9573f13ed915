"""`random` (the paper's RANDOM): every instance to a random host - server, LM or EM - that can hold it.

"Can hold it" is the dynamic filter's test: instances are placed one after the other, largest
first, each on a random host with storage left for it, so RANDOM never violates storage.
"""

from __future__ import annotations

import numpy as np

from controller.errors import SremError
from controller.model.feasibility import capacities, place_one_by_one
from controller.model.substrate import Substrate
from controller.model.workload import Placement, Workload
from controller.policies.base import Observation, Policy, register


@register("random")
class RandomPolicy(Policy):
    def __init__(self, arg: str | None = None) -> None:
        text = "0" if arg is None else arg
        # Decimal digits only: numpy's seed sequences refuse negative entropy, which would fail mid-run;
        # 40 digits (beyond 2**128) are more than a seed needs and keep int() and the message short.
        if not (text.isdecimal() and len(text) <= 40):
            raise SremError(f"policy random takes a non-negative integer seed of up to 40 digits, got {text[:20]!r}",
                            where="--policy")
        self.seed = int(text)
        self.rng = np.random.default_rng(self.seed)

    def reset(self, substrate: Substrate, workload: Workload) -> None:
        self.rng = np.random.default_rng([self.seed, workload.id])
        self.tables = capacities(substrate)
        self.mask = self.tables.can_ever_hold()

    def decide(self, observation: Observation) -> Placement:
        return place_one_by_one(self.tables, np.zeros(self.mask.shape), self.mask, True, self.rng)
