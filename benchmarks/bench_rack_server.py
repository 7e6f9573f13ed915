"""Speed of one rack server VNF process (hosts/rack_server.py, issue 13 item 3); prints its figures.

In a namespace of its own, the process serves a firewall of 120 rules (delay 0 unless --delay-ms) on
one end of a veth pair; this script plays the switch on the other end.

- added latency: frames sent one at a time; each frame's time from entering the server's interface
  to leaving it, from the kernel's timestamps on that interface (p50, p99, max);
- throughput: frames offered at fixed rates for a second each, then a flood as fast as this script
  sends; per rate, from the process's counters, whether it had served everything by the time the
  last frame was sent, what it served and what its socket dropped; the rate one process sustains is
  the highest offered rate it kept up with and lost nothing of, and its serving rate when saturated is
  measured while the flood's backlog lasts.

Needs root and iproute2. Run: .venv/bin/python benchmarks/bench_rack_server.py [--delay-ms D] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import select
import socket
import statistics
import struct
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from scapy.layers.inet import IP, UDP

from hosts.functions import IPV4_OFFSET, InstanceSpec, ServicePath
from hosts.rack_server_client import RackServerClient, command, wait_ready
from srem_formats.flows import Action, Flow, Rule, VnfKind
from srem_formats.wire import ETHERTYPE_NSH, Nsh

SWITCH_MAC = "02:00:00:00:0b:01"
PATH = ServicePath(1, 1, 1)
FLOW = Flow(0x0A000001, 0x0A000002, 17, 10000)
RULES = (Rule(FLOW, Action.PERMIT), *(Rule(Flow(0xC6120000 + n, 0xC6130001, 17, 9), Action.DENY) for n in range(119)))
PACKET_OUTGOING, CLONE_NEWNET = 4, 0x40000000
BUSY_S = 0.2
SO_TIMESTAMPING, SOFTWARE_STAMPS = 37, (1 << 3) | (1 << 4)
"""SOF_TIMESTAMPING_RX_SOFTWARE | SOFTWARE: a frame the kernel did not stamp comes without a stamp (SO_TIMESTAMPNS
would stamp it when read), as the first ones do while the kernel turns stamping on (deferred work)."""


def in_netns(netns: str, work: Callable[[], Any]) -> Any:
    """Run `work` on a thread inside the namespace (sockets it opens live there)."""
    out: dict[str, Any] = {}

    def target() -> None:
        with open(f"/var/run/netns/{netns}") as ns:
            if ctypes.CDLL(None, use_errno=True).setns(ns.fileno(), CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns")
        out["value"] = work()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(30)
    return out["value"]


def raw(netns: str, iface: str, protocol: int) -> socket.socket:
    def open_() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(protocol))
        sock.setsockopt(socket.SOL_SOCKET, 33, 32 << 20)
        sock.bind((iface, protocol))
        return sock
    return in_netns(netns, open_)


@contextlib.contextmanager
def rack_server(delay_ms: float) -> Iterator[tuple[str, RackServerClient, bytes]]:
    netns = f"srem-bench-rack{os.getpid()}"
    run = ["ip", "netns", "exec", netns]
    subprocess.run(["ip", "netns", "add", netns], check=True)
    process = None
    work = tempfile.TemporaryDirectory(prefix="bench-rack-")
    try:
        subprocess.run([*run, "ip", "link", "add", "srv", "type", "veth", "peer", "name", "sw"], check=True)
        for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "link", "set", "srv", "up"], ["ip", "link", "set", "sw", "up"],
                    ["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"]):
            subprocess.run([*run, *cmd], check=True)
        control, log = Path(work.name) / "m1.sock", Path(work.name) / "m1.log"
        process = subprocess.Popen([*run, *command("m1", "srv", SWITCH_MAC, control, log)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        mac = bytes.fromhex(wait_ready(process)["mac"].replace(":", ""))
        client = RackServerClient(control)
        client.install(1, {PATH: 1}, {1: InstanceSpec.of(VnfKind.FIREWALL, RULES, delay_ms, {})})
        yield netns, client, mac
    finally:
        if process is not None:
            process.terminate()
            process.wait(10)
        subprocess.run(["ip", "netns", "del", netns], check=False)
        work.cleanup()


def frames(mac: bytes, count: int) -> list[bytes]:
    inner = bytes(IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5000, dport=FLOW.dst_port, chksum=0) / bytes(64))
    head = (mac + bytes.fromhex(SWITCH_MAC.replace(":", "")) + ETHERTYPE_NSH.to_bytes(2, "big")
            + Nsh(PATH.spi, PATH.si, PATH.version).pack())
    return [head + inner[:28] + n.to_bytes(8, "big") + inner[36:] for n in range(count)]


def added_latency(netns: str, mac: bytes, count: int) -> list[float]:
    """Microseconds from in to out at the server's interface, one frame at a time, of the frames the kernel
    stamped both ways (after a warm-up of `count` frames that lets it turn stamping on)."""
    wire, capture = raw(netns, "sw", ETHERTYPE_NSH), raw(netns, "srv", 0x0003)
    capture.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, SOFTWARE_STAMPS)
    stamps: dict[tuple[bool, int], int] = {}
    try:
        for frame in frames(mac, 2 * count):
            wire.send(frame)
            while True:
                _, address = wire.recvfrom(2048)
                if address[2] != PACKET_OUTGOING:
                    break
        while select.select([capture], [], [], 0.2)[0]:
            frame, ancillary, _, address = capture.recvmsg(2048, socket.CMSG_SPACE(48))
            found = [struct.unpack("qq", data[:16]) for _, kind, data in ancillary if kind == SO_TIMESTAMPING]
            if found and found[0] != (0, 0):
                tag = int.from_bytes(frame[IPV4_OFFSET + 28:IPV4_OFFSET + 36], "big")
                stamps[(address[2] == PACKET_OUTGOING, tag)] = found[0][0] * 10**9 + found[0][1]
    finally:
        wire.close()
        capture.close()
    return [(stamps[(True, n)] - stamps[(False, n)]) / 1e3 for n in range(count, 2 * count)
            if (True, n) in stamps and (False, n) in stamps]


def offered(netns: str, client: RackServerClient, mac: bytes, rate: float | None, seconds: float) -> dict[str, Any]:
    """Offer frames at `rate` per second (None: as fast as this loop sends) for `seconds`. From the server's
    counters: whether it had served them all when the last was sent (it kept up), what it served in the end and
    what its socket dropped, and its serving rate while it still had a backlog (read twice, BUSY_S apart)."""
    wire = raw(netns, "sw", ETHERTYPE_NSH)
    count = int((rate or 400_000) * seconds)
    batch = frames(mac, count)
    before = client.status()
    try:
        started = time.perf_counter()
        for n, frame in enumerate(batch):
            if rate is not None:
                while time.perf_counter() < started + n / rate:
                    pass
            wire.send(frame)
        sent_s = time.perf_counter() - started
        first, t1 = client.status(), time.perf_counter()
        time.sleep(BUSY_S)
        second, t2 = client.status(), time.perf_counter()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            final = client.status()
            if final["instances"]["1"]["packets"] + final["socket_drops"] >= before["instances"]["1"]["packets"] + \
                    before["socket_drops"] + count:
                break
            time.sleep(0.05)
    finally:
        wire.close()

    def served(status: dict[str, Any]) -> int:
        return status["instances"]["1"]["sent"] - before["instances"]["1"]["sent"]

    busy = served(second) < served(final)
    return {"offered_pps": round(count / sent_s), "sent": count, "kept_up": served(first) >= 0.99 * count,
            "served": served(final), "socket_drops": final["socket_drops"] - before["socket_drops"],
            "busy_pps": round((served(second) - served(first)) / (t2 - t1)) if busy else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--delay-ms", type=float, default=0.0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with rack_server(args.delay_ms) as (netns, client, mac):
        latency = sorted(added_latency(netns, mac, 2000))
        rates = [offered(netns, client, mac, rate, 1.0) for rate in (10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 120_000)]
        flood = offered(netns, client, mac, None, 0.25)
    sustained = max((r["offered_pps"] for r in rates if r["kept_up"] and r["served"] == r["sent"]), default=0)
    result = {"delay_ms": args.delay_ms, "added_latency_us": {
        "p50": round(statistics.median(latency), 1), "p99": round(latency[int(0.99 * len(latency))], 1),
        "max": round(latency[-1], 1), "samples": len(latency)}, "rates": rates, "flood": flood, "sustained_pps": sustained}
    if args.json:
        print(json.dumps(result))
        return
    lat = result["added_latency_us"]
    print(f"added latency (delay {args.delay_ms:g} ms): p50 {lat['p50']} us, p99 {lat['p99']} us, max {lat['max']} us "
          f"over {lat['samples']} frames")
    for r in [*rates, flood]:
        busy = f", {r['busy_pps']} pps while backlogged" if r["busy_pps"] else ""
        print(f"offered {r['offered_pps']:>7} pps: {r['served']}/{r['sent']} served, {r['socket_drops']} dropped by the socket, "
              f"{'kept up' if r['kept_up'] else 'fell behind'}{busy}")
    print(f"sustained (kept up, nothing lost): {sustained} pps; serving rate when saturated: {flood['busy_pps']} pps")


if __name__ == "__main__":
    main()
