"""A traffic host's process: sends its chains' data and probes at their rates, and receives and timestamps
what reaches it; the controller drives it over its control socket (hosts/control.py).

    python -m hosts.traffic --name H --interface IFACE --control PATH.sock --log PATH [--gateway-mac MAC]

One process per traffic host, sender and receiver of every chain of that host. Frames go out and
come in on raw sockets on IFACE (the host's link to its switch's port 1): out, because the frames
are built by the agent (hosts/probe_wire.py) with the interface's own MAC and IPv4 source address,
which the source switch's classifier requires, and need no route or ARP; in, because a NAT on the
chain rewrites the destination port (and maybe the address), so the receiver recognises packets by
the magic of their payload (a socket filter in the kernel), not by port. The receive time is the
kernel's software stamp (SO_TIMESTAMPING, hosts/timestamps.py), on the clock the sender read just before
sending. A probe the kernel did not stamp (it turns stamping on lazily) is recorded apart, as arrived
without a stamp: never with a receive time made up when it was read. Stamping is asked for when the
agent starts, and the agent waits (at most WARM_UP_S) until the kernel stamps before it takes requests.

Control operations (JSON, one request per line; bad input gets an error and changes nothing):

  flows     {"flows": [{"chain", "dst", "dst_port", "src_port", "payload", "data_pps", "probe_pps"}, ...]}
            The whole set this host sends from now on, replacing the last one at once. A chain keeps
            its probe sequence numbers across sets, so they increase for the whole run. Probes are the
            chain's packets too (same ports, same payload size: its meter counts them like its data).
  baseline  {"targets": [addresses], "count", "pps", "port" (default 9)}
            Plain IPv4 probes (no chain's port) to each target, `count` each at `pps`: the idle latency.
  collect   Returns and clears the records so far: probes sent and received (received: with the kernel's
            receive time; unstamped: arrived, but the kernel gave no stamp), the same for baseline probes;
            with the data packets sent and received per chain (totals since start).
  status    What the agent is doing and its counters.

Pacing: a thread sleeps until the next packet is due, but at least TICK_S (no busy wait: the cores
are the BMv2 switches'), then sends every packet due by then, at most MAX_BURST (well under the ~32
frames a BMv2 port queues without dropping); a stream that falls more than MAX_LAG_S behind skips
what it missed (counted in `status`, never sent late in a burst).
"""

from __future__ import annotations

import argparse
import array
import ctypes
import errno
import fcntl
import ipaddress
import logging
import math
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hosts.control import ControlServer
from hosts.probe_wire import BASELINE_PORT, HEADER, SNAP_LEN, Endpoints, Kind, Template, parse, \
    socket_filter
from hosts.timestamps import ANCILLARY_SPACE, enable, software_stamp, wait_until_stamping
from rdma_emulator.net import Throttled, log_to_capped_file

TICK_S = 0.001
MAX_BURST = 16
MAX_LAG_S = 0.05
IDLE_S = 0.05
"""How long the sender sleeps with nothing to send: the delay before it sees a new flow set or stop."""
MAX_TOTAL_PPS = 10_000.0
"""Data and probe packets per second one agent accepts to send. MAX_BURST per tick caps it at about 13,000
(a tick lasts about 1.2 ms with the sleep's overshoot); measured on 2 busy cores: 10,000 offered, 9,900 sent
(the rest is the measurement's start), none skipped, at 10% of a core."""
RECORD_CAP = 1 << 21
"""Records held between two collects, per log: beyond, new ones are counted as dropped instead."""
RECEIVE_BUFFER = 8 << 20
LOG_BYTES = 1 << 20
ETH_P_IP = 0x0800
SO_ATTACH_FILTER = 26
SO_RCVBUFFORCE = 33
SIOCGIFADDR, SIOCGIFHWADDR, SIOCGIFMTU = 0x8915, 0x8927, 0x8921
IP_UDP_LEN = 28
WARM_UP_S = 5.0
"""How long a starting agent waits for the kernel to stamp received frames: measured on 2 busy cores, it stamps
within 12 ms of being asked; far longer means something is wrong, and the agent goes on, telling unstamped frames apart."""
BROADCAST = "ff:ff:ff:ff:ff:ff"
FLOW_KEYS = frozenset({"chain", "dst", "dst_port", "src_port", "payload", "data_pps", "probe_pps"})

