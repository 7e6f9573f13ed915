"""Trained policies on disk: the network's weights with the scenario, substrate and configuration they belong to.

A checkpoint is a torch file holding plain data only (loaded with weights_only=True): `format`,
`version`, `scenario`, `scenario_hash`, `substrate_hash`, `config` (the training configuration),
`episode` (episodes done), `state_dict` (the network), and for resuming `optimizer`, `target` and
`rewards` (one per episode); a deployable checkpoint (`deployable`) leaves out `optimizer` and
`target`, half the file, and cannot be resumed. Loading checks it belongs to the substrate it is to run on (the
network, its resources and the VNF instances: what the network's inputs and outputs mean), and,
to resume training, to the dataset's scenario too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from controller.errors import SremError
from controller.model.dataset import Dataset
from controller.model.substrate import Substrate, check_made_for, substrate_hash

FORMAT = "srem-policy"
VERSION = 1


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


def load_checkpoint(path: Path, substrate: Substrate, scenario_hash: str | None = None) -> dict[str, Any]:
    """The checkpoint's content, refused in one line unless it was trained on `substrate` (and, when
    given, on the scenario of that hash)."""
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SremError("no such checkpoint file", where=path) from None
    except Exception as exc:  # torch raises many types for a corrupt file; all mean the same to the user
        raise SremError(f"not a readable checkpoint ({type(exc).__name__})", where=path) from None
    check_made_for(doc, substrate, FORMAT, VERSION, "checkpoint", path)
    if scenario_hash is not None and doc.get("scenario_hash") != scenario_hash:
        raise SremError(f"checkpoint is for scenario {doc.get('scenario')} (hash {str(doc.get('scenario_hash'))[:12]}), "
                        f"the dataset's scenario hash is {scenario_hash[:12]}", where=path)
    return doc


RESUME_ONLY = ("optimizer", "target")


def deployable(path: Path, out: Path) -> None:
    """Write `path` without what only resuming training needs (the optimizer's state, the target
    network): what `srem` ships in controller/policies/trained/."""
    doc = torch.load(path, map_location="cpu", weights_only=True)
    if doc.get("format") != FORMAT:
        raise SremError(f"not a {FORMAT} checkpoint", where=path)
    tmp = out.with_name(f".{out.name}.tmp")
    torch.save({k: v for k, v in doc.items() if k not in RESUME_ONLY}, tmp)
    os.replace(tmp, out)
