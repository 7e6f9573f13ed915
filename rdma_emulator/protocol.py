"""The emulated RDMA wire format: one UDP datagram per work request, one per completion.

A request addresses memory the way an RDMA one-sided verb does, by (region, rkey, offset, length):

    magic   u16  0x5244 ("RD")        opcode  u8   READ 1, WRITE 2, CAS 3, ALLOC 4, FREE 5
    version u8   1                    wr_id   u64  echoed in the completion
    region  u32                       rkey    u32  the region's remote key
    offset  u32  byte offset          length  u32  bytes to read / write; CAS: 8; ALLOC: region size
    payload      WRITE: `length` bytes; CAS: compare u64, swap u64; otherwise empty

A completion echoes magic, version, opcode and wr_id, then carries

    status  u8   OK 0, or the error    region  u32  ALLOC: the new region
    rkey    u32  ALLOC: its key        length  u32  payload bytes
    payload      READ: the data; CAS: the value found (swapped when it equalled compare)

All integers are big-endian. ALLOC and FREE stand in for memory registration, which real RDMA does
on the server with the key shared out of band; here the controller asks the memory server. A
datagram too short for the header or with the wrong magic or version gets no completion (there is nothing to
address it to); any other bad request gets an error completion and never any memory.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

MAGIC = 0x5244
VERSION = 1
MAX_IO = 16 * 1024
"""Largest READ or WRITE in one request: a datagram stays well under UDP's 64 KiB."""

_REQUEST = struct.Struct("!HBBQIIII")
_COMPLETION = struct.Struct("!HBBQBIII")
_CAS = struct.Struct("!QQ")
CAS_SIZE = 8


class Op(IntEnum):
    READ = 1
    WRITE = 2
    CAS = 3
    ALLOC = 4
    FREE = 5


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


class WireError(ValueError):
    """A datagram that is not a request or completion of this protocol."""


@dataclass(frozen=True, slots=True)
class Request:
    op: int
    wr_id: int
    region: int = 0
    rkey: int = 0
    offset: int = 0
    length: int = 0
    payload: bytes = b""

    HEADER = _REQUEST.size

    def pack(self) -> bytes:
        return _REQUEST.pack(MAGIC, VERSION, self.op, self.wr_id, self.region, self.rkey, self.offset, self.length) + self.payload

    @classmethod
    def unpack(cls, data: bytes) -> Request:
        """Header fields as sent; what they mean is checked by whoever executes the request."""
        if len(data) < _REQUEST.size:
            raise WireError(f"request of {len(data)} bytes, header needs {_REQUEST.size}")
        magic, version, op, wr_id, region, rkey, offset, length = _REQUEST.unpack_from(data)
        if magic != MAGIC or version != VERSION:
            raise WireError(f"bad magic or version 0x{magic:04x}/{version}")
        return cls(op, wr_id, region, rkey, offset, length, bytes(data[_REQUEST.size:]))


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
