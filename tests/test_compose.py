"""docker-compose.yml for real: the file is valid for compose v1 and the compose specification, its services
are the topology's, their privileges are narrow, and the stack runs the live testbed, survives a killed memory
server, a killed EMAC and a killed controller, answers the probe service, and leaves nothing behind.

The file checks need docker-compose (compose v1, Debian's package) or nothing; the stack test needs a Docker
engine that answers and what scripts/prepare-images.sh builds the images from here (a local BMv2 and the torch
CPU wheel; on an ordinary Docker host `docker-compose build` pulls the bases instead). Each test skips naming
what is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from controller.dataplane.layout import Layout
from controller.model.topology import load_topology
from controller.testbed.network import emac_interface

pytestmark = pytest.mark.compose

ROOT = Path(__file__).resolve().parents[1]
SPEC = Path(__file__).with_name("data") / "compose-spec.json"
"""The compose specification's JSON schema, from github.com/compose-spec/compose-spec (Apache-2.0), schema/
compose-spec.json at commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6."""
TOPOLOGY = "paper"
LONG_RUNNING = ("network", "emac", "controller")
UP_SECONDS = 300
"""Bound on `up` until every service is healthy: about 20 s here; the bound only stops a hung stack."""
RUN_SECONDS = 300
"""Bound on the controller's steps once healthy (4 steps of 8 s here)."""


def _file() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _compose_missing() -> str:
    return "" if shutil.which("docker-compose") else "needs docker-compose (Debian: apt-get install docker-compose)"


