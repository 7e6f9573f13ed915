"""Fuzzed datagrams at a live memory server (with a control key) and a live EMAC: 10,000 cases each.
Every bad packet is dropped or refused and counted, nothing outside a client's region leaks or changes
(not even for a sender that knows a region's rkey but not the control key), no answer is wrong, and
both processes keep serving."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from em_helpers import FIREWALL_RULES, INSTANCE, SERVER_ID, emac_frame, key_file, parse_response
from rdma_emulator import protocol as P
from rdma_emulator.auth import sign
from rdma_emulator.client import RdmaClient, store
from rdma_emulator.emac import Drop, parse_frame
from rdma_emulator.processes import Proc, running
from rdma_emulator.protocol import Completion, Request
from srem_formats import em_table
from srem_formats.flows import VnfKind
from srem_formats.wire import STATUS_HIT, STATUS_MISS, EmacRequest, EmacResponse


CASES = settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
PROBE = 1 << 63


@pytest.fixture(scope="module")
def control_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    return key_file(tmp_path_factory.mktemp("key"))


@pytest.fixture(scope="module")
def memserver(control_key: tuple[Path, bytes]) -> Iterator[Proc]:
    """A memory server that runs state-changing requests only when signed with the control key."""
    with running("memserver", "--listen", "127.0.0.1:0", "--key-file", str(control_key[0])) as proc:
        yield proc


class Regions:
    def __init__(self, memserver: Proc, key: bytes) -> None:
        address = memserver.address("memserver")
        self.key = key
        self.secret = os.urandom(256)
        self.victim = store(address, self.secret, key=key)
        """A region the fuzzer never has the rkey of: it must never leak or change."""
        self.open = store(address, bytes(256), key=key)
        """A region the fuzzer has the rkey of (not the control key), so that valid READs get through too."""
        self.table_bytes = em_table.encode(VnfKind.FIREWALL, INSTANCE, 2, FIREWALL_RULES)
        self.table = store(address, self.table_bytes, key=key)


@pytest.fixture(scope="module")
def regions(memserver: Proc, control_key: tuple[Path, bytes]) -> Regions:
    return Regions(memserver, control_key[1])


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(address)
    sock.settimeout(2.0)
    return sock


def _flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    return data[:bit // 8] + bytes([data[bit // 8] ^ (1 << (bit % 8))]) + data[bit // 8 + 1:]


def test_memory_server_survives_fuzzing(memserver: Proc, regions: Regions) -> None:
    sock = _connect(memserver.address("memserver"))
    victim_region, victim_key = regions.victim
    open_region, open_key = regions.open
    before = memserver.metrics()
    sent = {"n": 0}

    # A sender with the victim's rkey but not the control key: a WRITE signed with the key and then flipped in
    # any bit, or signed with another key, must not run; WRITEs signed with the key to the open region do.
    signed_overwrite = sign(P.write(4, victim_region, victim_key, 0, b"overwritten"), regions.key).pack()
    requests = st.one_of(
        st.binary(max_size=80),
        st.builds(_flip, st.just(signed_overwrite), st.integers(0, 10_000)),
        st.builds(lambda key: sign(P.write(5, victim_region, victim_key, 0, b"overwritten"), key).pack(),
                  st.binary(min_size=32, max_size=32).filter(lambda key: key != regions.key)),
        st.builds(lambda data: sign(P.write(6, open_region, open_key, 0, data), regions.key).pack(), st.binary(min_size=1, max_size=64)),
        st.builds(lambda data, cut: data[:cut], st.just(P.read(1, *regions.open, 0, 8).pack()), st.integers(0, P.Request.HEADER - 1)),
        st.builds(_flip, st.just(P.write(2, *regions.open, 0, b"abcdefgh").pack()), st.integers(0, 10_000)),
        st.builds(lambda op, region, key, offset, length, payload: Request(op, 3, region, key, offset, length, payload).pack(),
                  st.integers(0, 255), st.sampled_from([victim_region, open_region, 0, 2**32 - 1]),
                  st.one_of(st.just(open_key), st.integers(0, 2**32 - 1).filter(lambda k: k != victim_key)),
                  st.one_of(st.integers(0, 300), st.integers(0, 2**32 - 1)), st.one_of(st.integers(0, 300), st.integers(0, 2**32 - 1)),
                  st.binary(max_size=40)),
    )

    @CASES
    @given(requests)
    def case(packet: bytes) -> None:
        if len(packet) >= 4 and packet[3] == P.Op.ALLOC:
            packet = packet[:3] + bytes([P.Op.READ]) + packet[4:]  # registering memory is not what is fuzzed
        sock.send(packet)
        sent["n"] += 1
        sock.send(P.read(PROBE + sent["n"], victim_region, victim_key, 0, len(regions.secret)).pack())
        while True:
            completion = Completion.unpack(sock.recv(65535))
            if completion.wr_id == PROBE + sent["n"]:
                assert completion.payload == regions.secret, "memory outside the fuzzer's region changed"
                return
            if completion.payload:
                request = Request.unpack(packet)
                assert (request.region, request.rkey) == regions.open, "memory returned to a request without the key"

    try:
        case()
    finally:
        sock.close()
    after = memserver.metrics()

    def total(prefix: str, metrics: dict[str, float]) -> float:
        return sum(v for k, v in metrics.items() if k.startswith(prefix))
    served = total("srem_memserver_requests_total", after) - total("srem_memserver_requests_total", before)
    malformed = after["srem_memserver_malformed_total"] - before["srem_memserver_malformed_total"]
    refused = total("srem_memserver_refused_total", after) - total("srem_memserver_refused_total", before)
    assert sent["n"] >= 10_000
    assert served + malformed == 2 * sent["n"], "every datagram is served (refusals included) or counted as malformed"
    assert malformed > 1000
    signed_writes = after["srem_memserver_requests_total{op=WRITE,status=OK}"] - before["srem_memserver_requests_total{op=WRITE,status=OK}"]
    assert refused > 1000 and signed_writes > 100


def _expected(regions: Regions, frame: bytes) -> EmacResponse | None:
    """What a correct EMAC answers to a frame: the table's action for a request naming the table, else nothing."""
    try:
        req = parse_frame(frame)
    except Drop:
        return None
    region, rkey = regions.table
    if (req.server, req.region, req.rkey, req.instance, req.vnf_type) != (SERVER_ID, region, rkey, INSTANCE, VnfKind.FIREWALL):
        return None
    found, _ = em_table.lookup(regions.table_bytes, em_table.Flow(req.src_addr, req.dst_addr, req.protocol, req.dst_port))
    base = (req.switch_id, req.instance, req.vnf_type, req.seq)
    if found is None:
        return EmacResponse(*base, STATUS_MISS, 0)
    return EmacResponse(*base, STATUS_HIT, found.action, found.addr, found.port, found.dscp, found.meter_index, found.flags)