log = logging.getLogger("traffic")


# Request validation: pure


@dataclass(frozen=True)
class FlowSpec:
    chain: int
    dst: str
    dst_port: int
    src_port: int
    payload: int
    data_pps: float
    probe_pps: float


@dataclass(frozen=True)
class BaselineSpec:
    targets: tuple[str, ...]
    count: int
    pps: float
    port: int


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{what}: {value!r} is not an integer in [{low}, {high}]")
    return value


def _rate(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{what}: {value!r} is not a rate (a finite number >= 0 packets per second)")
    return float(value)


def _address(value: Any, what: str) -> str:
    try:
        return str(ipaddress.IPv4Address(value if isinstance(value, str) else "-"))
    except ipaddress.AddressValueError:
        raise ValueError(f"{what}: {value!r} is not an IPv4 address") from None


def _field(request: dict[str, Any], key: str) -> Any:
    if key not in request:
        raise ValueError(f"{request.get('op')}: missing {key!r}")
    return request[key]


def parse_flows(doc: Any, max_payload: int) -> list[FlowSpec]:
    """The `flows` request's set; ValueError naming the first bad entry and field."""
    if not isinstance(doc, list):
        raise ValueError("'flows' is a list of flows")
    flows: list[FlowSpec] = []
    for i, entry in enumerate(doc):
        where = f"flows[{i}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: not an object")
        if set(entry) != FLOW_KEYS:
            missing, unknown = sorted(FLOW_KEYS - set(entry)), sorted(set(entry) - FLOW_KEYS)
            raise ValueError(f"{where}: " + "; ".join(([f"missing {', '.join(missing)}"] if missing else [])
                                                      + ([f"unknown {', '.join(unknown)}"] if unknown else [])))
        flows.append(FlowSpec(
            chain=_int(entry["chain"], f"{where}.chain", 0, 0xFFFFFFFF),
            dst=_address(entry["dst"], f"{where}.dst"),
            dst_port=_int(entry["dst_port"], f"{where}.dst_port", 1, 65535),
            src_port=_int(entry["src_port"], f"{where}.src_port", 1, 65535),
            payload=_int(entry["payload"], f"{where}.payload", HEADER.size, max_payload),
            data_pps=_rate(entry["data_pps"], f"{where}.data_pps"),
            probe_pps=_rate(entry["probe_pps"], f"{where}.probe_pps")))
    chains = [f.chain for f in flows]
    if len(set(chains)) != len(chains):
        raise ValueError(f"chain {next(c for c in chains if chains.count(c) > 1)} appears twice")
    total = sum(f.data_pps + f.probe_pps for f in flows)
    if total > MAX_TOTAL_PPS:
        raise ValueError(f"{total:.0f} packets per second in total: at most {MAX_TOTAL_PPS:.0f}")
    return flows


def parse_baseline(request: dict[str, Any]) -> BaselineSpec:
    targets = _field(request, "targets")
    if not isinstance(targets, list) or not targets:
        raise ValueError("'targets' is a non-empty list of IPv4 addresses")
    spec = BaselineSpec(tuple(_address(t, f"targets[{i}]") for i, t in enumerate(targets)),
                        _int(_field(request, "count"), "count", 1, 1_000_000), _rate(_field(request, "pps"), "pps"),
                        _int(request.get("port", BASELINE_PORT), "port", 1, 65535))
    if len(set(spec.targets)) != len(spec.targets):
        raise ValueError("a target appears twice")
    if not 0 < spec.pps * len(spec.targets) <= MAX_TOTAL_PPS:
        raise ValueError(f"pps: {spec.pps} per target must be > 0 and at most {MAX_TOTAL_PPS:.0f} in total")
    return spec


# Records: filled by one thread, taken by the control thread


