"""Reconfiguration policies behind one interface and one registry (see base.py); each policy's
module is imported only when the policy is asked for."""

from controller.policies.base import Observation, Policy, make_policy, observe, policy_names, register, start_day

__all__ = ["Observation", "Policy", "make_policy", "observe", "policy_names", "register", "start_day"]
