"""Trained policies on disk: the network's weights with the scenario, substrate and configuration they belong to.

A checkpoint is a torch file holding plain data only (loaded with weights_only=True): `format`,
`version`, `scenario`, `scenario_hash`, `substrate_hash`, `config` (the training configuration),
`episode` (episodes done), `state_dict` (the network), and for resuming `optimizer`, `target` and
`rewards` (one per episode). Loading checks it belongs to the dataset's scenario and substrate.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from controller.errors import SremError
from controller.model.dataset import Dataset

FORMAT = "srem-policy"
VERSION = 1


def substrate_hash(dataset: Dataset) -> str:
    return hashlib.sha256(json.dumps(dataset.substrate.to_dict(), sort_keys=True).encode()).hexdigest()


def save_checkpoint(path: Path, dataset: Dataset, payload: dict[str, Any]) -> None:
    """Write atomically: a crash mid-write leaves the previous checkpoint."""
    doc = {
        "format": FORMAT,
        "version": VERSION,
        "scenario": dataset.manifest.scenario,
        "scenario_hash": dataset.manifest.scenario_hash,
        "substrate_hash": substrate_hash(dataset),
        **payload,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(doc, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, dataset: Dataset) -> dict[str, Any]:
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise SremError("no such checkpoint file", where=path) from None
    except Exception as exc:  # torch raises many types for a corrupt file; all mean the same to the user
        raise SremError(f"not a readable checkpoint ({type(exc).__name__})", where=path) from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SremError(f"not a {FORMAT} checkpoint", where=path)
    if doc.get("version") != VERSION:
        raise SremError(f"checkpoint version {doc.get('version')!r}, this srem reads {VERSION}", where=path)
    ours, theirs = dataset.manifest.scenario_hash, doc.get("scenario_hash", "")
    if theirs != ours or doc.get("substrate_hash") != substrate_hash(dataset):
        raise SremError(
            f"checkpoint is for scenario {doc.get('scenario')} (hash {str(theirs)[:12]}, substrate {str(doc.get('substrate_hash'))[:12]}), "
            f"the dataset is scenario {dataset.manifest.scenario} (hash {ours[:12]}, substrate {substrate_hash(dataset)[:12]})",
            where=path,
        )
    return doc
