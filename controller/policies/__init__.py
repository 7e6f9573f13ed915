"""Reconfiguration policies behind one interface and one registry (see base.py)."""

from controller.policies.base import Observation, Policy, make_policy, policy_names, register
from controller.policies import ddqn_cm as _ddqn_cm  # noqa: F401  (registers `ddqn-cm`)
from controller.policies import ilp as _ilp  # noqa: F401  (registers `ilp`)
from controller.policies import lag as _lag  # noqa: F401  (registers `lag`)
from controller.policies import random_policy as _random  # noqa: F401  (registers `random`)
from controller.policies import srem as _srem  # noqa: F401  (registers `srem`)
from controller.policies import static as _static  # noqa: F401  (registers `static`)

__all__ = ["Observation", "Policy", "make_policy", "policy_names", "register"]
