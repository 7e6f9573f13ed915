"""Hypothesis-driven frames into a BMv2 switch's host, link, server and EMAC ports (issue 12): nothing
forged crosses a chain function, no index from a packet reaches an array out of bounds, and the
switch keeps forwarding valid traffic.

The bed is tests/bmv2_bed.py's: the test plays every neighbour of s1. Each hypothesis example is a
batch: a few of s1's EM requests are opened (so that forgeries can aim at real sequence numbers),
BATCH fuzzed frames go in, interleaved over the four ports, then a referee EMAC answers every
request s1 sent as the real EMAC would (from the instance's rules, through srem_formats/em_table),
the test plays server m1 for the probes, and probes of valid traffic of every kind must come out.
Every frame the fuzzer sends ends in an 8-byte tag naming its number, which the switch carries
along, so each frame the switch sends out is traced to the frame that caused it and judged by
what that frame's port may send (README, "The data plane", the trust model):

- from the host: plain IPv4, and only routed (the fuzzer never sends a chain's own flow);
- from the EMAC port: nothing (the fuzzer's answers match no open request, or differ from one in
  at least one field);
- from the server: only the chain it serves, with the index it sends back;
- from the link (another switch, trusted): whatever s1 steers, but a packet in front of one of
  s1's firewalls never comes out behind it (no fuzzed flow is one a firewall permits).

test_fuzzed_frames runs 2,000 frames wherever BMv2 is; test_fuzzed_frames_full runs 10,000 when
asked for with `pytest -m slow tests/test_bmv2_fuzz.py`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bmv2_bed import BURST, BURST_GAP_S, EMAC, FW_DSCP, FW_EM, FW_IN, FW_LM, FW_SRV, HOST, LINK, RL_EM, SERVER, SKIP_REASON, Bed, bed, ether, \
    ethertype, ip_of, ipv4_udp, nsh_frame, plain
from controller.dataplane.rules import kind_of
from srem_formats import em_table
from srem_formats.flows import Flow, VnfKind
from srem_formats.wire import ETHERTYPE_EMAC_REQUEST, ETHERTYPE_EMAC_RESPONSE, ETHERTYPE_IPV4, ETHERTYPE_NSH, STATUS_HIT, \
    STATUS_MISS, EmacRequest, EmacResponse, Nsh

pytestmark = pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON)

BATCH = 100
TAG = b"FZ"
TAG_SIZE = 8
PORTS = (HOST, LINK, SERVER, EMAC)
FIREWALLS_AT_S1 = {FW_LM: 1, FW_EM: 1, FW_DSCP: 2}
"""Chains whose firewall s1 runs itself (LM or EM) -> the service index in front of it."""
WAIT_S = 3.0
"""How long a batch's probes may take to come out."""


def tag(number: int) -> bytes:
    return TAG + b"\x00\x00" + number.to_bytes(4, "big")


def number_of(frame: bytes) -> int | None:
    end = frame[-TAG_SIZE:]
    return int.from_bytes(end[4:], "big") if len(frame) >= TAG_SIZE and end.startswith(TAG) else None


@dataclass
class Sent:
    port: str
    frame: bytes
    probe: str | None = None
    """The kind of valid traffic it is; None for a fuzzed frame."""

    @property
    def kind(self) -> int:
        return ethertype(self.frame) if len(self.frame) >= 14 else -1

    def nsh(self) -> tuple[int, int] | None:
        """(SPI, SI) of a frame that carries NSH where s1 would parse it, None otherwise."""
        offset = {ETHERTYPE_NSH: 14, ETHERTYPE_EMAC_RESPONSE: 14 + EmacResponse.SIZE}.get(self.kind)
        if offset is None or len(self.frame) < offset + 8:
            return None
        path = int.from_bytes(self.frame[offset + 4:offset + 8], "big")
        return path >> 8, path & 0xFF


