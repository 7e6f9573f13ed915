"""The memory server: one rack server's DRAM, served to switches' EMACs and the controller over UDP.

It answers each request from the MemoryStore after the configured per-access latency (the
scenario's delta_w), loses READ/WRITE/CAS requests at the configured rate (no completion, as a
dropped RDMA packet the requester must time out on; registration is never lost), and counts what
it served for /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from rdma_emulator.memory import MemoryStore
from rdma_emulator.net import Delayer, Throttled
from rdma_emulator.protocol import HEALTH_REGION, Op, Request, Status, WireError

log = logging.getLogger(__name__)

DATA_OPS = (Op.READ, Op.WRITE, Op.CAS)


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 7000
    latency_ns: float = 0.0
    """Added to every access before its completion is sent."""
    loss: float = 0.0
    """Probability that a READ, WRITE or CAS is dropped."""
    capacity_bytes: int = 1 << 30
    seed: int | None = None
    """For the loss draws; None draws from the operating system."""

    def __post_init__(self) -> None:
        if self.latency_ns < 0 or not 0.0 <= self.loss < 1.0 or self.capacity_bytes <= 0:
            raise ValueError("latency must be >= 0, loss in [0, 1), capacity > 0")


class ServerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("srem_memserver_requests", "Requests served, by operation and completion status",
                                ["op", "status"], registry=registry)
        self.malformed = Counter("srem_memserver_malformed", "Datagrams that are not requests (dropped, no completion)", registry=registry)
        self.lost = Counter("srem_memserver_lost", "Requests dropped by the configured loss", registry=registry)
        self.bytes_read = Counter("srem_memserver_read_bytes", "Bytes returned by READs", registry=registry)
        self.bytes_written = Counter("srem_memserver_written_bytes", "Bytes stored by WRITEs", registry=registry)
        self.regions = Gauge("srem_memserver_regions", "Registered memory regions", registry=registry)
        self.allocated = Gauge("srem_memserver_allocated_bytes", "Bytes in registered regions", registry=registry)
        self._children: dict[tuple[int, int], Counter] = {}

    def served(self, op: int, status: int) -> None:
        child = self._children.get((op, status))
        if child is None:
            name = Op(op).name if op in Op.__members__.values() else str(op)
            child = self._children[(op, status)] = self.requests.labels(op=name, status=Status(status).name)
        child.inc()


class MemoryServer(asyncio.DatagramProtocol):
    def __init__(self, config: ServerConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.store = MemoryStore(config.capacity_bytes)
        self.registry = registry or CollectorRegistry()
        self.metrics = ServerMetrics(self.registry)
        self._rng = random.Random(config.seed)
        self._latency_s = config.latency_ns * 1e-9
        self._bad = Throttled(log)
        self.transport: asyncio.DatagramTransport | None = None
        self._delayer: Delayer | None = None

    async def start(self) -> tuple[str, int]:
        """Bind and serve; the bound address (port 0 picks a free one)."""
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET6 if ":" in self.config.host else socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((self.config.host, self.config.port))
        except OSError:
            sock.close()
            raise
        self.transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self._delayer = Delayer(loop, self._send)
        address = self.transport.get_extra_info("sockname")[:2]
        log.info("memory server on %s:%d, latency %g ns, loss %g, capacity %d bytes",
                 *address, self.config.latency_ns, self.config.loss, self.config.capacity_bytes)
        return address

    def _send(self, item: object) -> None:
        packet, addr = item  # type: ignore[misc]
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(packet, addr)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            req = Request.unpack(data)
        except WireError as exc:
            self.metrics.malformed.inc()
            self._bad.warning("malformed", f"dropped a datagram from {addr[0]}:{addr[1]}: {exc}")
            return
        if self.config.loss and req.op in DATA_OPS and self._rng.random() < self.config.loss:
            self.metrics.lost.inc()
            return
        completion = self.store.execute(req)
        self.metrics.served(completion.op, completion.status)
        if completion.ok:
            self._account(req, len(completion.payload))
        elif req.region != HEALTH_REGION:  # a health check's READ (check.py) is answered, not logged
            self._bad.warning(f"status-{completion.status}", f"{Status(completion.status).name} for a request from "
                              f"{addr[0]}:{addr[1]} (op {req.op}, region {req.region}, offset {req.offset}, length {req.length})")
        packet = completion.pack()
        if self._latency_s:
            assert self._delayer is not None
            self._delayer.at(time.monotonic() + self._latency_s, (packet, addr))
        else:
            self._send((packet, addr))

    def _account(self, req: Request, read_bytes: int) -> None:
        if req.op == Op.READ:
            self.metrics.bytes_read.inc(read_bytes)
        elif req.op == Op.WRITE:
            self.metrics.bytes_written.inc(req.length)
        elif req.op in (Op.ALLOC, Op.FREE):
            self.metrics.regions.set(len(self.store.regions))
            self.metrics.allocated.set(self.store.used)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
