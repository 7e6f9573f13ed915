"""The testbed's state file is checked against what the testbed created before `down` acts on it
(controller/testbed/state.py): a record naming a process the testbed did not start, or an interface not
of its naming scheme, is left alone; a file that breaks the schema is refused in one line; a state of
processes started and recorded the testbed's way is torn down. Real processes, a Mininet shell and a
scratch network namespace (root and Mininet's mnexec for those); no BMv2.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from controller.errors import SremError
from controller.model.topology import load_topology
from controller.testbed import inventory, network, processes, state as st

ROOT = Path(__file__).resolve().parents[1]
needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None, reason="needs root and ip")
needs_mininet = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("mnexec") is None, reason="needs root and Mininet's mnexec")
MEMSERVER = [sys.executable, "-m", "rdma_emulator", "memserver", "--listen", "127.0.0.1:0", "--capacity-mb", "1",
             "--log-level", "warning"]


def write_state(run_dir: Path, processes_: dict[str, st.ProcessRecord] | None = None, interfaces: list[str] | None = None,
                **fields: Any) -> Path:
    topology = load_topology("paper")
    run_dir.mkdir(parents=True, exist_ok=True)
    state = st.TestbedState(**{"run_dir": str(run_dir), "topology": topology.to_dict(), "topology_source": topology.source,
                               "prefix": "srm", "created": 1.0, "pid_namespace": st.pid_namespace(),
                               "processes": processes_ or {}, "interfaces": interfaces or [], **fields})
    st.save(state)
    return state.path


@contextmanager
def children(*argvs: list[str], log: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes started the testbed's way (processes.launch), killed and reaped at the end whatever happened."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        for argv in argvs:
            started.append(processes.launch(argv, log))
        yield started
    finally:
        for child in started:
            if child.poll() is None:
                child.kill()
            child.wait(10)


def stranger_records(pid: int, argv: list[str]) -> dict[str, st.ProcessRecord]:
    """A crafted file's records of an unrelated process: its real PID, start time and command, under every role."""
    record = st.process_record("process", "x", pid, argv)
    return {
        "switch:s1": record.model_copy(update={"role": "switch", "name": "s1"}),
        "memserver:m1": record.model_copy(update={"role": "memserver", "name": "m1", "argv": MEMSERVER}),
        "emac": record.model_copy(update={"role": "emac", "name": "emac"}),
        "rack:m1": record.model_copy(update={"role": "rack", "name": "m1"}),
        "traffic:h-e1": record.model_copy(update={"role": "traffic", "name": "h-e1"}),
        "holder": record.model_copy(update={"role": "holder", "name": "holder"}),
        "shell:h-e1": record.model_copy(update={"role": "shell", "name": "h-e1"}),
        f"process:h-e1:{pid}": record.model_copy(update={"host": "h-e1"}),
    }


def test_down_leaves_alone_an_unrelated_process_a_crafted_state_names_under_any_role(tmp_path: Path) -> None:
    with children(["sleep", "60"], log=tmp_path / "sleep.log") as [stranger]:
        path = write_state(tmp_path / "run", stranger_records(stranger.pid, ["sleep", "60"]))
        state = st.load(path)
        assert not any(st.ours(state, r) for r in state.processes.values())
        assert [key for key, r in state.processes.items() if st.alive(r)] == [f"process:h-e1:{stranger.pid}"], \
            "it runs the recorded command, but not in the host's namespace (there is no such host)"
        report = inventory.down(path)
        assert report is not None and report.stopped == []
        assert stranger.poll() is None, "the unrelated process still runs"


def test_down_stops_the_processes_recorded_the_testbeds_way_and_only_those(tmp_path: Path) -> None:
    with children(MEMSERVER, ["sleep", "60"], log=tmp_path / "p.log") as [memserver, stranger]:
        own = st.process_record("memserver", "m2", memserver.pid, MEMSERVER)
        # network.py rewrites a memory server's recorded command with the port it bound: still the testbed's.
        own.argv = [*MEMSERVER[:5], "127.0.0.1:7777", *MEMSERVER[6:]]
        path = write_state(tmp_path / "run", {"memserver:m2": own, **stranger_records(stranger.pid, ["sleep", "60"])})
        report = inventory.down(path)
        assert report is not None and report.stopped == ["memserver:m2"]
        assert memserver.wait(10) is not None
        assert stranger.poll() is None
        assert st.load(path).status == "down"


def test_a_recorded_pid_now_of_another_process_is_left_alone(tmp_path: Path) -> None:
    with children(MEMSERVER, log=tmp_path / "p.log") as [memserver]:
        own = st.process_record("memserver", "m1", memserver.pid, MEMSERVER)
        recycled = own.model_copy(update={"start": own.start - 1})  # the PID's earlier owner
        path = write_state(tmp_path / "run", {"memserver:m1": recycled})
        inventory.down(path)
        assert memserver.poll() is None


def test_processes_of_a_state_written_in_another_pid_namespace_are_left_alone(tmp_path: Path) -> None:
    with children(MEMSERVER, log=tmp_path / "p.log") as [memserver]:
        own = st.process_record("memserver", "m1", memserver.pid, MEMSERVER)
        path = write_state(tmp_path / "run", {"memserver:m1": own}, pid_namespace="pid:[1]")
        assert st.alive(own) and not st.ours(st.load(path), own)
        inventory.down(path)
        assert memserver.poll() is None


