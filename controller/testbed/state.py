"""What a testbed created, on disk, so that exactly that can be removed, whoever created it and whatever crashed.

The state file RUN/testbed.json records every process the testbed started (its PID with the PID's
start time, so a PID the kernel recycled for something else is never signalled) and every interface
it created in the root namespace; the interfaces inside Mininet hosts' namespaces go with their
veth peers and the namespaces with their last process. No named namespace, mount or file outside
the run directory is created, except the pointer POINTER: a symlink to the state file of the testbed
that is up, one per machine, because the gRPC ports and interface names are the machine's.

Changes go through `update()`, which holds an exclusive lock on RUN/testbed.lock around reading and
atomically replacing the file, so the holder process and an attached controller can both record
what they start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from controller.errors import SremError

POINTER = Path("/run/srem-testbed/current")
STATE_FILE = "testbed.json"
LOCK_FILE = "testbed.lock"
SYS_NET = Path("/sys/class/net")

Status = Literal["starting", "ready", "stopping", "down"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ProcessRecord(_Record):
    role: str
    """switch, shell (a Mininet node's shell), memserver, emac, rack, traffic, holder, or process (popen_in)."""
    name: str
    pid: int
    start: int
    """The process's start time in clock ticks after boot (/proc/PID/stat field 22); -1 if it was gone already."""
    argv: list[str]
    log: str | None = None
    host: str | None = None
    """The Mininet host whose namespace it runs in; None: the root namespace."""


class SwitchRecord(_Record):
    name: str
    switch_id: int
    grpc: str
    ports: dict[int, str]
    """Port -> the switch's interface on it (root namespace)."""
    emac_interface: str
    """The EMAC's end of the switch's EMAC port (root namespace)."""
    argv: list[str]
    output: str
    """simple_switch_grpc's stdout and stderr (start-up errors)."""
    log: str
    """BMv2's own log (warn level; it rotates it itself at 5 MiB, 3 old files)."""


class HostRecord(_Record):
    name: str
    kind: Literal["traffic", "server"]
    switch: str
    interface: str
    """Its interface to `switch`, inside its namespace."""
    ip: str
    mac: str
    switch_mac: str
    """The MAC it sends every frame to: its switch's (layout), the only neighbour it knows."""


class TestbedState(_Record):
    format: Literal["srem-testbed"] = "srem-testbed"
    version: Literal[1] = 1
    run_dir: str
    topology: dict[str, Any]
    topology_source: str
    prefix: str
    status: Status = "starting"
    created: float
    delay_emulated: bool = False
    bandwidth_scale: float = 1.0
    switches: dict[str, SwitchRecord] = {}
    hosts: dict[str, HostRecord] = {}
    interfaces: list[str] = []
    """Root-namespace interfaces, recorded before they are created."""
    processes: dict[str, ProcessRecord] = {}
    memory_servers: dict[str, str] = {}
    """Rack server -> its memory server's HOST:PORT."""
    emac_metrics: str | None = None
    pid_namespace: str = ""
    """The PID namespace of the process that built it (`pid:[INODE]`): its records' PIDs mean something only there."""

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / STATE_FILE


def load(path: Path) -> TestbedState:
    try:
        return TestbedState.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        raise SremError("no testbed state file (the testbed was removed)", where=path) from None
    except ValidationError as exc:
        raise SremError(f"not a testbed state file ({exc.errors()[0]['msg']})", where=path) from None


def save(state: TestbedState) -> None:
    path = state.path
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(state.model_dump_json(indent=1) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    with open(run_dir / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def update(run_dir: Path, change: Callable[[TestbedState], None]) -> TestbedState:
    """Apply `change` to the state on disk, under the lock; the new state."""
    with locked(run_dir):
        state = load(run_dir / STATE_FILE)
        change(state)
        save(state)
        return state


# The pointer


def pointed() -> Path | None:
    """The state file of the testbed that is up (it may be gone if someone removed the run directory), or None."""
    if not POINTER.is_symlink():
        return None
    return Path(os.readlink(POINTER))


def set_pointer(state_path: Path) -> None:
    POINTER.parent.mkdir(parents=True, exist_ok=True)
    tmp = POINTER.with_name(f".{POINTER.name}.{os.getpid()}")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(state_path.resolve())
    os.replace(tmp, POINTER)


def clear_pointer(state_path: Path) -> None:
    """Remove the pointer if it names this state file (not a testbed brought up since)."""
    target = pointed()
    if target is not None and target == state_path.resolve():
        POINTER.unlink(missing_ok=True)


# Processes


def pid_namespace() -> str:
    """This process's PID namespace (`pid:[INODE]`): a process in another one (another container) cannot signal or
    check the testbed's processes by their recorded PIDs."""
    return os.readlink("/proc/self/ns/pid")


def start_ticks(pid: int) -> int | None:
    """The start time of a living process (a zombie counts as gone); None if there is none with this PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 of proc(5) (the state), so field 22 (starttime) is fields[19].
    return None if fields[0] in ("Z", "X") else int(fields[19])


def process_record(role: str, name: str, pid: int, argv: list[str], log: Path | None = None, host: str | None = None) -> ProcessRecord:
    start = start_ticks(pid)
    return ProcessRecord(role=role, name=name, pid=pid, start=-1 if start is None else start, argv=argv,
                         log=None if log is None else str(log), host=host)


def alive(record: ProcessRecord) -> bool:
    return record.start >= 0 and start_ticks(record.pid) == record.start


def terminate(records: Iterable[ProcessRecord], grace_s: float = 5.0, first: int = signal.SIGTERM) -> list[ProcessRecord]:
    """`first` (SIGTERM) to each recorded process still alive, SIGKILL to those still there after `grace_s`; the ones signalled."""
    living = [r for r in records if alive(r)]
    for r in living:
        with contextlib.suppress(ProcessLookupError):
            os.kill(r.pid, first)
    deadline = time.monotonic() + grace_s
    while any(alive(r) for r in living) and time.monotonic() < deadline:
        time.sleep(0.02)
    stubborn = [r for r in living if alive(r)]
    for r in stubborn:
        with contextlib.suppress(ProcessLookupError):
            os.kill(r.pid, signal.SIGKILL)
    deadline = time.monotonic() + grace_s
    while any(alive(r) for r in stubborn) and time.monotonic() < deadline:
        time.sleep(0.02)
    return living


# Interfaces (root namespace)


def present_interfaces(prefix: str) -> list[str]:
    return sorted(name for name in os.listdir(SYS_NET) if name.startswith(prefix))


def delete_interfaces(names: Iterable[str]) -> list[str]:
    """Delete those of `names` that exist (a veth's peer goes with it); the ones deleted."""
    present = [name for name in names if (SYS_NET / name).exists()]
    if present:
        subprocess.run(["ip", "-force", "-batch", "-"], input="".join(f"link del {n}\n" for n in present), text=True,
                       capture_output=True, timeout=60)
    return [name for name in present if not (SYS_NET / name).exists()]


def remove_all(state: TestbedState, grace_s: float = 5.0) -> None:
    """Stop every recorded process and delete every recorded interface.

    Host processes and the external memory go first, then the switches, then the Mininet shells (their
    namespaces end with them), so nothing sees its neighbours vanish while it still works. A shell gets
    SIGKILL at once: an interactive bash ignores SIGTERM, and it has nothing to clean up."""
    order = {"holder": 0, "rack": 1, "traffic": 1, "process": 1, "emac": 2, "memserver": 3, "switch": 4, "shell": 5}
    for rank in sorted({order.get(r.role, 1) for r in state.processes.values()}):
        group = [r for r in state.processes.values() if order.get(r.role, 1) == rank]
        terminate(group, grace_s, signal.SIGKILL if rank == order["shell"] else signal.SIGTERM)
    delete_interfaces(state.interfaces)

