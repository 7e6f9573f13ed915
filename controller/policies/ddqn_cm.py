"""`ddqn-cm[:PATH]`: DDQN-CM (Afrasiabi et al., IEEE TNSM 2022, the paper's [18]) as the SR-EM paper uses it.

Taken from the paper's description: VNF instances migrate among servers only; a double DQN is
trained 12000 episodes with the same learning parameters; its reward is the chains' accumulated
delay plus the migration cost, minimised.

Assumed (the cited paper's networks and state are not in our material):
- the same per-instance network shape and state features as SR-EM, with outputs for servers only,
  trained with double-DQN targets (online network picks, target network values). Giving it SR-EM's
  richer state can only help it;
- reward = -(mean over requests of delay / deadline, a rejected request counting 2) - migration
  cost / cost of the initial configuration: delays and migration cost, each made scale-free.
"""

from __future__ import annotations

import math
from pathlib import Path

from controller.model.evaluator import StepResult
from controller.policies.base import register
from controller.policies.srem import TrainedPolicy
from controller.rl.agent import TrainConfig

SHIPPED = Path(__file__).resolve().parent / "trained" / "paper-ddqn-cm.pt"
REJECTED_DELAY_RATIO = 2.0


def ddqn_cm_config(**overrides: object) -> TrainConfig:
    """Servers only, double Q-learning, no filters (the paper gives DDQN-CM none); the step's one
    reward, whole placements explored, the paper's discount: none of SR-EM's changes. Checkpoints
    record the agent, so `srem:` refuses them."""
    return TrainConfig(**{"variant": "none", "double_q": True, "host_kinds": ("SERVER",), "credit": "shared",  # type: ignore[arg-type]
                          "exploration": "placement", "order": "size", "discount": 0.3, **overrides, "agent": "ddqn-cm"})


def ddqn_cm_reward(result: StepResult, reference_cost: float) -> float:
    ratios = []
    for r in result.requests:
        ratio = r.delay_ms / r.deadline_ms if r.accepted and not math.isnan(r.delay_ms) else REJECTED_DELAY_RATIO
        ratios.append(min(ratio, REJECTED_DELAY_RATIO))
    delay = sum(ratios) / len(ratios) if ratios else 0.0
    migration = result.cost.migration / reference_cost if reference_cost > 0 else 0.0
    return -(delay + migration)


@register("ddqn-cm")
class DdqnCmPolicy(TrainedPolicy):
    trained_by = "ddqn-cm"

    def __init__(self, arg: str | None = None) -> None:
        super().__init__(arg or str(SHIPPED))
