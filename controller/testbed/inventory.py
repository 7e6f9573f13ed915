"""A testbed seen through its state file alone (no Mininet needed): what runs and answers, and `down`,
which removes everything recorded, whoever started it and whatever crashed."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from controller.errors import SremError
from controller.testbed import state as st
from controller.testbed.processes import answers
from controller.testbed.state import TestbedState

HOLDER_GRACE_S = 30.0
"""How long `down` lets a holder tear its testbed down before removing what is left itself."""


@dataclass(frozen=True)
class SwitchStatus:
    name: str
    switch_id: int
    grpc: str
    pid: int
    alive: bool
    grpc_answers: bool


@dataclass(frozen=True)
class ProcessStatus:
    key: str
    """As in the state file: holder, shell:NODE, memserver:SERVER, emac, rack:SERVER, traffic:h-SWITCH, process:HOST:PID."""
    role: str
    name: str
    pid: int
    alive: bool
    host: str | None


@dataclass(frozen=True)
class TestbedStatus:
    run_dir: str
    status: str
    switches: list[SwitchStatus]
    processes: list[ProcessStatus]
    """Every other recorded process."""

    @property
    def healthy(self) -> bool:
        """Every switch alive and answering, every process of the testbed's own alive (those run with
        popen_in may have finished)."""
        return all(s.alive and s.grpc_answers for s in self.switches) and all(p.alive for p in self.processes if p.role != "process")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "healthy": self.healthy}


@dataclass(frozen=True)
class DownReport:
    run_dir: str
    stopped: list[str] = field(default_factory=list)
    """Recorded processes that were alive and are gone now, by their keys (as in TestbedStatus)."""
    interfaces: list[str] = field(default_factory=list)
    """Recorded root-namespace interfaces that existed and are gone now."""


def already_up(path: Path) -> SremError:
    """The error for bringing a testbed up while the state file `path` is recorded as up."""
    try:
        running = any(st.alive(r) for r in st.load(path).processes.values())
    except SremError:
        running = False
    what = "a testbed is already up" if running else "a testbed that crashed is still recorded (nothing of it runs)"
    return SremError(f"{what}; srem testbed down removes it", where=path.parent)


def status(state: TestbedState, timeout_s: float = 0.5) -> TestbedStatus:
    switches = []
    for name, record in state.switches.items():
        process = state.processes[f"switch:{name}"]
        switches.append(SwitchStatus(name, record.switch_id, record.grpc, process.pid, st.alive(process), answers(record.grpc, timeout_s)))
    others = [ProcessStatus(key, r.role, r.name, r.pid, st.alive(r), r.host) for key, r in state.processes.items() if r.role != "switch"]
    return TestbedStatus(state.run_dir, state.status, switches, others)


def down(state_path: Path | None = None, grace_s: float = 5.0) -> DownReport | None:
    """Remove the testbed that is up (or the one of `state_path`): its holder is asked to stop it, then every
    recorded process still alive is stopped and every recorded interface still there deleted. None if no
    testbed is up. Safe to repeat, and after any crash."""
    path = state_path or st.pointed()
    if path is None:
        return None
    if not path.exists():
        st.clear_pointer(path)  # its run directory was removed: nothing is known to remove
        return DownReport(str(path.parent))
    state = st.load(path)  # a file that is not the testbed's own is refused in one line, and nothing is touched
    me = os.getpid()
    running = [key for key, r in state.processes.items() if r.pid != me and st.alive(r)]
    present = [name for name in state.interfaces if (st.SYS_NET / name).exists()]
    holder = state.processes.get("holder")
    if holder is not None and holder.pid != me and st.alive(holder):
        os.kill(holder.pid, signal.SIGTERM)  # it tears down in order what it built; whatever is left goes below
        deadline = time.monotonic() + HOLDER_GRACE_S
        while st.alive(holder) and time.monotonic() < deadline:
            time.sleep(0.05)
    run_dir = Path(state.run_dir)
    state = st.update(run_dir, lambda s: setattr(s, "status", "stopping"))
    state.processes = {key: r for key, r in state.processes.items() if r.pid != me}
    st.remove_all(state, grace_s)
    state = st.update(run_dir, lambda s: setattr(s, "status", "down"))
    st.clear_pointer(path)
    return DownReport(state.run_dir, [key for key in running if not st.alive(state.processes[key])],
                      [name for name in present if not (st.SYS_NET / name).exists()])
