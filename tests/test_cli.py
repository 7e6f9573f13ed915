"""The `srem` command line as users run it: JSON schemas, files written, and one-line errors for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from controller import experiments
from controller.model.scenario import load_scenario

PER_HOUR_KEYS = {"hour", "acceptance_ratio", "cost_it_per_workload", "cost_bw_per_workload", "cost_reconf_per_workload",
                 "cost_total_per_workload", "share_server", "share_lm", "share_em"}


def srem(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "controller", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}, timeout=300)


def assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_topology_export_json_schema():
    proc = srem("topology", "export", "paper", "--json")
    doc = json.loads(proc.stdout)
    assert len(doc["switches"]) == 10 and len(doc["servers"]) == 12
    assert {"a", "b", "bandwidth_gbps", "delay_ms"} <= set(doc["links"][0])


def test_topology_show_summarises():
    proc = srem("topology", "show", "fat-tree-k4")
    assert proc.returncode == 0 and "20 switches, 16 servers, 48 links" in proc.stdout


def test_scenario_show_is_a_loadable_scenario(tmp_path):
    proc = srem("scenario", "show", "small")
    path = tmp_path / "mine.yaml"
    path.write_text(proc.stdout)
    assert load_scenario(str(path)).spec == load_scenario("small").spec


def test_generate_then_evaluate_on_it(tmp_path):
    data = tmp_path / "data"
    gen = srem("scenario", "generate", "--scenario", "small", "--seed", "3", "--out", str(data), "--json")
    assert gen.returncode == 0, gen.stderr
    assert json.loads(gen.stdout)["splits"] == {"train": 40, "test": 10}
    ev = srem("evaluate", "--data", str(data), "--policy", "static", "--split", "test", "--limit", "4", "--json", cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    doc = json.loads(ev.stdout)
    assert doc["workloads"] == 4 and doc["policy"] == "static"
    assert [h["hour"] for h in doc["per_hour"]] == [10, 12, 14, 16, 18, 20]
    for hour in doc["per_hour"]:
        assert PER_HOUR_KEYS <= set(hour)
        assert hour["cost_total_per_workload"] == pytest.approx(
            hour["cost_it_per_workload"] + hour["cost_bw_per_workload"] + hour["cost_reconf_per_workload"])
    csv = (tmp_path / "results" / "evaluate-small-static-test-limit4.csv").read_text().splitlines()
    assert csv[0].startswith("policy,split,hour,") and len(csv) == 7


def test_evaluate_table_without_json(tmp_path):
    proc = srem("evaluate", "--scenario", "small", "--limit", "2", "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "10:00  working" in proc.stdout and "20:00  evening" in proc.stdout


def _bad_scenario(tmp_path: Path, mutate) -> str:
    data = yaml.safe_load(load_scenario("small").to_yaml())
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_bad_inputs_exit_non_zero_with_one_line(tmp_path):
    bad = _bad_scenario(tmp_path, lambda d: d["switches"].update(local_memory_mb=[-1, 40]))
    assert_one_line_error(srem("scenario", "show", bad), bad, "switches.local_memory_mb[0]")
    bad = _bad_scenario(tmp_path, lambda d: d["requests"].update(rate=1))
    assert_one_line_error(srem("evaluate", "--scenario", bad), bad, "requests.rate", "unknown key")
    assert_one_line_error(srem("evaluate", "--policy", "oracle"), "--policy", "unknown policy 'oracle'")
    assert_one_line_error(srem("evaluate", "--limit", "0"), "--limit")
    assert_one_line_error(srem("topology", "show", "moebius"), "moebius")
    assert_one_line_error(srem("evaluate", "--split", "dev"), "invalid choice")
    assert_one_line_error(srem("evaluate", "--data", str(tmp_path)), str(tmp_path), "not a dataset")


def test_dataset_of_another_scenario_is_refused(tmp_path, small_dataset):
    proc = srem("evaluate", "--scenario", "paper", "--data", str(small_dataset.path))
    assert_one_line_error(proc, "generated from scenario small")


def test_train_then_evaluate_the_checkpoint(tmp_path, small_dataset):
    ck = tmp_path / "p.pt"
    proc = srem("train", "--scenario", "small", "--episodes", "12", "--out", str(ck), "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["episodes"] == 12 and len(doc["rewards"]) == 12 and doc["episodes_per_second"] > 0
    ev = srem("evaluate", "--scenario", "small", "--policy", f"srem:{ck}", "--limit", "2", "--json", "--quiet", cwd=tmp_path)
    assert ev.returncode == 0, ev.stderr
    for hour in json.loads(ev.stdout)["per_hour"]:
        assert hour["share_server"] + hour["share_lm"] + hour["share_em"] == pytest.approx(1.0)


def test_checkpoint_of_another_scenario_is_one_line(tmp_path, small_dataset):
    ck = tmp_path / "p.pt"
    assert srem("train", "--scenario", "small", "--episodes", "3", "--out", str(ck), "--quiet").returncode == 0
    proc = srem("evaluate", "--scenario", "paper", "--policy", f"srem:{ck}", "--limit", "1", cwd=tmp_path)
    assert_one_line_error(proc, str(ck), "scenario small", "another network")


def test_experiment_fig6_writes_csv_plots_and_table(tmp_path, paper_dataset):
    out = tmp_path / "fig6"
    proc = srem("experiment", "fig6", "--limit", "3", "--out", str(out), "--quiet", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} == {"fig6.csv", "fig6a.png", "fig6b.png", "fig6c.png", "fig6.md", ".srem-output"}
    assert "| 10:00 |" in proc.stdout and "SR-EM" in proc.stdout and "DDQN-CM" in proc.stdout
    rows = (out / "fig6.csv").read_text().splitlines()
    assert len(rows) == 1 + len(experiments.METHODS) * 6


@pytest.mark.parametrize(("args", "fragments"), [
    (["memserver", "--loss", "1.5"], ["--loss", "out of range"]),
    (["memserver", "--listen", "localhost"], ["--listen", "not HOST:PORT"]),
    (["memserver", "--latency-ns", "-1"], ["--latency-ns"]),
    (["emac", "--memory-server", "one=127.0.0.1:7000", "--listen-udp", "127.0.0.1:0"], ["--memory-server", "ID=HOST:PORT"]),
    (["emac", "--memory-server", "1=127.0.0.1:7000"], ["nothing to serve"]),
    (["emac", "--memory-server", "1=127.0.0.1:7000", "--listen-udp", "127.0.0.1:0", "--timeout-ms", "0"], ["--timeout-ms"]),
])
def test_external_memory_commands_refuse_bad_arguments(args: list[str], fragments: list[str]) -> None:
    assert_one_line_error(srem(*args), *fragments)


def test_a_memory_server_port_in_use_is_one_line() -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert_one_line_error(srem("memserver", "--listen", f"127.0.0.1:{port}"), "--listen", f"127.0.0.1:{port}", "in use")


def test_generate_with_a_workload_seed_keeps_the_substrate(tmp_path, small_dataset):
    proc = srem("scenario", "generate", "--scenario", "small", "--workload-seed", "5", "--out", str(tmp_path / "d"), "--json", "--quiet")
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["seed"] == small_dataset.manifest.seed and document["workload_seed"] == 5
    assert (tmp_path / "d" / "substrate.json").read_bytes() == (small_dataset.path / "substrate.json").read_bytes()
    assert_one_line_error(srem("scenario", "generate", "--scenario", "small", "--workload-seed", "-1", "--out", str(tmp_path / "e")),
                          "--workload-seed")
