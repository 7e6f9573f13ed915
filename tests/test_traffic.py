"""The traffic agent (hosts/traffic.py) as the testbed runs it: one process per host, driven over its control socket.

Two network namespaces joined by a veth pair stand in for two traffic hosts and the network between
them (an idle wire: nothing is lost or reordered on it); the test plays the controller. Also the
probe format (hosts/probe_wire.py), and the receive path's kernel timestamps (hosts/timestamps.py)
on their own: a probe the kernel did not stamp is never given a latency.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bmv2_bed import in_netns, namespace
from controller.testbed.processes import stop
from hosts.control import ControlError, call
from controller.testbed.probes import ProbeLog, window_stats
from hosts.probe_wire import HEADER, MAGIC, SNAP_LEN, Endpoints, Kind, Template, parse
from hosts.timestamps import SO_TIMESTAMPING, enable, wait_until_stamping
from hosts.traffic import ETH_P_IP, MAX_TOTAL_PPS, WARM_UP_S, Arrivals, attach_filter

ROOT = Path(__file__).resolve().parents[1]
MISSING = [tool for tool in ("ip",) if shutil.which(tool) is None]
SKIP_REASON = (f"needs {' and '.join(MISSING)} (iproute2)" if MISSING
               else "needs root for network namespaces" if os.geteuid() != 0 else "")
needs_netns = pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON)
A_IP, B_IP = "10.1.0.1", "10.1.0.2"
IDLE_WIRE_P50_BOUND_NS = 1_000_000
"""A bound on the median one-way latency across an idle veth: measured (kernel stamps, 1000 probes/s for 10 s, 3 runs)
p50 8.3-9.1 us, p99 12.6-13.2 us, std 4.0-4.1 us, max 57-81 us with both cores busy with other work; 1 ms is a queue
no idle wire builds, whatever the load."""


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


@dataclass
class Agent:
    name: str
    netns: str
    control: Path
    proc: subprocess.Popen[bytes]
    stderr: Path

    def __call__(self, op: str, **args: Any) -> dict[str, Any]:
        return call(self.control, op, **args)


def _start(name: str, netns: str, iface: str, gateway_mac: str, workdir: Path) -> Agent:
    control, stderr = workdir / f"{name}.sock", workdir / f"{name}.err"
    with stderr.open("wb") as err:
        proc = subprocess.Popen(["ip", "netns", "exec", netns, sys.executable, "-m", "hosts.traffic", "--name", name,
                                 "--interface", iface, "--control", str(control), "--log", str(workdir / f"{name}.log"),
                                 "--gateway-mac", gateway_mac], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    agent = Agent(name, netns, control, proc, stderr)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(ControlError):
            agent("status")
            return agent
        time.sleep(0.05)
    _stop(agent)
    raise RuntimeError(f"traffic agent {name} did not start: {stderr.read_text()}")


def _stop(agent: Agent) -> int:
    """SIGTERM, SIGKILL after 5 s; the exit code (of SIGTERM's handling when it exited by itself)."""
    stop(agent.proc)
    return agent.proc.returncode


@dataclass
class Pair:
    a: Agent
    b: Agent
    namespaces: tuple[str, str]
    exit_codes: dict[str, int]


@contextlib.contextmanager
def pair(workdir: Path) -> Iterator[Pair]:
    """Agents a (10.1.0.1) and b (10.1.0.2) in two namespaces joined by a veth; all gone however the block ends."""
    tag = f"srem-tr{os.getpid()}"
    namespaces = (f"{tag}a", f"{tag}b")
    for ns in namespaces:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
    agents: list[Agent] = []
    exit_codes: dict[str, int] = {}
    try:
        for ns in namespaces:
            sh("ip", "netns", "add", ns)
        sh("ip", "-n", namespaces[0], "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns", namespaces[1])
        macs = {}
        for ns, iface, ip in ((namespaces[0], "va", A_IP), (namespaces[1], "vb", B_IP)):
            sh("ip", "-n", ns, "link", "set", "lo", "up")  # as the testbed's hosts: the agent's warm-up uses it
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", iface)
            sh("ip", "-n", ns, "link", "set", iface, "up")
            macs[iface] = subprocess.run(["ip", "netns", "exec", ns, "cat", f"/sys/class/net/{iface}/address"],
                                         check=True, capture_output=True, text=True, timeout=30).stdout.strip()
        agents.append(_start("a", namespaces[0], "va", macs["vb"], workdir))
        agents.append(_start("b", namespaces[1], "vb", macs["va"], workdir))
        yield Pair(agents[0], agents[1], namespaces, exit_codes)
    finally:
        for agent in agents:
            exit_codes[agent.name] = _stop(agent)
        for ns in namespaces:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def flow(chain: int, probe_pps: float, data_pps: float = 0.0, **changes: Any) -> dict[str, Any]:
    return {"chain": chain, "dst": B_IP, "dst_port": 10000 + chain, "src_port": 5000 + chain, "payload": 200,
            "data_pps": data_pps, "probe_pps": probe_pps} | changes


def probes(answer: dict[str, Any], key: str, chain: int) -> dict[str, np.ndarray]:
    cols = answer[key]
    mine = np.array(cols["chain"]) == chain
    return {name: np.array(values, dtype=np.int64)[mine] for name, values in cols.items()}


def run_then_stop(p: Pair, seconds: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """Let the flows run, stop them, let the last packets land; both agents' collects."""
    time.sleep(seconds)
    p.a("flows", flows=[])
    time.sleep(0.2)
    return p.a("collect"), p.b("collect")


@needs_netns
def test_probes_and_data_cross_an_idle_wire_in_order_without_loss(tmp_path: Path) -> None:
    with pair(tmp_path) as p:
        assert p.a("flows", flows=[flow(7, probe_pps=200, data_pps=300)]) == {"flows": 1, "pps": 500.0}
        a, b = run_then_stop(p, 1.0)
        status = p.b("status")
    sent, got = probes(a, "probes_sent", 7), probes(b, "probes_received", 7)
    n = len(sent["seq"])
    assert n > 0
    assert sent["seq"].tolist() == list(range(n)) and np.all(np.diff(sent["sent_ns"]) > 0)
    assert got["seq"].tolist() == list(range(n)), "every probe arrived, in order"
    assert got["sent_ns"].tolist() == sent["sent_ns"].tolist(), "the send time travels in the probe"
    latency = got["received_ns"] - got["sent_ns"]
    assert np.all(latency > 0)
    assert np.median(latency) < IDLE_WIRE_P50_BOUND_NS
    assert np.all(np.diff(got["received_ns"]) >= 0)
    data_sent = dict(zip(a["data"]["chain"], a["data"]["sent"]))
    data_received = dict(zip(b["data"]["chain"], b["data"]["received"]))
    assert data_sent[7] > 0 and data_received == {7: data_sent[7]}
    # Stamping was confirmed before the agent took requests, and the agent's socket keeps it on: every probe stamped.
    assert status["stamping_confirmed"] and (status["unstamped"], b["probes_unstamped"]["seq"]) == (0, [])
    assert (b["address"], status["records_dropped"]) == (B_IP, 0)
    log = ProbeLog()
    for answer in (a, b):
        log.add(answer)
    stats = window_stats(log, 0, 1 << 62, grace_ns=0)[7]
    assert (stats.sent, stats.received, stats.lost, stats.unstamped) == (n, n, 0, 0), "the analysis reads the answers"
    assert a["probes_received"]["seq"] == [] and b["probes_sent"]["seq"] == [], "each end sees only its own direction"
    assert p.exit_codes == {"a": 0, "b": 0}, "SIGTERM stops an agent cleanly"


@needs_netns
def test_replacing_the_flow_set_mid_run(tmp_path: Path) -> None:
    with pair(tmp_path) as p:
        p.a("flows", flows=[flow(1, probe_pps=100), flow(2, probe_pps=100)])
        time.sleep(0.6)
        p.a("flows", flows=[flow(2, probe_pps=400), flow(3, probe_pps=100)])
        a, b = run_then_stop(p, 0.6)
    one, two, three = (probes(a, "probes_sent", c) for c in (1, 2, 3))
    assert len(one["seq"]) and len(three["seq"])
    assert one["sent_ns"].max() < three["sent_ns"].min(), "the new set replaced the old one at once"
    assert three["seq"][0] == 0
    assert two["seq"].tolist() == list(range(len(two["seq"]))), "a kept chain's sequence numbers go on"
    switch = three["sent_ns"].min()
    before, after = (np.median(np.diff(two["sent_ns"][sel])) for sel in (two["sent_ns"] < switch, two["sent_ns"] > switch))
    assert after < before / 2, "the kept chain took its new rate (4x)"
    for chain, sent in ((1, one), (2, two), (3, three)):
        assert probes(b, "probes_received", chain)["seq"].tolist() == sent["seq"].tolist()


@needs_netns
def test_malformed_flows_are_refused_and_the_last_good_set_keeps_sending(tmp_path: Path) -> None:
    good = flow(5, probe_pps=200)
    bad: list[tuple[dict[str, Any], str]] = [
        ({"flows": [{k: v for k, v in good.items() if k != "probe_pps"}]}, "flows\\[0\\]: missing probe_pps"),
        ({"flows": [good | {"colour": "red"}]}, "unknown colour"),
        ({"flows": [good | {"dst": "10.1.0.300"}]}, "flows\\[0\\].dst"),
        ({"flows": [good | {"data_pps": -1}]}, "flows\\[0\\].data_pps"),
        ({"flows": [good | {"probe_pps": float("nan")}]}, "flows\\[0\\].probe_pps"),
        ({"flows": [good | {"payload": HEADER.size - 1}]}, "flows\\[0\\].payload"),
        ({"flows": [good | {"payload": 9000}]}, "flows\\[0\\].payload"),
        ({"flows": [good | {"dst_port": 70000}]}, "flows\\[0\\].dst_port"),
        ({"flows": [good | {"chain": True}]}, "flows\\[0\\].chain"),
        ({"flows": [flow(6, probe_pps=100), good | {"dst": 3}]}, "flows\\[1\\].dst"),
        ({"flows": [good, flow(5, probe_pps=1)]}, "chain 5 appears twice"),
        ({"flows": [flow(6, probe_pps=MAX_TOTAL_PPS / 2, data_pps=MAX_TOTAL_PPS / 2 + 1)]}, "in total"),
        ({"flows": "all of them"}, "is a list"),
        ({}, "missing 'flows'"),
    ]
    with pair(tmp_path) as p:
        p.a("flows", flows=[good])
        for args, message in bad:
            with pytest.raises(ControlError, match=message):
                p.a("flows", **args)
        with pytest.raises(ControlError, match="unknown op"):
            p.a("launch")
        with pytest.raises(ControlError, match="targets"):
            p.a("baseline", targets=[], count=3, pps=10)
        status = p.a("status")
        refused_by = time.time_ns()
        a, b = run_then_stop(p, 0.3)
    assert (status["flows"], status["chains"], status["pps"]) == (1, [5], 200.0)
    sent = probes(a, "probes_sent", 5)
    assert sent["seq"].tolist() == list(range(len(sent["seq"]))) and sent["sent_ns"].max() > refused_by
    assert set(a["probes_sent"]["chain"]) == {5}, "no part of a refused set was sent"
    assert probes(b, "probes_received", 5)["seq"].tolist() == sent["seq"].tolist()


@needs_netns
def test_baseline_probes_are_plain_ipv4_and_come_back_per_host(tmp_path: Path) -> None:
    with pair(tmp_path) as p:
        assert p.a("baseline", targets=[B_IP], count=20, pps=200) == {"targets": 1, "seconds": 0.1}
        time.sleep(0.4)
        a, b = p.a("collect"), p.b("collect")
        again = p.a("collect")
    assert a["baseline_sent"]["dst"] == [B_IP] * 20 and a["baseline_sent"]["seq"] == list(range(20))
    received = b["baseline_received"]
    assert received["src"] == [A_IP] * 20 and received["seq"] == list(range(20))
    assert received["sent_ns"] == a["baseline_sent"]["sent_ns"]
    assert all(r > s for r, s in zip(received["received_ns"], received["sent_ns"]))
    assert b["probes_received"]["seq"] == [] and b["data"]["chain"] == [], "a baseline probe is no chain's"
    assert again["baseline_sent"]["seq"] == [], "collect clears what it returned; the baseline ended after its count"


@needs_netns
def test_nothing_is_left_afterwards(tmp_path: Path) -> None:
    with pair(tmp_path) as p:
        p.a("flows", flows=[flow(1, probe_pps=500, data_pps=500)])
        p.b("flows", flows=[flow(2, probe_pps=500, data_pps=500, dst=A_IP)])
        time.sleep(0.3)
        namespaces, agents = p.namespaces, (p.a, p.b)
    assert p.exit_codes == {"a": 0, "b": 0}, "both stopped on SIGTERM while sending"
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30).stdout
    assert not any(ns in listed for ns in namespaces)
    for agent in agents:
        assert not agent.control.exists(), "the control socket is removed on the way out"
        assert not Path(f"/proc/{agent.proc.pid}").exists()
        assert agent.stderr.read_text() == ""


def test_a_bad_command_line_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "hosts.traffic", "--name", "x", "--control", str(tmp_path / "x.sock"),
            "--log", str(tmp_path / "x.log")]
    cases = [(["--interface", "srem-nosuch0"], 1, "--interface srem-nosuch0: no interface"),
             (["--interface", "lo", "--gateway-mac", "02:00"], 2, "is not a MAC address"),
             (["--interface", "lo", "--control", str(tmp_path / "no" / "x.sock")], 1, "--control")]
    for extra, code, message in cases:
        done = subprocess.run([*base, *extra], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == code, done.stderr
        assert message in done.stderr.strip().splitlines()[-1]
        assert not (tmp_path / "x.sock").exists()


def ancillary(seconds: int, nanoseconds: int) -> list[tuple[int, int, bytes]]:
    """recvmsg's ancillary data for one SO_TIMESTAMPING message: software, legacy and hardware stamps."""
    return [(socket.SOL_SOCKET, SO_TIMESTAMPING, struct.pack("qq", seconds, nanoseconds) + bytes(32))]


def test_a_probe_the_kernel_did_not_stamp_is_counted_apart_and_never_given_a_latency() -> None:
    enabled_ns = 1_700_000_000_000_000_000
    ends = Endpoints("02:00:00:00:00:01", "02:00:00:00:00:02", A_IP, B_IP, 5000, 10007)
    probe, baseline = Template(ends, Kind.PROBE, 7, 100), Template(ends, Kind.BASELINE, 0, HEADER.size)
    data = bytes(Template(ends, Kind.DATA, 7, 100).frame)
    sent_ns = enabled_ns + 1_000
    arrivals = Arrivals(enabled_ns)
    arrivals.record(bytes(probe.stamp(0, sent_ns)), ancillary(1_700_000_000, 5_000))             # stamped
    arrivals.record(bytes(probe.stamp(1, sent_ns)), [])                                           # no stamp message
    arrivals.record(bytes(probe.stamp(2, sent_ns)), ancillary(0, 0))                              # a zero stamp
    arrivals.record(bytes(probe.stamp(3, sent_ns)), ancillary(1_699_999_999, 999_999_999))        # before enabling
    arrivals.record(bytes(probe.stamp(4, sent_ns)), [(socket.SOL_SOCKET, 35, struct.pack("qq", 1_700_000_000, 9_000))])
    arrivals.record(bytes(baseline.stamp(0, sent_ns)), [])
    arrivals.record(data, [])
    assert arrivals.probes.take() == {"chain": [7], "seq": [0], "sent_ns": [sent_ns], "received_ns": [enabled_ns + 5_000]}
    assert arrivals.unstamped_probes.take() == {"chain": [7] * 4, "seq": [1, 2, 3, 4], "sent_ns": [sent_ns] * 4}, \
        "an SO_TIMESTAMPNS message (stamped when read, maybe) is no kernel stamp either"
    assert arrivals.baselines.take()["seq"] == [] and arrivals.unstamped_baselines.take()["src"] == [0x0A010001]
    assert (arrivals.probes_received, arrivals.unstamped, arrivals.data) == (5, 5, {7: 1})


def test_the_analysis_counts_an_unstamped_probe_received_but_not_in_the_latencies() -> None:
    ms = 1_000_000

    def answer(name: str, address: str, **records: dict[str, list[int]]) -> dict[str, Any]:
        """A collect answer with these records and no others."""
        empty = {"probes_sent": ("chain", "seq", "sent_ns"), "probes_received": ("chain", "seq", "sent_ns", "received_ns"),
                 "baseline_sent": ("dst", "seq", "sent_ns"), "baseline_received": ("src", "seq", "sent_ns", "received_ns"),
                 "data": ("chain", "sent", "received")}
        return {"name": name, "address": address, "now_ns": 1 << 40,
                **{key: dict.fromkeys(columns, []) for key, columns in empty.items()}, **records}

    log = ProbeLog()
    log.add(answer("a", A_IP, probes_sent={"chain": [7] * 4, "seq": [0, 1, 2, 3], "sent_ns": [0, ms, 2 * ms, 3 * ms]}))
    log.add(answer("b", B_IP, probes_received={"chain": [7, 7], "seq": [0, 3], "sent_ns": [0, 3 * ms],
                                               "received_ns": [10_000, 3 * ms + 30_000]},
                   probes_unstamped={"chain": [7], "seq": [2], "sent_ns": [2 * ms]}))
    stats = window_stats(log, 0, 1 << 40)[7]
    assert (stats.sent, stats.received, stats.lost, stats.unstamped) == (4, 3, 1, 1)
    assert (stats.p50_us, stats.p99_us) == (pytest.approx(20.0), pytest.approx(29.8)), "latencies of probes 0 and 3 only"


@needs_netns
def test_the_warm_up_confirms_stamping_where_loopback_is_up_and_says_why_not_where_it_is_down() -> None:
    def confirm() -> str | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as wanting:
            enable(wanting)
            return wait_until_stamping(WARM_UP_S)

    with namespace(f"srem-tw{os.getpid()}", []) as ns:
        assert in_netns(ns, confirm) is None
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "down"], check=True, timeout=30)
        assert in_netns(ns, lambda: wait_until_stamping(0.1)) == "no datagram came back over loopback within 0.1 s (is lo down?)"


