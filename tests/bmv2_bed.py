"""One srem.p4 switch on BMv2 whose every neighbour is the test: the bed of the data-plane security
tests and of the fuzzer.

Switch s1 (simple_switch_grpc, in a network namespace the bed creates and deletes whatever happens)
has its traffic host on port 1 (the test's end: h1), a link to switch s2 on port 2 (s2p2), server
m1 on port 3 (m1) and its EMAC on port 100 (emac1); the test sends and receives raw frames on all
four ends from sockets opened inside the namespace, so it plays the host, the other switch, the
server and the EMAC, honest or not. s2 is a P4Runtime fake: the controller programs both switches
through the one deploy path, and only s1 forwards packets.

The chains, from s1's host to s2's unless said otherwise (SPI = request id + 1):
  FW_LM   firewall in s1's LM          FW_EM   firewall in s1's EM (the test answers for the EMAC)
  FW_SRV  firewall on server m1        FW_IN   firewall in s2's LM, from s2's host to s1's: it ends at s1
  RL_LM   rate limiter in s1's LM      RL_EM   rate limiter in s1's EM
  FW_DSCP firewall then DSCP classifier, both in s1's LM (two passes)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from controller.dataplane import entries as E
from controller.dataplane.deploy import Deployer, SteeringOnly
from controller.dataplane.entries import DropReason
from controller.dataplane.layout import EMAC_PORT, HOST_PORT, Layout
from controller.dataplane.p4info import P4Schema
from controller.dataplane.p4runtime_client import Pipeline, SwitchClient
from controller.dataplane.reconciler import DataPlane
from controller.dataplane.rules import chain_flow
from controller.model.evaluator import StepEvaluator
from controller.model.scenario import DataplaneParams
from controller.model.substrate import Substrate
from controller.model.workload import Workload
from factories import placement_of, substrate, topology_dict, vnf, workload
from p4runtime_fake import FakeP4RuntimeServer
from srem_formats.flows import Flow, Rule
from srem_formats.wire import ETHERTYPE_EMAC_REQUEST, ETHERTYPE_EMAC_RESPONSE, ETHERTYPE_IPV4, ETHERTYPE_NSH, EmacRequest, \
    EmacResponse, Nsh

MISSING = [tool for tool in ("simple_switch_grpc", "ip") if shutil.which(tool) is None]
SKIP_REASON = (f"needs {' and '.join(MISSING)} (BMv2 simple_switch_grpc, iproute2)" if MISSING
               else "needs root for network namespaces" if os.geteuid() != 0 else "")
CLONE_NEWNET = 0x40000000
PACKET_OUTGOING = 4
BURST, BURST_GAP_S = 16, 0.004
"""Frames sent back to back, then a pause: simple_switch_grpc drops what queues up beyond about 32 on one port."""
SO_RCVBUFFORCE = 33
RECEIVE_BUFFER = 16 << 20
"""Bytes a test's socket buffers, so that a burst it reads only afterwards is not cut at ~256 frames."""

HOST, LINK, SERVER, EMAC = "h1", "s2p2", "m1", "emac1"
"""The test's ends of s1's ports 1, 2, 3 and 100."""
PORTS = {HOST: HOST_PORT, LINK: 2, SERVER: 3, EMAC: EMAC_PORT}

FW_LM, FW_EM, FW_SRV, FW_IN, RL_LM, RL_EM, FW_DSCP = range(7)
CHAINS = [(["firewall"], "s1", "s2"), (["firewall"], "s1", "s2"), (["firewall"], "s1", "s2"), (["firewall"], "s2", "s1"),
          (["rate_limiter"], "s1", "s2"), (["rate_limiter"], "s1", "s2"), (["firewall", "classifier"], "s1", "s2")]
ASSIGNMENT = [["firewall#0"], ["firewall#1"], ["firewall#2"], ["firewall#3"], ["rate_limiter#0"], ["rate_limiter#1"],
              ["firewall#0", "classifier#0"]]
