"""Pure parts of external memory: the RDMA wire format, a memory server's store, the EM table layout."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rdma_emulator import protocol as P
from rdma_emulator.memory import MemoryStore
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