def test_emac_survives_fuzzing(memserver: Proc, regions: Regions) -> None:
    host, port = memserver.address("memserver")
    region, rkey = regions.table
    rule_keys = st.sampled_from([r.key for r in FIREWALL_RULES])
    frames = st.one_of(
        st.binary(max_size=80),
        st.builds(lambda cut: emac_frame(region, rkey, FIREWALL_RULES[0].key, 1)[:cut], st.integers(0, 14 + EmacRequest.SIZE - 1)),
        st.builds(lambda bit, key: _flip(emac_frame(region, rkey, key, 2), bit), st.integers(0, (14 + EmacRequest.SIZE) * 8 - 1),
                  rule_keys),
        st.builds(lambda r, k, key, seq, inst, server, vnf: emac_frame(r, k, key, seq, inst, server, vnf),
                  st.sampled_from([region, regions.open[0], 0, 77]), st.sampled_from([rkey, regions.open[1], 0]),
                  st.one_of(rule_keys, st.builds(em_table.Flow, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1),
                                                 st.integers(0, 255), st.integers(0, 65535))),
                  st.integers(0, 2**31 - 1), st.sampled_from([INSTANCE, INSTANCE + 1]), st.sampled_from([SERVER_ID, 2]),
                  st.sampled_from([VnfKind.FIREWALL, VnfKind.NAT, 0])),
    )
    with running("emac", "--memory-server", f"{SERVER_ID}={host}:{port}", "--listen-udp", "127.0.0.1:0", "--timeout-ms", "200") as emac:
        sock = _connect(emac.udp_attachment())
        counts = {"sent": 0, "answered": 0}
        probe_key = FIREWALL_RULES[3]

        @CASES
        @given(frames)
        def case(frame: bytes) -> None:
            counts["sent"] += 1
            sock.send(frame)
            want = _expected(regions, frame)
            if want is None:
                probe_seq = (1 << 31) + counts["sent"]
                sock.send(emac_frame(region, rkey, probe_key.key, probe_seq))
                got = parse_response(sock.recv(65535))
                assert got.seq == probe_seq and got.action == probe_key.action, f"an answer to a frame that has none: {got}"
            else:
                assert parse_response(sock.recv(65535)) == want
                counts["answered"] += 1

        try:
            case()
        finally:
            sock.close()
        metrics = emac.metrics()
        assert emac.alive()
    dropped = sum(v for k, v in metrics.items() if k.startswith("srem_emac_dropped_total"))
    assert counts["sent"] >= 10_000
    assert counts["answered"] + dropped == counts["sent"], "every frame is answered or counted as dropped"
    assert metrics["srem_emac_dropped_total{reason=malformed}"] > 1000
    assert metrics["srem_emac_dropped_total{reason=unknown_instance}"] > 100


@CASES
@given(st.binary(max_size=64))
def test_garbage_completions_are_counted_not_raised(data: bytes) -> None:
    client = RdmaClient("127.0.0.1", 9)
    client.datagram_received(data, ("127.0.0.1", 9))
    assert client.unexpected == 1, "nothing was waiting for it"
