"""`srem[:PATH]`: the trained SR-EM policy (no training code runs): features -> per-instance Q-networks -> filters.

Without a path it loads the policy shipped for the `paper` scenario (controller/policies/trained/).
A checkpoint DDQN-CM's training wrote is refused (`ddqn-cm:PATH` runs it), and `ddqn-cm:` refuses SR-EM's.
"""

from __future__ import annotations

from pathlib import Path

import torch

from controller.model.substrate import Substrate
from controller.model.estimates import ChainEstimator
from controller.model.workload import Placement, Workload
from controller.policies.base import Observation, Policy, register
from controller.rl.agent import Agent, AgentName
from controller.rl.checkpoint import load_agent
from controller.rl.features import offered_demand_mbps

SHIPPED = Path(__file__).resolve().parent / "trained" / "paper-hybrid.pt"


class TrainedPolicy(Policy):
    """A policy backed by a checkpoint of the per-instance networks; bound to the substrate it was trained on."""

    trained_by: AgentName
    """The agent whose checkpoints this policy runs."""

    def __init__(self, arg: str | None = None) -> None:
        self.path = Path(arg) if arg else SHIPPED
        self.agent: Agent | None = None

    def bind(self, substrate: Substrate) -> None:
        self.agent = load_agent(self.path, substrate, self.trained_by)
        self.encoder = self.agent.encoder
        self.agent.net.eval()
        torch.set_num_threads(1)  # one small forward pass per decision: threads only add latency

    def reset(self, substrate: Substrate, workload: Workload) -> None:
        self.estimator = ChainEstimator(substrate, workload) if self.encoder.host_estimates else None

    def decide(self, observation: Observation) -> Placement:
        assert self.agent is not None, "bind() the policy to a substrate first"
        workload = observation.workload
        demand = offered_demand_mbps(observation.substrate, workload)[observation.step]
        state = self.encoder.encode(demand, observation.step, workload, observation.working_hours,
                                    observation.placement, observation.last, self.estimator)
        return self.agent.act(state)


@register("srem")
class SremPolicy(TrainedPolicy):
    trained_by = "srem"
