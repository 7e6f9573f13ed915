"""Trained policies on disk: the network's weights with the scenario, substrate and configuration they belong to.

A checkpoint is a torch file holding plain data only (loaded with weights_only=True): `format`,
`version`, `scenario`, `scenario_hash`, `substrate_hash`, `config` (the training configuration),
`episode` (episodes done), `state_dict` (the network), and for resuming `optimizer`, `target` and
`rewards` (one per episode); a deployable checkpoint (`deployable`) leaves out `optimizer` and
`target`, half the file, and cannot be resumed. Loading checks it belongs to the substrate it is to run on (the
network, its resources and the VNF instances: what the network's inputs and outputs mean), and,
to resume training, to the dataset's scenario too; that its `config` holds every key a trainer
writes, each within its bounds (agent.py); that its weights (`state_dict`, and `target` when there)
are what the networks of that configuration on that substrate load, before any is built; and, to
deploy (`load_agent`), that the agent asked for wrote it. Each refusal is one line naming the file.

`config.agent` (which agent trained it: `srem` or `ddqn-cm`) and the keys of issue 19 (`features`,
`teacher`, `demonstrations`, `pretrain_updates`, `margin`, `margin_weight`) came after the first
checkpoints of version 1, the shipped ones among them: missing, they read as their defaults, and the
agent as `ddqn-cm` when `config.double_q` is set (only DDQN-CM's training sets it), else `srem`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch

from controller.errors import SremError
from controller.model.dataset import Dataset
from controller.model.substrate import Substrate, check_made_for, substrate_hash
from controller.rl.agent import Agent, AgentName, TrainConfig, check_weights, parse_config

FORMAT = "srem-policy"
VERSION = 1
ADDED_LATER = frozenset({"agent", "features", "teacher", "demonstrations", "pretrain_updates", "margin", "margin_weight"})
"""Config keys that checkpoints written before them lack (see above); every other key is required."""
REQUIRED = tuple(f.name for f in fields(TrainConfig) if f.name not in ADDED_LATER)


def save_checkpoint(path: Path, dataset: Dataset, payload: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint."""
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "scenario": dataset.manifest.scenario,
        "scenario_hash": dataset.manifest.scenario_hash,
        "substrate_hash": substrate_hash(dataset.substrate),
        **payload,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(doc, tmp)
    os.replace(tmp, path)


def _read(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SremError("no such checkpoint file", where=path) from None
    except Exception as exc:  # torch raises many types for a corrupt file; all mean the same to the user
        raise SremError(f"not a readable checkpoint ({type(exc).__name__})", where=path) from None


def _load(path: Path, substrate: Substrate, scenario_hash: str | None) -> tuple[dict[str, Any], TrainConfig]:
    doc = check_made_for(_read(path), substrate, FORMAT, VERSION, "checkpoint", path)
    if scenario_hash is not None and doc.get("scenario_hash") != scenario_hash:
        raise SremError(f"checkpoint is for scenario {doc.get('scenario')} (hash {str(doc.get('scenario_hash'))[:12]}), "
                        f"the dataset's scenario hash is {scenario_hash[:12]}", where=path)
    config = read_config(doc.get("config"), path)
    for key in ("state_dict", *(("target",) if "target" in doc else ())):
        check_weights(substrate, config, doc.get(key), path, key)
    return doc, config


def read_config(data: Any, where: Path) -> TrainConfig:
    """A checkpoint's `config`, refused in one line unless it holds every key a trainer writes (those
    added later may be missing: module docstring) and no other, each within its bounds."""
    if not isinstance(data, dict):
        raise SremError("no config object (the training configuration)", where=where, key="config")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise SremError("missing", where=where, key=f"config.{missing[0]}")
    trained_by: AgentName = "ddqn-cm" if data.get("double_q") is True else "srem"
    return parse_config({"agent": trained_by, **data}, where)


def load_checkpoint(path: Path, substrate: Substrate, scenario_hash: str | None = None) -> dict[str, Any]:
    """The checkpoint's content, refused in one line unless it was trained on `substrate` (and, when
    given, on the scenario of that hash) and its `config` and weights are sound; `config` is given whole,
    keys that older checkpoints lack filled in, as the trainer writes it (so it compares with a resumed run's)."""
    doc, config = _load(path, substrate, scenario_hash)
    return {**doc, "config": {**asdict(config), "host_kinds": list(config.host_kinds)}}


def load_agent(path: Path, substrate: Substrate, agent: AgentName) -> Agent:
    """The deployed networks of a checkpoint `agent`'s training wrote for `substrate`, refused in one line
    if it is not sound (`load_checkpoint`) or another agent wrote it (its networks would run under the
    wrong name)."""
    doc, config = _load(path, substrate, None)
    if config.agent != agent:
        raise SremError(f"a {config.agent} checkpoint (written by srem train --agent {config.agent}), not {agent}'s: "
                        f"run it with --policy {config.agent}:{path}", where=path)
    deployed = Agent(substrate, config, where=path)
    deployed.net.load_state_dict(doc["state_dict"])
    return deployed


RESUME_ONLY = ("optimizer", "target")


def deployable(path: Path, out: Path) -> None:
    """Write `path` without what only resuming training needs (the optimizer's state, the target
    network): what `srem` ships in controller/policies/trained/."""
    doc = _read(path)
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SremError(f"not a {FORMAT} checkpoint", where=path)
    tmp = out.with_name(f".{out.name}.tmp")
    torch.save({k: v for k, v in doc.items() if k not in RESUME_ONLY}, tmp)
    os.replace(tmp, out)
