"""What the testbed needs of the machine, checked without importing Mininet (it may be absent)."""

from __future__ import annotations

import importlib.util
import os
import shutil

TOOLS = {
    "simple_switch_grpc": "BMv2: p4lang/behavioral-model, or the p4lang/p4c image",
    "mnexec": "Debian's mininet package: scripts/setup.sh",
    "ethtool": "Debian's ethtool package, with which Mininet turns checksum offload off: scripts/setup.sh",
    "tc": "iproute2",
    "ip": "iproute2",
    "unshare": "util-linux",
}

def missing() -> list[str]:
    """What this machine lacks for the testbed, each naming where to get it; empty when it can run."""
    lacking = [f"{tool} (from {where})" for tool, where in TOOLS.items() if shutil.which(tool) is None]
    if importlib.util.find_spec("mininet") is None:
        lacking.append("the mininet Python package in this environment (scripts/setup.sh links Debian's into .venv)")
    if os.geteuid() != 0:
        lacking.append("root (namespaces, veths, raw sockets)")
    return lacking
