"""The emulated RDMA wire format: one UDP datagram per work request, one per completion.

A request addresses memory the way an RDMA one-sided verb does, by (region, rkey, offset, length):

    magic   u16  0x5244 ("RD")        opcode  u8   READ 1, WRITE 2, CAS 3, ALLOC 4, FREE 5
    version u8   2                    wr_id   u64  echoed in the completion
    region  u32                       rkey    u32  the region's remote key
    offset  u32  byte offset          length  u32  bytes to read / write; CAS: 8; ALLOC: region size
    payload      WRITE: `length` bytes; CAS: compare u64, swap u64; otherwise empty
    auth         ALLOC, FREE, WRITE, CAS (the operations that change a server's state): a 48-byte
                 trailer, timestamp u64 (ns since the Unix epoch), nonce u64, tag 32 bytes: the
                 HMAC-SHA256 under the deployment's control key of auth.CONTEXT and everything
                 before the tag (auth.py)

A completion echoes magic, version, opcode and wr_id, then carries

    status  u8   OK 0, or the error    region  u32  ALLOC: the new region
    rkey    u32  ALLOC: its key        length  u32  payload bytes
    payload      READ: the data; CAS: the value found (swapped when it equalled compare)

All integers are big-endian. ALLOC and FREE stand in for memory registration, which real RDMA does
on the server with the key shared out of band; here the controller asks the memory server, and only
the controller holds the control key. Whether a request carries the trailer follows from its
length: the trailer is there when the datagram holds exactly the operation's payload plus 48 bytes.
READ needs no trailer: a region's rkey is what lets the EMAC read it, as in RDMA. A datagram too
short for the header or with the wrong magic or version gets no completion (there is nothing to
address it to); any other bad request gets an error completion and never any memory.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

MAGIC = 0x5244
VERSION = 2
"""2: the auth trailer of state-changing requests, statuses REFUSED and QUOTA_EXCEEDED."""
MAX_IO = 16 * 1024
"""Largest READ or WRITE in one request: a datagram stays well under UDP's 64 KiB."""

_REQUEST = struct.Struct("!HBBQIIII")
_COMPLETION = struct.Struct("!HBBQBIII")
_CAS = struct.Struct("!QQ")
CAS_SIZE = 8
_STAMP = struct.Struct("!QQ")
TAG_SIZE = 32
AUTH_SIZE = _STAMP.size + TAG_SIZE


class Op(IntEnum):
    READ = 1
    WRITE = 2
    CAS = 3
    ALLOC = 4
    FREE = 5


SIGNED_OPS = frozenset({Op.ALLOC, Op.FREE, Op.WRITE, Op.CAS})
"""The operations that change a server's state: they carry the auth trailer."""


HEALTH_REGION = 0
"""Never registered (memory.py numbers regions from 1): health checks READ it (check.py); any completion shows the
server executes requests."""


class Status(IntEnum):
    OK = 0
    ACCESS_ERROR = 1
    """Unknown region or wrong key: one status for both, as RDMA's remote access error, so a client
    cannot probe which regions exist."""
    OUT_OF_BOUNDS = 2
    MALFORMED = 3
    NO_SPACE = 4
    UNSUPPORTED = 5
    REFUSED = 6
    """A state-changing request without a valid tag under the control key: missing, wrong, stale or
    replayed all get this one status, so a sender learns nothing about which check failed."""
    QUOTA_EXCEEDED = 7
    """An ALLOC beyond the regions or bytes one client address may hold."""


class WireError(ValueError):
    """A datagram that is not a request or completion of this protocol."""


@dataclass(frozen=True, slots=True)
class Auth:
    timestamp_ns: int
    nonce: int
    tag: bytes

    def pack(self) -> bytes:
        return _STAMP.pack(self.timestamp_ns, self.nonce) + self.tag


_FIXED_PAYLOAD = {Op.READ: 0, Op.CAS: 2 * CAS_SIZE, Op.ALLOC: 0, Op.FREE: 0}


