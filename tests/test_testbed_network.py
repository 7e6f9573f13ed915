"""The live testbed's network (controller/testbed/) on real BMv2 switches in Mininet: the small scenario's
topology brought up with its memory servers, EMAC and host processes; every switch answering
P4Runtime, srem.p4 pushed and the static placement's routes deployed through the one deploy path,
UDP echoed across the network; a switch killed and restarted with its ports; a memory server
restarted on its address; a switch that cannot start explained; `srem testbed up|status|down`, also
after the holder was SIGKILLed; and nothing left afterwards, neither interfaces nor processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from controller.dataplane.deploy import Deployer, SteeringOnly
from controller.dataplane.p4info import P4Schema
from controller.dataplane.p4runtime_client import Pipeline, SwitchClient
from controller.dataplane.reconciler import DataPlane
from controller.model.dataset import Dataset
from controller.model.evaluator import StepEvaluator, StepResult
from controller.model.scenario import load_scenario
from controller.model.topology import Topology, load_topology
from controller.model.workload import Workload
from controller.testbed import processes, state as testbed_state
from controller.testbed.preflight import missing
from em_helpers import client
from factories import topology_dict
from rdma_emulator.client import RdmaError, RdmaTimeout

if TYPE_CHECKING:
    from controller.testbed.network import Testbed

LACKING = missing()
RUNNING = testbed_state.pointed()
SKIP_REASON = (f"needs {'; '.join(LACKING)}" if LACKING
               else f"a testbed is up ({RUNNING.parent}); srem testbed down stops it" if RUNNING else "")
needs_testbed = pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON)

PREFIX = "srm"
ECHO_PORT = 7000
ECHO = """
import json, socket, sys
if sys.argv[1] == "serve":  # echo every datagram back; gives up after 60 s without one
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", int(sys.argv[2])))
    s.settimeout(60)
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)
else:  # send N datagrams one at a time, print the answers that came back within the timeout
    address, n, timeout = (sys.argv[2], int(sys.argv[3])), int(sys.argv[4]), float(sys.argv[5])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    answers = []
    for i in range(n):
        s.sendto(f"srem {i}".encode(), address)
        try:
            answers.append(s.recvfrom(2048)[0].decode())
        except socket.timeout:
            pass
    print(json.dumps(answers))
"""


def leftovers(state_path: Path) -> tuple[list[str], list[str]]:
    """Interfaces with the testbed's prefix in the root namespace, and recorded processes still alive."""
    state = testbed_state.load(state_path)
    return testbed_state.present_interfaces(PREFIX), [key for key, r in state.processes.items() if testbed_state.alive(r)]


def assert_nothing_left(state_path: Path) -> None:
    deadline = time.monotonic() + 10  # interfaces in a namespace go a moment after its last process
    while leftovers(state_path) != ([], []) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(state_path) == ([], [])
    assert testbed_state.pointed() is None


@dataclass
class Bed:
    testbed: Testbed
    plane: DataPlane
    deployer: Deployer
    workload: Workload
    result: StepResult
    echo_script: Path

    def echo(self, source: str, target: str, count: int = 5, timeout_s: float = 2.0) -> list[str]:
        """UDP datagrams from one traffic host to another's echo server: the answers that came back."""
        t = self.testbed
        log = t.run_dir / "logs" / f"echo-{source}-{target}.out"
        ip = t.state.hosts[t.traffic_host(target)].ip
        sender = t.popen_in(t.traffic_host(source), [sys.executable, str(self.echo_script), "send", ip, str(ECHO_PORT), str(count),
                                                     str(timeout_s)], log)
        assert sender.wait(count * timeout_s + 10) == 0, log.read_text()
        return json.loads(log.read_text().splitlines()[-1])


