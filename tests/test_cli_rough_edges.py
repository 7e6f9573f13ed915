"""What a new user meets first: --version, help, argument checks, truncated datasets, results never
overwritten without --force, directories never written unless srem created them, SIGTERM cleaned up
after, labelled totals and means, and one-line errors for the long-running commands. Most run `srem`
in-process (fast); import-time checks and signals need a fresh interpreter."""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from controller import cli
from controller.model.scenario import load_scenario
from controller.policies import policy_names

ROOT = Path(__file__).resolve().parent.parent


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`srem ARGS` in this process: (exit status, stdout, stderr)."""
    try:
        status = cli.main(list(args))
    except SystemExit as exc:  # argparse: --help, --version and bad arguments
        status = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return status, out, err


def one_line_error(result: tuple[int, str, str], *fragments: str) -> str:
    status, _, err = result
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("srem: error: ") and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_version_is_the_package_version(capsys):
    assert run(capsys, "--version") == (0, f"srem {version('srem')}\n", "")


def _leaf_parsers(parser: argparse.ArgumentParser, path: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _leaf_parsers(sub, f"{path} {name}")
    yield path, parser


def test_every_flag_has_help():
    missing = [(path, a.option_strings or a.dest) for path, p in _leaf_parsers(cli.build_parser(), "srem")
               for a in p._actions if a.help is None and not isinstance(a, argparse._SubParsersAction)]
    assert not missing


def test_evaluate_help_lists_the_policies_and_the_default(capsys):
    status, out, _ = run(capsys, "evaluate", "--help")
    assert status == 0
    text = " ".join(out.split())
    assert "default static" in text and "module.path:ClassName" in text
    for name in policy_names():
        assert name in text


def test_each_experiment_has_its_own_help(capsys):
    _, gap, _ = run(capsys, "experiment", "gap", "--help")
    _, fig5, _ = run(capsys, "experiment", "fig5", "--help")
    assert "--time-limit" in gap and "--policy" in gap and "--episodes" not in gap
    assert "--episodes" in fig5 and "--policy" not in fig5 and "--limit" not in fig5


@pytest.mark.parametrize("args", [["--help"], ["evaluate", "--policy", "static", "--help"], ["experiment", "fig6", "--help"]])
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    code = ("import sys\nfrom controller.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'highspy', 'gymnasium', 'matplotlib') if m in sys.modules), file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0 and proc.stderr.strip() == "[]", proc.stderr


@pytest.mark.parametrize(("args", "flag"), [
    (["evaluate", "--limit", "-3"], "--limit"),
    (["train", "--episodes", "0"], "--episodes"),
    (["train", "--seed", "-1"], "--seed"),
    (["train", "--discount", "1.5"], "--discount"),
    (["experiment", "fig6", "--limit", "0"], "--limit"),
    (["experiment", "fig5", "--seeds", "two"], "--seeds"),
    (["experiment", "gap", "--time-limit", "0"], "--time-limit"),
    (["memserver", "--capacity-mb", "0"], "--capacity-mb"),
    (["memserver", "--latency-ns", "nan"], "--latency-ns"),
    (["emac", "--memory-server", "1=127.0.0.1:7000", "--retries", "-1"], "--retries"),
    (["scenario", "generate", "--scenario", "small", "--out", "x", "--seed", "-2"], "--seed"),
    (["testbed", "run", "--election-id", "0"], "--election-id"),
    (["testbed", "run", "--election-id", str(2**128)], "--election-id"),
    (["testbed", "run", "--election-id", "9" * 5000], "--election-id"),
])
def test_range_checks_are_one_line_naming_the_flag(capsys, in_tmp, args: list[str], flag: str) -> None:
    one_line_error(run(capsys, *args), f"srem: error: {flag}: ")
    assert not any(in_tmp.iterdir())


def test_a_truncated_split_is_refused(capsys, in_tmp, small_dataset):
    data = in_tmp / "data"
    shutil.copytree(small_dataset.path, data)
    with gzip.open(data / "test.jsonl.gz", "rt") as f:
        lines = f.read().splitlines()
    with gzip.open(data / "test.jsonl.gz", "wt") as f:
        f.write("\n".join(lines[:3]) + "\n")
    one_line_error(run(capsys, "evaluate", "--data", str(data), "--quiet"), str(data / "test.jsonl.gz"), "holds 3 workloads", "announces 10")
    assert not (in_tmp / "results").exists()


def test_totals_and_means_are_labelled(capsys, in_tmp, small_dataset):
    status, out, _ = run(capsys, "evaluate", "--scenario", "small", "--limit", "3", "--json", "--quiet")
    assert status == 0
    doc = json.loads(out)
    for hour in doc["per_hour"]:
        assert set(hour) == {"hour", "working_hours", "workloads", "requests_total", "accepted_total", "acceptance_ratio",
                             "cost_it_per_workload", "cost_bw_per_workload", "cost_reconf_per_workload",
                             "cost_total_per_workload", "share_server", "share_lm", "share_em", "rejected_total"}
        assert hour["workloads"] == 3 and hour["requests_total"] == 3 * 45  # small: 45 SFCs per workload
        assert sum(hour["rejected_total"].values()) == hour["requests_total"] - hour["accepted_total"]
    header = (in_tmp / "results" / "evaluate-small-static-test-limit3.csv").read_text().splitlines()[0].split(",")
    assert "requests_total" in header and "cost_total_per_workload" in header and "rejected_deadline_total" in header
    assert "cost_total" not in header and "requests" not in header
    status, text, _ = run(capsys, "evaluate", "--scenario", "small", "--limit", "3", "--quiet", "--csv", "t.csv")
    assert "means per workload" in text and "totals over the 3 workloads" in text and "rejected (total)" in text
    assert "total/wl" in text


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ck = tmp_path_factory.mktemp("ck") / "p.pt"
    assert cli.main(["train", "--scenario", "small", "--episodes", "2", "--out", str(ck), "--quiet"]) == 0
    return ck


def test_train_never_overwrites_a_checkpoint_without_force(capsys, in_tmp, small_checkpoint):
    ck = in_tmp / "p.pt"
    shutil.copy(small_checkpoint, ck)
    before = ck.read_bytes()
    one_line_error(run(capsys, "train", "--scenario", "small", "--episodes", "2", "--out", str(ck), "--quiet"),
                   str(ck), "--force", "--resume")
    assert ck.read_bytes() == before
    status, out, err = run(capsys, "train", "--scenario", "small", "--episodes", "3", "--out", str(ck), "--resume", "--json", "--quiet")
    assert status == 0 and json.loads(out)["episodes"] == 3, err
    status, out, err = run(capsys, "train", "--scenario", "small", "--episodes", "2", "--out", str(ck), "--force", "--json", "--quiet")
    assert status == 0 and json.loads(out)["episodes"] == 2, err


def test_train_default_checkpoint_is_refused_too(capsys, in_tmp, small_checkpoint):
    (in_tmp / "results").mkdir()
    shutil.copy(small_checkpoint, in_tmp / "results" / "small-hybrid-seed0.pt")
    one_line_error(run(capsys, "train", "--scenario", "small", "--episodes", "2", "--quiet"), "results/small-hybrid-seed0.pt", "--force")


def test_every_policy_spec_gets_its_own_csv_and_none_is_overwritten(capsys, in_tmp, small_checkpoint):
    for folder in ("a", "b"):  # same file name, other folder: the stem alone would collide
        (in_tmp / folder).mkdir()
        shutil.copy(small_checkpoint, in_tmp / folder / "p.pt")
    for spec in ("srem:a/p.pt", "srem:b/p.pt"):
        status, _, err = run(capsys, "evaluate", "--scenario", "small", "--policy", spec, "--limit", "1", "--quiet")
        assert status == 0, err
    csvs = sorted(p.name for p in (in_tmp / "results").iterdir())
    assert csvs == ["evaluate-small-srem-a-p.pt-test-limit1.csv", "evaluate-small-srem-b-p.pt-test-limit1.csv"]
    assert (in_tmp / "results" / csvs[0]).read_text().splitlines()[1].endswith(",srem:a/p.pt")
    target = in_tmp / "results" / csvs[0]
    target.write_text("mine\n")
    one_line_error(run(capsys, "evaluate", "--scenario", "small", "--policy", "srem:a/p.pt", "--limit", "1", "--quiet"),
                   str(Path("results") / csvs[0]), "--force")
    assert target.read_text() == "mine\n"
    one_line_error(run(capsys, "evaluate", "--scenario", "small", "--limit", "1", "--quiet", "--csv", str(target)), "--force")
    status, _, _ = run(capsys, "evaluate", "--scenario", "small", "--policy", "srem:a/p.pt", "--limit", "1", "--quiet", "--force")
    assert status == 0 and target.read_text().startswith("policy,split,")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shell_on_a_switch_that_is_not_running_is_one_line(capsys):
    port = _free_port()
    one_line_error(run(capsys, "shell", "e1", "--address", f"127.0.0.1:{port}"), "switch e1", f"127.0.0.1:{port}", "running")


def test_shell_execs_p4runtime_shell_once_the_port_answers(capsys, monkeypatch):
    execs: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda path, argv: execs.append(argv))
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        assert run(capsys, "shell", "e1", "--address", address)[0] == 0
    assert len(execs) == 1 and execs[0][1:3] == ["-m", "p4runtime_sh"] and address in execs[0]


def test_emac_without_a_memory_server_is_refused(capsys):
    one_line_error(run(capsys, "emac", "--listen-udp", "127.0.0.1:0"), "--memory-server", "required")


@pytest.mark.parametrize(("text", "parsed"), [
    ("lag", ("lag", "lag")),
    ("SR-EM=srem:results/small.pt", ("SR-EM", "srem:results/small.pt")),
    ("srem:runs/lr=0.1.pt", ("srem:runs/lr=0.1.pt", "srem:runs/lr=0.1.pt")),
    ("mine=my.module:Policy:3", ("mine", "my.module:Policy:3")),
])
def test_policy_labels(text: str, parsed: tuple[str, str]) -> None:
    assert cli.labelled_policy(text) == parsed


def test_requirements_say_where_the_cpu_torch_comes_from():
    text = (ROOT / "requirements.txt").read_text()
    comment = next(line for line in text.splitlines() if line.startswith("#") and "torch" in line)
    assert "see README" not in comment and "CPU" in comment


# Issue 20: a writing command writes only into what it creates (finding 1), replaces atomically and cleans
# up on SIGTERM (5), refuses in one line rather than with a traceback (9), and refuses contradictory
# training flags (10).

def _user_directory(folder: Path) -> dict[str, bytes]:
    """A user's project: a git repository and a file of their own; returns its files."""
    (folder / ".git").mkdir(parents=True, exist_ok=True)
    (folder / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (folder / "notes.txt").write_text("mine\n")
    return _tree(folder)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_generate_refuses_a_directory_it_did_not_create(capsys, in_tmp, force: list[str]) -> None:
    before = _user_directory(in_tmp)
    one_line_error(run(capsys, "scenario", "generate", "--scenario", "small", "--out", ".", "--quiet", *force),
                   str(in_tmp), "srem did not write")
    assert _tree(in_tmp) == before


def test_generate_onto_an_existing_file_is_one_line(capsys, in_tmp) -> None:
    (in_tmp / "data").write_text("mine\n")
    one_line_error(run(capsys, "scenario", "generate", "--scenario", "small", "--out", "data", "--force", "--quiet"),
                   str(in_tmp / "data"), "not a directory")
    assert (in_tmp / "data").read_text() == "mine\n"


def test_generate_force_replaces_only_its_own_earlier_dataset(capsys, in_tmp) -> None:
    status, _, err = run(capsys, "scenario", "generate", "--scenario", "small", "--out", "d", "--quiet")
    assert status == 0, err
    first = _tree(in_tmp / "d")
    one_line_error(run(capsys, "scenario", "generate", "--scenario", "small", "--out", "d", "--seed", "2", "--quiet"),
                   str(in_tmp / "d"), "--force")
    assert _tree(in_tmp / "d") == first
    status, out, err = run(capsys, "scenario", "generate", "--scenario", "small", "--out", "d", "--seed", "2", "--force",
                           "--quiet", "--json")
    assert status == 0 and json.loads(out)["seed"] == 2, err
    assert [p.name for p in in_tmp.iterdir()] == ["d"], "no staging folder or old dataset left beside it"
    experiment = in_tmp / "fig6"
    experiment.mkdir()
    (experiment / ".srem-output").write_text("experiment fig6\n")
    (experiment / "fig6.csv").write_text("a,b\n")
    one_line_error(run(capsys, "scenario", "generate", "--scenario", "small", "--out", "fig6", "--force", "--quiet"),
                   "`srem experiment fig6`")
    assert (experiment / "fig6.csv").read_text() == "a,b\n"


def test_testbed_run_force_never_deletes_a_directory_it_did_not_create(capsys, in_tmp) -> None:
    """--out with --force used to be emptied before anything else (shutil.rmtree) whatever it held."""
    attach = in_tmp / "net"
    attach.mkdir()
    (attach / "testbed.json").write_text("{}")
    before = _user_directory(in_tmp / "mine")
    one_line_error(run(capsys, "testbed", "run", "--attach", str(attach), "--scenario", "small", "--policy", "static", "--out", "mine",
                       "--force", "--quiet"), str(in_tmp / "mine"), "srem did not write")
    assert _tree(in_tmp / "mine") == before


def test_topology_export_to_a_directory_is_one_line(capsys, in_tmp) -> None:
    (in_tmp / "dir").mkdir()
    one_line_error(run(capsys, "topology", "export", "paper", "--out", "dir"), "dir", "is a directory")


def test_topology_export_never_overwrites_a_file_without_force(capsys, in_tmp) -> None:
    (in_tmp / "t.json").write_text("mine\n")
    one_line_error(run(capsys, "topology", "export", "paper", "--out", "t.json"), "t.json", "--force")
    assert (in_tmp / "t.json").read_text() == "mine\n"
    assert run(capsys, "topology", "export", "paper", "--out", "t.json", "--force")[0] == 0
    assert len(json.loads((in_tmp / "t.json").read_text())["switches"]) == 10
    assert sorted(p.name for p in in_tmp.iterdir()) == ["t.json"]


def test_sigterm_cleans_staging_and_keeps_the_old_output(tmp_path: Path) -> None:
    """SIGTERM mid-run: exit 143 with one line, no staging folder left, the earlier dataset whole."""
    old = tmp_path / "d"
    assert cli.main(["scenario", "generate", "--scenario", "small", "--out", str(old), "--quiet"]) == 0
    before = _tree(old)
    slow = yaml.safe_load(load_scenario("small").to_yaml())
    slow["dataset"].update(train=10_000, test=10_000)  # about a minute of drawing: far longer than the signal takes to arrive
    (tmp_path / "slow.yaml").write_text(yaml.safe_dump(slow))
    proc = subprocess.Popen([sys.executable, "-m", "controller", "scenario", "generate", "--scenario", str(tmp_path / "slow.yaml"),
                             "--out", str(old), "--force", "--quiet"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        while not any(".srem-staging-" in p.name for p in tmp_path.iterdir()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no staging folder appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 143 and err.strip() == "srem: terminated", err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "slow.yaml"]
    assert _tree(old) == before


def test_train_ddqn_cm_refuses_a_variant(capsys, in_tmp) -> None:
    one_line_error(run(capsys, "train", "--agent", "ddqn-cm", "--variant", "hybrid", "--scenario", "small", "--episodes", "1",
                       "--quiet"), "--variant", "ddqn-cm")
    assert not any(in_tmp.iterdir())


def test_train_resume_with_force_is_refused(capsys, in_tmp, small_checkpoint) -> None:
    ck = in_tmp / "p.pt"
    shutil.copy(small_checkpoint, ck)
    one_line_error(run(capsys, "train", "--scenario", "small", "--out", str(ck), "--resume", "--force", "--episodes", "3",
                       "--quiet"), "--resume", "--force")
    assert ck.read_bytes() == small_checkpoint.read_bytes()


def test_train_resume_to_fewer_episodes_than_done_is_refused(capsys, in_tmp, small_checkpoint) -> None:
    ck = in_tmp / "p.pt"
    shutil.copy(small_checkpoint, ck)  # 2 episodes done
    one_line_error(run(capsys, "train", "--scenario", "small", "--out", str(ck), "--resume", "--episodes", "1", "--quiet"),
                   "--episodes", "2 episodes")
    assert ck.read_bytes() == small_checkpoint.read_bytes()


def test_train_help_states_each_agents_real_defaults(capsys) -> None:
    from controller.policies.ddqn_cm import ddqn_cm_config
    from controller.rl.agent import TrainConfig

    status, out, _ = run(capsys, "train", "--help")
    assert status == 0
    text = " ".join(out.split())
    srem, ddqn = TrainConfig(), ddqn_cm_config()
    assert f"default {srem.discount:g} for srem, {ddqn.discount:g} for ddqn-cm" in text
    assert srem.learning_rate == ddqn.learning_rate and f"default {srem.learning_rate:g} for both agents" in text
    assert srem.episodes == ddqn.episodes and f"default {srem.episodes}" in text


def test_testbed_run_help_states_the_loops_real_defaults(capsys) -> None:
    """The flags default to None and the loop's settings apply: the help must say what those are."""
    from controller.testbed.loop import LoopSettings

    status, out, _ = run(capsys, "testbed", "run", "--help")
    assert status == 0
    text = " ".join(out.split())
    defaults = LoopSettings()
    assert f"probes per second per chain (default {defaults.probe_pps:g})" in text
    assert f"sets the scale factor (default {defaults.budget_pps:g})" in text
    assert f"1..2**128-1 (default {defaults.election_id})" in text and defaults.role == ""


def test_switches_listening_off_loopback_need_tls(tmp_path) -> None:
    """Issue 20, finding 7: P4Runtime plaintext only on loopback."""
    from controller.errors import SremError
    from controller.model.topology import load_topology

    parser = cli.build_parser()
    topology = load_topology("paper")
    base = ["testbed", "serve", "--topology", "paper", "--run-dir", str(tmp_path / "net")]
    with pytest.raises(SremError, match="switches listening on 0.0.0.0 need TLS .*: give --tls-dir") as err:
        cli._testbed_options(parser.parse_args([*base, "--grpc-host", "0.0.0.0"]), topology)
    assert err.value.where == "--grpc-host"
    options = cli._testbed_options(parser.parse_args([*base, "--grpc-host", "0.0.0.0", "--tls-dir", str(tmp_path / "pki")]),
                                   topology)
    assert options.tls_dir == tmp_path / "pki"
    assert cli._testbed_options(parser.parse_args(base), topology).tls_dir is None
