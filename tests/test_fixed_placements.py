"""On the recalibrated `paper`, no fixed placement - the same host for every instance at every step of
every workload - reaches the shipped SR-EM's working-hours acceptance on the test set (issue 11): each
switch's EM, each switch's LM, the cheapest servers, round-robin over the EMs, and the best fixed
placement the search found on the training workloads."""

from __future__ import annotations

from controller.evaluation import evaluate_policy
from controller.model.dataset import Dataset
from controller.policies import make_policy
from controller.policies.fixed import simple_forms


def working_hours_acceptance(dataset: Dataset, spec: str) -> float:
    report = evaluate_policy(dataset, make_policy(spec), "test", progress=False)
    hours = [h for h in report.per_hour if h.working_hours]
    return sum(h.accepted for h in hours) / sum(h.requests for h in hours)


def test_no_fixed_placement_reaches_the_shipped_policy(paper_dataset: Dataset) -> None:
    srem = working_hours_acceptance(paper_dataset, "srem")
    fixed = {form: working_hours_acceptance(paper_dataset, f"fixed:{form}") for form in [*simple_forms(paper_dataset.substrate), "best"]}
    assert len(fixed) == 2 + 2 * len(paper_dataset.substrate.switch_names) + 1
    assert all(value < srem for value in fixed.values()), {f: round(v, 3) for f, v in fixed.items() if v >= srem}