class Records:
    """A log of fixed-width integer records in one flat array; `take` returns and clears it."""

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = tuple(fields)
        self._values = array.array("q")
        self._lock = threading.Lock()
        self.dropped = 0

    def add(self, *values: int) -> None:
        with self._lock:
            if len(self._values) >= RECORD_CAP * len(self.fields):
                self.dropped += 1
                return
            self._values.extend(values)

    def __len__(self) -> int:
        return len(self._values) // len(self.fields)

    def take(self) -> dict[str, list[int]]:
        """Columns: field -> values in the order they were added."""
        with self._lock:
            values, self._values = self._values, array.array("q")
        n = len(self.fields)
        return {field: values[k::n].tolist() for k, field in enumerate(self.fields)}


# The interface


@dataclass(frozen=True)
class Interface:
    name: str
    mac: str
    address: str
    mtu: int


def interface(name: str) -> Interface:
    """The interface's MAC, IPv4 address and MTU from the kernel (ioctl: right in any network namespace,
    where /sys may still show another's); OSError naming what is missing."""
    request = struct.pack("256s", name.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            hw = fcntl.ioctl(s, SIOCGIFHWADDR, request)
        except OSError as exc:
            raise OSError(f"no interface {name!r} here ({exc.strerror})") from None
        try:
            ip = fcntl.ioctl(s, SIOCGIFADDR, request)
        except OSError:
            raise OSError(f"interface {name!r} has no IPv4 address (the traffic host's address is its source)") from None
        mtu = struct.unpack_from("i", fcntl.ioctl(s, SIOCGIFMTU, request), 16)[0]
    return Interface(name, ":".join(f"{b:02x}" for b in hw[18:24]), socket.inet_ntoa(ip[20:24]), mtu)


def attach_filter(sock: socket.socket) -> ctypes.Array[ctypes.c_char]:
    """Attach probe_wire's socket filter; the buffer returned holds the program and must outlive the call."""
    program = socket_filter()
    code = ctypes.create_string_buffer(b"".join(struct.pack("HBBI", *insn) for insn in program))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, struct.pack("HL", len(program), ctypes.addressof(code)))
    return code


# Sending


@dataclass
class Stream:
    """One paced sequence of one template: a chain's probes or data, or a baseline to one target."""

    kind: Kind
    key: int
    """The chain id, or for a baseline the target's address as an integer."""
    template: Template
    interval_ns: int
    due_ns: int
    remaining: int | None = None
    """Packets left to send (baselines); None: until replaced."""


