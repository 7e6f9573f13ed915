"""Pure parts of external memory: the RDMA wire format, a memory server's store, the EM table layout."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdma_emulator import protocol as P
from rdma_emulator.auth import KeyFileError, Verifier, load_key, sign, write_key_files
from rdma_emulator.memory import MemoryStore, Usage
from rdma_emulator.protocol import Completion, Op, Request, Status
from srem_formats import em_table
from srem_formats.flows import Action, Flow, Rule, VnfKind


def test_requests_and_completions_round_trip() -> None:
    for req in (P.read(7, 1, 2, 3, 4), P.write(8, 1, 2, 0, b"abc"), P.cas(9, 1, 2, 8, 5, 6), Request(Op.ALLOC, 10, length=64)):
        assert Request.unpack(req.pack()) == req
    done = Completion(Op.READ, 7, Status.OK, payload=b"xyz")
    assert Completion.unpack(done.pack()) == done
    with pytest.raises(P.WireError):
        Completion.unpack(done.pack()[:-1])
    with pytest.raises(P.WireError):
        Request.unpack(b"\x00" * 40)
    packed = P.read(7, 1, 2, 3, 4).pack()
    with pytest.raises(P.WireError, match="version"):
        Request.unpack(packed[:2] + bytes([P.VERSION + 1]) + packed[3:])


def store_with_region(size: int = 64) -> tuple[MemoryStore, int, int]:
    store = MemoryStore(1024)
    done = store.execute(Request(Op.ALLOC, 1, length=size))
    return store, done.region, done.rkey


def test_store_reads_writes_and_swaps() -> None:
    store, region, rkey = store_with_region()
    assert store.execute(P.write(2, region, rkey, 8, b"\x00" * 7 + b"\x05")).ok
    assert store.execute(P.read(3, region, rkey, 8, 8)).payload == b"\x00" * 7 + b"\x05"
    assert store.execute(P.cas(4, region, rkey, 8, 5, 9)).payload == (5).to_bytes(8, "big")
    assert store.execute(P.cas(5, region, rkey, 8, 5, 1)).payload == (9).to_bytes(8, "big"), "no swap when the compare fails"
    assert store.execute(P.read(6, region, rkey, 8, 8)).payload == (9).to_bytes(8, "big")


def test_store_refuses_without_revealing_memory() -> None:
    store, region, rkey = store_with_region()
    store.execute(P.write(2, region, rkey, 0, b"secret"))
    refused = [store.execute(P.read(3, region, rkey ^ 1, 0, 6)), store.execute(P.read(4, region + 1, rkey, 0, 6)),
               store.execute(P.read(5, region, rkey, 60, 8)), store.execute(P.write(6, region, rkey, 60, b"x" * 8)),
               store.execute(P.cas(7, region, rkey, 4, 0, 1)), store.execute(Request(Op.READ, 8, region, rkey, 0, P.MAX_IO + 1)),
               store.execute(Request(Op.WRITE, 9, region, rkey, 0, 4, b"ab")), store.execute(Request(99, 10, region, rkey))]
    assert [c.status for c in refused] == [Status.ACCESS_ERROR, Status.ACCESS_ERROR, Status.OUT_OF_BOUNDS, Status.OUT_OF_BOUNDS,
                                           Status.MALFORMED, Status.MALFORMED, Status.MALFORMED, Status.UNSUPPORTED]
    assert all(c.payload == b"" for c in refused)
    assert store.execute(P.read(11, region, rkey, 0, 6)).payload == b"secret"


def test_store_capacity_and_free() -> None:
    store = MemoryStore(100)
    first = store.execute(Request(Op.ALLOC, 1, length=60))
    assert store.execute(Request(Op.ALLOC, 2, length=60)).status == Status.NO_SPACE
    assert store.execute(Request(Op.FREE, 3, first.region, first.rkey ^ 1)).status == Status.ACCESS_ERROR
    assert store.execute(Request(Op.FREE, 4, first.region, first.rkey)).ok
    assert store.execute(P.read(5, first.region, first.rkey, 0, 1)).status == Status.ACCESS_ERROR
    second = store.execute(Request(Op.ALLOC, 6, length=60))
    assert second.ok and second.region != first.region


flows = st.builds(Flow, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 255), st.integers(0, 65535))


@settings(max_examples=200, deadline=None)
@given(st.sets(flows, max_size=300), st.integers(1, 4), st.sampled_from(list(VnfKind)), flows)
def test_every_rule_is_found_in_exactly_n_f_reads(keys: set[Flow], accesses: int, kind: VnfKind, absent: Flow) -> None:
    keys = {em_table.lookup_key(kind, k) for k in keys}
    rules = [Rule(k, Action(i % 5), addr=i, port=i % 65536, dscp=i % 64, meter_index=i % 1024, drop_red=bool(i % 2))
             for i, k in enumerate(sorted(keys, key=lambda f: (f.src, f.dst, f.protocol, f.dst_port)))]
    region = em_table.encode(kind, 7, accesses, rules)
    header = em_table.Header.unpack(region)
    assert (header.instance, header.kind, header.accesses, header.rules, header.size) == (7, kind, accesses, len(rules), len(region))
    for rule in rules:
        found, reads = em_table.lookup(region, rule.key)
        assert reads == accesses
        assert found == em_table.Found(rule.action, rule.addr, rule.port, rule.dscp, rule.meter_index, int(rule.drop_red))
    if em_table.lookup_key(kind, absent) not in keys:
        assert em_table.lookup(region, absent) == (None, accesses)


def test_nat_lookups_ignore_the_source() -> None:
    rule = Rule(Flow(0, 5, 17, 10001), Action.REWRITE, addr=5, port=40001)
    region = em_table.encode(VnfKind.NAT, 1, 2, [rule])
    assert em_table.lookup(region, Flow(12345, 5, 17, 10001))[0].port == 40001
    assert em_table.lookup(em_table.encode(VnfKind.FIREWALL, 1, 2, [rule]), Flow(12345, 5, 17, 10001))[0] is None


def test_bad_tables_are_refused() -> None:
    rule = Rule(Flow(1, 2, 17, 3), Action.PERMIT)
    with pytest.raises(em_table.TableError):
        em_table.encode(VnfKind.FIREWALL, 1, 2, [rule, rule])
    with pytest.raises(em_table.TableError):
        em_table.encode(VnfKind.FIREWALL, 1, 0, [rule])
    with pytest.raises(em_table.TableError):
        em_table.Header.unpack(b"\x00" * 64)


# Authenticated control (issue 20, finding 6): the trailer, the server's check, quotas, key files

KEY = bytes(range(32))


def test_a_signed_request_round_trips_and_an_unsigned_one_has_no_trailer() -> None:
    for request in (Request(Op.ALLOC, 1, length=64), Request(Op.FREE, 2, 5, 6), P.write(3, 5, 6, 0, b"abc"), P.cas(4, 5, 6, 8, 1, 2)):
        signed = sign(request, KEY)
        assert signed.auth is not None and len(signed.pack()) == len(request.pack()) + P.AUTH_SIZE
        assert Request.unpack(signed.pack()) == signed
        assert Request.unpack(request.pack()).auth is None
    bad_length = P.write(3, 5, 6, 0, b"abc").pack() + bytes(P.AUTH_SIZE - 1)
    assert Request.unpack(bad_length).auth is None, "a trailer only where the length says so: this is a malformed WRITE"


class Clock:
    def __init__(self, now_ns: int) -> None:
        self.now_ns = now_ns

    def __call__(self) -> int:
        return self.now_ns


def test_the_server_runs_only_fresh_requests_tagged_with_its_key() -> None:
    clock = Clock(10**18)
    verifier = Verifier(KEY, window_s=30, clock_ns=clock)
    alloc = Request(Op.ALLOC, 1, length=64)
    good = sign(alloc, KEY, timestamp_ns=clock.now_ns)
    assert verifier.refusal(good) is None
    assert verifier.refusal(good) == "replayed"
    assert verifier.refusal(alloc) == "unsigned"
    assert verifier.refusal(sign(alloc, bytes(32), timestamp_ns=clock.now_ns)) == "bad_tag"
    tampered = Request(Op.ALLOC, 1, length=65, auth=good.auth)
    assert verifier.refusal(tampered) == "bad_tag", "the tag covers the header"
    assert verifier.refusal(sign(alloc, KEY, timestamp_ns=clock.now_ns - 31 * 10**9)) == "stale"
    assert verifier.refusal(sign(alloc, KEY, timestamp_ns=clock.now_ns + 31 * 10**9)) == "stale"
    assert verifier.refusal(sign(alloc, KEY, timestamp_ns=clock.now_ns - 29 * 10**9)) is None
    assert verifier.remembered == 2
    clock.now_ns += 61 * 10**9
    assert verifier.refusal(good) == "stale", "a nonce is forgotten only once its request is stale"
    assert verifier.refusal(sign(alloc, KEY, timestamp_ns=clock.now_ns)) is None
    assert verifier.remembered == 1, "the nonces of requests out of the window are forgotten"


def test_the_servers_memory_of_nonces_is_bounded() -> None:
    clock = Clock(10**18)
    verifier = Verifier(KEY, max_remembered=3, clock_ns=clock)
    requests = [sign(Request(Op.FREE, i, 1, 1), KEY, timestamp_ns=clock.now_ns) for i in range(4)]
    assert [verifier.refusal(r) for r in requests] == [None, None, None, "busy"]
    assert verifier.remembered == 3


def test_quotas_are_per_client_address_and_a_free_gives_back() -> None:
    store = MemoryStore(1000, quota_bytes=300, quota_regions=2)
    first = store.execute(Request(Op.ALLOC, 1, length=100), "10.0.0.1")
    assert first.ok and store.execute(Request(Op.ALLOC, 2, length=100), "10.0.0.1").ok
    assert store.execute(Request(Op.ALLOC, 3, length=10), "10.0.0.1").status == Status.QUOTA_EXCEEDED, "regions"
    assert store.execute(Request(Op.ALLOC, 4, length=301), "10.0.0.2").status == Status.QUOTA_EXCEEDED, "bytes"
    assert store.execute(Request(Op.ALLOC, 5, length=300), "10.0.0.2").ok, "another address has its own quota"
    assert store.execute(Request(Op.FREE, 6, first.region, first.rkey), "10.0.0.2").ok
    assert store.execute(Request(Op.ALLOC, 7, length=200), "10.0.0.1").ok, "the region freed is given back to its owner"
    assert store.usage == {"10.0.0.1": Usage(2, 300), "10.0.0.2": Usage(1, 300)}
    assert store.execute(Request(Op.ALLOC, 8, length=401), "10.0.0.3").status == Status.NO_SPACE, "a full store is said first"


def test_key_files_are_written_whole_and_private_and_refused_otherwise(tmp_path: Path) -> None:
    a, b = tmp_path / "a.key", tmp_path / "b.key"
    assert write_key_files([(a, None), (b, None)])
    assert load_key(a) == load_key(b) and len(load_key(a)) == 32
    assert stat.S_IMODE(a.stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*.tmp")), "no staging file left"
    with pytest.raises(KeyFileError, match="exists"):
        write_key_files([(a, None)])
    c = tmp_path / "c.key"
    assert not write_key_files([(a, None), (c, None)], keep=True), "kept"
    assert load_key(c) == load_key(a), "a missing file gets the key the others hold"
    (tmp_path / "d.key").write_text(bytes(32).hex() + "\n")
    (tmp_path / "d.key").chmod(0o600)
    with pytest.raises(KeyFileError, match="different keys"):
        write_key_files([(a, None), (tmp_path / "d.key", None)], keep=True)
    a.chmod(0o640)
    with pytest.raises(KeyFileError, match="mode 0640"):
        load_key(a)
    (tmp_path / "short.key").write_text("abcd\n")
    (tmp_path / "short.key").chmod(0o600)
    with pytest.raises(KeyFileError, match="not a control key"):
        load_key(tmp_path / "short.key")
    with pytest.raises(KeyFileError, match="No such file"):
        load_key(tmp_path / "none.key")