RATES_MBPS = {RL_LM: 0.1}
"""A slow meter (peak 30 kB/s, 3,000-byte burst): what a burst of forged answers would turn red."""
PLACEMENT = {"firewall#0": "lm:s1", "firewall#1": "em:s1", "firewall#2": "m1", "firewall#3": "lm:s2",
             "rate_limiter#0": "lm:s1", "rate_limiter#1": "em:s1", "classifier#0": "lm:s1"}


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def in_netns(name: str, work: Callable[[], object]) -> object:
    """Run `work` on a thread that joined the namespace; sockets it opens live there."""
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            with open(f"/var/run/netns/{name}") as ns:
                if ctypes.CDLL(None, use_errno=True).setns(ns.fileno(), CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns")
            outcome["value"] = work()
        except BaseException as exc:  # re-raised on the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]


@contextlib.contextmanager
def namespace(name: str, pairs: list[tuple[str, str]]) -> Iterator[str]:
    """A network namespace with these veth pairs up; deleted (veths with it) however the block ends."""
    subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)
    sh("ip", "netns", "add", name)
    try:
        run = ["ip", "netns", "exec", name]
        sh(*run, "ip", "link", "set", "lo", "up")
        sh(*run, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        for a, b in pairs:
            sh(*run, "ip", "link", "add", a, "type", "veth", "peer", "name", b)
            for end in (a, b):
                sh(*run, "ip", "link", "set", end, "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


@contextlib.contextmanager
def simple_switch(netns: str, ports: dict[int, str], workdir: Path, name: str = "s1") -> Iterator[tuple[str, Path]]:
    """simple_switch_grpc in the namespace, P4Runtime on a unix socket, errors logged to a file: (address, log)."""
    sock, log = workdir / f"{name}.sock", workdir / f"{name}.txt"  # BMv2 appends .txt to --log-file
    binds = [arg for port, iface in ports.items() for arg in ("-i", f"{port}@{iface}")]
    proc = subprocess.Popen(["ip", "netns", "exec", netns, "simple_switch_grpc", "--device-id", "1", *binds, "--no-p4",
                             "--log-file", str(log.with_suffix("")), "--log-level", "error", "--log-flush",
                             "--", "--grpc-server-addr", f"unix://{sock}", "--cpu-port", "255"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield f"unix://{sock}", log
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Wires:
    """Raw sockets on the test's ends of the switch's ports (opened inside the namespace)."""

    def __init__(self, netns: str, ifaces: list[str]) -> None:
        def open_all() -> dict[str, socket.socket]:
            socks = {}
            for name in ifaces:
                s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
                s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RECEIVE_BUFFER)
                s.bind((name, 0))
                s.setblocking(False)
                socks[name] = s
            return socks
        self.socks: dict[str, socket.socket] = in_netns(netns, open_all)  # type: ignore[assignment]
        self.by_fd = {s.fileno(): name for name, s in self.socks.items()}

    def send(self, iface: str, frame: bytes) -> None:
        for _ in range(200):
            try:
                self.socks[iface].send(frame)
                return
            except BlockingIOError:
                time.sleep(0.001)
        raise TimeoutError(f"{iface}: the socket's send buffer stayed full")

    def receive(self, seconds: float, until: Callable[[str, bytes], bool] | None = None) -> list[tuple[str, bytes]]:
        """Frames arriving within `seconds` (what the switch sent out), in arrival order; stops early once
        `until(iface, frame)` is true for one of them."""
        got: list[tuple[str, bytes]] = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select(list(self.by_fd), [], [], left)
            done = False
            for fd in ready:
                name = self.by_fd[fd]
                while True:
                    try:
                        frame, address = self.socks[name].recvfrom(65535)
                    except BlockingIOError:
                        break
                    if address[2] == PACKET_OUTGOING:
                        continue
                    got.append((name, frame))
                    done = done or (until is not None and until(name, frame))
            if done:
                break
        return got

    def drain(self) -> None:
        self.receive(0.05)

    def close(self) -> None:
        for s in self.socks.values():
            s.close()


# Frames


def mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def ip_of(n: int) -> str:
    return ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0))


TEST_MAC = "02:00:00:00:00:01"


def ipv4_udp(flow: Flow, ttl: int = 64, payload: bytes = b"srem" * 8, ident: int = 1, src_port: int = 5000) -> bytes:
    from scapy.layers.inet import IP, UDP

    return bytes(IP(src=ip_of(flow.src), dst=ip_of(flow.dst), ttl=ttl, id=ident)
                 / UDP(sport=src_port, dport=flow.dst_port) / payload)


def ether(ethertype: int, dst: str = "02:00:00:00:00:02", src: str = TEST_MAC) -> bytes:
    return mac(dst) + mac(src) + ethertype.to_bytes(2, "big")


def plain(flow: Flow, **kw: object) -> bytes:
    return ether(ETHERTYPE_IPV4) + ipv4_udp(flow, **kw)  # type: ignore[arg-type]


def nsh_frame(spi: int, si: int, version: int, inner: bytes, ttl: int = 63, tlv_length: int = 4) -> bytes:
    header = bytearray(Nsh(spi, si, version, ttl).pack())
    header[11] = tlv_length
    return ether(ETHERTYPE_NSH) + bytes(header) + inner


def answer_frame(answer: EmacResponse, nsh_and_inner: bytes) -> bytes:
    return ether(ETHERTYPE_EMAC_RESPONSE) + answer.pack() + nsh_and_inner


def answer_to(request_frame: bytes, **changes: int) -> bytes:
    """The EMAC's answer to a request frame (HIT PERMIT unless `changes` says otherwise), packet unchanged."""
    req = EmacRequest.unpack(request_frame[14:])
    fields = {"switch_id": req.switch_id, "instance": req.instance, "vnf_type": req.vnf_type, "seq": req.seq,
              "status": 0, "action": 0} | changes
    return (request_frame[:12] + ETHERTYPE_EMAC_RESPONSE.to_bytes(2, "big") + EmacResponse(**fields).pack()
            + request_frame[14 + EmacRequest.SIZE:])


def ethertype(frame: bytes) -> int:
    return int.from_bytes(frame[12:14], "big")


def nsh_of(frame: bytes) -> Nsh | None:
    return Nsh.unpack(frame[14:]) if ethertype(frame) == ETHERTYPE_NSH else None


def inner_ipv4(frame: bytes) -> bytes | None:
    """The IPv4 packet inside a frame the switch sent: plain, behind NSH, or behind an EMAC request and NSH."""
    kind, offset = ethertype(frame), 14
    if kind == ETHERTYPE_EMAC_REQUEST:
        kind, offset = ETHERTYPE_NSH, offset + EmacRequest.SIZE
    if kind == ETHERTYPE_NSH:
        offset += Nsh.SIZE
    elif kind != ETHERTYPE_IPV4:
        return None
    return frame[offset:] if len(frame) >= offset + 20 else None


@dataclass
class Bed:
    netns: str
    sub: Substrate
    layout: Layout
    workload: Workload
    rules: tuple[tuple[Rule, ...], ...]
    s1: SwitchClient
    wires: Wires
    log: Path
    versions: dict[int, int]

    def spi(self, chain: int) -> int:
        return self.workload.requests[chain].id + 1

    def version(self, chain: int) -> int:
        return self.versions[self.spi(chain)]

    def flow(self, chain: int) -> Flow:
        return chain_flow(self.layout, self.sub, self.workload.requests[chain])

    def instance(self, name: str) -> int:
        return self.sub.instance_index[name]

    def denied(self, chain: int) -> Flow:
        """A flow of the chain's endpoints that its firewall denies (no rule: another port)."""
        f = self.flow(chain)
        return Flow(f.src, f.dst, f.protocol, 9999)

    def host_ip(self, switch: str) -> int:
        return int(self.layout.switches[switch].host_ip)

    def drops(self) -> dict[DropReason, int]:
        cells = self.s1.read_counter(E.DROP_COUNTER)
        return {reason: cells[reason][0] for reason in DropReason if reason in cells}

    def send(self, iface: str, *frames: bytes) -> None:
        """Send `frames`, BURST at a time: BMv2 loses what queues up beyond about 32 frames on a port."""
        for i, frame in enumerate(frames):
            if i and i % BURST == 0:
                time.sleep(BURST_GAP_S)
            self.wires.send(iface, frame)

    def through(self, iface: str, *frames: bytes, seconds: float = 2.0,
                first: tuple[tuple[str, list[bytes]], ...] = ()) -> list[tuple[str, bytes]]:
        """Send `frames` on `iface`, then a marker that the switch routes to s2, on the same port; every frame
        the switch sent out meanwhile. The switch handles a port's frames in order, so when the marker is
        out, so are they. `first`: (port, frames) sent before, back to back with these."""
        marker = plain(Flow(self.host_ip("s1"), self.host_ip("s2"), 17, 7), payload=b"marker" + os.urandom(8))
        self.wires.drain()
        for port, earlier in first:
            self.send(port, *earlier)
        self.send(iface, *frames)
        # The EMAC port takes nothing but answers, a server port no plain IPv4: the marker goes in from the host,
        # after the frames have had time to get in first.
        elsewhere = iface in (EMAC, SERVER)
        if elsewhere:
            time.sleep(0.1)
        self.wires.send(HOST if elsewhere else iface, marker)
        tail = marker[-14:]
        got = self.wires.receive(seconds, until=lambda name, f: name == LINK and f.endswith(tail))
        assert any(f.endswith(tail) for _, f in got), "the switch stopped forwarding: the marker did not come out"
        got += self.wires.receive(0.05)
        return [(name, f) for name, f in got if not f.endswith(tail)]

    def request(self, iface: str, frame: bytes, seconds: float = 2.0) -> bytes:
        """Send a frame that needs an EM lookup; the request the switch sends to the EMAC."""
        self.wires.drain()
        self.send(iface, frame)
        got = self.wires.receive(seconds, until=lambda name, f: name == EMAC and ethertype(f) == ETHERTYPE_EMAC_REQUEST)
        requests = [f for name, f in got if name == EMAC and ethertype(f) == ETHERTYPE_EMAC_REQUEST]
        assert requests, f"no EMAC request for the frame (got {[(n, f.hex()) for n, f in got]})"
        return requests[0]

    def out_of_bounds_log(self) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if "out-of-bounds" in line]