@dataclass
class Fuzz:
    s1: Bed
    sent: dict[int, Sent] = field(default_factory=dict)
    open_requests: list[bytes] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    frames: int = 0
    forwarded: set[int] = field(default_factory=set)
    tables: dict[int, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        s1 = self.s1
        for name in ("firewall#1", "rate_limiter#1"):
            k = s1.instance(name)
            self.tables[k] = em_table.encode(kind_of(s1.sub, k), k, 1, s1.rules[k])
        chain_ports = {s1.flow(c).dst_port for c in range(7)}
        self.ports = st.one_of(st.sampled_from([9999, 53, 0, 7]), st.integers(0, 65535)).filter(lambda p: p not in chain_ports)
        hosts = [s1.host_ip("s1"), s1.host_ip("s2"), int(s1.layout.servers["m1"].ip)]
        addresses = st.one_of(st.sampled_from(hosts), st.integers(0, 2**32 - 1))
        self.flows = st.builds(Flow, addresses, addresses, st.sampled_from([17, 17, 6, 1]), self.ports)
        self.legit_return = (s1.spi(FW_SRV), 0, s1.version(FW_SRV))

    # What goes in

    def add(self, port: str, frame: bytes, probe: str | None = None) -> bytes:
        number = len(self.sent)
        frame = frame + tag(number)
        self.sent[number] = Sent(port, frame, probe)
        return frame

    def inner(self, data: st.DataObject) -> bytes:
        """An IPv4 packet of a flow no firewall permits (UDP, TCP or ICMP), TTLs right and wrong."""
        from scapy.layers.inet import ICMP, IP, TCP, UDP

        flow = data.draw(self.flows)
        ttl = data.draw(st.sampled_from([64, 1, 0, 255]))
        l4 = {17: UDP(sport=5000, dport=flow.dst_port), 6: TCP(sport=5000, dport=flow.dst_port)}.get(flow.protocol, ICMP())
        return bytes(IP(src=ip_of(flow.src), dst=ip_of(flow.dst), ttl=ttl) / l4 / b"fuzz")

    def nsh(self, data: st.DataObject) -> bytes:
        """NSH and its packet, without Ethernet: the chains of s1 and others, at indices and versions
        right and wrong, TTLs and TLV lengths right and wrong."""
        s1 = self.s1
        chain = data.draw(st.integers(0, 6))
        spi = data.draw(st.one_of(st.just(s1.spi(chain)), st.integers(0, 2**24 - 1)))
        si = data.draw(st.one_of(st.sampled_from([0, 1, 2]), st.integers(0, 255)))
        version = data.draw(st.one_of(st.just(s1.version(chain)), st.integers(0, 2**32 - 1)))
        ttl = data.draw(st.one_of(st.sampled_from([63, 2, 1, 0]), st.integers(0, 63)))
        tlv_length = data.draw(st.one_of(st.just(4), st.integers(0, 127)))
        return nsh_frame(spi, si, version, self.inner(data), ttl=ttl, tlv_length=tlv_length)[14:]

    def answer(self, data: st.DataObject, port: str) -> bytes:
        """An EMAC answer header and what follows it. On the EMAC port: made up, a duplicate of one
        answered, or an open request's answer with at least one field (or its packet) changed;
        elsewhere also the open request's exact answer. (The same values are drawn whatever is
        chosen, so that what hypothesis draws does not depend on the switch's state.)"""
        s1 = self.s1
        how = data.draw(st.sampled_from(["made_up", "duplicate", "near", "exact"]))
        made_up = data.draw(st.builds(
            EmacResponse, st.sampled_from([1, 2, 0, 0xFFFF]), st.one_of(st.integers(0, 7), st.just(0xFFFF), st.integers(0, 0xFFFF)),
            st.one_of(st.integers(1, 4), st.integers(0, 255)), st.integers(2**24, 2**32 - 1), st.sampled_from([STATUS_HIT, STATUS_MISS, 2]),
            st.one_of(st.integers(0, 4), st.integers(0, 255)), st.integers(0, 2**32 - 1), st.integers(0, 65535),
            st.integers(0, 255), st.one_of(st.integers(0, 16), st.just(0xFFFF), st.integers(0, 65535)), st.integers(0, 255)))
        pick = data.draw(st.integers(0, 2**16))
        action, meter = data.draw(st.integers(0, 4)), data.draw(st.one_of(st.integers(0, 16), st.integers(0, 0xFFFF)))
        changed = data.draw(st.sampled_from(["switch_id", "instance", "vnf_type", "seq", "packet"]))
        never_issued, other = data.draw(st.integers(2**24, 2**32 - 1)), data.draw(st.integers(0, 0xFFFF))
        packet = self.nsh(data)
        if how == "duplicate" and self.answered:
            seq = self.answered[pick % len(self.answered)]
            return EmacResponse(1, s1.instance("firewall#1"), VnfKind.FIREWALL, seq, STATUS_HIT, action).pack() + packet
        if how not in ("near", "exact") or not self.open_requests:
            return made_up.pack() + packet
        request = self.open_requests[pick % len(self.open_requests)]
        req = EmacRequest.unpack(request[14:])
        fields = {"switch_id": req.switch_id, "instance": req.instance, "vnf_type": req.vnf_type, "seq": req.seq,
                  "status": STATUS_HIT, "action": action, "meter_index": meter, "flags": 1}
        rest = request[14 + EmacRequest.SIZE:-TAG_SIZE]
        if how == "exact" and port != EMAC:
            return EmacResponse(**fields).pack() + rest
        if changed == "packet":
            return EmacResponse(**fields).pack() + packet
        if changed == "seq":  # one s1 never issued: another open request's could be answered exactly
            fields["seq"] = never_issued
        else:
            value = other & (0xFF if changed == "vnf_type" else 0xFFFF)
            fields[changed] = value if value != fields[changed] else value ^ 1
        return EmacResponse(**fields).pack() + rest

    def frame(self, data: st.DataObject, port: str) -> bytes:
        s1 = self.s1
        family = data.draw(st.sampled_from(["nsh", "answer", "plain", "other", "flip", "cut", "random"]))
        if family == "nsh":
            return ether(ETHERTYPE_NSH) + self.nsh(data)
        if family == "answer":
            return ether(ETHERTYPE_EMAC_RESPONSE) + self.answer(data, port)
        if family == "plain":
            return ether(ETHERTYPE_IPV4) + self.inner(data)
        if family == "other":
            kind = data.draw(st.sampled_from([0x0806, 0x86DD, 0x8100, ETHERTYPE_EMAC_REQUEST, 0x88CC, 0x9999]))
            return ether(kind) + data.draw(st.binary(min_size=0, max_size=80))
        template = data.draw(st.sampled_from([
            ether(ETHERTYPE_NSH) + nsh_frame(s1.spi(FW_LM), 1, s1.version(FW_LM), ipv4_udp(s1.denied(FW_LM)))[14:],
            ether(ETHERTYPE_EMAC_RESPONSE) + EmacResponse(1, s1.instance("firewall#1"), VnfKind.FIREWALL, 2**30, STATUS_HIT, 0).pack()
            + nsh_frame(s1.spi(FW_EM), 1, s1.version(FW_EM), ipv4_udp(s1.denied(FW_EM)))[14:],
            plain(s1.denied(FW_LM))]))
        if family == "flip":
            frame = bytearray(template)
            for bit in data.draw(st.lists(st.integers(12 * 8, len(template) * 8 - 1), min_size=1, max_size=3)):
                frame[bit // 8] ^= 1 << (bit % 8)
            return bytes(frame)
        if family == "cut":
            return template[:data.draw(st.integers(14, len(template) - 1))]
        kind = data.draw(st.sampled_from([ETHERTYPE_IPV4, ETHERTYPE_NSH, ETHERTYPE_EMAC_RESPONSE]))
        return ether(kind) + data.draw(st.binary(min_size=0, max_size=120))

    # One batch

    def open_some(self) -> None:
        """Open requests for forgeries to aim at: a denied flow's packet from the link at each EM function."""
        s1 = self.s1
        self.open_requests = []
        for chain in (FW_EM, RL_EM):
            frame = self.add(LINK, nsh_frame(s1.spi(chain), 1, s1.version(chain), ipv4_udp(s1.denied(chain))))
            self.open_requests.append(s1.request(LINK, frame))

    def probes(self) -> list[bytes]:
        s1 = self.s1
        return [self.add(HOST, plain(s1.flow(FW_LM)), "lm"),
                self.add(LINK, nsh_frame(s1.spi(FW_IN), 0, s1.version(FW_IN), ipv4_udp(s1.flow(FW_IN))), "chain end"),
                self.add(HOST, plain(s1.flow(FW_EM)), "em"),
                self.add(HOST, plain(s1.flow(FW_SRV)), "server"),
                self.add(HOST, plain(Flow(s1.host_ip("s1"), s1.host_ip("s2"), 17, 7)), "route")]

    def referee(self, request: bytes) -> bytes:
        """The real EMAC's answer to one of s1's requests."""
        req = EmacRequest.unpack(request[14:])
        found, _ = em_table.lookup(self.tables[req.instance], Flow(req.src_addr, req.dst_addr, req.protocol, req.dst_port))
        base = (req.switch_id, req.instance, req.vnf_type, req.seq)
        answer = EmacResponse(*base, STATUS_MISS, 0) if found is None else EmacResponse(
            *base, STATUS_HIT, found.action, found.addr, found.port, found.dscp, found.meter_index, found.flags)
        self.answered.append(req.seq)
        return request[:12] + ETHERTYPE_EMAC_RESPONSE.to_bytes(2, "big") + answer.pack() + request[14 + EmacRequest.SIZE:]

    def batch(self, data: st.DataObject) -> None:
        s1 = self.s1
        self.open_some()
        frames = []
        for _ in range(BATCH):
            port = data.draw(st.sampled_from(PORTS))
            frames.append((port, self.add(port, self.frame(data, port))))
        probes = self.probes()
        self.frames += len(frames)
        s1.wires.drain()
        for i, (port, frame) in enumerate(frames):
            if i and i % BURST == 0:
                time.sleep(BURST_GAP_S)
            s1.wires.send(port, frame)
        for request in self.open_requests:
            s1.wires.send(EMAC, self.referee(request))
        for frame in probes:
            s1.wires.send(self.sent[number_of(frame)].port, frame)
        self.collect()

    def collect(self) -> None:
        """Receive until every probe came out (answering s1's requests and playing the server for the probe
        on the way) and nothing more comes for a moment; judge every frame."""
        s1 = self.s1
        seen: set[str] = set()
        expected = {"lm", "chain end", "em", "server", "route"}
        deadline = time.monotonic() + WAIT_S
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            got = s1.wires.receive(0.05)
            if got:
                quiet_since = time.monotonic()
            elif expected <= seen and time.monotonic() - quiet_since > 0.1:
                return
            for port, out in got:
                number = number_of(out)
                source = self.sent.get(number) if number is not None else None
                if source is None:
                    self.violations.append(f"a frame no input explains on {port}: {out.hex()}")
                    continue
                if port == EMAC and ethertype(out) == ETHERTYPE_EMAC_REQUEST:
                    s1.wires.send(EMAC, self.referee(out))
                if source.probe is not None:
                    seen.add(self.probe_done(source.probe, port, out))
                    continue
                self.forwarded.add(number)
                self.judge(number, source, port, out)
        missing = expected - seen
        assert not missing, f"the switch stopped forwarding valid traffic: no {', '.join(sorted(missing))} probe came out"

    def probe_done(self, probe: str, port: str, out: bytes) -> str:
        s1 = self.s1
        if probe == "server" and port == SERVER:
            nsh = Nsh.unpack(out[14:])
            s1.wires.send(SERVER, out[:14] + Nsh(nsh.spi, nsh.si - 1, nsh.version, nsh.ttl).pack() + out[14 + Nsh.SIZE:])
            return "server at m1"
        if probe in ("lm", "em", "server", "route") and port == LINK:
            return probe
        if probe == "chain end" and port == HOST and ethertype(out) == ETHERTYPE_IPV4:
            return probe
        return f"{probe} at {port}"

    def judge(self, number: int, source: Sent, port: str, out: bytes) -> None:
        def bad(why: str) -> None:
            self.violations.append(f"{why}: frame {number} sent on {source.port} ({source.frame.hex()}) came out on {port} "
                                   f"({out.hex()})")

        kind = source.kind
        if source.port == EMAC:
            bad("a frame from the EMAC port that answers no open request got through")
        elif source.port == HOST and (kind != ETHERTYPE_IPV4 or ethertype(out) != ETHERTYPE_IPV4):
            bad("a host's frame that is not plain IPv4 got through, or plain IPv4 from a host entered a chain")
        elif kind == ETHERTYPE_EMAC_RESPONSE:
            bad("an EMAC answer from a port that is not the EMAC port got through")
        elif source.port == SERVER and kind == ETHERTYPE_NSH and source.nsh() is not None:
            spi, si = source.nsh()
            version = int.from_bytes(source.frame[26:30], "big")
            if (spi, si, version) != self.legit_return:
                bad("a server sent back a chain it does not serve")
        before = source.nsh()
        after = Sent(port, out).nsh() if ethertype(out) == ETHERTYPE_NSH else None
        for chain, front in FIREWALLS_AT_S1.items():
            spi = self.s1.spi(chain)
            if before and after and before[0] == after[0] == spi and before[1] >= front > after[1]:
                bad(f"a packet crossed s1's firewall of chain {chain} without being permitted")


@pytest.fixture(scope="module")
def s1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    with bed("fuzz", tmp_path_factory.mktemp("bmv2-fuzz")) as b:
        yield b


def fuzz(s1: Bed, frames: int, budget_s: float) -> None:
    run = Fuzz(s1)
    drops_before = sum(s1.drops().values())
    started = time.monotonic()

    @settings(max_examples=frames // BATCH, deadline=None, derandomize=True, database=None, phases=(Phase.generate,),
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def batch(data: st.DataObject) -> None:
        assert time.monotonic() - started < budget_s, f"over {budget_s:.0f} s"
        run.batch(data)

    batch()
    elapsed = time.monotonic() - started
    kinds = Counter(v.split(":")[0] for v in run.violations)
    assert run.violations == [], f"{len(run.violations)} violations {dict(kinds)}, the first: {run.violations[:3]}"
    assert s1.out_of_bounds_log() == [], "an index from a packet reached an array out of its bounds"
    dropped = sum(s1.drops().values()) - drops_before
    accounted = dropped + len(run.forwarded)
    print(f"{run.frames} fuzzed frames in {elapsed:.1f} s: {dropped} drops counted, {len(run.forwarded)} forwarded")
    assert run.frames >= frames
    assert accounted >= 0.99 * run.frames, f"only {accounted} of {run.frames} frames dropped and counted or forwarded"


def test_fuzzed_frames(s1: Bed) -> None:
    fuzz(s1, 2_000, budget_s=120)


@pytest.mark.slow
def test_fuzzed_frames_full(s1: Bed, request: pytest.FixtureRequest) -> None:
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("10,000 frames: run with -m slow")
    fuzz(s1, 10_000, budget_s=600)