def _compose(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker-compose", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def _flag_values(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == flag]


def test_compose_v1_accepts_the_file_and_refuses_a_broken_one(tmp_path: Path) -> None:
    if reason := _compose_missing():
        pytest.skip(reason)
    checked = _compose("config", "-q")
    assert checked.returncode == 0, checked.stderr
    broken = _file()
    broken["services"]["network"]["capabilities_wanted"] = ["ALL"]
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    refused = subprocess.run(["docker-compose", "-f", str(path), "config", "-q"], capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0
    assert "capabilities_wanted" in refused.stderr


def test_the_file_follows_the_compose_specification() -> None:
    validator = jsonschema.Draft7Validator(json.loads(SPEC.read_text()))  # the schema's own $schema, draft 7
    validator.validate(_file())
    broken = _file()
    broken["services"]["emac"]["depends_on"]["network"]["condition"] = "service_happy"
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_the_services_are_the_topologys() -> None:
    """One memory server per rack server, the network told where each is, the EMAC on every switch's EMAC end
    with each memory server under the id the switches' RDMA tables use."""
    layout = Layout(load_topology(TOPOLOGY).spec)
    services = _file()["services"]
    memory = {name.removeprefix("memory-") for name in services if name.startswith("memory-")}
    assert memory == set(layout.servers)
    network = services["network"]["command"]
    assert _flag_values(network, "--topology") == [TOPOLOGY]
    assert sorted(_flag_values(network, "--memory-server")) == sorted(f"{s}=memory-{s}:7000" for s in layout.servers)
    emac = services["emac"]["command"]
    assert sorted(_flag_values(emac, "--interface")) == sorted(emac_interface(sw.switch_id) for sw in layout.switches.values())
    assert sorted(_flag_values(emac, "--memory-server")) == sorted(f"{s.server_id}=memory-{s.name}:7000"
                                                                   for s in layout.servers.values())
    assert services["emac"]["network_mode"] == "service:network"
    for needed in ["network", "emac", *(f"memory-{s}" for s in layout.servers)]:
        assert services["controller"]["depends_on"][needed] == {"condition": "service_healthy"}


def test_privileges_are_narrow() -> None:
    services = _file()["services"]
    for name, service in services.items():
        assert not service.get("privileged", False), name
        assert "user" not in service, f"{name}: the image's user is the one meant"
    assert services["network"]["cap_drop"] == ["SYS_RESOURCE"]
    assert services["emac"]["cap_drop"] == ["ALL"] and services["emac"]["cap_add"] == ["NET_RAW"]
    for name in ("controller", "probe", "memory-m1"):
        assert services[name]["cap_drop"] == ["ALL"], name
        assert "cap_add" not in services[name], name
    for name in (*LONG_RUNNING, "memory-m1"):
        assert services[name]["init"] is True, name
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    assert services["probe"]["profiles"] == ["tools"]
    assert services["p4c"]["profiles"] == ["build"]
    keys = services["keys"]
    assert keys["cap_drop"] == ["ALL"] and keys["cap_add"] == ["CHOWN"], "chown only, to give each key file to its reader"
    assert keys["network_mode"] == "none" and keys["read_only"] is True


def test_the_control_key_is_made_at_up_and_reaches_only_the_memory_servers_and_the_controller() -> None:
    """Finding 6: the memory servers took ALLOC and FREE from any container. The key is made by the one-shot `keys`
    service into a named volume (never a file of the repository or of ./results, which the network shares), kept by a
    later `up`, and read by the memory servers (--key-file) and the controller (SREM_RDMA_KEY_FILE) only."""
    config = _file()
    services = config["services"]
    assert set(config["volumes"]) == {"keys", "p4runtime-pki"}
    argv = services["keys"]["command"]
    assert argv[:2] == ["keygen", "--keep"] and services["keys"]["volumes"] == ["keys:/srem/keys"]
    owners = dict(reversed(target.rsplit(":", 1)) for target in argv[2:])
    emulator_user = next(line.split()[1] for line in (ROOT / "docker/emulator.Dockerfile").read_text().splitlines()
                         if line.startswith("USER "))
    controller_users = [line for line in (ROOT / "docker/controller.Dockerfile").read_text().splitlines() if line.startswith("USER ")]
    assert owners == {emulator_user: "/srem/keys/memory.key", "0": "/srem/keys/controller.key"} and not controller_users, \
        "each key file belongs to the user of the image that reads it"
    layout = Layout(load_topology(TOPOLOGY).spec)
    for server in layout.servers:
        memory = services[f"memory-{server}"]
        assert _flag_values(memory["command"], "--key-file") == ["/srem/keys/memory.key"], server
        assert memory["volumes"] == ["keys:/srem/keys:ro"], server
        assert memory["depends_on"]["keys"] == {"condition": "service_completed_successfully"}, server
    controller = services["controller"]
    assert controller["environment"]["SREM_RDMA_KEY_FILE"] == "/srem/keys/controller.key"
    assert "keys:/srem/keys:ro" in controller["volumes"]
    assert controller["depends_on"]["keys"] == {"condition": "service_completed_successfully"}
    readers = {name for name, service in services.items() if any(str(v).startswith("keys:") for v in service.get("volumes", []))}
    assert readers == {"keys", "controller", *(f"memory-{s}" for s in layout.servers)}, "the EMAC reads with rkeys only"


def test_p4runtime_is_tls_between_containers_and_only_the_controller_holds_a_client_certificate() -> None:
    """Finding 7: P4Runtime was plaintext to network:50001 from every container. The network makes the CA and the
    certificates at each start into the `p4runtime-pki` volume; only the controller mounts it, read-only."""
    services = _file()["services"]
    network, controller = services["network"], services["controller"]
    assert _flag_values(network["command"], "--grpc-host") == ["0.0.0.0"]
    assert _flag_values(network["command"], "--tls-dir") == ["/srem/pki"] and "p4runtime-pki:/srem/pki" in network["volumes"]
    assert "p4runtime-pki:/srem/pki:ro" in controller["volumes"]
    holders = {name for name, service in services.items() if any(str(v).startswith("p4runtime-pki:") for v in service.get("volumes", []))}
    assert holders == {"network", "controller"}


def test_the_network_image_has_every_package_its_modules_import() -> None:
    """The network image installs a few pinned packages, not requirements.txt: the testbed's network side must not
    reach for the controller's (gRPC, P4Runtime, torch), and what it does import (cryptography, for the certificates)
    must be in the image."""
    code = ("import sys\nbefore = set(sys.modules)  # site's own (a namespace package's .pth makes `google` one)\n"
            "import controller.testbed.network, controller.testbed.holder, controller.testbed.health\n"
            "print(' '.join(sorted({m.split('.')[0] for m in set(sys.modules) - before})))")
    done = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    imported = set(done.stdout.split())
    assert not imported & {"grpc", "p4", "google", "torch", "highspy", "matplotlib", "gymnasium"}
    installed = (ROOT / "docker/network.Dockerfile").read_text().split("pip install -q -c /tmp/requirements.txt", 1)[1]
    installed = installed.split("&&", 1)[0].replace("\\", " ").split()
    for package in ("cryptography", "prometheus_client", "pydantic", "yaml", "numpy"):
        if package in imported:
            assert {"yaml": "PyYAML"}.get(package, package) in installed, package


# The stack


def _stack_missing() -> str:
    if reason := _compose_missing():
        return reason
    if shutil.which("docker") is None:
        return "needs the docker client (Debian: apt-get install docker.io)"
    if subprocess.run(["docker", "info"], capture_output=True, timeout=60).returncode != 0:
        return "needs a Docker engine that answers ('docker info' fails: start dockerd)"
    if shutil.which("simple_switch_grpc") is None and not _image("srem-bmv2:local"):
        return "needs BMv2 installed here (scripts/prepare-images.sh makes its image from it; no registry answers)"
    if not list(Path(os.environ.get("SREM_WHEELS", "/opt/wheels")).glob("torch-*+cpu-*.whl")):
        return "needs the torch CPU wheel in /opt/wheels (SREM_WHEELS) for the controller image"
    if not _image("srem-base:bookworm") and shutil.which("debootstrap") is None:
        return "needs debootstrap to make the base image (apt-get install debootstrap)"
    return ""


def _image(name: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", name], capture_output=True, timeout=60).returncode == 0


def _containers(project: str) -> dict[str, dict[str, Any]]:
    """Service -> `docker inspect` of its container."""
    ids = subprocess.run(["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"],
                         capture_output=True, text=True, timeout=60).stdout.split()
    if not ids:
        return {}
    inspected = json.loads(subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, timeout=60).stdout)
    return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in inspected}


def _health(container: dict[str, Any]) -> str:
    return container["State"].get("Health", {}).get("Status", "none")


def _wait(what: str, done: Any, timeout_s: float, step_s: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := done()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s:g} s"
        time.sleep(step_s)
    return value


def _crash(container: dict[str, Any]) -> None:
    """Kill the container's first process as a crash would (SIGKILL from outside, not `docker kill`, which
    Docker counts as a stop on purpose and does not restart)."""
    os.kill(int(container["State"]["Pid"]), 9)


@pytest.mark.slow
def test_the_stack_runs_the_testbed_survives_faults_and_leaves_nothing(tmp_path: Path) -> None:
    if reason := _stack_missing():
        pytest.skip(reason)
    built = subprocess.run(["bash", "scripts/prepare-images.sh"], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert built.returncode == 0, built.stdout[-2000:] + built.stderr[-2000:]
    project = f"sremtest{os.getpid()}"
    results = tmp_path / "results"
    env = {"SREM_RESULTS": str(results), "SREM_SCENARIO": "small", "SREM_POLICY": "greedy-slack", "SREM_STEPS": "4",
           "SREM_STEP_SECONDS": "8"}
    run = results / "compose" / "run"
    layout = Layout(load_topology(TOPOLOGY).spec)
    try:
        up = _compose("-p", project, "up", "-d", "--no-build", env=env, timeout=UP_SECONDS)
        assert up.returncode == 0, up.stderr[-3000:]
        containers = _wait("every service healthy", lambda: (c := _containers(project)) and len(c) == 4 + len(layout.servers)
                           and all(_health(x) == "healthy" for name, x in c.items() if name != "keys") and c, UP_SECONDS)
        assert containers["keys"]["State"]["ExitCode"] == 0, "the control key was made"
        for name in ("emac", "memory-m1"):
            assert containers[name]["Config"]["User"] == "10001", f"{name} runs as an unprivileged user"

        # The controller pushed the initial configuration and the first step's (greedy-slack puts tables in EM).
        first = json.loads(_wait("the first step", lambda: (run / "step-0.json").exists() and (run / "step-0.json").read_text(),
                                 RUN_SECONDS))
        assert first["written"]["switch_updates"] > 0 and first["written"]["em_regions"] > 0
        switch = next(host.removeprefix("em:") for host in first["placement"].values() if host.startswith("em:"))
        victim = layout.memory_server(switch).name
        time.sleep(2.0)  # every chain delivers probes in the first step before the faults (10 per chain at 5/s)
        _crash(containers[f"memory-{victim}"])
        time.sleep(1.0)
        _crash(containers["emac"])
        # The controller crashes once the second step is deployed; restarted, it takes over and finishes the day.
        _wait("the second step", lambda: (run / "step-1.json").exists(), RUN_SECONDS)
        _crash(_containers(project)["controller"])

        summary = json.loads(_wait("the run's summary", lambda: (run / "summary.json").exists() and (run / "summary.json").read_text(),
                                   RUN_SECONDS))
        steps = summary["steps"]
        assert [s["hour"] for s in steps] == [10, 12, 14, 16]
        notes = [note for s in steps for note in s["notes"]]
        took_over = [s["step"] for s in steps if any(n.startswith("a restarted controller took over") for n in s["notes"])]
        assert took_over == [2], notes
        recovered = next(s for s in steps if any(f"memory server of {victim} restarted empty" in n for n in s["notes"]))
        assert recovered["step"] >= 1
        assert any("EMAC" in n for n in notes)
        after = _containers(project)
        for name in (f"memory-{victim}", "emac", "controller"):
            assert after[name]["RestartCount"] >= 1, f"{name} was restarted by its restart policy"
            assert _health(after[name]) == "healthy", name
        # Probes cross every chain the model carried, in every step. After the recovery the EM chains are served
        # again: were they not, their probes (8 of 45 chains here) would be lost; BMv2 on 2 shared cores may drop a few.
        for step in steps:
            for chain, stats in step["chains"].items():
                assert stats["sent"] > stats["lost"], f"{step['hour']}:00 chain {chain}: {stats}"
        assert steps[-1]["probes_lost"] < steps[-1]["probes_sent"] // 10, steps[-1]

        probe = _compose("-p", project, "run", "--rm", "probe", env=env, timeout=120)
        assert probe.returncode == 0, probe.stderr[-2000:]
        rows = [line.split() for line in probe.stdout.splitlines() if line.strip()[:1].isdigit()]
        carried = set(steps[-1]["chains"])
        assert carried <= {row[0] for row in rows}
        assert all(int(row[1]) > 0 for row in rows if row[0] in carried)
    finally:
        down = _compose("-p", project, "down", "-v", "--remove-orphans", env=env, timeout=300)
    assert down.returncode == 0, down.stderr
    label = f"label=com.docker.compose.project={project}"
    for kind in ("container", "network", "volume"):
        left = subprocess.run(["docker", kind, "ls", "-q", *(["-a"] if kind == "container" else []), "--filter", label],
                              capture_output=True, text=True, timeout=60)
        assert left.stdout.strip() == "", f"{kind}s of {project} left: {left.stdout}"