def payload_size(op: int, length: int) -> int | None:
    """The payload bytes a request of this operation carries; None for an unknown operation."""
    return length if op == Op.WRITE else _FIXED_PAYLOAD.get(op)  # type: ignore[call-overload]


@dataclass(frozen=True, slots=True)
class Request:
    op: int
    wr_id: int
    region: int = 0
    rkey: int = 0
    offset: int = 0
    length: int = 0
    payload: bytes = b""
    auth: Auth | None = None

    HEADER = _REQUEST.size

    def signed_part(self, timestamp_ns: int, nonce: int) -> bytes:
        """What the tag covers: the datagram up to the tag."""
        return self._unsigned() + _STAMP.pack(timestamp_ns, nonce)

    def pack(self) -> bytes:
        return self._unsigned() + (self.auth.pack() if self.auth is not None else b"")

    def _unsigned(self) -> bytes:
        return _REQUEST.pack(MAGIC, VERSION, self.op, self.wr_id, self.region, self.rkey, self.offset, self.length) + self.payload

    @classmethod
    def unpack(cls, data: bytes) -> Request:
        """Header fields as sent, the trailer split off when the length says it is there; what they
        mean, the tag included, is checked by whoever executes the request."""
        if len(data) < _REQUEST.size:
            raise WireError(f"request of {len(data)} bytes, header needs {_REQUEST.size}")
        magic, version, op, wr_id, region, rkey, offset, length = _REQUEST.unpack_from(data)
        if magic != MAGIC or version != VERSION:
            raise WireError(f"bad magic or version 0x{magic:04x}/{version}")
        rest = bytes(data[_REQUEST.size:])
        auth = None
        expected = payload_size(op, length)
        if expected is not None and len(rest) == expected + AUTH_SIZE:
            timestamp_ns, nonce = _STAMP.unpack_from(rest, expected)
            auth = Auth(timestamp_ns, nonce, rest[expected + _STAMP.size:])
            rest = rest[:expected]
        return cls(op, wr_id, region, rkey, offset, length, rest, auth)


def read(wr_id: int, region: int, rkey: int, offset: int, length: int) -> Request:
    return Request(Op.READ, wr_id, region, rkey, offset, length)


def write(wr_id: int, region: int, rkey: int, offset: int, data: bytes) -> Request:
    return Request(Op.WRITE, wr_id, region, rkey, offset, len(data), data)


def cas(wr_id: int, region: int, rkey: int, offset: int, compare: int, swap: int) -> Request:
    return Request(Op.CAS, wr_id, region, rkey, offset, CAS_SIZE, _CAS.pack(compare, swap))


def cas_operands(payload: bytes) -> tuple[int, int]:
    return _CAS.unpack(payload)


@dataclass(frozen=True, slots=True)
class Completion:
    op: int
    wr_id: int
    status: int
    region: int = 0
    rkey: int = 0
    payload: bytes = b""

    HEADER = _COMPLETION.size

    def pack(self) -> bytes:
        return _COMPLETION.pack(MAGIC, VERSION, self.op, self.wr_id, self.status, self.region, self.rkey, len(self.payload)) + self.payload

    @classmethod
    def unpack(cls, data: bytes) -> Completion:
        if len(data) < _COMPLETION.size:
            raise WireError(f"completion of {len(data)} bytes, header needs {_COMPLETION.size}")
        magic, version, op, wr_id, status, region, rkey, length = _COMPLETION.unpack_from(data)
        if magic != MAGIC or version != VERSION:
            raise WireError(f"bad magic or version 0x{magic:04x}/{version}")
        if len(data) - _COMPLETION.size != length:
            raise WireError(f"completion announces {length} payload bytes, carries {len(data) - _COMPLETION.size}")
        if status not in Status.__members__.values():
            raise WireError(f"unknown status {status}")
        return cls(op, wr_id, status, region, rkey, bytes(data[_COMPLETION.size:]))

    @property
    def ok(self) -> bool:
        return self.status == Status.OK