@needs_mininet
def test_a_process_run_in_a_host_is_stopped_only_inside_that_hosts_namespace(tmp_path: Path) -> None:
    from mininet.node import Host

    host = Host("h-tst")
    try:
        with children(["sleep", "60"], log=tmp_path / "p.log") as [stranger]:
            inside = processes.launch(["sleep", "61"], tmp_path / "in.log", prefix=("mnexec", "-a", str(host.pid)))
            try:
                records = {
                    "shell:h-tst": st.process_record("shell", "h-tst", host.pid, ["mininet shell"]),
                    f"process:h-tst:{inside.pid}": st.process_record("process", "h-tst", inside.pid, ["sleep", "61"], host="h-tst"),
                    # the unrelated process, recorded as run in the host: it is in the root namespace
                    f"process:h-tst:{stranger.pid}": st.process_record("process", "h-tst", stranger.pid, ["sleep", "60"], host="h-tst"),
                }
                path = write_state(tmp_path / "run", records)
                report = inventory.down(path)
                assert report is not None and sorted(report.stopped) == sorted(["shell:h-tst", f"process:h-tst:{inside.pid}"])
                assert inside.wait(10) is not None
                assert stranger.poll() is None
            finally:
                if inside.poll() is None:
                    inside.kill()
                inside.wait(10)
    finally:
        host.terminate()


IN_NAMESPACE = """
import json, sys
from pathlib import Path
from controller.errors import SremError
from controller.testbed import inventory, state as st
crafted, good = Path(sys.argv[1]), Path(sys.argv[2])
try:
    inventory.down(crafted)
    refused = None
except SremError as exc:
    refused = exc.one_line()
deleted = st.delete_interfaces(["dummy-x", "eth0", "srm7e"])
report = inventory.down(good)
print(json.dumps({"refused": refused, "deleted": deleted, "down": report.interfaces}))
"""


@needs_root
def test_down_deletes_only_interfaces_of_the_testbeds_naming_scheme(tmp_path: Path) -> None:
    namespace = f"srem-test-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", namespace], check=True, capture_output=True, timeout=30)
    try:
        for name in ("dummy-x", "eth0", "srm7e", "srm7p1"):  # bridges: a container's kernel may lack the dummy module
            subprocess.run(["ip", "-n", namespace, "link", "add", name, "type", "bridge"], check=True, capture_output=True, timeout=30)
        crafted = write_state(tmp_path / "crafted", interfaces=["srm7p1"])
        document = json.loads(crafted.read_text())
        document["interfaces"] = ["dummy-x", "eth0"]
        crafted.write_text(json.dumps(document))
        good = write_state(tmp_path / "good", interfaces=["srm7p1", "srm8e"])
        done = subprocess.run(["ip", "netns", "exec", namespace, sys.executable, "-c", IN_NAMESPACE, str(crafted), str(good)],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert "interfaces: Value error, 'dummy-x' is not a testbed interface" in result["refused"]
        assert "\n" not in result["refused"]
        assert result["deleted"] == ["srm7e"] and result["down"] == ["srm7p1"]
        assert "not deleting dummy-x, eth0" in done.stderr
        links = subprocess.run(["ip", "-n", namespace, "-o", "link"], capture_output=True, text=True, check=True, timeout=30).stdout
        names = {line.split(": ")[1].split("@")[0] for line in links.splitlines()}
        assert names == {"lo", "dummy-x", "eth0"}
    finally:
        subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=30)


def test_the_checks_know_the_names_and_commands_the_testbed_uses() -> None:
    pytest.importorskip("mininet")
    from controller.testbed import bmv2
    from hosts.rack_server_client import command

    assert bmv2.BINARY == st.SWITCH_PROGRAM
    assert tuple(command("m1", "eth0", "02:00:00:00:00:01", Path("c.sock"), Path("l.log"))[1:3]) == st.MODULES["rack"]
    assert network.PREFIX == st.PREFIX
    for name in (network.switch_interface(1, 1), network.switch_interface(65535, 100), network.emac_interface(99999)):
        assert st.testbed_interface(name), name
    for name in ("eth0", "lo", "dummy-x", "srm", "srm1", "srm1p", "srmxe", "srm1e0", "srm1p1 ", "xsrm1e", "srm123456e"):
        assert not st.testbed_interface(name), name


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d["processes"]["m"].update(pid=0), "processes.m.pid: Input should be greater than or equal to 1"),
    (lambda d: d["processes"]["m"].update(pid=-1), "processes.m.pid: Input should be greater than or equal to 1"),
    (lambda d: d["processes"]["m"].update(role="anything"), "processes.m.role: Input should be 'switch', "),
    (lambda d: d["processes"]["m"].pop("start"), "processes.m.start: Field required"),
    (lambda d: d.update(prefix="eth"), "prefix: Input should be 'srm'"),
    (lambda d: d.update(interfaces=["srm1e", "eth0"]), "interfaces: Value error, 'eth0' is not a testbed interface"),
    (lambda d: d.update(run_dir="/etc"), "records the run directory /etc, not the one it is in"),
    (lambda d: d.update(processes=[]), "processes: Input should be an object"),
])
def test_a_state_file_breaking_the_schema_is_refused_in_one_line(tmp_path: Path, change: Any, message: str) -> None:
    path = write_state(tmp_path / "run", {"m": st.ProcessRecord(role="memserver", name="m1", pid=1, start=1, argv=MEMSERVER)})
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))
    with pytest.raises(SremError) as refused:
        st.load(path)
    assert message in str(refused.value) and "\n" not in refused.value.one_line()
    assert refused.value.where == str(path)


def test_a_state_file_too_large_is_refused_before_it_is_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_state(tmp_path / "run")
    monkeypatch.setattr(st, "MAX_STATE_BYTES", path.stat().st_size - 1)
    with pytest.raises(SremError, match="not a testbed state file"):
        st.load(path)
