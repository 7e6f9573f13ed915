"""A rack server's VNF process: serves every VNF instance the policy places on this server.

    python -m hosts.rack_server --name M --interface IFACE --switch-mac MAC --control PATH.sock --log PATH

It runs inside the server's network namespace with a raw socket on the interface to its switch:
chain packets (NSH, to this interface's MAC) are served by hosts.vnf_service - rules applied at
arrival, held for the instance's processing delay, sent back to the switch with SI - 1 on the same
interface. The controller configures it over the Unix socket PATH.sock (hosts/control.py; requests
in hosts/rack_server_client.py). One thread moves packets: it sleeps in select() until a frame
arrives or the earliest held packet is due, so holding one packet never blocks another.

When ready it prints one JSON line on stdout (name, interface, MAC, control socket, pid). Warnings
(bad packets, at most one line per reason per second) go to the log file, which is capped in size.
SIGTERM or SIGINT ends it cleanly, its control socket removed; packets still held are dropped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import signal
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hosts.control import ControlServer
from hosts.vnf_service import Service, generation_from_request
from rdma_emulator.net import Throttled, log_to_capped_file
from srem_formats.wire import ETHERTYPE_NSH

log = logging.getLogger("rack_server")

LOG_BYTES = 1 << 20
"""The log file's cap; one older file is kept beside it."""
RECEIVE_BUFFER = 8 << 20
"""Bytes the kernel queues for the process: a burst at line rate waits here rather than being dropped."""
BATCH = 256
"""Frames read per wake-up before due packets are sent: a flood cannot starve the held ones for long."""
IDLE_WAKE_S = 1.0
SWITCH_INTERVAL_S = 0.0005
"""How long the control thread may keep the GIL from the packet thread (Python's default is 5 ms, a
latency spike in the middle of a reconfiguration's install)."""
SO_RCVBUFFORCE = 33
SOL_PACKET, PACKET_STATISTICS = 263, 6
_PACKET_STATS = struct.Struct("II")
"""struct tpacket_stats: packets seen, packets dropped for want of buffer (both reset when read)."""


def parse_mac(text: str) -> bytes:
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 for p in parts):
        raise ValueError(f"{text!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    return bytes.fromhex("".join(parts))


def open_interface(interface: str) -> socket.socket:
    """A non-blocking raw socket receiving the interface's NSH frames (never the ones it sends itself)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE_NSH))
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except PermissionError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind((interface, ETHERTYPE_NSH))
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class RackServer:
    """The process: the service, the packet loop on `sock`, the control server, and the lock between them."""

    def __init__(self, name: str, interface: str, sock: socket.socket, switch_mac: bytes) -> None:
        self.name = name
        self.interface = interface
        self.sock = sock
        self.mac: bytes = sock.getsockname()[4]
        self.warn = Throttled(log).warning
        self.service = Service(self.mac, switch_mac, self.warn)
        self.lock = threading.Lock()
        self.socket_drops = 0

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        if request["op"] == "install":
            # Checked before taking the lock: reading a large install must not hold packets back mid-reconfiguration.
            generation = generation_from_request(request)
            with self.lock:
                return self.service.install(generation, time.monotonic())
        with self.lock:
            answer = self.service.handle(request, time.monotonic())
        if request["op"] == "status":
            answer.update(name=self.name, interface=self.interface, mac=self.mac.hex(":"), socket_drops=self._socket_drops())
        return answer

    def _socket_drops(self) -> int:
        """Frames the kernel dropped because the process did not read them in time (cumulative)."""
        _, dropped = _PACKET_STATS.unpack(self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _PACKET_STATS.size))
        self.socket_drops += dropped
        return self.socket_drops

    def run(self, wake: socket.socket) -> None:
        """Move packets until `wake` becomes readable (a signal arrived)."""
        sock, service, lock = self.sock, self.service, self.lock
        while True:
            with lock:
                due = service.next_due()
            timeout = IDLE_WAKE_S if due is None else min(IDLE_WAKE_S, max(0.0, due - time.monotonic()))
            readable, _, _ = select.select([sock, wake], [], [], timeout)
            if wake in readable:
                return
            if readable:
                with lock:
                    for _ in range(BATCH):
                        try:
                            frame = sock.recv(65535)
                        except BlockingIOError:
                            break
                        service.receive(frame, time.monotonic())
            with lock:  # sent under the lock that counts them: what a control request reads is what is on the wire
                ready = service.due(time.monotonic())
                if ready:
                    service.sent([(k, self._send(frame)) for k, frame in ready])

    def _send(self, frame: bytearray) -> bool:
        try:
            self.sock.send(frame)
            return True
        except OSError as exc:
            self.warn("send", f"could not send a frame on {self.interface}: {exc}")
            return False


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m hosts.rack_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="the rack server's name in the topology")
    parser.add_argument("--interface", required=True, help="the interface to its switch")
    parser.add_argument("--switch-mac", required=True, help="the switch's MAC address: where served packets go back to")
    parser.add_argument("--control", required=True, type=Path, help="the control channel's Unix socket (created)")
    parser.add_argument("--log", required=True, type=Path, help="warnings go here, capped in size")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    try:
        switch_mac = parse_mac(args.switch_mac)
    except ValueError as exc:
        print(f"rack_server: --switch-mac: {exc}", file=sys.stderr)
        return 2
    try:
        log_to_capped_file(log, args.log, LOG_BYTES)
    except OSError as exc:
        print(f"rack_server: --log {args.log}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        sock = open_interface(args.interface)
    except OSError as exc:
        print(f"rack_server: --interface {args.interface}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    server = RackServer(args.name, args.interface, sock, switch_mac)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        control = ControlServer(args.control, server.handle).start()
    except OSError as exc:
        sock.close()
        print(f"rack_server: --control {args.control}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    wake, wake_writer = socket.socketpair()
    wake_writer.setblocking(False)
    signal.set_wakeup_fd(wake_writer.fileno())
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)  # the wake-up fd ends the loop; the handler only has to exist
    try:
        print(json.dumps({"rack_server": args.name, "interface": args.interface, "mac": server.mac.hex(":"),
                          "control": str(args.control), "pid": os.getpid()}), flush=True)
        server.run(wake)
    finally:
        control.close()
        sock.close()
        wake.close()
        wake_writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
