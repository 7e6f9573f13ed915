"""What a testbed created, on disk, so that exactly that can be removed, whoever created it and whatever crashed.

The state file RUN/testbed.json records every process the testbed started (its PID with the PID's
start time, so a PID the kernel recycled for something else is never signalled) and every interface
it created in the root namespace; the interfaces inside Mininet hosts' namespaces go with their
veth peers and the namespaces with their last process. No named namespace, mount or file outside
the run directory is created, except the pointer POINTER: a symlink to the state file of the testbed
that is up, one per machine, because the gRPC ports and interface names are the machine's.

The file is not trusted to say what is the testbed's: others may write where it lives (a shared results
folder). A recorded process is signalled only while it is the one started (same start time) and runs
the command of its role (`alive`): BMv2 for a switch; the memory server's, EMAC's, rack server's or
traffic agent's module; a Mininet shell of the recorded node; the holder; a process run in a host
(popen_in) only while it lives in that host's network namespace (`ours`). An interface is deleted only if
its name is of the testbed's scheme (PREFIX<switch id>p<port>, PREFIX<switch id>e). A file that breaks
the schema, or names another run directory, is refused in one line. Every state file srem wrote records
start times; one without them is refused like any other bad file, since no PID in it could be checked.

Changes go through `update()`, which holds an exclusive lock on RUN/testbed.lock around reading and
atomically replacing the file, so the holder process and an attached controller can both record
what they start.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from controller.errors import SremError

log = logging.getLogger(__name__)

POINTER = Path("/run/srem-testbed/current")
STATE_FILE = "testbed.json"
LOCK_FILE = "testbed.lock"
SYS_NET = Path("/sys/class/net")
PREFIX = "srm"
"""Of every root-namespace interface the testbed creates (network.py names them; its PREFIX is this one)."""
MAX_STATE_BYTES = 64 << 20
"""A state file holds a topology and a few records per node: megabytes for the largest network the testbed builds."""
MAX_RECORDS = 10_000
"""Processes or interfaces one state file may record (a few per node)."""

Status = Literal["starting", "ready", "stopping", "down"]
Role = Literal["switch", "shell", "memserver", "emac", "rack", "traffic", "holder", "process"]
_INTERFACE = re.compile(rf"{PREFIX}[0-9]{{1,5}}(?:p[0-9]{{1,5}}|e)")

MININET_SHELL = ["bash", "--norc", "--noediting", "-is"]
"""A Mininet node's shell runs `bash --norc --noediting -is mininet:NAME` (mininet/node.py, startShell)."""
SWITCH_PROGRAM = "simple_switch_grpc"
"""What a switch runs (bmv2.py's BINARY, which imports Mininet; this module must not)."""
MODULES = {"memserver": ("-m", "rdma_emulator", "memserver"), "emac": ("-m", "rdma_emulator", "emac"),
           "rack": ("-m", "hosts.rack_server"), "traffic": ("-m", "hosts.traffic")}