class Sender:
    """The pacing thread and everything only it changes (streams, sequence numbers, sent counters)."""

    def __init__(self, sock: socket.socket, probes: Records, baselines: Records) -> None:
        self.sock = sock
        self.probes = probes
        self.baselines = baselines
        self.streams: list[Stream] = []
        self.seq: dict[tuple[Kind, int], int] = {}
        self.data_sent: dict[int, int] = {}
        self.probes_sent = 0
        self.skipped = 0
        self.errors = 0
        self._wanted: tuple[int, list[tuple[Kind, int, Template, float]]] = (0, [])
        self._installed = 0
        self._baseline_queue: list[Stream] = []
        self._queue_lock = threading.Lock()
        self._throttled = Throttled(log)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sender", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def want(self, streams: list[tuple[Kind, int, Template, float]]) -> None:
        """The continuous streams (kind, chain, template, pps) from now on; installed at the next tick, all at once."""
        self._wanted = (self._wanted[0] + 1, streams)

    def add_baseline(self, streams: list[Stream]) -> None:
        with self._queue_lock:
            self._baseline_queue.extend(streams)

    def _install(self, now: int) -> None:
        version, wanted = self._wanted
        with self._queue_lock:
            queued, self._baseline_queue = self._baseline_queue, []
        if version == self._installed and not queued:
            return
        streams = self.streams
        if version != self._installed:
            current = {(s.kind, s.key): s for s in streams}
            streams = [s for s in streams if s.kind is Kind.BASELINE]
            for kind, chain, template, pps in wanted:
                interval = round(1e9 / pps)
                old = current.get((kind, chain))
                # A kept stream keeps its phase, unless the new rate makes its next packet due sooner.
                streams.append(Stream(kind, chain, template, interval, now if old is None else min(old.due_ns, now + interval)))
            self._installed = version
        for s in queued:
            s.due_ns = now
        replaced = {s.key for s in queued}
        self.streams = [s for s in streams if not (s.kind is Kind.BASELINE and s.key in replaced)] + queued

    def _run(self) -> None:
        tick, lag, idle = round(TICK_S * 1e9), round(MAX_LAG_S * 1e9), round(IDLE_S * 1e9)
        first = 0
        while not self._stop.is_set():
            now = time.monotonic_ns()
            self._install(now)
            budget = MAX_BURST
            wake = now + idle
            streams = self.streams
            n = len(streams)
            for i in range(n):
                s = streams[(first + i) % n]
                if now - s.due_ns > lag:
                    missed = (now - s.due_ns) // s.interval_ns
                    self.skipped += missed
                    s.due_ns += missed * s.interval_ns
                while s.due_ns <= now and budget and s.remaining != 0:
                    if self._send(s):
                        budget -= 1
                    s.due_ns += s.interval_ns
                wake = min(wake, s.due_ns)
            first = first + 1 if n else 0
            if any(s.remaining == 0 for s in streams):
                self.streams = [s for s in streams if s.remaining != 0]
            time.sleep(max(wake - time.monotonic_ns(), tick) / 1e9)

    def _send(self, s: Stream) -> bool:
        if s.kind is Kind.DATA:
            frame: bytearray = s.template.frame
            sent_ns = 0
        else:
            key = (s.kind, s.key)
            seq = self.seq.get(key, 0)
            sent_ns = time.time_ns()
            frame = s.template.stamp(seq, sent_ns)
        try:
            self.sock.send(frame)
        except OSError as exc:
            self.errors += 1
            self._throttled.warning("send", f"send on the interface failed: {exc.strerror or exc} (the packet is not counted)")
            return False
        if s.kind is Kind.DATA:
            self.data_sent[s.key] = self.data_sent.get(s.key, 0) + 1
        else:
            self.seq[key] = seq + 1
            if s.kind is Kind.PROBE:
                self.probes_sent += 1
                self.probes.add(s.key, seq, sent_ns)
            else:
                self.baselines.add(s.key, seq, sent_ns)
                s.remaining = None if s.remaining is None else s.remaining - 1
        return True


# Receiving


class Arrivals:
    """What arrived, frame by frame (those that passed the socket filter, with their ancillary data): probes and
    baseline probes with the kernel's receive time, those the kernel did not stamp apart (arrived, no latency),
    data packets counted per chain."""

    def __init__(self, stamps_from_ns: int) -> None:
        self.stamps_from_ns = stamps_from_ns
        """When the socket asked for stamps: an older stamp is not its frame's (hosts/timestamps.software_stamp)."""
        self.probes = Records(("chain", "seq", "sent_ns", "received_ns"))
        self.baselines = Records(("src", "seq", "sent_ns", "received_ns"))
        self.unstamped_probes = Records(("chain", "seq", "sent_ns"))
        self.unstamped_baselines = Records(("src", "seq", "sent_ns"))
        self.data: dict[int, int] = {}
        self.probes_received = 0
        """Probes that arrived, stamped or not."""
        self.unstamped = 0
        """Probes and baseline probes that arrived without a kernel stamp."""

    def record(self, frame: bytes, ancillary: list[tuple[int, int, bytes]]) -> None:
        if (packet := parse(frame)) is None:
            return
        kind, chain, seq, sent_ns, src = packet
        if kind == Kind.DATA:
            self.data[chain] = self.data.get(chain, 0) + 1
            return
        received_ns = software_stamp(ancillary, self.stamps_from_ns)
        self.unstamped += received_ns is None
        if kind == Kind.PROBE:
            self.probes_received += 1
            if received_ns is None:
                self.unstamped_probes.add(chain, seq, sent_ns)
            else:
                self.probes.add(chain, seq, sent_ns, received_ns)
        elif received_ns is None:
            self.unstamped_baselines.add(src, seq, sent_ns)
        else:
            self.baselines.add(src, seq, sent_ns, received_ns)

    def logs(self) -> tuple[Records, ...]:
        return self.probes, self.baselines, self.unstamped_probes, self.unstamped_baselines


