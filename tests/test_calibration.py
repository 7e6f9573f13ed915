"""Calibration of the `paper` preset: placement must matter (issue: static rejects 20-80% in working hours)."""

from __future__ import annotations

from controller.evaluation import evaluate_policy
from controller.policies import make_policy


def test_static_configuration_is_overloaded_by_day_and_fine_by_night(paper_dataset):
    report = evaluate_policy(paper_dataset, make_policy("static"), "test", progress=False)
    for hour in report.per_hour:
        if hour.working_hours:
            assert 0.20 <= 1.0 - hour.acceptance_ratio <= 0.80, hour
        else:
            assert hour.acceptance_ratio >= 0.95, hour
        assert hour.cost_reconf == 0.0 and hour.share_server == 1.0
