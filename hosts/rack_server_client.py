"""What the controller calls to drive a rack server's VNF process (hosts/rack_server.py), and how to start one.

Every call is one request over the process's control socket (hosts/control.py); a refused request
raises ControlError with the process's one-line reason, and the process keeps its last good
configuration. A migration between servers is: install the instance on the new server (a new
generation), move_state from the old one, switch the chains over (the switches' commit), and after
the drain install the old server's next generation without it and retire.
"""

from __future__ import annotations

import json
import select
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hosts.control import ControlError, call
from hosts.functions import InstanceSpec, ServicePath
from hosts.vnf_service import PathSpec, install_request


class RackServerClient:
    def __init__(self, control: Path, timeout_s: float = 5.0) -> None:
        self.control = control
        self.timeout_s = timeout_s

    def _call(self, op: str, **args: Any) -> dict[str, Any]:
        return call(self.control, op, timeout=self.timeout_s, **args)

    def install(self, generation: int, paths: Mapping[ServicePath, int | PathSpec],
                instances: Mapping[int, InstanceSpec]) -> list[int]:
        """Install a generation: which instance serves each path (SPI, SI, version), with the path's own hold
        (PathSpec) or the instance's (an instance number alone), and every instance's spec. The live generations
        afterwards."""
        return self._call("install", **install_request(generation, paths, instances))["generations"]

    def retire(self, before: int) -> list[int]:
        """Stop serving the generations numbered below `before`; the live generations afterwards."""
        return self._call("retire", before=before)["generations"]

    def export_state(self, instance: int) -> dict[str, Any]:
        """The instance's meters and counters, as import_state takes them."""
        return self._call("export_state", instance=instance)["state"]

    def import_state(self, instance: int, state: dict[str, Any]) -> None:
        self._call("import_state", instance=instance, state=state)

    def status(self) -> dict[str, Any]:
        """Live generations; the paths in force, each with the generation serving it; per instance its kind,
        delay, rule count and counters (packets, bytes, sent, dropped by reason); packets held (queue); bad
        frames by reason; frames ignored (not NSH to this server); frames the kernel dropped unread."""
        return self._call("status")


def move_state(source: RackServerClient, target: RackServerClient, instance: int) -> None:
    """Carry an instance's meters and counters from the server it leaves to the one it moves to (installed there)."""
    target.import_state(instance, source.export_state(instance))


def command(name: str, interface: str, switch_mac: str, control: Path, log: Path) -> list[str]:
    """The process's command line (to run in the server's network namespace)."""
    return [sys.executable, "-m", "hosts.rack_server", "--name", name, "--interface", interface, "--switch-mac", switch_mac,
            "--control", str(control), "--log", str(log)]


def wait_ready(process: subprocess.Popen[str], timeout_s: float = 15.0) -> dict[str, Any]:
    """The ready line of a process started with `command` (stdout a text pipe); ControlError with its
    stderr when it exits or stays silent instead."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout_s)
    line = process.stdout.readline() if ready else ""
    if not line:
        if process.poll() is None:
            process.kill()
        process.wait(5)
        stderr = process.stderr.read().strip() if process.stderr else ""
        raise ControlError(f"rack server did not start: {stderr or f'no ready line within {timeout_s:g} s'}")
    return json.loads(line)