class Receiver:
    """The receiving thread: reads the socket, hands each frame with its ancillary data to `arrivals`."""

    def __init__(self, sock: socket.socket, arrivals: Arrivals) -> None:
        self.sock = sock
        self.arrivals = arrivals
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="receiver", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, ancillary, _, _ = self.sock.recvmsg(SNAP_LEN, ANCILLARY_SPACE)
            except TimeoutError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EINTR, errno.EAGAIN):
                    continue
                log.warning("receive failed: %s", exc)
                time.sleep(0.1)
                continue
            self.arrivals.record(frame, ancillary)


# The agent


class Agent:
    def __init__(self, name: str, iface: Interface, gateway_mac: str) -> None:
        self.name = name
        self.iface = iface
        self.gateway_mac = gateway_mac
        self.started_ns = time.time_ns()
        self.flows: list[FlowSpec] = []
        self.sent_probes = Records(("chain", "seq", "sent_ns"))
        self.sent_baseline = Records(("dst", "seq", "sent_ns"))
        self.stamping: str | None = "not started"
        """Why the kernel's stamping was not confirmed at start; None once it was (`start`)."""
        self.tx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        # Protocol 0 until bound: the socket takes no frame before its filter is on.
        self.rx = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        try:
            self.tx.bind((iface.name, 0))
            self._filter = attach_filter(self.rx)
            try:
                self.rx.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
            except PermissionError:
                self.rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
            # Before binding: every frame the socket takes arrives after stamping was asked for.
            stamps_from_ns = enable(self.rx)
            self.rx.bind((iface.name, ETH_P_IP))
            self.rx.settimeout(0.2)
        except OSError:
            self.close_sockets()
            raise
        self.sender = Sender(self.tx, self.sent_probes, self.sent_baseline)
        self.arrivals = Arrivals(stamps_from_ns)
        self.receiver = Receiver(self.rx, self.arrivals)

    def start(self) -> None:
        """Wait until the kernel stamps received frames (it turns stamping on lazily), then send and receive. If it
        cannot be confirmed, a warning: frames the kernel does not stamp are still told apart, as unstamped."""
        self.stamping = wait_until_stamping(WARM_UP_S)
        if self.stamping is not None:
            log.warning("could not confirm that the kernel stamps received frames: %s", self.stamping)
        self.receiver.start()
        self.sender.start()

    def stop(self) -> None:
        self.sender.stop()
        self.receiver.stop()
        self.close_sockets()

    def close_sockets(self) -> None:
        self.tx.close()
        self.rx.close()

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "flows":
            return self.set_flows(_field(request, "flows"))
        if op == "baseline":
            return self.baseline(parse_baseline(request))
        if op == "collect":
            return self.collect()
        if op == "status":
            return self.status()
        raise ValueError(f"unknown op {op!r} (flows, baseline, collect, status)")

    def _ends(self, dst: str, src_port: int, dst_port: int) -> Endpoints:
        return Endpoints(self.iface.mac, self.gateway_mac, self.iface.address, dst, src_port, dst_port)

    def set_flows(self, doc: Any) -> dict[str, Any]:
        flows = parse_flows(doc, self.iface.mtu - IP_UDP_LEN)
        streams: list[tuple[Kind, int, Template, float]] = []
        for f in flows:
            ends = self._ends(f.dst, f.src_port, f.dst_port)
            streams += [(kind, f.chain, Template(ends, kind, f.chain, f.payload), pps)
                        for kind, pps in ((Kind.PROBE, f.probe_pps), (Kind.DATA, f.data_pps)) if pps > 0]
        self.sender.want(streams)
        self.flows = flows
        return {"flows": len(flows), "pps": sum(f.data_pps + f.probe_pps for f in flows)}

    def baseline(self, spec: BaselineSpec) -> dict[str, Any]:
        interval = round(1e9 / spec.pps)
        streams = [Stream(Kind.BASELINE, int(ipaddress.IPv4Address(t)), Template(self._ends(t, spec.port, spec.port),
                          Kind.BASELINE, 0, HEADER.size), interval, 0, spec.count) for t in spec.targets]
        self.sender.add_baseline(streams)
        return {"targets": len(streams), "seconds": spec.count / spec.pps}

    def collect(self) -> dict[str, Any]:
        """now_ns is read before the records are taken, so that whatever arrived well before it is in this
        answer or an earlier one (the analysis's horizon, hosts' records being taken a moment later)."""
        now = time.time_ns()
        arrived = self.arrivals
        probes_sent, probes_received = self.sent_probes.take(), arrived.probes.take()
        probes_unstamped = arrived.unstamped_probes.take()
        sent_baseline, received_baseline = self.sent_baseline.take(), arrived.baselines.take()
        unstamped_baseline = arrived.unstamped_baselines.take()
        sent_baseline["dst"] = [str(ipaddress.IPv4Address(a)) for a in sent_baseline["dst"]]
        for columns in (received_baseline, unstamped_baseline):
            columns["src"] = [str(ipaddress.IPv4Address(a)) for a in columns["src"]]
        sent, received = dict(self.sender.data_sent), dict(arrived.data)
        chains = sorted(set(sent) | set(received))
        return {"name": self.name, "address": self.iface.address, "now_ns": now,
                "probes_sent": probes_sent, "probes_received": probes_received, "probes_unstamped": probes_unstamped,
                "baseline_sent": sent_baseline, "baseline_received": received_baseline,
                "baseline_unstamped": unstamped_baseline,
                "data": {"chain": chains, "sent": [sent.get(c, 0) for c in chains],
                         "received": [received.get(c, 0) for c in chains]}}

    def status(self) -> dict[str, Any]:
        logs = (self.sent_probes, self.sent_baseline, *self.arrivals.logs())
        return {"name": self.name, "interface": self.iface.name, "address": self.iface.address, "mac": self.iface.mac,
                "gateway_mac": self.gateway_mac, "started_ns": self.started_ns, "flows": len(self.flows),
                "chains": [f.chain for f in self.flows], "pps": sum(f.data_pps + f.probe_pps for f in self.flows),
                "probes_sent": self.sender.probes_sent, "probes_received": self.arrivals.probes_received,
                "data_sent": sum(self.sender.data_sent.values()), "data_received": sum(self.arrivals.data.values()),
                "skipped_late": self.sender.skipped, "send_errors": self.sender.errors,
                "unstamped": self.arrivals.unstamped, "stamping_confirmed": self.stamping is None,
                "records_held": sum(len(r) for r in logs), "records_dropped": sum(r.dropped for r in logs)}


