"""Starting the testbed's long-running processes with their output in a log file, and waiting, bounded,
until they say they are ready (a JSON line, a socket file, a port that answers) or have died saying why."""

from __future__ import annotations

import contextlib
import json
import shlex
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller.errors import SremError
from srem_formats.arguments import parse_address

TAIL_LINES = 8
READY_TIMEOUT_S = 20.0
"""Default bound on each start-up wait of the testbed: all switches, all memory servers, the EMAC, all host processes."""
HEADER = "--- "
"""Starts each run's section of a log: `--- TIME COMMAND`, so a restarted process's tail is its own."""


class StartError(SremError):
    """A process that did not come up: which, the command, and the last lines it wrote."""


def answers(address: str, timeout_s: float = 1.0) -> bool:
    """Whether a TCP connection to HOST:PORT is accepted (a switch's P4Runtime port)."""
    try:
        socket.create_connection(parse_address(address), timeout=timeout_s).close()
    except OSError:
        return False
    return True


def launch(argv: Sequence[str], log: Path, prefix: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """Run `prefix + argv` in its own session (a terminal's Ctrl-C reaches only the controller, which stops
    everything in order), stdout and stderr appended to `log` after a header line."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"{HEADER}{time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n".encode())
        out.flush()
        return subprocess.Popen([*prefix, *argv], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def since_start(path: Path) -> list[str]:
    """The lines of a log written since its last header (all of it if it has none)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return []
    starts = [i for i, line in enumerate(lines) if line.startswith(HEADER)]
    return lines[starts[-1] + 1:] if starts else lines


def start_error(what: str, argv: Sequence[str], why: str, logs: Sequence[Path], lines: int = TAIL_LINES) -> StartError:
    said = [f"{p.name}: {line}" for p in logs for line in since_start(p)[-lines:]]
    return StartError(f"{why}; command: {shlex.join(argv)}; last lines: {' | '.join(said) if said else '(none)'}", where=what)


def json_line(log: Path, key: str) -> dict[str, Any] | None:
    """The first line since the log's last header that is a JSON object with `key` (a ready line), or None."""
    for line in since_start(log):
        if line.startswith("{"):
            with contextlib.suppress(json.JSONDecodeError):
                document = json.loads(line)
                if isinstance(document, dict) and key in document:
                    return document
    return None


def wait_json_line(what: str, process: subprocess.Popen[bytes], argv: Sequence[str], log: Path, key: str,
                   deadline: float) -> dict[str, Any]:
    """The process's ready line (a JSON object with `key`); StartError if it exits first or `deadline` passes."""
    while (document := json_line(log, key)) is None:
        if process.poll() is not None:
            raise start_error(what, argv, f"exited with status {process.returncode} before it was ready", [log])
        if time.monotonic() > deadline:
            raise start_error(what, argv, "no ready line in time", [log])
        time.sleep(0.05)
    return document


def wait_path(what: str, process: subprocess.Popen[bytes], argv: Sequence[str], log: Path, path: Path, deadline: float) -> None:
    """Until `path` exists (a control socket); StartError if the process exits first or `deadline` passes."""
    while not path.exists():
        if process.poll() is not None:
            raise start_error(what, argv, f"exited with status {process.returncode} before it created {path.name}", [log])
        if time.monotonic() > deadline:
            raise start_error(what, argv, f"{path} did not appear in time", [log])
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after `grace_s`; reaps it."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(grace_s)