"""What the Python process of each of these roles runs after the interpreter (network.py's commands)."""
EXEC_WAIT_S = 0.2
"""How long an empty command line is read again: a process just started (subprocess's vfork lets the parent run
on inside the child's execve) has none until execve has set up its arguments."""
PF_KTHREAD = 0x00200000
"""A kernel thread's flag in /proc/PID/stat (linux/sched.h): it has no command line, ever."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ProcessRecord(_Record):
    role: Role
    """switch, shell (a Mininet node's shell), memserver, emac, rack, traffic, holder, or process (popen_in)."""
    name: str
    pid: int = Field(ge=1)
    """Never 0 or negative: os.kill would signal a process group, or every process."""
    start: int = Field(ge=-1)
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
    prefix: Literal["srm"]
    """PREFIX: a file naming another could make interfaces of another scheme look like the testbed's."""
    status: Status = "starting"
    created: float
    delay_emulated: bool = False
    bandwidth_scale: float = 1.0
    switches: dict[str, SwitchRecord] = {}
    hosts: dict[str, HostRecord] = {}
    interfaces: list[str] = Field(default=[], max_length=MAX_RECORDS)
    """Root-namespace interfaces, recorded before they are created."""
    processes: dict[str, ProcessRecord] = Field(default={}, max_length=MAX_RECORDS)
    memory_servers: dict[str, str] = {}
    """Rack server -> its memory server's HOST:PORT."""
    emac_metrics: str | None = None
    tls_dir: str | None = None
    """The deployment's P4Runtime certificates (controller/dataplane/tls.py); None: plaintext on loopback."""
    pid_namespace: str = ""
    """The PID namespace of the process that built it (`pid:[INODE]`): its records' PIDs mean something only there."""

    @field_validator("interfaces")
    @classmethod
    def _testbed_interfaces(cls, names: list[str]) -> list[str]:
        if foreign := [name for name in names if not testbed_interface(name)]:
            raise ValueError(f"{foreign[0][:40]!r} is not a testbed interface ({PREFIX}<switch id>p<port> or {PREFIX}<switch id>e)")
        return names

    @property
    def path(self) -> Path:
        return Path(self.run_dir) / STATE_FILE


def testbed_interface(name: str) -> bool:
    """Whether `name` is of the testbed's scheme for root-namespace interfaces (network.py's switch_interface
    and emac_interface): the only ones `down` deletes."""
    return len(name) < 16 and _INTERFACE.fullmatch(name) is not None


def load(path: Path) -> TestbedState:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        raise SremError("no testbed state file (the testbed was removed)", where=path) from None
    except OSError as exc:
        raise SremError(f"cannot read the testbed state file: {exc.strerror or exc}", where=path) from None
    if len(data) > MAX_STATE_BYTES:
        raise SremError(f"larger than {MAX_STATE_BYTES >> 20} MiB: not a testbed state file", where=path)
    try:
        state = TestbedState.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(part) for part in first["loc"])
        raise SremError(f"not a testbed state file ({at + ': ' if at else ''}{first['msg'][:200]})", where=path) from None
    # `update` locks and rewrites the file in run_dir: one naming another directory would have it write there.
    if Path(state.run_dir).resolve() != path.parent.resolve():
        raise SremError(f"records the run directory {state.run_dir[:200]}, not the one it is in", where=path)
    return state


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
    fields = _stat(pid)
    # fields[0] is field 3 of proc(5) (the state), so field 22 (starttime) is fields[19].
    return None if fields is None or fields[0] in ("Z", "X") else int(fields[19])


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat from its field 3 on (field 2, the command's name, may hold anything); None without the process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2:].split()


def _kernel_thread(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and int(fields[6]) & PF_KTHREAD != 0  # field 9, the flags


def process_record(role: str, name: str, pid: int, argv: list[str], log: Path | None = None, host: str | None = None) -> ProcessRecord:
    start = start_ticks(pid)
    return ProcessRecord(role=role, name=name, pid=pid, start=-1 if start is None else start, argv=argv,
                         log=None if log is None else str(log), host=host)


def cmdline(pid: int) -> list[str] | None:
    """The command line of a living process ([] for a kernel thread or a zombie), None if there is none with this PID."""
    deadline = time.monotonic() + EXEC_WAIT_S
    while True:
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            return None
        if raw or _kernel_thread(pid) or start_ticks(pid) is None or time.monotonic() > deadline:
            return [part.decode(errors="replace") for part in raw.split(b"\0")[:-1]]
        time.sleep(0.002)


def alive(record: ProcessRecord) -> bool:
    """Whether the recorded process lives and is the testbed's: started when recorded (a PID the kernel gave
    to another process since fails), running the command of its role (a record naming some unrelated process
    fails). A process run in a host is checked against its host by `ours`."""
    if record.start < 0 or start_ticks(record.pid) != record.start:
        return False
    running = cmdline(record.pid)
    return running is not None and _runs_role(record, running)


def _runs_role(record: ProcessRecord, running: list[str]) -> bool:
    if record.role == "shell":
        return running == [*MININET_SHELL, f"mininet:{record.name}"]
    if record.role == "holder":
        # `python -m controller.testbed.holder RUN` (srem testbed up) or `srem testbed serve ...`; it records
        # sys.argv, which is not its command line under -m.
        return "controller.testbed.holder" in running or any(running[i:i + 2] == ["testbed", "serve"] for i in range(len(running)))
    if _joining(running) is not None:
        running = running[3:]
    if record.role == "process":
        return running == record.argv
    if record.role == "switch":
        return bool(running) and os.path.basename(running[0]) == SWITCH_PROGRAM
    # Not the recorded argv itself: a memory server's is rewritten with the port it bound (network.py).
    module = MODULES[record.role]
    return tuple(running[1:1 + len(module)]) == module


def ours(state: TestbedState, record: ProcessRecord) -> bool:
    """`alive`, in the PID namespace the state was written in, and for a process run in a host (popen_in),
    in that host's network namespace (its shell's, itself the testbed's)."""
    if not _same_pid_namespace(state) or not alive(record):
        return False
    if record.role != "process":
        return True
    shell = state.processes.get(f"shell:{record.host}")
    if shell is None or not alive(shell):
        return False
    if _joining(cmdline(record.pid) or []) == str(shell.pid):
        return True  # just started: mnexec is about to join the shell's namespaces
    namespace = _net_namespace(record.pid)
    return namespace is not None and namespace == _net_namespace(shell.pid)


def _joining(running: list[str]) -> str | None:
    """The PID whose namespaces a process run in a host (`mnexec -a PID COMMAND`, network.py's popen_in) joins,
    while mnexec has not exec'd its command yet; None for any other command line."""
    if len(running) > 3 and os.path.basename(running[0]) == "mnexec" and running[1] == "-a":
        return running[2]
    return None


def _same_pid_namespace(state: TestbedState) -> bool:
    """Whether the state's PIDs are this process's to check; a state without one (it is always written) counts
    as local: start times and commands still have to match."""
    return not state.pid_namespace or state.pid_namespace == pid_namespace()


def _net_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


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
    """Delete those of `names` that are of the testbed's scheme and exist (a veth's peer goes with it); the ones deleted."""
    names = list(names)
    if foreign := [name for name in names if not testbed_interface(name)]:
        log.warning("not deleting %s: not named as the testbed names its interfaces", ", ".join(foreign[:8]))
    present = [name for name in names if testbed_interface(name) and (SYS_NET / name).exists()]
    if present:
        subprocess.run(["ip", "-force", "-batch", "-"], input="".join(f"link del {n}\n" for n in present), text=True,
                       capture_output=True, timeout=60)
    return [name for name in present if not (SYS_NET / name).exists()]


def remove_all(state: TestbedState, grace_s: float = 5.0) -> None:
    """Stop every recorded process that is the testbed's (`ours`) and delete every recorded interface of its scheme.

    Host processes and the external memory go first, then the switches, then the Mininet shells (their
    namespaces end with them), so nothing sees its neighbours vanish while it still works. A shell gets
    SIGKILL at once: an interactive bash ignores SIGTERM, and it has nothing to clean up."""
    mine = {key: r for key, r in state.processes.items() if ours(state, r)}
    if not _same_pid_namespace(state):
        log.warning("%s: its processes run in another PID namespace (%s); none is signalled from here", state.path,
                    state.pid_namespace)
    elif strangers := [key for key, r in state.processes.items() if key not in mine and start_ticks(r.pid) is not None]:
        log.warning("not signalling %s: a living PID that is not the process recorded there", ", ".join(strangers[:8]))
    order = {"holder": 0, "rack": 1, "traffic": 1, "process": 1, "emac": 2, "memserver": 3, "switch": 4, "shell": 5}
    for rank in sorted({order[r.role] for r in mine.values()}):
        group = [r for r in mine.values() if order[r.role] == rank]
        terminate(group, grace_s, signal.SIGKILL if rank == order["shell"] else signal.SIGTERM)
    delete_interfaces(state.interfaces)