@pytest.fixture(scope="class")
def bed(small_dataset: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    """The small scenario's network with memory servers and EMAC, srem.p4 on every switch, the first test
    workload's initial placement deployed, an echo server on every edge switch's traffic host."""
    from controller.testbed.network import Testbed, TestbedOptions

    scenario = load_scenario("small")
    run_dir = tmp_path_factory.mktemp("testbed")
    testbed = Testbed.start(scenario.topology, run_dir, TestbedOptions(external_memory=True, host_processes=False))
    try:
        sub = small_dataset.substrate
        workload = small_dataset.split("test", 1)[0]
        result = StepEvaluator(sub, small_dataset.objective_weights).evaluate(workload, 0, workload.initial_placement,
                                                                              workload.initial_placement)
        schema = P4Schema.load()
        clients = {n: SwitchClient(n, testbed.grpc_address(n), testbed.device_id(n), schema, timeout_s=10.0) for n in testbed.layout.switches}
        plane = DataPlane(testbed.layout, sub, clients, Pipeline.load(), drain_s=0.0)
        echo_script = run_dir / "echo.py"
        echo_script.write_text(ECHO)
        for switch in ("e1", "e2", "e3", "e4"):
            testbed.popen_in(testbed.traffic_host(switch), [sys.executable, str(echo_script), "serve", str(ECHO_PORT)],
                             run_dir / "logs" / f"echo-server-{switch}.out")
        bed = Bed(testbed, plane, Deployer(plane, SteeringOnly(testbed.layout, sub), scenario.spec.dataplane), workload, result,
                  echo_script)
        yield bed
        plane.close()
    finally:
        testbed.stop()


@needs_testbed
class TestSmallNetwork:
    def test_every_switch_answers_and_udp_crosses_the_network_once_routes_are_deployed(self, bed: Bed) -> None:
        t = bed.testbed
        status = t.status()
        assert status.healthy, status
        assert sorted(s.name for s in status.switches) == sorted(t.layout.switches)
        assert [s.grpc for s in status.switches] == [sw.grpc_address for sw in t.layout.switches.values()]
        # No routes yet: srem.p4 is not even loaded, so nothing crosses.
        assert bed.echo("e1", "e4", count=2, timeout_s=0.5) == []
        assert sorted(bed.plane.connect()) == sorted(t.layout.switches)
        assert {c.pipeline_cookie() for c in bed.plane.clients.values()} == {bed.plane.pipeline.cookie}
        bed.deployer.deploy(bed.workload, bed.result)
        sent = [f"srem {i}" for i in range(5)]
        assert bed.echo("e1", "e4") == sent  # edge to edge of the other pod: through the core and back
        assert bed.echo("e3", "e2") == sent

    def test_a_killed_switch_comes_back_with_its_ports_and_no_program(self, bed: Bed) -> None:
        t = bed.testbed
        t.kill_switch("e1")
        assert not t.switch_alive("e1") and not t.grpc_answers("e1")
        assert bed.echo("e1", "e4", count=2, timeout_s=0.5) == []
        t.restart_switch("e1")
        assert t.switch_alive("e1") and t.grpc_answers("e1")
        assert bed.plane.connect() == ["e1"]  # the only switch that lost srem.p4
        bed.deployer.deploy(bed.workload, bed.result, resync=True)
        assert bed.echo("e1", "e4") == [f"srem {i}" for i in range(5)]
        assert t.status().healthy

    def test_every_rack_server_has_a_memory_server_and_one_restarts_on_its_address(self, bed: Bed) -> None:
        t = bed.testbed
        servers = t.memory_servers
        assert sorted(servers) == sorted(s.server_id for s in t.layout.servers.values())

        async def store_and_read(address: tuple[str, int], key: bytes | None = t.memory_key) -> bytes:
            rdma = await client(address, timeout_s=1.0, key=key)
            try:
                region, rkey = await rdma.store(b"srem testbed")
                return await rdma.read(region, rkey, 0, 12)
            finally:
                rdma.close()

        assert t.memory_key is not None, "the testbed's memory servers take ALLOC and FREE from its key's holder only"
        with pytest.raises(RdmaError, match="REFUSED"):
            asyncio.run(store_and_read(next(iter(servers.values())), key=None))
        assert all(asyncio.run(store_and_read(address)) == b"srem testbed" for address in servers.values())
        with urllib.request.urlopen(f"http://{t.emac_metrics}/metrics", timeout=5) as reply:
            assert b"srem_emac" in reply.read()
        m1 = t.layout.servers["m1"].server_id
        t.kill_process("memserver:m1")
        assert not t.process_alive("memserver:m1")
        with pytest.raises(RdmaTimeout):
            asyncio.run(store_and_read(servers[m1]))
        t.restart_memory_server("m1")
        assert t.memory_servers == servers
        assert asyncio.run(store_and_read(servers[m1])) == b"srem testbed"
        assert t.process_alive("emac") and t.status().healthy

    def test_host_processes_answer_on_their_control_sockets(self, bed: Bed) -> None:
        from hosts.control import call

        t = bed.testbed
        t.start_host_processes()
        try:
            traffic = {h: call(t.control_socket(h), "status")["address"] for h in t.hosts("traffic")}
            assert traffic == {t.traffic_host(s): str(sw.host_ip) for s, sw in t.layout.switches.items()}
            assert all("instances" in call(t.control_socket(m), "status") for m in t.hosts("server"))
            assert t.status().healthy
        finally:
            t.stop_host_processes()
        assert not any(r.role in ("rack", "traffic") for r in t.reload().processes.values())
        assert not any(t.control_socket(h).exists() for h in t.hosts())  # each removed its socket on SIGTERM
        assert t.status().healthy

    def test_down_leaves_no_interface_and_no_process_and_can_be_repeated(self, bed: Bed) -> None:
        t = bed.testbed
        assert testbed_state.present_interfaces(PREFIX)
        report = t.stop()
        assert {"switch:e1", "emac", "memserver:m12", "shell:h-e4"} <= set(report.stopped)
        assert_nothing_left(t.state.path)
        assert t.stop().stopped == []


def tiny_topology(tmp_path: Path) -> Topology:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(topology_dict(["s1", "s2"], ["m1"], [("s1", "s2", 10.0, 0.01), ("m1", "s1", 10.0, 0.01)])))
    return load_topology(str(path))


