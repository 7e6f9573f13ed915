"""The parts the compose services run, as real processes on loopback: `python -m rdma_emulator`, the memory server's
health check, ExternalMemory.check(), the /metrics scrape, the controller's health checks, and the flags of
`srem testbed serve|run|status` that are refused before anything is built."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from em_helpers import free_port, key_file
from rdma_emulator import protocol as P
from rdma_emulator.client import RdmaClient
from rdma_emulator.processes import running, start
from rdma_emulator.protocol import Status

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def python(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=timeout_s)


def one_line(proc: subprocess.CompletedProcess[str], code: int) -> str:
    """The single stderr line of a process that exited with `code`."""
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def free_tcp_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# python -m rdma_emulator, and the memory server's health check

def test_memserver_module_answers_its_health_check_until_stopped(tmp_path: Path) -> None:
    path, _ = key_file(tmp_path)  # as compose runs it: the check READs, which needs no control key
    with running("memserver", "--listen", "127.0.0.1:0", "--key-file", str(path)) as server:
        address = str(server.ready["memserver"])
        for _ in range(3):
            ok = python("-m", "rdma_emulator.check", address)
            assert ok.returncode == 0 and ok.stderr == "", ok.stderr
    down = one_line(python("-m", "rdma_emulator.check", address), 1)
    assert down.startswith(f"memory server {address}:"), down


def test_health_checks_are_not_logged_but_other_refused_reads_are() -> None:
    with running("memserver", "--listen", "127.0.0.1:0") as server:
        address = str(server.ready["memserver"])
        for _ in range(4):
            assert python("-m", "rdma_emulator.check", address).returncode == 0

        async def read_unknown() -> int:
            client = await RdmaClient(*server.address("memserver"), timeout_s=1.0, retries=1).open()
            try:
                return (await client.post(P.read(0, 7, 0, 0, 1))).status
            finally:
                client.close()
        assert asyncio.run(read_unknown()) == Status.ACCESS_ERROR
        log = server.stop()
    refused = [line for line in log.splitlines() if "ACCESS_ERROR" in line]
    assert len(refused) == 1 and "region 7" in refused[0], log
    assert f"region {P.HEALTH_REGION}," not in log


@pytest.mark.parametrize("argv, flag", [
    (["memserver", "--listen", "nope"], "--listen"),
    (["memserver", "--loss", "1"], "--loss"),
    (["emac", "--memory-server", "x", "--listen-udp", "127.0.0.1:0"], "--memory-server"),
    (["emac", "--memory-server", "1=127.0.0.1:7000", "--memory-server", "1=127.0.0.1:7001", "--listen-udp", "127.0.0.1:0"],
     "--memory-server"),
    (["emac", "--listen-udp", "127.0.0.1:0"], "--memory-server"),
    (["memserver", "--bogus"], "rdma_emulator memserver: unrecognized arguments: --bogus"),
    (["memserver", "--listen", "0.0.0.0:0"], "--key-file: required to listen on 0.0.0.0 (not loopback)"),
    (["memserver", "--key-file", "/nonexistent/srem.key"], "--key-file: /nonexistent/srem.key: No such file"),
    (["memserver", "--quota-regions", "0"], "--quota-regions"),
    (["memserver", "--queue-mb", "0"], "--queue-mb"),
    (["emac", "--memory-server", "1=127.0.0.1:7000", "--listen-udp", "127.0.0.1:0", "--max-in-flight", "0"], "--max-in-flight"),
])
def test_bad_emulator_arguments_are_one_line_naming_the_flag(argv: list[str], flag: str) -> None:
    line = one_line(python("-m", "rdma_emulator", *argv), 2)
    assert line.startswith(f"rdma_emulator: error: {flag}"), line


def test_a_key_file_others_may_read_is_refused_in_one_line(tmp_path: Path) -> None:
    path, _ = key_file(tmp_path)
    path.chmod(0o644)
    line = one_line(python("-m", "rdma_emulator", "memserver", "--key-file", str(path)), 2)
    assert line == f"rdma_emulator: error: --key-file: {path}: mode 0644 lets others read or change it (chmod 600 it)", line


def test_keygen_writes_one_key_to_each_file_and_keeps_or_refuses_existing_ones(tmp_path: Path) -> None:
    from rdma_emulator.auth import load_key

    first, second = tmp_path / "memory.key", tmp_path / "controller.key"
    made = python("-m", "rdma_emulator", "keygen", str(first), f"{second}:{os.getuid()}")
    assert made.returncode == 0 and "wrote a new control key" in made.stderr, made.stderr
    key = load_key(first)
    assert load_key(second) == key and second.stat().st_uid == os.getuid()
    line = one_line(python("-m", "rdma_emulator", "keygen", str(first)), 2)
    assert line == f"rdma_emulator: error: keygen: {first}: exists (remove it for a new key, or keep it with --keep)", line
    second.unlink()
    kept = python("-m", "rdma_emulator", "keygen", "--keep", str(first), str(second))
    assert kept.returncode == 0 and "kept the control key" in kept.stderr, kept.stderr
    assert load_key(first) == load_key(second) == key, "compose's `up` keeps the key the running servers hold"


def test_check_usage_and_bad_address() -> None:
    assert python("-m", "rdma_emulator.check").returncode == 2
    line = one_line(python("-m", "rdma_emulator.check", "nohostport"), 1)
    assert "nohostport" in line


def test_srem_emac_keeps_its_one_line_errors() -> None:
    line = one_line(python("-m", "controller", "emac", "--memory-server", "1=127.0.0.1:7000", "--interface", "srem-no-such0"), 2)
    assert line.startswith("srem: error: --interface srem-no-such0:"), line
    line = one_line(python("-m", "controller", "emac", "--memory-server", "x", "--listen-udp", "127.0.0.1:0"), 2)
    assert line.startswith("srem: error: --memory-server:"), line


# ExternalMemory.check()

def test_external_memory_check_tells_lost_from_silent(small_dataset) -> None:
    from controller.dataplane.builder import Deployment
    from controller.dataplane.external_memory import ExternalMemory
    from controller.dataplane.layout import Layout
    from controller.dataplane.rules import instance_rules
    from controller.model.substrate import HostKind

    sub = small_dataset.substrate
    layout = Layout(sub.spec.topology)
    workload = small_dataset.split("test", 1)[0]
    rules = tuple(instance_rules(layout, sub, workload.requests, workload.assignment, 1.0))
    em_host = next(h for h, host in enumerate(sub.hosts) if host.kind is HostKind.EM)
    placement = tuple(em_host for _ in sub.instances)
    deployment = Deployment(workload.requests, placement, workload.assignment, (None,) * len(workload.requests), rules)
    port = free_port()
    server = start("memserver", "--listen", f"127.0.0.1:{port}")
    try:
        memory = ExternalMemory(layout, sub, {s.server_id: ("127.0.0.1", port) for s in layout.servers.values()},
                                timeout_s=0.2, retries=1)
        assert memory.check() == {}, "nothing in force, nothing to check"
        staged = memory.stage(deployment)
        memory.commit()
        (holder,) = {region.server for region in staged.values()}
        assert memory.check() == {}
        server.stop()
        server = start("memserver", "--listen", f"127.0.0.1:{port}")
        assert memory.check() == {holder: "lost"}
        server.stop()
        assert memory.check() == {holder: "silent"}
    finally:
        server.stop()


# scrape.metric

def test_metric_reads_one_unlabelled_sample() -> None:
    from controller.testbed.scrape import metric

    host, port = "127.0.0.1", free_port()
    before = time.time()
    with running("emac", "--memory-server", f"1={host}:{port}", "--listen-udp", "127.0.0.1:0") as emac:
        after = time.time()
        address = str(emac.ready["metrics"])
        started = metric(address, "srem_emac_start_time_seconds")
        assert started is not None and before <= started <= after
        assert metric(address, "srem_emac_no_such_metric") is None
        assert metric(address, "srem_emac_dropped_total") is None, "only labelled samples by that name"
    assert metric(address, "srem_emac_start_time_seconds", timeout_s=0.5) is None, "nobody listens there any more"


def test_metric_of_a_memory_server_module() -> None:
    from controller.testbed.scrape import metric

    with running("memserver", "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0") as server:
        assert metric(str(server.ready["metrics"]), "srem_memserver_regions") == 0.0
    assert metric(f"127.0.0.1:{free_tcp_port()}", "srem_memserver_regions", timeout_s=0.5) is None


# controller.testbed.health

def health(*args: str) -> subprocess.CompletedProcess[str]:
    return python("-m", "controller.testbed.health", *args)


def test_loop_health_against_an_emac_has_no_deploys() -> None:
    with running("emac", "--memory-server", f"1=127.0.0.1:{free_port()}", "--listen-udp", "127.0.0.1:0") as emac:
        address = str(emac.ready["metrics"])
        line = one_line(health("loop", address), 1)
    assert address in line


def test_loop_health_follows_the_deploys_counter() -> None:
    registry = CollectorRegistry()
    deploys = Counter("srem_loop_deploys", "Configurations deployed", registry=registry)
    http, thread = start_http_server(0, "127.0.0.1", registry=registry)
    try:
        address = "127.0.0.1:%d" % http.server_address[1]
        line = one_line(health("loop", address), 1)
        assert "not deployed" in line, line
        deploys.inc()
        ok = health("loop", address)
        assert ok.returncode == 0 and ok.stderr == "", ok.stderr
    finally:
        http.shutdown()
        http.server_close()
        thread.join(5)
    line = one_line(health("loop", address), 1)
    assert address in line


def test_network_health_without_a_state_file(tmp_path: Path) -> None:
    line = one_line(health("network", str(tmp_path)), 1)
    assert str(tmp_path) in line


@pytest.mark.parametrize("argv", [[], ["loop"], ["network"], ["bogus", "x"], ["loop", "127.0.0.1:1", "extra"]])
def test_health_usage_errors(argv: list[str]) -> None:
    line = one_line(health(*argv), 2)
    assert line.startswith("usage:"), line


# srem testbed flags refused before anything is built

def srem(*args: str) -> subprocess.CompletedProcess[str]:
    return python("-m", "controller", *args, timeout_s=120)


def serve_refusal(run_dir: Path, *servers: str) -> str:
    """The one line `srem testbed serve` refuses these --memory-server flags with (the tools are checked first)."""
    from controller.testbed.preflight import missing

    if lacking := missing():
        pytest.skip(f"srem testbed serve checks the testbed's tools before its flags; missing: {'; '.join(lacking)}")
    flags = [arg for server in servers for arg in ("--memory-server", server)]
    proc = srem("testbed", "serve", "--topology", "paper", "--run-dir", str(run_dir), *flags)
    line = one_line(proc, 2)
    assert not run_dir.exists(), "nothing is made before the flags are checked"
    return line


def test_serve_refuses_a_memory_server_of_no_rack_server(tmp_path: Path) -> None:
    line = serve_refusal(tmp_path / "run", "zz=a:1")
    assert "--memory-server" in line and "zz" in line and "not a rack server of paper" in line, line


def test_serve_wants_a_memory_server_for_every_rack_server(tmp_path: Path) -> None:
    from controller.model.topology import load_topology

    line = serve_refusal(tmp_path / "run", "m1=127.0.0.1:7000")
    lacking = [s.name for s in load_topology("paper").spec.servers if s.name != "m1"]
    assert "--memory-server" in line and f"no memory server for {', '.join(lacking)}" in line, line


def test_serve_refuses_a_memory_server_that_is_not_an_address(tmp_path: Path) -> None:
    line = one_line(srem("testbed", "serve", "--topology", "paper", "--run-dir", str(tmp_path / "run"),
                         "--memory-server", "m1"), 2)
    assert line.startswith("srem: error: --memory-server:"), line


def test_run_attach_needs_a_state_file(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    line = one_line(srem("testbed", "run", "--attach", str(missing), "--out", str(tmp_path / "out")), 2)
    assert "--attach" in line and "state file" in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("action", ["status", "probe"])
def test_status_and_probe_name_a_run_dir_without_state(tmp_path: Path, action: str) -> None:
    line = one_line(srem("testbed", action, "--run-dir", str(tmp_path)), 2)
    assert str(tmp_path) in line and "state file" in line, line


# TestbedOptions

def test_options_refuse_remote_parts_with_local_external_memory() -> None:
    from controller.testbed.network import TestbedOptions

    with pytest.raises(ValueError, match="external_memory"):
        TestbedOptions(external_memory=True, remote_memory_servers={"m1": "memserver-m1:7000"})
    with pytest.raises(ValueError, match="external_memory"):
        TestbedOptions(external_memory=True, remote_emac_metrics="emac:9100")
    remote = TestbedOptions(external_memory=False, remote_memory_servers={"m1": "memserver-m1:7000"}, remote_emac_metrics="emac:9100")
    assert remote.remote_memory_servers == {"m1": "memserver-m1:7000"}


# A restarted controller (compose restarts it; `srem testbed run --attach --resume`)

def _state(run_dir: Path, created: float) -> None:
    from controller.model.topology import load_topology
    from controller.testbed import state as st

    topology = load_topology("paper")
    run_dir.mkdir(parents=True, exist_ok=True)
    st.save(st.TestbedState(run_dir=str(run_dir), topology=topology.to_dict(), topology_source=topology.source,
                            prefix="srm", created=created))


def test_a_run_is_resumable_only_on_the_testbed_it_was_run_on(tmp_path: Path) -> None:
    from controller.testbed import run
    from controller.testbed.network import Testbed

    net, out = tmp_path / "net", tmp_path / "run"
    _state(net, created=1000.0)
    out.mkdir()
    assert not run.resumable(out, net), "nothing recorded"
    run._mark_attached(out, Testbed.attach(net / "testbed.json"))
    assert run.resumable(out, net)
    _state(net, created=2000.0)  # a new testbed brought up in the same directory (compose up again)
    assert not run.resumable(out, net)
    (out / run.ATTACHED).write_text("{not json")
    assert not run.resumable(out, net)


def test_recorded_steps_and_probes_read_back_as_written(tmp_path: Path) -> None:
    from dataclasses import asdict

    from controller.testbed import run
    from controller.testbed.loop import StepRecord

    records = [StepRecord(step=i, hour=10 + 2 * i, working_hours=True, placement={"firewall#0": "em:e1"}, moved=["firewall#0"],
                          accepted=3, carried=4, requests=5, predicted_delay_ms={1: 1.5, 12: 0.25}, seconds={"decide": 0.01},
                          started_ns=10 + i, reconfigured_ns=20 + i, counters={1: 7, 12: 9}, notes=["n"], written={"em_regions": 1})
               for i in range(2)]
    for record in records:
        (tmp_path / f"step-{record.step}.json").write_text(json.dumps(asdict(record), indent=1))
    (tmp_path / "step-3.json").write_text("{}")  # after a gap: not part of the run
    answers = [{"name": "h-e1", "n": 1}, {"name": "h-e2", "n": 2}]
    (tmp_path / "probes.jsonl").write_text("".join(json.dumps(a) + "\n" for a in answers))
    assert run._recorded(tmp_path) == (records, answers)


def test_resume_needs_a_testbed_to_attach_to() -> None:
    line = one_line(python("-m", "controller", "testbed", "run", "--scenario", "small", "--resume"), 2)
    assert line.startswith("srem: error: --resume:") and "--attach" in line
