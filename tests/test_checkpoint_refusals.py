"""Issue 20, findings 9 and 10: a bad policy spec, checkpoint or placement file is refused in one line
naming it (`srem: error: WHERE: WHAT`, exit 2), nothing written, no traceback and no huge allocation;
and `srem:` and `ddqn-cm:` each refuse the other's checkpoints, old ones included."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from controller import cli
from controller.errors import SremError
from controller.model.dataset import SUBSTRATE_STREAM, Dataset
from controller.model.scenario import load_scenario
from controller.model.substrate import Substrate, draw_substrate
from controller.model.workload import cheapest_server_placement
from controller.policies import make_policy
from controller.policies.ddqn_cm import SHIPPED as SHIPPED_DDQN_CM
from controller.policies.ddqn_cm import ddqn_cm_config, ddqn_cm_reward
from controller.policies.fixed import placement_document
from controller.policies.srem import SHIPPED as SHIPPED_SREM
from controller.rl.agent import MAX_HIDDEN, TrainConfig
from controller.rl.checkpoint import ADDED_LATER
from controller.rl.network import PlacementQNetwork
from controller.rl.training import train

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def checkpoints(small_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny checkpoint of each agent on the `small` substrate."""
    out = tmp_path_factory.mktemp("checkpoints")
    train(small_dataset, TrainConfig(episodes=2, hidden=8), checkpoint=out / "srem.pt", progress=False)
    train(small_dataset, ddqn_cm_config(episodes=2, hidden=8), checkpoint=out / "ddqn-cm.pt", reward_fn=ddqn_cm_reward,
          progress=False)
    return {"srem": out / "srem.pt", "ddqn-cm": out / "ddqn-cm.pt"}


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory: whatever a refused command would write by default lands here."""
    here = tmp_path / "cwd"
    here.mkdir()
    monkeypatch.chdir(here)
    return here


def tampered(source: Path, out: Path, change: Callable[[Doc], None]) -> Path:
    doc = torch.load(source, map_location="cpu", weights_only=True)
    change(doc)
    torch.save(doc, out)
    return out


def refused(capsys: pytest.CaptureFixture[str], dataset: Dataset, cwd: Path, spec: str, where: str, *fragments: str) -> str:
    """`srem evaluate --policy SPEC` exits 2 with one line `srem: error: WHERE: ...` holding every fragment, and
    writes nothing (neither the CSV asked for nor anything in the working directory)."""
    csv = cwd.parent / "out.csv"
    status = cli.main(["evaluate", "--data", str(dataset.path), "--policy", spec, "--limit", "1", "--quiet",
                       "--csv", str(csv)])
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"srem: error: {where}: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert out == "" and not csv.exists() and list(cwd.iterdir()) == []
    return lines[0]


# --- finding 9: a policy spec ---------------------------------------------------------------------

@pytest.mark.parametrize("seed", ["-1", "1" * 5000])
def test_a_random_seed_that_is_not_a_non_negative_integer_is_refused(capsys, small_dataset, cwd, seed):
    line = refused(capsys, small_dataset, cwd, f"random:{seed}", "--policy", "non-negative integer seed")
    assert len(line) < 200  # a 5,000-digit seed is not echoed whole


# --- finding 9: checkpoints of the right format with bad content -----------------------------------

def _set(section: str, key: str, value: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        doc[section][key] = value
    return change


def _drop(section: str | None, key: str) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        (doc[section] if section else doc).pop(key)
    return change


def _index_past_the_end(doc: Doc) -> None:
    doc["state_dict"]["index"][0, 0] = 10**6


def _nan_weight(doc: Doc) -> None:
    doc["state_dict"]["b2"][0] = float("nan")


@pytest.mark.parametrize("change, key, fragment", [
    (_set("state_dict", "w2", torch.zeros(3, 8)), "state_dict.w2", "3x8 float32, this network's is"),
    (_drop("state_dict", "b1"), "state_dict.b1", "missing"),
    (_set("state_dict", "extra", torch.zeros(1)), "state_dict.extra", "unknown entry"),
    (_drop(None, "state_dict"), "state_dict", "missing"),
    (_drop(None, "config"), "config", "no config object"),
    (_drop("config", "hidden"), "config.hidden", "missing"),
    (_set("config", "momentum", 0.9), "config.momentum", "unknown key"),
    (_set("config", "variant", "turbo"), "config.variant", "'hybrid', 'static', 'dynamic' or 'none'"),
    (_set("config", "host_kinds", ["SERVER", "GPU"]), "config.host_kinds[1]", "'SERVER', 'LM' or 'EM'"),
    (_set("config", "discount", float("nan")), "config.discount", "finite"),
    (_index_past_the_end, "state_dict.index", "not the one this substrate and configuration give"),
    (_set("state_dict", "mask", None), "state_dict.mask", "not a tensor"),
    (_nan_weight, "state_dict.b2", "NaN or infinite"),
], ids=["tensor-shape", "missing-tensor", "unknown-tensor", "no-state-dict", "no-config", "missing-config-key",
        "unknown-config-key", "variant", "host-kind", "nan-discount", "index-out-of-range", "mask-not-a-tensor",
        "nan-weight"])
def test_a_checkpoint_with_bad_content_is_refused_in_one_line(capsys, small_dataset, checkpoints, cwd, change, key, fragment):
    bad = tampered(checkpoints["srem"], cwd.parent / "bad.pt", change)
    refused(capsys, small_dataset, cwd, f"srem:{bad}", f"{bad}: {key}", fragment)


def test_a_huge_hidden_width_is_refused_before_any_network_is_built(capsys, small_dataset, checkpoints, cwd, monkeypatch):
    """hidden = 2**20 would make 24 x 848 x 2**20 weights (85 GB) on `small`: refused from the bound alone."""
    def never(*_: object, **__: object) -> None:
        raise AssertionError("a network was built")

    monkeypatch.setattr(PlacementQNetwork, "__init__", never)
    bad = tampered(checkpoints["srem"], cwd.parent / "wide.pt", _set("config", "hidden", 2**20))
    refused(capsys, small_dataset, cwd, f"srem:{bad}", f"{bad}: config.hidden", f"less than or equal to {MAX_HIDDEN}")


def test_resuming_a_checkpoint_whose_target_network_is_damaged_is_refused(capsys, small_dataset, checkpoints, cwd):
    """The target network is checked like the deployed one: `srem train --resume` refuses it before training."""
    bad = tampered(checkpoints["srem"], cwd.parent / "resume.pt", _set("target", "w1", torch.zeros(2, 2)))
    before = bad.read_bytes()
    status = cli.main(["train", "--data", str(small_dataset.path), "--out", str(bad), "--resume", "--quiet"])
    _, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2 and len(lines) == 1 and lines[0].startswith(f"srem: error: {bad}: target.w1: 2x2 float32"), err
    assert bad.read_bytes() == before and list(cwd.iterdir()) == []


# --- finding 9: a placement file (fixed:FILE.json) with values of the wrong type ---------------------

@pytest.fixture
def placement(small_dataset: Dataset) -> Doc:
    substrate = small_dataset.substrate
    return placement_document(substrate, "small", cheapest_server_placement(substrate))


def test_a_placement_file_with_a_list_for_a_host_is_refused(capsys, small_dataset, cwd, placement):
    first = next(iter(placement["placement"]))
    placement["placement"][first] = [placement["placement"][first]]
    path = cwd.parent / "listed.json"
    path.write_text(json.dumps(placement))
    refused(capsys, small_dataset, cwd, f"fixed:{path}", f"{path}: placement.{first}", "expected a host's name, got a list")


def test_a_placement_file_nested_past_the_parser_s_stack_is_refused(capsys, small_dataset, cwd, placement):
    path = cwd.parent / "deep.json"
    path.write_text(json.dumps(placement)[:-1] + ', "note": ' + "[" * 100_000 + "]" * 100_000 + "}")
    refused(capsys, small_dataset, cwd, f"fixed:{path}", str(path), "nested too deep")


# --- finding 10: srem: and ddqn-cm: take only their own agent's checkpoints --------------------------

@pytest.mark.parametrize("policy, written_by", [("srem", "ddqn-cm"), ("ddqn-cm", "srem")])
def test_each_trained_policy_refuses_the_other_agent_s_checkpoint(capsys, small_dataset, checkpoints, cwd, policy, written_by):
    path = checkpoints[written_by]
    refused(capsys, small_dataset, cwd, f"{policy}:{path}", str(path), f"a {written_by} checkpoint",
            f"--policy {written_by}:{path}")


def _as_before_the_agent_was_recorded(doc: Doc) -> None:
    """A checkpoint as the trainer wrote it before issue 19 and 20 (the shipped ones are such)."""
    doc["config"] = {k: v for k, v in doc["config"].items() if k not in ADDED_LATER}


@pytest.mark.parametrize("policy, written_by", [("srem", "ddqn-cm"), ("ddqn-cm", "srem")])
def test_checkpoints_that_do_not_record_the_agent_are_told_apart_by_their_training(
        capsys, small_dataset, checkpoints, cwd, policy, written_by):
    old = tampered(checkpoints[written_by], cwd.parent / "old.pt", _as_before_the_agent_was_recorded)
    own = make_policy(f"{written_by}:{old}")
    own.bind(small_dataset.substrate)
    assert own.agent.config.agent == written_by  # type: ignore[attr-defined]
    refused(capsys, small_dataset, cwd, f"{policy}:{old}", str(old), f"a {written_by} checkpoint")


@pytest.fixture(scope="module")
def paper_substrate() -> Substrate:
    """The `paper` substrate the shipped checkpoints were trained on, drawn without its workloads."""
    scenario = load_scenario("paper")
    return Substrate(draw_substrate(scenario, np.random.default_rng([scenario.spec.dataset.seed, SUBSTRATE_STREAM])))


def test_the_shipped_checkpoints_load_under_their_own_policy_only(paper_substrate):
    for policy, path, other in (("srem", SHIPPED_SREM, "ddqn-cm"), ("ddqn-cm", SHIPPED_DDQN_CM, "srem")):
        own = make_policy(policy)
        own.bind(paper_substrate)
        assert own.agent.config.agent == policy  # type: ignore[attr-defined]
        with pytest.raises(SremError, match=f"a {policy} checkpoint") as err:
            make_policy(f"{other}:{path}").bind(paper_substrate)
        assert err.value.where == str(path)
