"""The reward of a step, eq. 20 of the paper."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RewardWeights:
    """w1 (acceptance) and w2 (cost) of eq. 20."""

    acceptance: float = 1.0
    cost: float = 0.1


def reward(acceptance_ratio: float, cost: float, reference_cost: float, feasible: bool, weights: RewardWeights) -> float:
    """Eq. 20: 0 when a storage (7) or processing (10) constraint is violated, else w1 * AR - w2 * cost / reference.

    Admission control keeps eq. 10 true for all admitted traffic (a request that would overload an
    instance is rejected), so in this model only storage makes a placement infeasible.
    The reference is the cost of the initial configuration in the same step, so the cost term is
    near 1 for a policy that costs what doing nothing costs.
    """
    if not feasible:
        return 0.0
    normalised = cost / reference_cost if reference_cost > 0 else 0.0
    return weights.acceptance * acceptance_ratio - weights.cost * normalised
