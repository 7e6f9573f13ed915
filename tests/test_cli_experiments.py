"""`srem experiment fig5|fig6|gap`: flags of their own, defaults from controller/experiments.py,
methods chosen with --policy LABEL=SPEC, output folders named by the run and never overwritten
without --force, structured JSON, and the CSV, tables and plots a reader uses."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from test_cli import srem
from test_cli_rough_edges import one_line_error, run

from controller import cli, experiments
from controller.errors import SremError


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory, small_dataset) -> Path:
    ck = tmp_path_factory.mktemp("ck") / "small.pt"
    assert cli.main(["train", "--scenario", "small", "--episodes", "2", "--out", str(ck), "--quiet"]) == 0
    return ck


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(("experiment", "flags"), [
    ("fig5", ["--policy", "lag"]),
    ("fig5", ["--limit", "3"]),
    ("fig5", ["--time-limit", "5"]),
    ("fig6", ["--episodes", "3"]),
    ("fig6", ["--time-limit", "5"]),
    ("gap", ["--seeds", "2"]),
])
def test_an_experiment_refuses_flags_it_does_not_use(capsys, in_tmp, experiment: str, flags: list[str]) -> None:
    one_line_error(run(capsys, "experiment", experiment, *flags), f"srem experiment {experiment}", "unrecognized arguments", flags[0])
    assert not any(in_tmp.iterdir())


def test_defaults_live_with_the_experiments():
    assert not hasattr(cli, "FIG6_POLICIES")
    assert dict(experiments.FIG6.methods) == dict(experiments.GAP.methods) == dict(experiments.METHODS)
    assert list(experiments.METHODS) == ["SR-EM", "LAG", "DDQN-CM", "RANDOM", "static", "greedy-slack", "best-fixed",
                                         "schedule-foresight", "best-schedule"]
    assert (experiments.FIG5.scenario, experiments.FIG5.seeds, experiments.FIG5.test_workloads) == ("paper", 3, 50)
    assert (experiments.FIG5_QUICK.scenario, experiments.FIG5_QUICK.seeds) == ("small", 3)
    assert (experiments.FIG6_QUICK.limit, experiments.GAP.scenario) == (30, "small")


def test_results_folders_are_named_by_the_run():
    assert experiments.results_folder("fig6", "paper") == Path("results/fig6-paper")
    assert experiments.results_folder("fig6", "paper", quick=True) == Path("results/fig6-paper-quick")
    assert experiments.results_folder("gap", "small", methods=["SR-EM=srem:/tmp/x/small.pt"], budgets={"time-limit": 2.5}) == \
        Path("results/gap-small-SR-EM-srem-tmp-x-small.pt-time-limit2.5")
    long = experiments.safe_name("srem:" + "d/" * 100 + "p.pt")
    assert len(long) <= 80 and long.endswith(tuple("0123456789abcdef")) and "p.pt" in long


def test_shipped_checkpoints_join_on_paper_and_are_left_out_elsewhere(paper_dataset, small_dataset, small_checkpoint):
    on_paper = experiments.bind_methods(paper_dataset, experiments.GAP.methods, given=())
    assert [m.label for m in on_paper.bound] == list(experiments.METHODS) and not on_paper.left_out
    on_small = experiments.bind_methods(small_dataset, experiments.GAP.methods, given=())
    assert [m.label for m in on_small.bound] == ["LAG", "RANDOM", "static", "greedy-slack", "schedule-foresight"]
    assert set(on_small.left_out) == {"SR-EM", "DDQN-CM", "best-fixed", "best-schedule"} and "paper-hybrid.pt" in on_small.left_out["SR-EM"]
    assert "paper-best-schedule.json" in on_small.left_out["best-schedule"]
    assert "paper-best-fixed.json" in on_small.left_out["best-fixed"] and "another network" in on_small.left_out["best-fixed"]
    with pytest.raises(SremError):  # a method the user names must fit
        experiments.bind_methods(small_dataset, {"SR-EM": "srem"}, given=("SR-EM",))
    mine = experiments.bind_methods(small_dataset, {**experiments.METHODS, "SR-EM": f"srem:{small_checkpoint}"}, given=("SR-EM",))
    assert [m.label for m in mine.bound] == ["SR-EM", "LAG", "RANDOM", "static", "greedy-slack", "schedule-foresight"]
    assert set(mine.left_out) == {"DDQN-CM", "best-fixed", "best-schedule"}


def test_fig6_on_another_scenario_with_its_own_checkpoint(capsys, in_tmp, small_checkpoint):
    args = ["experiment", "fig6", "--scenario", "small", "--limit", "2", "--policy", f"SR-EM=srem:{small_checkpoint}", "--quiet"]
    status, out, err = run(capsys, *args, "--json")
    assert status == 0, err
    doc = json.loads(out)
    assert list(doc["policies"]) == ["SR-EM", "LAG", "RANDOM", "static", "greedy-slack", "schedule-foresight"]
    assert list(doc["left_out"]) == ["DDQN-CM", "best-fixed", "best-schedule"]
    assert doc["policies"]["SR-EM"]["spec"] == f"srem:{small_checkpoint}" and doc["policies"]["SR-EM"]["policy"] == "srem"
    assert doc["policies"]["LAG"]["workloads"] == 2
    notes = err.strip().splitlines()
    assert len(notes) == 3 and notes[0].startswith("srem: note: DDQN-CM left out") and "--policy 'DDQN-CM=ddqn-cm:CHECKPOINT'" in notes[0]
    assert notes[1].startswith("srem: note: best-fixed left out") and "--policy 'best-fixed=fixed:FILE'" in notes[1]
    assert notes[2].startswith("srem: note: best-schedule left out") and "--policy 'best-schedule=best-schedule:FILE'" in notes[2]
    assert "srem train --agent best-fixed --scenario small" in notes[1]
    out_dir = in_tmp / doc["out"]
    assert doc["out"] == "results/" + "-".join(["fig6-small", experiments.safe_name(f"SR-EM=srem:{small_checkpoint}"), "limit2"])
    assert set(_files(out_dir)) == {"fig6.csv", "fig6a.png", "fig6b.png", "fig6c.png", "fig6.md", ".srem-output"}
    _assert_pngs(out_dir, "fig6a.png", "fig6b.png", "fig6c.png")
    rows = list(csv.DictReader((out_dir / "fig6.csv").open()))
    assert list(rows[0]) == experiments.FIG6_CSV_COLUMNS and len(rows) == 6 * 6
    for label, policy in doc["policies"].items():
        hours = policy["per_hour"]
        intervals = doc["intervals"][label]
        assert len(intervals["acceptance_ratio_ci95"]) == len(intervals["cost_total_per_workload_ci95"]) == len(hours)
        assert all(half >= 0 for half in intervals["acceptance_ratio_ci95"] + intervals["cost_total_per_workload_ci95"])
        split = doc["cost_split"][label]
        for period, working in (("working_hours", True), ("evening", False)):
            assert set(split[period]) == {"it", "bandwidth", "reconfiguration"}
            # eq. 1's parts add up to its total, per part of the day
            assert sum(split[period].values()) == pytest.approx(
                sum(h["cost_total_per_workload"] for h in hours if h["working_hours"] == working))
    assert "working: bandwidth" in (out_dir / "fig6.md").read_text()

    before = _files(out_dir)
    one_line_error(run(capsys, *args), doc["out"], "--force")
    assert _files(out_dir) == before
    status, _, err = run(capsys, *args, "--force")
    assert status == 0, err
    assert [p.name for p in (in_tmp / "results").iterdir()] == [out_dir.name], "no staging folder left behind"


def _assert_pngs(folder: Path, *names: str) -> None:
    for name in names:
        assert (folder / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_fig5_quick_measures_each_variant_on_test_workloads_and_what_the_filters_remove(tmp_path, small_dataset):
    # `srem` in a fresh interpreter, as users run it: the training runs go to spawned processes.
    out = tmp_path / "fig5"
    proc = srem("experiment", "fig5", "--quick", "--episodes", "4", "--seeds", "2", "--out", str(out), "--json", "--quiet",
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert (doc["scenario"], doc["episodes"], doc["seeds"], doc["checkpoints"]) == ("small", 4, [0, 1], [1, 2, 3, 4])
    assert doc["test_workloads"] == len(small_dataset.split("test")) and doc["episodes_per_second"] > 0
    assert set(_files(out)) == {"fig5.csv", "fig5_training.csv", "fig5.png", "fig5.md", ".srem-output"}
    _assert_pngs(out, "fig5.png")

    rows = list(csv.DictReader((out / "fig5.csv").open()))
    assert list(rows[0]) == experiments.FIG5_CSV_COLUMNS and len(rows) == 3 * 2 * 4
    training = list(csv.DictReader((out / "fig5_training.csv").open()))
    assert list(training[0]) == experiments.FIG5_TRAINING_CSV_COLUMNS and len(training) == 3 * 2 * 4
    for variant in experiments.FIG5_VARIANTS:
        final = doc["final_test_reward"][variant]
        assert set(final) == {"mean", "std", "ci95_low", "ci95_high"}
        last = [float(r["test_reward"]) for r in rows if r["variant"] == variant and r["episodes_trained"] == "4"]
        assert final["mean"] == pytest.approx(sum(last) / 2, abs=1e-6)
        assert final["ci95_low"] <= final["mean"] <= final["ci95_high"]
        assert 0 <= doc["final_test_acceptance"][variant]["mean"] <= 1
        assert set(doc["final_training_reward"][variant]) == {"mean", "std", "ci95_low", "ci95_high"}
    assert sorted(doc["order"]) == sorted(experiments.FIG5_VARIANTS)
    assert doc["paper_order_holds"] == (doc["order"] == ["hybrid", "dynamic", "static"])
    removal = doc["filter_removal"]
    assert removal["choices"] == removal["placements"] * len(small_dataset.substrate.instances)
    assert 0 < removal["static"] <= removal["dynamic"] <= removal["static"] + removal["dynamic_not_static"]
    text = (out / "fig5.md").read_text()
    assert f"the dynamic filter {removal['dynamic']:.1%}" in text and "the paper's order" in text


def test_a_quick_run_does_not_touch_a_full_one(capsys, in_tmp, small_dataset):
    assert run(capsys, "experiment", "fig6", "--scenario", "small", "--quiet")[0] == 0
    full = _files(in_tmp / "results" / "fig6-small")
    assert run(capsys, "experiment", "fig6", "--scenario", "small", "--quick", "--quiet")[0] == 0
    assert _files(in_tmp / "results" / "fig6-small") == full
    assert (in_tmp / "results" / "fig6-small-quick" / "fig6.md").exists()


def test_fig6_quick_on_paper_uses_the_given_policy(capsys, in_tmp, paper_dataset):
    shutil.copy(Path(experiments.__file__).parent / "policies" / "trained" / "paper-hybrid.pt", in_tmp / "mine.pt")
    status, out, err = run(capsys, "experiment", "fig6", "--quick", "--limit", "1", "--policy", "srem:mine.pt", "--json", "--quiet")
    assert status == 0, err
    doc = json.loads(out)
    assert list(doc["policies"]) == [*experiments.METHODS, "srem:mine.pt"] and not doc["left_out"] and not err
    assert doc["out"] == "results/fig6-paper-srem-mine.pt-quick-limit1"


def test_a_given_checkpoint_that_does_not_fit_is_an_error_and_writes_nothing(capsys, in_tmp, paper_dataset, small_checkpoint):
    one_line_error(run(capsys, "experiment", "fig6", "--limit", "1", "--policy", f"SR-EM=srem:{small_checkpoint}", "--quiet"),
                   str(small_checkpoint))
    assert not any(in_tmp.iterdir())


def test_gap_compares_every_method_in_json(capsys, in_tmp, small_dataset):
    status, out, err = run(capsys, "experiment", "gap", "--limit", "1", "--time-limit", "1", "--day-time-limit", "5",
                           "--json", "--quiet")
    assert status == 0, err
    doc = json.loads(out)
    assert doc["out"] == "results/gap-small-limit1-time-limit1-day-time-limit5" and doc["workloads"] == 1 and doc["steps"] == 6
    assert list(doc["methods"]) == ["LAG", "RANDOM", "static", "greedy-slack", "schedule-foresight", "optimum", "day-optimum"]
    assert set(doc["left_out"]) == {"SR-EM", "DDQN-CM", "best-fixed", "best-schedule"}
    assert [line.split(" left out")[0] for line in err.strip().splitlines()] == \
        ["srem: note: SR-EM", "srem: note: DDQN-CM", "srem: note: best-fixed", "srem: note: best-schedule"]
    optimum = doc["methods"]["optimum"]
    assert optimum["spec"] == "ilp:1" and optimum["acceptance_gap"] == 0 and optimum["cost_gap_relative"] == 0
    for method in doc["methods"].values():
        assert method["requests_total"] == 6 * len(small_dataset.split("test")[0].requests)
        assert method["acceptance_ratio"] == pytest.approx(method["accepted_total"] / method["requests_total"])
        assert method["acceptance_gap"] == pytest.approx(method["acceptance_ratio"] - optimum["acceptance_ratio"])
        assert method["cost_gap_relative"] == pytest.approx(method["cost_per_workload_day"] / optimum["cost_per_workload_day"] - 1)
    assert (in_tmp / doc["out"] / "gap.md").read_text().count("\n| ") == len(doc["methods"]) + 1
