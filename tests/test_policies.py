"""The policy interface and registry."""

from __future__ import annotations

import pytest

from controller.errors import SremError
from controller.evaluation import run_day
from controller.model.evaluator import StepEvaluator
from controller.policies import Observation, Policy, make_policy, policy_names, register


def test_registry_knows_static_and_refuses_unknown_names():
    assert "static" in policy_names()
    with pytest.raises(SremError, match="unknown policy 'nope'"):
        make_policy("nope")
    with pytest.raises(SremError, match="takes no argument"):
        make_policy("static:x")


def test_static_keeps_the_initial_placement(small_dataset):
    wl = small_dataset.test[0]
    results = run_day(StepEvaluator(small_dataset.substrate), small_dataset, wl, make_policy("static"))
    assert len(results) == 6 and all(r.placement == wl.initial_placement for r in results)


def test_a_user_policy_plugs_in_and_sees_the_previous_step(small_dataset):
    seen: list[Observation] = []

    @register("test-all-in-em-of-first-switch")
    class AllInEm(Policy):
        def __init__(self, arg: str | None = None) -> None:
            pass

        def decide(self, observation: Observation) -> tuple[int, ...]:
            seen.append(observation)
            em = observation.substrate.host_index["em:" + observation.substrate.switch_names[0]]
            return (em,) * len(observation.placement)

    wl = small_dataset.test[0]
    results = run_day(StepEvaluator(small_dataset.substrate), small_dataset, wl, make_policy("test-all-in-em-of-first-switch"))
    assert seen[0].last is None and seen[1].last is results[0]
    assert seen[1].placement == results[0].placement
    assert results[1].cost.reconfiguration == 0.0 < results[0].cost.programming
    with pytest.raises(ValueError, match="registered twice"):
        register("static")(AllInEm)


def test_invalid_placement_from_a_policy_is_an_error(small_dataset):
    class Broken(Policy):
        name = "broken"

        def decide(self, observation: Observation) -> tuple[int, ...]:
            return (999,) * len(observation.placement)

    with pytest.raises(SremError, match="unknown host 999"):
        run_day(StepEvaluator(small_dataset.substrate), small_dataset, small_dataset.test[0], Broken())
