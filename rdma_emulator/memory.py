"""A memory server's registered regions and the execution of one request against them: no I/O.

Every check that keeps a client inside its region, and within its quota, is here, so the server's
socket code only moves datagrams. Remote keys are random 32-bit values, never 0, drawn from the
operating system.

Each region is charged to the client address that registered it, which may hold at most
`quota_regions` regions and `quota_bytes` bytes. Regions do not expire. A lease would free a region
the controller failed to renew while switches still point at it: a stalled controller would turn
into lost lookups, where real RDMA keeps a registration until it is deregistered. What a client can
leave behind (a controller killed between ALLOC and FREE) is bounded by its quota instead, and only
the controller may ALLOC at all (auth.py).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from rdma_emulator.protocol import CAS_SIZE, MAX_IO, Completion, Op, Request, Status, cas_operands, payload_size


@dataclass
class Region:
    rkey: int
    data: bytearray
    owner: str


@dataclass
class Usage:
    regions: int = 0
    bytes: int = 0


class MemoryStore:
    def __init__(self, capacity_bytes: int, quota_bytes: int | None = None, quota_regions: int | None = None) -> None:
        """Quotas per client address; None: as much as the store holds."""
        self.capacity = capacity_bytes
        self.quota_bytes = capacity_bytes if quota_bytes is None else quota_bytes
        self.quota_regions = quota_regions
        self.used = 0
        self.regions: dict[int, Region] = {}
        self.usage: dict[str, Usage] = {}
        """Client address -> what its regions hold; only addresses holding regions are here."""
        self._next_region = 1

    def execute(self, req: Request, client: str = "") -> Completion:
        """The completion of one request from `client` (its address); every error is a status, never an exception."""
        if req.op == Op.ALLOC:
            return self._alloc(req, client)
        if req.op not in (Op.READ, Op.WRITE, Op.CAS, Op.FREE):
            return Completion(req.op, req.wr_id, Status.UNSUPPORTED)
        region = self.regions.get(req.region)
        if region is None or region.rkey != req.rkey:
            return Completion(req.op, req.wr_id, Status.ACCESS_ERROR)
        if req.op == Op.FREE:
            del self.regions[req.region]
            self.used -= len(region.data)
            usage = self.usage[region.owner]
            usage.regions -= 1
            usage.bytes -= len(region.data)
            if not usage.regions:
                del self.usage[region.owner]
            return Completion(req.op, req.wr_id, Status.OK, req.region)
        bad_cas = req.op == Op.CAS and (req.length != CAS_SIZE or req.offset % CAS_SIZE)
        if len(req.payload) != payload_size(req.op, req.length) or req.length > MAX_IO or bad_cas:
            return Completion(req.op, req.wr_id, Status.MALFORMED)
        end = req.offset + req.length
        if end > len(region.data):
            return Completion(req.op, req.wr_id, Status.OUT_OF_BOUNDS)
        if req.op == Op.READ:
            return Completion(req.op, req.wr_id, Status.OK, payload=bytes(region.data[req.offset:end]))
        if req.op == Op.WRITE:
            region.data[req.offset:end] = req.payload
            return Completion(req.op, req.wr_id, Status.OK)
        compare, swap = cas_operands(req.payload)
        found = bytes(region.data[req.offset:end])
        if int.from_bytes(found, "big") == compare:
            region.data[req.offset:end] = swap.to_bytes(CAS_SIZE, "big")
        return Completion(req.op, req.wr_id, Status.OK, payload=found)

    def _alloc(self, req: Request, client: str) -> Completion:
        if req.region or req.rkey or req.offset or req.payload or req.length == 0:
            return Completion(req.op, req.wr_id, Status.MALFORMED)
        if self.used + req.length > self.capacity:
            return Completion(req.op, req.wr_id, Status.NO_SPACE)
        usage = self.usage.get(client, Usage())
        if usage.bytes + req.length > self.quota_bytes or (self.quota_regions is not None and usage.regions >= self.quota_regions):
            return Completion(req.op, req.wr_id, Status.QUOTA_EXCEEDED)
        region_id = self._next_region
        self._next_region += 1
        rkey = secrets.randbits(32) or 1
        self.regions[region_id] = Region(rkey, bytearray(req.length), client)
        self.used += req.length
        usage.regions += 1
        usage.bytes += req.length
        self.usage[client] = usage
        return Completion(req.op, req.wr_id, Status.OK, region_id, rkey)
