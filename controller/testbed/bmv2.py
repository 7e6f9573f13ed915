"""One BMv2 switch of the testbed: simple_switch_grpc with its device id, port map, CPU port and P4Runtime
server, as a Mininet switch; ready only when the process lives and its gRPC port answers.

Its P4Runtime server is plaintext on loopback, or, given TLS files (controller.dataplane.tls), serves TLS
only and requires a client certificate signed by the deployment's CA: BMv2's --grpc-server-ssl,
--grpc-server-cacert, --grpc-server-cert, --grpc-server-key and --grpc-server-with-client-auth
(simple_switch_grpc's target options since BMv2 1.15.0, after its `--`).

It runs in the root namespace, like Mininet's other software switches, so the controller reaches
127.0.0.1:GRPC_BASE_PORT+id. It starts without a program (--no-p4): the controller pushes srem.p4.

Logs: BMv2's own at warn level with --log-flush (so a failed start's last lines are on disk) into
RUN/logs/switch-NAME.txt. BMv2 rotates that file itself (bm_sim/logger.cpp: a spdlog rotating sink of
5 MiB with 3 old files, NAME.1.txt ... NAME.3.txt), so a switch's log stays under 20 MiB; it has no
option to change that and the size needs no second cap (a restart reopens the file and may add one
more 5 MiB before the next rotation). Its stdout and stderr, where start-up errors go (a bad option
is reported there, not in the log), are appended to RUN/logs/switch-NAME.out: a few lines per start.
A failed start raises one SwitchStartError naming the switch, the command and the last lines of both.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from controller.dataplane.layout import CPU_PORT
from controller.dataplane.tls import TlsFiles
from controller.testbed import processes
from controller.testbed.mininet_api import Switch
from controller.testbed.processes import StartError, answers as grpc_answers

BINARY = "simple_switch_grpc"
LOG_LEVEL = "warn"


class SwitchStartError(StartError):
    """A switch that did not come up."""


def command(device_id: int, ports: Mapping[int, str], log_base: Path, grpc_address: str,
            extra: Sequence[str] = (), tls: TlsFiles | None = None) -> list[str]:
    """simple_switch_grpc's command line: `ports` maps port numbers to interfaces; BMv2 writes LOG_BASE.txt; with
    `tls`, P4Runtime over TLS with required client certificates."""
    binds = [arg for port, iface in sorted(ports.items()) for arg in ("-i", f"{port}@{iface}")]
    secure = [] if tls is None else ["--grpc-server-ssl", "--grpc-server-cacert", str(tls.ca_cert), "--grpc-server-cert",
                                     str(tls.cert), "--grpc-server-key", str(tls.key), "--grpc-server-with-client-auth"]
    return [BINARY, "--no-p4", "--device-id", str(device_id), *binds, "--log-file", str(log_base), "--log-level", LOG_LEVEL,
            "--log-flush", *extra, "--", "--grpc-server-addr", grpc_address, *secure, "--cpu-port", str(CPU_PORT)]


def log_paths(log_dir: Path, name: str) -> tuple[Path, Path, Path]:
    """(--log-file argument, the log BMv2 writes, the file of its stdout and stderr)."""
    base = log_dir / f"switch-{name}"
    return base, base.with_name(base.name + ".txt"), base.with_name(base.name + ".out")


def start_error(name: str, argv: Sequence[str], why: str, output: Path, log: Path) -> SwitchStartError:
    """BMv2 prints its whole --help after a bad option; the lines before it say what was wrong, so the tail ends there."""
    said = []
    for path in (output, log):
        lines = processes.since_start(path)
        if usage := [i for i, line in enumerate(lines) if line.startswith("Usage: ")]:
            lines = lines[:usage[0]]
        said += [f"{path.name}: {line}" for line in lines[-processes.TAIL_LINES:]]
    return SwitchStartError(f"{why}; command: {' '.join(argv)}; last lines: {' | '.join(said) if said else '(none)'}",
                            where=f"switch {name}")


def wait_ready(name: str, process: subprocess.Popen[bytes], argv: Sequence[str], grpc_address: str, output: Path, log: Path,
               deadline: float) -> None:
    """Until the process lives and its gRPC port answers; SwitchStartError when it exits or `deadline` passes."""
    while True:
        if process.poll() is not None:
            raise start_error(name, argv, f"simple_switch_grpc exited with status {process.returncode}", output, log)
        if grpc_answers(grpc_address, timeout_s=0.2):
            return
        if time.monotonic() > deadline:
            raise start_error(name, argv, f"its P4Runtime port {grpc_address} did not answer in time", output, log)
        time.sleep(0.05)


def launch(name: str, argv: Sequence[str], grpc_address: str, output: Path) -> subprocess.Popen[bytes]:
    """Start the process; refused if something already answers on its gRPC port (it would not bind it)."""
    if grpc_answers(grpc_address, timeout_s=0.2):
        raise SwitchStartError(f"another process already listens on {grpc_address} (a switch not of this testbed?)",
                               where=f"switch {name}")
    return processes.launch(argv, output)


class Bmv2Switch(Switch):
    """A Mininet switch that is one simple_switch_grpc process; its ports are the Mininet interfaces added
    to it, bound by their port numbers (as given to addLink or Intf)."""

    def __init__(self, name: str, device_id: int, grpc_address: str, log_dir: Path, extra_args: Sequence[str] = (),
                 tls: TlsFiles | None = None, **params: object) -> None:
        # dpid: Mininet derives one from digits in the name otherwise, and not every topology's names have digits.
        params["inNamespace"] = False
        super().__init__(name, dpid=f"{device_id:x}", **params)
        self.device_id = device_id
        self.grpc_address = grpc_address
        self.log_base, self.log, self.output = log_paths(log_dir, name)
        self.extra_args = tuple(extra_args)
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    def port_map(self) -> dict[int, str]:
        """Port number -> interface; port 0 is Mininet's loopback stand-in for a root-namespace switch."""
        return {port: intf.name for port, intf in self.intfs.items() if port != 0}

    def argv(self) -> list[str]:
        return command(self.device_id, self.port_map(), self.log_base, self.grpc_address, self.extra_args, self.tls)

    def start(self, controllers: Sequence[object]) -> None:
        """Launch the process (no OpenFlow controllers: P4Runtime's come on their own); `wait_ready` says when it is up.
        TLS files are checked first, so a missing or mismatched one is named in one line rather than by BMv2's exit."""
        if self.tls is not None:
            self.tls.read()
        self.process = launch(self.name, self.argv(), self.grpc_address, self.output)

    def wait_ready(self, deadline: float) -> None:
        assert self.process is not None, "start() first"
        wait_ready(self.name, self.process, self.argv(), self.grpc_address, self.output, self.log, deadline)

    def connected(self) -> bool:
        return self.process is not None and self.process.poll() is None and grpc_answers(self.grpc_address)

    def stop(self, deleteIntfs: bool = False) -> None:  # noqa: N803 (Mininet's name)
        """Stop the process. Its interfaces are the testbed's to delete: Mininet's deleteIntfs picks them by
        name and would take the root namespace's `lo` for a switch named `l`."""
        if self.process is not None:
            processes.stop(self.process)
