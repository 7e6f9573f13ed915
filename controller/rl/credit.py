"""Each instance's share of a step's reward: eq. 20 read over the requests the instance serves.

The paper trains every instance's network on the one reward of the step. With dozens of instances,
that reward moves with everyone's choices, and one instance's good move is drowned in the others'
noise. Here instance k's reward is w1 times the acceptance ratio of the requests whose chains use k
(1 when it serves none this day), minus the step's normalised cost term, which all instances share
because moves and bandwidth are paid together. A step that violates storage (eq. 7) gives every
instance 0, as eq. 20 gives the step.
"""

from __future__ import annotations

import numpy as np

from controller.model.evaluator import StepResult
from controller.model.reward import RewardWeights
from controller.model.workload import Workload


def instance_rewards(result: StepResult, workload: Workload, num_instances: int, reference_cost: float,
                     weights: RewardWeights) -> np.ndarray:
    """Shape (instances,): eq. 20 per instance, as the module docstring says."""
    if not result.feasible:
        return np.zeros(num_instances, dtype=np.float32)
    served = np.zeros(num_instances)
    accepted = np.zeros(num_instances)
    for outcome, instances in zip(result.requests, workload.assignment):
        for k in instances:
            served[k] += 1
            accepted[k] += outcome.accepted
    ratio = np.divide(accepted, served, out=np.ones(num_instances), where=served > 0)
    cost_term = result.cost.total / reference_cost if reference_cost > 0 else 0.0
    return (weights.acceptance * ratio - weights.cost * cost_term).astype(np.float32)
