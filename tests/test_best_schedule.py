"""The best schedule: its file (round trip and one-line refusals), the policy that plays it, and the
search that finds it (no worse than any of its starts, reproducible for a seed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from test_cli_rough_edges import one_line_error, run

from controller.errors import SremError
from controller.evaluation import run_day
from controller.model.constraints import storage_violations
from controller.model.dataset import Dataset
from controller.model.evaluator import StepEvaluator
from controller.policies import make_policy
from controller.policies.best_schedule import BestSchedulePolicy, PlacementSchedule, load_schedule, schedule_document
from controller.policies.fixed import simple_placement
from controller.policies.schedule_search import ScheduleSettings, search_schedule

SETTINGS = ScheduleSettings(budget=120, sample=6, seed=0, screen=2)


def a_schedule(dataset: Dataset) -> PlacementSchedule:
    """A different placement at every step of `small`'s day, each respecting storage."""
    sub = dataset.substrate
    forms = ["servers", "em:c1", "lm:c2", "round-robin", "em:a3", "servers"]
    return tuple(simple_placement(sub, form) for form in forms[:len(dataset.hours)])


def write(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "schedule.json"
    path.write_text(json.dumps(doc))
    return path


def test_a_schedule_file_round_trips(tmp_path: Path, small_dataset: Dataset) -> None:
    schedule = a_schedule(small_dataset)
    doc = schedule_document(small_dataset.substrate, "small", small_dataset.hours, schedule, note="kept")
    assert [entry["hour"] for entry in doc["steps"]] == small_dataset.hours
    assert load_schedule(write(tmp_path, doc), small_dataset.substrate) == schedule


def over_storage(doc: dict[str, Any]) -> None:
    doc["steps"][2]["placement"].update({"nat#0": "lm:c1", "firewall#0": "lm:c1"})


@pytest.mark.parametrize(("edit", "key", "message"), [
    (lambda doc: doc.update(substrate_hash="0" * 64), None, "schedule file is for another network"),
    (lambda doc: doc["steps"].pop(1), "steps[1]", "step 1 missing (this entry is step 2)"),
    (lambda doc: doc.update(steps=[]), "steps", "no steps list"),
    (lambda doc: doc["steps"][3]["placement"].pop("nat#0"), "steps[3].placement", "no host for 'nat#0'"),
    (over_storage, "steps[2]", "placement does not fit: storage of lm:c1"),
    (lambda doc: doc.update(format="srem-placement"), None, "not a srem-schedule file"),
])
def test_a_bad_schedule_file_is_refused_in_one_line(tmp_path: Path, small_dataset: Dataset,
                                                    edit: Callable[[dict[str, Any]], None], key: str | None,
                                                    message: str) -> None:
    doc = schedule_document(small_dataset.substrate, "small", small_dataset.hours, a_schedule(small_dataset))
    edit(doc)
    path = write(tmp_path, doc)
    with pytest.raises(SremError) as err:
        load_schedule(path, small_dataset.substrate)
    assert message in err.value.message and err.value.where == str(path) and err.value.key == key
    assert "\n" not in str(err.value)


def test_a_schedule_for_another_day_length_is_refused_when_the_day_starts(tmp_path: Path, small_dataset: Dataset) -> None:
    schedule = a_schedule(small_dataset)[:-1]
    doc = schedule_document(small_dataset.substrate, "small", small_dataset.hours[:-1], schedule)
    policy = BestSchedulePolicy(str(write(tmp_path, doc)))
    policy.bind(small_dataset.substrate)
    with pytest.raises(SremError, match=f"a schedule of {len(schedule)} steps for a day of {len(small_dataset.hours)}"):
        run_day(StepEvaluator(small_dataset.substrate), small_dataset, small_dataset.test[0], policy)


def test_the_policy_plays_the_file_step_by_step(tmp_path: Path, small_dataset: Dataset) -> None:
    schedule = a_schedule(small_dataset)
    path = write(tmp_path, schedule_document(small_dataset.substrate, "small", small_dataset.hours, schedule))
    policy = make_policy(f"best-schedule:{path}")
    policy.bind(small_dataset.substrate)
    evaluator = StepEvaluator(small_dataset.substrate)
    for workload in small_dataset.test[:2]:
        assert tuple(result.placement for result in run_day(evaluator, small_dataset, workload, policy)) == schedule


def test_the_shipped_schedule_is_for_paper_only(small_dataset: Dataset) -> None:
    with pytest.raises(SremError, match="schedule file is for another network: scenario paper"):
        make_policy("best-schedule").bind(small_dataset.substrate)


def test_the_search_is_no_worse_than_any_start_and_reproducible(small_dataset: Dataset) -> None:
    result = search_schedule(small_dataset, SETTINGS)
    assert {"greedy-slack", "schedule-foresight"} <= set(result.starts) and result.start in result.starts
    assert "fixed:best" not in result.starts  # the shipped best fixed placement is for paper's network
    assert result.workloads == SETTINGS.sample and result.evaluations <= SETTINGS.budget
    assert all(not start.better_than(result.score) for start in result.starts.values())
    assert result.score.better_than(result.starts[result.start])  # on small, the budget finds something
    assert all(storage_violations(small_dataset.substrate, placement) == {} for placement in result.schedule)
    again = search_schedule(small_dataset, SETTINGS)
    assert (again.schedule, again.score, again.evaluations) == (result.schedule, result.score, result.evaluations)


def test_train_best_schedule_writes_a_file_the_policy_evaluates(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                               small_dataset: Dataset) -> None:
    out = tmp_path / "small-schedule.json"
    args = ["train", "--scenario", "small", "--agent", "best-schedule", "--budget", "15", "--sample", "3",
            "--out", str(out), "--quiet"]
    status, stdout, err = run(capsys, *args, "--json")
    assert status == 0, err
    doc = json.loads(stdout)
    saved = json.loads(out.read_text())
    assert doc["schedule_file"] == str(out) and saved["format"] == "srem-schedule" and saved["steps"] == doc["steps"]
    assert saved["search"]["evaluations"] <= 15 and saved["search"]["sample"] == 3
    one_line_error(run(capsys, *args), str(out), "--force")
    one_line_error(run(capsys, *args, "--episodes", "3"), "--episodes")
    status, stdout, err = run(capsys, "evaluate", "--scenario", "small", "--policy", f"best-schedule:{out}", "--limit", "2",
                              "--csv", str(tmp_path / "e.csv"), "--json", "--quiet")
    assert status == 0, err
    assert json.loads(stdout)["policy"] == "best-schedule"
