"""docker-compose.yml for real: compose accepts the file, and the stack runs the live testbed and leaves nothing.

Needs docker-compose (compose v1, Debian's package); the run needs a Docker engine that answers and the images
built (scripts/prepare-images.sh on machines that cannot pull). Each test skips naming what is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.compose

ROOT = Path(__file__).resolve().parents[1]
IMAGE = "srem-network:local"
RUN_SECONDS = 600
"""Bound on one `up`: the run takes about 25 s here (build cached); the bound only stops a hung stack."""


def _compose_missing() -> str:
    return "" if shutil.which("docker-compose") else "needs docker-compose (Debian: apt-get install docker-compose)"


def _engine_missing() -> str:
    if shutil.which("docker") is None:
        return "needs the docker client (Debian: apt-get install docker.io)"
    info = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if info.returncode != 0:
        return "needs a Docker engine that answers ('docker info' fails: start dockerd)"
    image = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, text=True, timeout=60)
    if image.returncode != 0:
        return f"needs the image {IMAGE} (docker-compose build network; without a registry scripts/prepare-images.sh)"
    return ""


def _compose(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker-compose", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def test_compose_accepts_the_file_and_the_network_service_is_narrow() -> None:
    if reason := _compose_missing():
        pytest.skip(reason)
    checked = _compose("config", "-q")
    assert checked.returncode == 0, checked.stderr
    config = yaml.safe_load(_compose("config").stdout)
    network = config["services"]["network"]
    # Narrow capabilities, never `privileged` (runc refuses it where the bounding set lacks CAP_SYS_RESOURCE).
    assert not network.get("privileged", False)
    assert network["cap_drop"] == ["SYS_RESOURCE"]
    assert network["init"] is True
    assert config["services"]["p4c"]["profiles"] == ["build"]


def test_compose_rejects_a_broken_file(tmp_path: Path) -> None:
    """The acceptance above means something: compose refuses a service with an unknown key."""
    if reason := _compose_missing():
        pytest.skip(reason)
    broken = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    broken["services"]["network"]["capabilities_wanted"] = ["ALL"]
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    checked = subprocess.run(["docker-compose", "-f", str(path), "config", "-q"], capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode != 0
    assert "capabilities_wanted" in checked.stderr


@pytest.mark.slow
def test_stack_runs_the_testbed_and_down_leaves_nothing(tmp_path: Path) -> None:
    if reason := _compose_missing() or _engine_missing():
        pytest.skip(reason)
    project = f"sremtest{os.getpid()}"
    env = {"SREM_RESULTS": str(tmp_path)}
    try:
        up = _compose("-p", project, "up", "--no-build", "--abort-on-container-exit", "--exit-code-from", "network",
                      env=env, timeout=RUN_SECONDS)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        summary = json.loads((tmp_path / "testbed-small-wl0-static" / "summary.json").read_text())
        assert [step["hour"] for step in summary["steps"]] == [10, 12]
        for step in summary["steps"]:
            assert 0 < step["accepted"] <= step["requests"]
            assert step["probes_sent"] > 0
            # Probes cross the network: almost all arrive (BMv2 on 2 shared cores may drop a few).
            assert step["probes_lost"] < step["probes_sent"] // 10
    finally:
        down = _compose("-p", project, "down", "--volumes", "--remove-orphans", env=env)
    assert down.returncode == 0, down.stderr
    label = f"label=com.docker.compose.project={project}"
    for kind in ("container", "network", "volume"):
        left = subprocess.run(["docker", kind, "ls", "-q", *(["-a"] if kind == "container" else []),
                               "--filter", label], capture_output=True, text=True, timeout=60)
        assert left.stdout.strip() == "", f"{kind}s of {project} left: {left.stdout}"
