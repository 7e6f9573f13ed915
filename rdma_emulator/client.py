"""The requester side of the emulated RDMA: post a work request to a memory server, await its completion.

One client is one queue pair to one memory server. Completions are matched to requests by wr_id; a
request without a completion within the timeout is posted again (the operations are idempotent,
except ALLOC, which is never retried) and then fails with RdmaTimeout. Completions nobody waits for
(late, duplicated, or garbage) are counted and dropped. A client given the control key signs its
ALLOC, FREE, WRITE and CAS (auth.py), every attempt anew: a server refuses a datagram it has seen.
"""

from __future__ import annotations

import asyncio
import itertools

from rdma_emulator import protocol as P
from rdma_emulator.auth import ENVIRONMENT, sign
from rdma_emulator.protocol import SIGNED_OPS, Completion, Op, Request, Status, WireError

HINTS: dict[int, str] = {
    Status.REFUSED: f": not signed with the memory server's control key (the controller reads its file from {ENVIRONMENT})",
    Status.QUOTA_EXCEEDED: ": this client's address holds as many regions or bytes as the server allows it",
}


class RdmaError(Exception):
    def __init__(self, op: int, status: int, where: str) -> None:
        self.op = op
        self.status = status
        name = Status(status).name if status in Status.__members__.values() else str(status)
        super().__init__(f"{where}: {Op(op).name} failed with {name}{HINTS.get(status, '')}")


class RdmaTimeout(Exception):
    pass


class RdmaClient(asyncio.DatagramProtocol):
    def __init__(self, host: str, port: int, timeout_s: float = 0.1, retries: int = 1, key: bytes | None = None) -> None:
        """`key`: the control key, to sign state-changing requests with; None sends them unsigned."""
        self.host, self.port = host, port
        self.timeout_s = timeout_s
        self.retries = retries
        self.key = key
        self.transport: asyncio.DatagramTransport | None = None
        self._pending: dict[int, asyncio.Future[Completion]] = {}
        self._ids = itertools.count(1)
        self.unexpected = 0
        """Completions that matched no pending request, or were not completions at all."""

    @property
    def where(self) -> str:
        return f"memory server {self.host}:{self.port}"

    async def open(self) -> RdmaClient:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, remote_addr=(self.host, self.port))
        return self

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        for future in self._pending.values():
            future.cancel()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            completion = Completion.unpack(data)
        except WireError:
            self.unexpected += 1
            return
        future = self._pending.pop(completion.wr_id, None)
        if future is None or future.done():
            self.unexpected += 1
            return
        future.set_result(completion)

    def error_received(self, exc: Exception) -> None:
        """ICMP port unreachable while the server is down: the pending requests time out."""

    async def post(self, request: Request, retry: bool = True) -> Completion:
        """Send one request (its wr_id is replaced) and return its completion, whatever its status."""
        assert self.transport is not None, "open() the client first"
        wr_id = next(self._ids) & 0xFFFF_FFFF_FFFF_FFFF
        request = Request(request.op, wr_id, request.region, request.rkey, request.offset, request.length, request.payload)
        key = self.key if request.op in SIGNED_OPS else None
        loop = asyncio.get_running_loop()
        for _ in range(1 + (self.retries if retry else 0)):
            future = self._pending[wr_id] = loop.create_future()
            self.transport.sendto(sign(request, key).pack() if key is not None else request.pack())
            try:
                return await asyncio.wait_for(future, self.timeout_s)
            except asyncio.TimeoutError:
                self._pending.pop(wr_id, None)
        raise RdmaTimeout(f"{self.where}: no completion for {Op(request.op).name} after {self.timeout_s * 1000:g} ms"
                          f" x {1 + (self.retries if retry else 0)}")

    async def _ok(self, request: Request, retry: bool = True) -> Completion:
        completion = await self.post(request, retry)
        if not completion.ok:
            raise RdmaError(request.op, completion.status, self.where)
        return completion

    async def read(self, region: int, rkey: int, offset: int, length: int) -> bytes:
        completion = await self._ok(P.read(0, region, rkey, offset, length))
        if len(completion.payload) != length:
            raise RdmaError(Op.READ, Status.MALFORMED, self.where)
        return completion.payload

    async def write(self, region: int, rkey: int, offset: int, data: bytes) -> None:
        await self._ok(P.write(0, region, rkey, offset, data))

    async def cas(self, region: int, rkey: int, offset: int, compare: int, swap: int) -> int:
        """The value found; the swap happened when it equals `compare`."""
        return int.from_bytes((await self._ok(P.cas(0, region, rkey, offset, compare, swap))).payload, "big")

    async def alloc(self, size: int) -> tuple[int, int]:
        completion = await self._ok(Request(Op.ALLOC, 0, length=size), retry=False)
        return completion.region, completion.rkey

    async def free(self, region: int, rkey: int) -> None:
        await self._ok(Request(Op.FREE, 0, region, rkey))

    async def store(self, data: bytes) -> tuple[int, int]:
        """Register a region holding `data`: (region, rkey)."""
        region, rkey = await self.alloc(len(data))
        await self.write_all(region, rkey, data)
        return region, rkey

    async def write_all(self, region: int, rkey: int, data: bytes, window: int = 8) -> None:
        """Write `data` from offset 0 in MAX_IO pieces, `window` in flight at a time."""
        chunks = [(offset, data[offset:offset + P.MAX_IO]) for offset in range(0, len(data), P.MAX_IO)]
        for start in range(0, len(chunks), window):
            await asyncio.gather(*(self.write(region, rkey, offset, chunk) for offset, chunk in chunks[start:start + window]))


def store(address: tuple[str, int], data: bytes, timeout_s: float = 1.0, key: bytes | None = None) -> tuple[int, int]:
    """Register a region holding `data` on the memory server at `address`, from synchronous code."""
    async def run() -> tuple[int, int]:
        client = await RdmaClient(*address, timeout_s=timeout_s, key=key).open()
        try:
            return await client.store(data)
        finally:
            client.close()
    return asyncio.run(run())
