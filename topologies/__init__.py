"""Fat-tree builders and the committed topology files that both the simulator and the Mininet testbed read.

A topology file is JSON (docs/formats.md, "Topology file"): `switches`, `servers` and `links`,
each link with its two ends, bandwidth and propagation delay. Regenerate the committed files
with `python -m topologies`.
"""

from __future__ import annotations

from pathlib import Path

TOPOLOGY_DIR = Path(__file__).resolve().parent


def builtin_names() -> list[str]:
    """Names of the committed topology files, e.g. `paper`, `fat-tree-k4`."""
    return sorted(p.stem for p in TOPOLOGY_DIR.glob("*.json"))


def builtin_path(name: str) -> Path:
    return TOPOLOGY_DIR / f"{name}.json"
