"""An instance's rules as a hash table in a memory region: the encoder the controller writes with, and
the lookup walk the EMAC reads with, so both sides share one layout.

A lookup costs exactly n_f reads, the paper's RDMA accesses per lookup of type f (eq. 15): n_f - 1
reads of a radix directory over the bucket number, then one read of the bucket. n_f = 1 is a flat
array of buckets addressed from the hash; each level of directory is one dependent read more, and
lets buckets sit anywhere in the region. A miss costs the same n_f reads as a hit.

Region layout (big-endian):

    header    32 bytes: magic "SREM", format, VNF type, levels (n_f - 1), bucket bits, slots per
              bucket, record size, instance, rules, hash seed, root offset, region size
    directory level 1 .. levels: arrays of u32 offsets; level i splits the bucket number's bits
    buckets   `slots` records each; a record: valid u8, key (src u32, dst u32, protocol u8,
              dst port u16), action u8, addr u32, port u16, dscp u8, meter index u16, flags u8, pad

The header is read once per region: regions are immutable once the controller has written them
(a change of rules is a new region, switched to make-before-break), so an EMAC may cache it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Generator, Sequence
from dataclasses import dataclass

from srem_formats.flows import Action, Flow, Rule, VnfKind

MAGIC = b"SREM"
FORMAT = 1
SLOTS = 8
TARGET_LOAD = 2
"""Rules per bucket on average: 8-slot buckets then overflow rarely, and overflow doubles the buckets."""
MAX_BUCKET_BITS = 24
FLAG_DROP_RED = 0x01

_HEADER = struct.Struct("!4sBBBBBBHIIIII")
_RECORD = struct.Struct("!BIIBHBIHBHBx")
_KEY = struct.Struct("!IIBH")
_POINTER = struct.Struct("!I")
HEADER_SIZE = _HEADER.size
RECORD_SIZE = _RECORD.size


class TableError(ValueError):
    """A region that does not hold a table of this format, or rules that cannot be laid out."""


@dataclass(frozen=True)
class Header:
    kind: int
    levels: int
    bucket_bits: int
    slots: int
    instance: int
    rules: int
    seed: int
    root: int
    size: int

    @property
    def accesses(self) -> int:
        return self.levels + 1

    @property
    def bucket_size(self) -> int:
        return self.slots * RECORD_SIZE

    def level_bits(self) -> list[int]:
        """Bits of the bucket number each directory level resolves, most significant first."""
        base, extra = divmod(self.bucket_bits, self.levels) if self.levels else (0, 0)
        return [base + (i < extra) for i in range(self.levels)]

    def pack(self) -> bytes:
        return _HEADER.pack(MAGIC, FORMAT, self.kind, self.levels, self.bucket_bits, self.slots, 0, RECORD_SIZE,
                            self.instance, self.rules, self.seed, self.root, self.size)

    @classmethod
    def unpack(cls, data: bytes) -> Header:
        if len(data) < HEADER_SIZE:
            raise TableError(f"header of {len(data)} bytes, needs {HEADER_SIZE}")
        magic, fmt, kind, levels, bits, slots, _, record, instance, rules, seed, root, size = _HEADER.unpack_from(data)
        if magic != MAGIC or fmt != FORMAT or record != RECORD_SIZE or slots == 0 or bits > MAX_BUCKET_BITS:
            raise TableError("not an SR-EM external-memory table")
        return cls(kind, levels, bits, slots, instance, rules, seed, root, size)


def lookup_key(kind: int, flow: Flow) -> Flow:
    """What a rule of this VNF type matches: NAT rules ignore the source address (rules.py)."""
    return Flow(0, flow.dst, flow.protocol, flow.dst_port) if kind == VnfKind.NAT else flow


def bucket_of(header: Header, key: Flow) -> int:
    digest = hashlib.blake2b(_KEY.pack(key.src, key.dst, key.protocol, key.dst_port), digest_size=8,
                             key=header.seed.to_bytes(4, "big")).digest()
    return int.from_bytes(digest, "big") & ((1 << header.bucket_bits) - 1)


def encode(kind: VnfKind, instance: int, accesses: int, rules: Sequence[Rule], seed: int = 1) -> bytes:
    """The region's bytes for these rules, looked up in `accesses` reads."""
    if not 1 <= accesses <= 8:
        raise TableError(f"{accesses} accesses per lookup (1..8 supported)")
    keys = [lookup_key(kind, rule.key) for rule in rules]
    if len(set(keys)) != len(keys):
        raise TableError(f"instance {instance}: two rules with the same key")
    bits = max(0, len(rules) // TARGET_LOAD - 1).bit_length()
    while bits <= MAX_BUCKET_BITS:
        layout = _try_layout(kind, instance, accesses - 1, bits, seed, rules, keys)
        if layout is not None:
            return layout
        bits += 1
    raise TableError(f"instance {instance}: {len(rules)} rules do not fit {1 << MAX_BUCKET_BITS} buckets")


def _try_layout(kind: int, instance: int, levels: int, bits: int, seed: int, rules: Sequence[Rule], keys: list[Flow]) -> bytes | None:
    probe = Header(kind, levels, bits, SLOTS, instance, len(rules), seed, HEADER_SIZE, 0)
    buckets: list[list[bytes]] = [[] for _ in range(1 << bits)]
    for rule, key in zip(rules, keys):
        slot = buckets[bucket_of(probe, key)]
        if len(slot) == SLOTS:
            return None
        slot.append(_RECORD.pack(1, key.src, key.dst, key.protocol, key.dst_port, rule.action, rule.addr, rule.port,
                                 rule.dscp, rule.meter_index, FLAG_DROP_RED if rule.drop_red else 0))
    directory: list[bytes] = []
    offset = HEADER_SIZE
    level_sizes = [1 << sum(probe.level_bits()[:i + 1]) for i in range(levels)]
    bucket_area = HEADER_SIZE + 4 * sum(level_sizes)
    for i, pointers in enumerate(level_sizes):
        next_base = offset + 4 * pointers
        # Level i's pointer p addresses node p of level i + 1 (or bucket p after the last level).
        step = 4 * (1 << probe.level_bits()[i + 1]) if i + 1 < levels else probe.bucket_size
        base = next_base if i + 1 < levels else bucket_area
        directory.append(b"".join(_POINTER.pack(base + p * step) for p in range(pointers)))
        offset = next_base
    empty = bytes(RECORD_SIZE)
    body = b"".join(b"".join(slot) + empty * (SLOTS - len(slot)) for slot in buckets)
    size = bucket_area + len(body)
    header = Header(kind, levels, bits, SLOTS, instance, len(rules), seed, HEADER_SIZE, size)
    return header.pack() + b"".join(directory) + body


@dataclass(frozen=True, slots=True)
class Found:
    """The action of a matching record."""

    action: Action
    addr: int
    port: int
    dscp: int
    meter_index: int
    flags: int


def walk(header: Header, key: Flow) -> Generator[tuple[int, int], bytes, Found | None]:
    """The reads of one lookup: yields (offset, length), is sent the bytes read, returns the match or None."""
    key = lookup_key(header.kind, key)
    bucket = bucket_of(header, key)
    if header.levels == 0:
        offset = header.root + bucket * header.bucket_size
    else:
        offset = header.root
        consumed = 0
        for bits in header.level_bits():
            consumed += bits
            index = (bucket >> (header.bucket_bits - consumed)) & ((1 << bits) - 1)
            data = yield offset + 4 * index, 4
            offset = _POINTER.unpack(data)[0]
    data = yield offset, header.bucket_size
    for at in range(0, len(data) - RECORD_SIZE + 1, RECORD_SIZE):
        valid, src, dst, proto, dport, action, addr, port, dscp, meter, flags = _RECORD.unpack_from(data, at)
        if valid and (src, dst, proto, dport) == (key.src, key.dst, key.protocol, key.dst_port):
            if action not in Action.__members__.values():
                raise TableError(f"record with unknown action {action}")
            return Found(Action(action), addr, port, dscp, meter, flags)
    return None


def lookup(region: bytes, key: Flow) -> tuple[Found | None, int]:
    """A lookup against a region's bytes held locally: the match and the reads it took."""
    header = Header.unpack(region)
    steps = walk(header, key)
    reads = 0
    request = next(steps)
    while True:
        reads += 1
        offset, length = request
        if offset + length > len(region):
            raise TableError(f"read at {offset}+{length} beyond the region's {len(region)} bytes")
        try:
            request = steps.send(region[offset:offset + length])
        except StopIteration as done:
            return done.value, reads