@needs_testbed
def test_a_switch_that_cannot_start_is_named_with_its_command_and_what_it_said(tmp_path: Path) -> None:
    from controller.testbed.bmv2 import SwitchStartError
    from controller.testbed.network import Testbed, TestbedOptions

    with pytest.raises(SwitchStartError) as failed:
        Testbed.start(tiny_topology(tmp_path), tmp_path / "run", TestbedOptions(external_memory=False, host_processes=False,
                                                                                        switch_args=("--no-such-option",)))
    message = failed.value.one_line()
    assert message.startswith("switch s1: simple_switch_grpc exited with status 1; command: simple_switch_grpc --no-p4 --device-id 1")
    assert "--no-such-option" in message and "switch-s1.out: Error while parsing command line arguments" in message
    assert "\n" not in message and "Usage:" not in message
    assert_nothing_left(tmp_path / "run" / testbed_state.STATE_FILE)


def srem(*args: str, timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "controller", "testbed", *args], capture_output=True, text=True, timeout=timeout_s)


@needs_testbed
def test_cli_up_status_down_and_down_after_the_holder_was_killed(tmp_path: Path) -> None:
    topology = tmp_path / "tiny.json"
    tiny_topology(tmp_path)
    run_dir = tmp_path / "run"
    up = srem("up", "--topology", str(topology), "--run-dir", str(run_dir), "--json")
    try:
        assert up.returncode == 0, up.stderr
        document: dict[str, Any] = json.loads(up.stdout)
        assert document["switches"] == {"s1": {"grpc": "127.0.0.1:50001", "device_id": 1}, "s2": {"grpc": "127.0.0.1:50002", "device_id": 2}}
        assert list(document["memory_servers"]) == ["m1"]
        again = srem("up", "--topology", str(topology), "--run-dir", str(tmp_path / "other"))
        assert again.returncode == 2
        assert again.stderr == f"srem: error: {run_dir}: a testbed is already up; srem testbed down removes it\n"
        status = json.loads(srem("status", "--json").stdout)
        assert status["healthy"] and [s["grpc_answers"] for s in status["switches"]] == [True, True]
        os.kill(document["holder_pid"], signal.SIGKILL)
        deadline = time.monotonic() + 10
        while json.loads(srem("status", "--json").stdout)["healthy"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not json.loads(srem("status", "--json").stdout)["healthy"]  # the holder and its Mininet shells are gone
        down = srem("down", "--json")
        assert down.returncode == 0, down.stderr
        assert json.loads(down.stdout)["down"] is True
        assert_nothing_left(run_dir / testbed_state.STATE_FILE)
        assert json.loads(srem("down", "--json").stdout) == {"down": False}
        assert srem("status").stdout == "no testbed is up\n"
    finally:
        srem("down")


# What the teardown and the start-up errors rest on; no root or BMv2 needed.


def test_a_recorded_process_whose_pid_was_recycled_is_never_signalled() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        record = testbed_state.process_record("process", "sleeper", child.pid, ["sleep", "30"])
        recycled = record.model_copy(update={"start": record.start + 1})  # same PID, another process's start time
        assert testbed_state.alive(record) and not testbed_state.alive(recycled)
        assert testbed_state.terminate([recycled], grace_s=1.0) == []
        assert child.poll() is None
        assert testbed_state.terminate([record], grace_s=1.0) == [record]
        assert child.wait(5) == -signal.SIGTERM
        assert not testbed_state.alive(record)
    finally:
        child.kill()
        child.wait(5)


def test_a_process_that_dies_before_its_ready_line_is_reported_with_its_last_lines_of_this_start(tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    earlier = processes.launch([sys.executable, "-c", "print('from the first start')"], log)
    assert earlier.wait(10) == 0
    argv = [sys.executable, "-c", "import sys; print('one'); print('two', file=sys.stderr); sys.exit(3)"]
    process = processes.launch(argv, log)
    with pytest.raises(processes.StartError) as failed:
        processes.wait_json_line("thing", process, argv, log, "ready", time.monotonic() + 10)
    message = failed.value.one_line()
    assert message.startswith("thing: exited with status 3 before it was ready; command: ")
    assert message.endswith("last lines: p.log: one | p.log: two")


def test_a_ready_line_is_found_among_other_output(tmp_path: Path) -> None:
    log = tmp_path / "p.log"
    argv = [sys.executable, "-c", "import json, time; print('starting'); print(json.dumps({'ready': 'here'}), flush=True); "
                                  "time.sleep(30)"]
    process = processes.launch(argv, log)
    try:
        assert processes.wait_json_line("thing", process, argv, log, "ready", time.monotonic() + 10) == {"ready": "here"}
    finally:
        processes.stop(process)