def test_a_probe_frame_carries_its_stamp_and_nothing_else_parses() -> None:
    ends = Endpoints("02:00:00:00:00:01", "02:00:00:00:00:02", A_IP, B_IP, 5000, 10007)
    template = Template(ends, Kind.PROBE, 7, 100)
    frame = bytes(template.stamp(41, 1_700_000_000_123_456_789))
    assert len(frame) == 14 + 20 + 8 + 100
    assert parse(frame) == (Kind.PROBE, 7, 41, 1_700_000_000_123_456_789, 0x0A010001)
    assert parse(bytes(template.stamp(42, 5)))[2:4] == (42, 5), "stamping again patches the same template"
    at = frame.index(MAGIC)
    assert parse(frame[:at] + b"XXXX" + frame[at + 4:]) is None
    fragment = bytearray(frame)
    fragment[21] = 1  # fragment offset 1: no UDP header in it
    assert parse(bytes(fragment)) is None
    assert parse(frame[:at + HEADER.size - 1]) is None
    with pytest.raises(ValueError, match="at least"):
        Template(ends, Kind.DATA, 7, HEADER.size - 1)


@needs_netns
def test_the_socket_filter_passes_only_incoming_probes_cut_to_their_header() -> None:
    ends = Endpoints("02:00:00:00:00:01", "02:00:00:00:00:02", A_IP, B_IP, 5000, 10007)
    probe = bytes(Template(ends, Kind.PROBE, 7, 500).stamp(3, 4))
    at = probe.index(MAGIC)
    other_magic = probe[:at] + b"SRpc" + probe[at + 4:]
    tcp = probe[:23] + b"\x06" + probe[24:]

    def exchange() -> tuple[list[bytes], list[bytes]]:
        def listening(iface: str) -> tuple[socket.socket, object]:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
            program = attach_filter(s)
            s.bind((iface, ETH_P_IP))
            s.settimeout(0.3)
            return s, program

        (far, _far_filter), (near, _near_filter) = listening("fb"), listening("fa")  # the filters must outlive the sockets
        with far, near, socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as tx:
            tx.bind(("fa", 0))
            for frame in (other_magic, tcp, probe):
                tx.send(frame)
            return [drain(far), drain(near)]

    with namespace(f"srem-tf{os.getpid()}", [("fa", "fb")]) as ns:
        far, near = in_netns(ns, exchange)  # type: ignore[misc]
    assert far == [probe[:SNAP_LEN]], "the probe alone, cut to what the receiver reads"
    assert parse(far[0]) == parse(probe)
    assert near == [], "the sender's socket does not see its own frames"


def drain(sock: socket.socket) -> list[bytes]:
    frames = []
    with contextlib.suppress(TimeoutError):
        while True:
            frames.append(sock.recv(4096))
    return frames
