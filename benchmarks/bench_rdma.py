"""Speed of external memory (targets: issue 5); prints its figures.

- one `srem memserver` on loopback, latency 0: READs per second of 64 bytes, from this process with
  a window of requests in flight (target: at least 20,000/s), and the median round trip of one READ;
- the EMAC (`srem emac`, UDP attachment) in front of it, for n_f = 1..4 and delta = 0 and 2 us:
  median lookup time seen by the switch side, and what the EMAC adds beyond the configured RDMA
  latency n_f x delta (target: at most 200 us), next to the time of n_f READs done directly;
- lookups per second through one EMAC, a window in flight;
- WRITEs per second of 64 bytes signed with the control key (issue 20: the server checks each tag and
  nonce), beside the unsigned READs above;
- for latency 2 us, 200 us and 1 ms, how soon after its due time the server sent each delayed completion,
  on its own clock (srem_memserver_completion_delay_seconds): the share within 20, 100 and 500 us.

Run: .venv/bin/python benchmarks/bench_rdma.py [--json]
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import tempfile
import time
from pathlib import Path

from rdma_emulator import protocol as P
from rdma_emulator.auth import load_key, sign, write_key_files
from rdma_emulator.client import store as program
from rdma_emulator.processes import running
from rdma_emulator.server import DELAY_BUCKETS_S
from srem_formats import em_table
from srem_formats.flows import Action, Flow, Rule, VnfKind
from srem_formats.wire import ETHERTYPE_EMAC_REQUEST, EmacRequest

RULES = [Rule(Flow(0x0A000000 + i, 0x0A010001, 17, 10000 + i % 50000), Action.PERMIT) for i in range(400)]
INSTANCE = 1


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(address)
    sock.settimeout(2.0)
    return sock


def windowed(sock: socket.socket, packets: list[bytes], window: int) -> float:
    """Send with `window` requests in flight; the rate of answers per second."""
    started = time.perf_counter()
    sent = received = 0
    while received < len(packets):
        while sent < len(packets) and sent - received < window:
            sock.send(packets[sent])
            sent += 1
        sock.recv(65535)
        received += 1
    return len(packets) / (time.perf_counter() - started)


def one_by_one(sock: socket.socket, packets: list[bytes]) -> list[float]:
    times = []
    for packet in packets:
        started = time.perf_counter()
        sock.send(packet)
        sock.recv(65535)
        times.append(time.perf_counter() - started)
    return times


def frame(region: int, rkey: int, rule: Rule, seq: int) -> bytes:
    k = rule.key
    req = EmacRequest(1, INSTANCE, VnfKind.FIREWALL, 1, region, rkey, seq, k.src, k.dst, k.protocol, 1, k.dst_port)
    return b"\x02" * 12 + ETHERTYPE_EMAC_REQUEST.to_bytes(2, "big") + req.pack() + bytes(64)


def direct_reads(address: tuple[str, int], region: int, rkey: int, header: em_table.Header, n: int) -> float:
    """Median time of one lookup's n_f READs done in sequence straight from this process."""
    sock = connect(address)
    times = []
    for i in range(n):
        rule = RULES[i % len(RULES)]
        steps = em_table.walk(header, rule.key)
        started = time.perf_counter()
        offset, length = next(steps)
        try:
            while True:
                sock.send(P.read(i, region, rkey, offset, length).pack())
                offset, length = steps.send(P.Completion.unpack(sock.recv(65535)).payload)
        except StopIteration:
            pass
        times.append(time.perf_counter() - started)
    sock.close()
    return statistics.median(times)


def emac_figures(latency_ns: float, n: int) -> list[dict[str, float]]:
    rows = []
    with running("memserver", "--listen", "127.0.0.1:0", "--latency-ns", str(latency_ns), "--log-level", "warning") as server:
        address = server.address("memserver")
        host, port = address
        with running("emac", "--memory-server", f"1={host}:{port}", "--listen-udp", "127.0.0.1:0", "--log-level", "warning") as emac:
            switch = connect(emac.udp_attachment())
            for accesses in (1, 2, 3, 4):
                data = em_table.encode(VnfKind.FIREWALL, INSTANCE, accesses, RULES)
                region, rkey = program(address, data)
                frames = [frame(region, rkey, RULES[i % len(RULES)], i) for i in range(n)]
                one_by_one(switch, frames[:50])
                lookup = statistics.median(one_by_one(switch, frames))
                direct = direct_reads(address, region, rkey, em_table.Header.unpack(data), n)
                configured = accesses * latency_ns * 1e-9
                rows.append({"accesses": accesses, "latency_ns": latency_ns, "lookup_us": lookup * 1e6,
                             "added_us": (lookup - configured) * 1e6, "direct_reads_us": direct * 1e6,
                             "emac_overhead_us": (lookup - direct) * 1e6})
            switch.close()
    return rows


