"""Policies by spec: built-in names, `module.path:Class[:ARG]`, and the `srem.policies` entry-point group."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from controller.errors import SremError
from controller.policies import make_policy, policy_names

ROOT = Path(__file__).resolve().parents[1]

USER_MODULE = '''
from controller.policies import Observation, Policy


class FirstEm(Policy):
    """Every instance in the EM of one switch (ARG: the switch's name; default the first switch)."""

    def __init__(self, arg=None):
        self.switch = arg

    def decide(self, obs: Observation):
        switch = self.switch or obs.substrate.switch_names[0]
        return (obs.substrate.host_index["em:" + switch],) * len(obs.placement)


class NotAPolicy:
    pass
'''


@pytest.fixture
def user_package(tmp_path: Path) -> Path:
    """An installed-looking package: its module, and dist-info metadata declaring a policy entry point."""
    (tmp_path / "my_policies.py").write_text(USER_MODULE)
    info = tmp_path / "my_policies-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-policies\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[srem.policies]\nfirst-em = my_policies:FirstEm\n")
    return tmp_path


def srem(args: list[str], path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), str(ROOT)])}
    return subprocess.run([sys.executable, "-m", "controller.cli", *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=cwd)


def test_builtin_names_are_listed_and_unknown_ones_name_the_forms() -> None:
    assert {"srem", "ddqn-cm", "lag", "random", "static", "ilp"} <= set(policy_names())
    with pytest.raises(SremError, match=r"unknown policy 'nope' \(known: .*static.*module\.path:ClassName") as err:
        make_policy("nope")
    assert err.value.where == "--policy"


def test_an_unknown_policy_s_name_is_not_echoed_whole() -> None:
    with pytest.raises(SremError, match=r"unknown policy 'xxxx") as err:
        make_policy("x" * 100_000)
    assert len(err.value.one_line()) < 400


def test_a_policy_class_by_module_path_with_its_argument(user_package: Path, monkeypatch: pytest.MonkeyPatch,
                                                        small_dataset) -> None:  # type: ignore[no-untyped-def]
    from controller.evaluation import evaluate_policy

    monkeypatch.syspath_prepend(str(user_package))
    policy = make_policy("my_policies:FirstEm:e2")
    assert policy.name == "my_policies:FirstEm" and policy.switch == "e2"  # type: ignore[attr-defined]
    report = evaluate_policy(small_dataset, policy, "test", limit=1, progress=False)
    em = small_dataset.substrate.host_index["em:e2"]
    assert report.per_hour[0].share_em == 1.0 and em > 0


@pytest.mark.parametrize("spec, message", [
    ("my_policies:Missing", "my_policies has no Policy subclass 'Missing'"),
    ("my_policies:NotAPolicy", "my_policies has no Policy subclass 'NotAPolicy'"),
    ("no_such_module.sub:Thing", "cannot import 'no_such_module.sub'"),
])
def test_bad_class_paths_fail_in_one_line(user_package: Path, monkeypatch: pytest.MonkeyPatch, spec: str, message: str) -> None:
    monkeypatch.syspath_prepend(str(user_package))
    with pytest.raises(SremError, match=message) as err:
        make_policy(spec)
    assert "\n" not in err.value.one_line()


def test_an_installed_package_adds_a_policy_by_name(user_package: Path, small_dataset, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Through the CLI in a fresh interpreter: entry points are read from the installed distributions."""
    listed = srem(["evaluate", "--help"], user_package, tmp_path)
    assert listed.returncode == 0 and "first-em" in listed.stdout
    done = srem(["evaluate", "--data", str(small_dataset.path), "--policy", "first-em:e3", "--limit", "1", "--json", "--quiet",
                 "--csv", str(tmp_path / "out.csv")], user_package, tmp_path)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["policy"] == "first-em"
    assert all(hour["share_em"] == 1.0 for hour in document["per_hour"])


def readme_policy_script() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("```python\n# my_policies.py\n") + len("```python\n")
    return text[start:text.index("```", start)]


def test_the_readme_policy_example_runs_as_it_is(paper_dataset, small_dataset, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "my_policies.py").write_text(readme_policy_script())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "my_policies.py"], capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("20:00") == 2, done.stdout  # two per-hour tables
    cli = srem(["evaluate", "--data", str(small_dataset.path), "--policy", "my_policies:AllInEm:e1", "--limit", "1",
                "--json", "--quiet", "--csv", str(tmp_path / "out.csv")], tmp_path, tmp_path)
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["per_hour"][0]["share_em"] == 1.0