def _mac(text: str) -> str:
    parts = text.split(":")
    if len(parts) != 6 or not all(len(p) == 2 and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a MAC address (xx:xx:xx:xx:xx:xx)")
    return text.lower()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hosts.traffic", description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", required=True, help="the traffic host's name (in answers and the log)")
    parser.add_argument("--interface", required=True, help="the host's link to its switch")
    parser.add_argument("--control", required=True, type=Path, help="the control socket to create")
    parser.add_argument("--log", required=True, type=Path, help="warnings go here (size-capped)")
    parser.add_argument("--gateway-mac", type=_mac, default=BROADCAST,
                        help="destination MAC of every frame: the switch's (BMv2 takes any; default broadcast)")
    args = parser.parse_args(argv)
    try:
        log_to_capped_file(log, args.log, LOG_BYTES, prefix=f"{args.name}: ")
    except OSError as exc:
        print(f"traffic: --log {args.log}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    if not args.control.parent.is_dir():
        print(f"traffic: --control {args.control}: no directory {args.control.parent}", file=sys.stderr)
        return 1
    try:
        agent = Agent(args.name, interface(args.interface), args.gateway_mac)
    except OSError as exc:
        print(f"traffic: --interface {args.interface}: {exc.strerror or exc}", file=sys.stderr)
        log.error("did not start: --interface %s: %s", args.interface, exc.strerror or exc)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    agent.start()
    try:
        server = ControlServer(args.control, agent.handle).start()
    except OSError as exc:
        agent.stop()
        print(f"traffic: --control {args.control}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.close()
        agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
