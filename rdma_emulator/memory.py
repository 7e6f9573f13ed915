"""A memory server's registered regions and the execution of one request against them: no I/O.

Every check that keeps a client inside its region is here, so the server's socket code only
moves datagrams. Remote keys are random 32-bit values, never 0, drawn from the operating system.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from rdma_emulator.protocol import CAS_SIZE, MAX_IO, Completion, Op, Request, Status, cas_operands


@dataclass
class Region:
    rkey: int
    data: bytearray


class MemoryStore:
    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self.used = 0
        self.regions: dict[int, Region] = {}
        self._next_region = 1

    def execute(self, req: Request) -> Completion:
        """The completion of one request; every error is a status, never an exception."""
        if req.op == Op.ALLOC:
            return self._alloc(req)
        if req.op not in (Op.READ, Op.WRITE, Op.CAS, Op.FREE):
            return Completion(req.op, req.wr_id, Status.UNSUPPORTED)
        region = self.regions.get(req.region)
        if region is None or region.rkey != req.rkey:
            return Completion(req.op, req.wr_id, Status.ACCESS_ERROR)
        if req.op == Op.FREE:
            del self.regions[req.region]
            self.used -= len(region.data)
            return Completion(req.op, req.wr_id, Status.OK, req.region)
        expected_payload = {Op.READ: 0, Op.WRITE: req.length, Op.CAS: 2 * CAS_SIZE}[Op(req.op)]
        bad_cas = req.op == Op.CAS and (req.length != CAS_SIZE or req.offset % CAS_SIZE)
        if len(req.payload) != expected_payload or req.length > MAX_IO or bad_cas:
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

    def _alloc(self, req: Request) -> Completion:
        if req.region or req.rkey or req.offset or req.payload or req.length == 0:
            return Completion(req.op, req.wr_id, Status.MALFORMED)
        if self.used + req.length > self.capacity:
            return Completion(req.op, req.wr_id, Status.NO_SPACE)
        region_id = self._next_region
        self._next_region += 1
        rkey = secrets.randbits(32) or 1
        self.regions[region_id] = Region(rkey, bytearray(req.length))
        self.used += req.length
        return Completion(req.op, req.wr_id, Status.OK, region_id, rkey)
