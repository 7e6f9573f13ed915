"""The process that holds a testbed up for `srem testbed up`.

Mininet's host shells live as long as the Python process that made them, so `up` cannot build the
network and exit: it starts this process (`python -m controller.testbed.holder RUN_DIR`, in a
session of its own), which reads RUN/holder-request.json (the topology and the options), builds the
testbed, writes the ready marker RUN/holder.json (`{"status": "ready"}` or `{"status": "failed",
"error": ...}`) and waits for SIGTERM or SIGINT, then tears the testbed down. If it dies instead,
`srem testbed down` removes what the state file records. `srem testbed serve` runs the same `hold` in
the foreground, as a container's main process.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from collections.abc import Callable
from typing import Any

from controller.errors import SremError
from controller.model.topology import Topology, topology_from_dict
from controller.testbed import inventory, processes
from controller.testbed.network import Testbed, TestbedOptions
from controller.testbed.state import STATE_FILE

REQUEST = "holder-request.json"
MARKER = "holder.json"
LOG = "logs/holder.log"
UP_TIMEOUT_S = 60.0
"""What `up` allows for building the network, beyond the start-up waits bounded by the options' ready timeout."""


def write_request(run_dir: Path, topology: Topology, options: TestbedOptions) -> None:
    document = {"topology": topology.to_dict(), "source": topology.source, "options": asdict(options)}
    (run_dir / REQUEST).write_text(json.dumps(document, indent=1) + "\n")


def read_request(run_dir: Path) -> tuple[Topology, TestbedOptions]:
    document = json.loads((run_dir / REQUEST).read_text())
    options: dict[str, Any] = document["options"]
    options["switch_args"] = tuple(options["switch_args"])
    return topology_from_dict(document["topology"], document["source"]), TestbedOptions(**options)


def _mark(run_dir: Path, document: dict[str, Any]) -> None:
    tmp = run_dir / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(document) + "\n")
    os.replace(tmp, run_dir / MARKER)


def spawn(run_dir: Path, topology: Topology, options: TestbedOptions) -> subprocess.Popen[bytes]:
    """Start a holder for this topology in `run_dir` (created), in a session of its own so it outlives the caller."""
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    write_request(run_dir, topology, options)
    (run_dir / MARKER).unlink(missing_ok=True)
    return processes.launch([sys.executable, "-m", "controller.testbed.holder", str(run_dir)], run_dir / LOG)


def wait_ready(holder: subprocess.Popen[bytes], run_dir: Path, timeout_s: float) -> None:
    """Until the holder says the testbed is ready; SremError with its reason if it failed, died or took too long
    (then what it started is removed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            marker = json.loads((run_dir / MARKER).read_text())
        except FileNotFoundError:
            marker = None
        if marker is not None:
            if marker["status"] == "ready":
                return
            raise SremError(str(marker["error"]))
        if holder.poll() is not None:
            said = " | ".join(processes.since_start(run_dir / LOG)[-processes.TAIL_LINES:]) or "(nothing)"
            raise SremError(f"the testbed's holder exited with status {holder.returncode} before it was ready; {LOG}: {said}",
                            where=run_dir)
        if time.monotonic() > deadline:
            processes.stop(holder, grace_s=inventory.HOLDER_GRACE_S)
            if (run_dir / STATE_FILE).exists():
                inventory.down(run_dir / STATE_FILE)
            raise SremError(f"the testbed was not ready within {timeout_s:g} s; see {LOG}", where=run_dir)
        time.sleep(0.1)


def hold(run_dir: Path, topology: Topology, options: TestbedOptions, ready: Callable[[Testbed], None]) -> None:
    """Build the testbed in this process, call `ready`, and keep it up until SIGTERM or SIGINT, then take it down.
    A failure to build raises (what was started is removed)."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    testbed = Testbed.start(topology, run_dir, options, holder=True)
    try:
        ready(testbed)
        while not stop.wait(1.0):
            testbed.reap()
    finally:
        testbed.stop()


def main(argv: list[str]) -> int:
    run_dir = Path(argv[0]).resolve()
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        topology, options = read_request(run_dir)
        hold(run_dir, topology, options, ready=lambda _: _mark(run_dir, {"status": "ready"}))
    except SremError as exc:
        _mark(run_dir, {"status": "failed", "error": exc.one_line()})
        return 2
    except Exception as exc:  # reported to `up` as one line; the traceback goes to the holder's log
        logging.exception("the testbed did not come up")
        _mark(run_dir, {"status": "failed", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