@contextlib.contextmanager
def bed(tag: str, workdir: Path) -> Iterator[Bed]:
    """The switch, programmed with the chains above, its four ports wired to the test."""
    topo = topology_dict(["s1", "s2"], ["m1"], [("s1", "s2", 10.0, 0.01), ("m1", "s1", 10.0, 0.01)])
    sub = substrate(topo, [vnf("firewall", 4, instances=4), vnf("rate_limiter", 4, instances=2), vnf("classifier", 4)])
    w = workload(sub, [(c, a, b, [RATES_MBPS.get(i, 1.0)], [100.0]) for i, (c, a, b) in enumerate(CHAINS)], PLACEMENT, ASSIGNMENT)
    result = StepEvaluator(sub).evaluate(w, 0, w.initial_placement, placement_of(sub, PLACEMENT))
    assert all(r.accepted for r in result.requests), [r for r in result.requests if not r.accepted]
    layout = Layout(sub.spec.topology)
    schema, pipeline = P4Schema.load(), Pipeline.load()
    pairs = [("s1p1", HOST), ("s1p2", LINK), ("s1p3", SERVER), ("s1pe", EMAC)]
    with namespace(f"srem-{tag}{os.getpid()}", pairs) as netns, \
            simple_switch(netns, {HOST_PORT: "s1p1", 2: "s1p2", 3: "s1p3", EMAC_PORT: "s1pe"}, workdir) as (address, log), \
            FakeP4RuntimeServer(device_id=1, name="s2") as s2:
        clients = {"s1": SwitchClient("s1", address, 1, schema, timeout_s=10.0),
                   "s2": SwitchClient("s2", s2.address, 1, schema, timeout_s=10.0)}
        plane = DataPlane(layout, sub, clients, pipeline, drain_s=0.0)
        wires = Wires(netns, list(PORTS))
        try:
            plane.connect()
            deployer = Deployer(plane, SteeringOnly(layout, sub), DataplaneParams())
            report = deployer.deploy(w, result)
            yield Bed(netns, sub, layout, w, report.deployment.rules, clients["s1"], wires, log, report.applied.versions)
        finally:
            wires.close()
            plane.close()