def signed_writes_per_s(n: int) -> float:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "control.key"
        write_key_files([(path, None)])
        key = load_key(path)
        with running("memserver", "--listen", "127.0.0.1:0", "--key-file", str(path), "--log-level", "warning") as server:
            address = server.address("memserver")
            region, rkey = program(address, bytes(4096), key=key)
            sock = connect(address)
            packets = [sign(P.write(i, region, rkey, (i * 64) % 4096, bytes(64)), key).pack() for i in range(n)]
            rate = windowed(sock, packets, 32)
            sock.close()
    return rate


def lateness(latency_ns: float, n: int) -> dict[str, float]:
    """Share of delayed completions the server sent within each bound after their due time, on its clock."""
    with running("memserver", "--listen", "127.0.0.1:0", "--latency-ns", str(latency_ns), "--log-level", "warning") as server:
        address = server.address("memserver")
        region, rkey = program(address, bytes(64))
        sock = connect(address)
        before = server.metrics()
        one_by_one(sock, [P.read(i, region, rkey, 0, 64).pack() for i in range(n)])
        after = server.metrics()
        sock.close()
    name = "srem_memserver_completion_delay_seconds"
    buckets = sorted((float(k.partition("le=")[2].rstrip("}")), v - before.get(k, 0)) for k, v in after.items()
                     if k.startswith(f"{name}_bucket{{"))
    count = after[f"{name}_count"] - before[f"{name}_count"]
    within = {f"{b * 1e6:g}": next(v for le, v in buckets if le >= latency_ns * 1e-9 + b) / count for b in DELAY_BUCKETS_S[1:4]}
    return {"latency_us": latency_ns / 1000, "early": buckets[0][1], **within}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--reads", type=int, default=60_000)
    parser.add_argument("--lookups", type=int, default=2_000)
    args = parser.parse_args()

    with running("memserver", "--listen", "127.0.0.1:0", "--log-level", "warning") as server:
        address = server.address("memserver")
        region, rkey = program(address, bytes(4096))
        sock = connect(address)
        packets = [P.read(i, region, rkey, (i * 64) % 4096, 64).pack() for i in range(args.reads)]
        windowed(sock, packets[:2000], 32)
        reads_per_s = statistics.median(windowed(sock, packets, 32) for _ in range(3))
        read_rtt = statistics.median(one_by_one(sock, packets[:5000]))
        sock.close()

    rows = emac_figures(0, args.lookups) + emac_figures(2000, args.lookups)
    with running("memserver", "--listen", "127.0.0.1:0", "--log-level", "warning") as server:
        address = server.address("memserver")
        host, port = address
        with running("emac", "--memory-server", f"1={host}:{port}", "--listen-udp", "127.0.0.1:0", "--log-level", "warning") as emac:
            region, rkey = program(address, em_table.encode(VnfKind.FIREWALL, INSTANCE, 1, RULES))
            switch = connect(emac.udp_attachment())
            frames = [frame(region, rkey, RULES[i % len(RULES)], i) for i in range(20_000)]
            lookups_per_s = windowed(switch, frames, 32)
            switch.close()

    signed = signed_writes_per_s(20_000)
    late = [lateness(latency, 2000 if latency < 1e6 else 500) for latency in (2_000, 200_000, 1_000_000)]
    figures = {"memserver_reads_per_s": reads_per_s, "read_round_trip_us": read_rtt * 1e6, "emac": rows,
               "emac_lookups_per_s": lookups_per_s, "signed_writes_per_s": signed, "lateness": late}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"memory server, loopback, delta 0: {reads_per_s:,.0f} READs/s (64 B, 32 in flight; target >= 20,000); "
          f"one READ round trip {read_rtt * 1e6:.0f} us median")
    print(f"EMAC: {lookups_per_s:,.0f} lookups/s (n_f 1, 32 in flight)")
    print(f"signed WRITEs (control key): {signed:,.0f}/s (64 B, 32 in flight)")
    for row in late:
        print(f"delayed completions at {row['latency_us']:g} us, sent after their due time within 20 / 100 / 500 us: "
              f"{row['20']:.1%} / {row['100']:.1%} / {row['500']:.1%} (early: {row['early']:g})")
    print("n_f  delta    lookup (median)  added beyond n_f x delta (target <= 200 us)  n_f READs direct  EMAC overhead")
    for r in rows:
        print(f"{r['accesses']:>3}  {r['latency_ns'] / 1000:>4g} us  {r['lookup_us']:>10.0f} us  {r['added_us']:>28.0f} us"
              f"  {r['direct_reads_us']:>19.0f} us  {r['emac_overhead_us']:>10.0f} us")


if __name__ == "__main__":
    main()
