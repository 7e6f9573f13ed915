"""The memory server: one rack server's DRAM, served to switches' EMACs and the controller over UDP.

It answers each request from the MemoryStore after the configured per-access latency (the
scenario's delta_w), loses READ/WRITE/CAS requests at the configured rate (no completion, as a
dropped RDMA packet the requester must time out on; registration is never lost), and counts what
it served for /metrics.

With a control key (auth.py) it runs ALLOC, FREE, WRITE and CAS only when signed with it and refuses
the others with one status, whatever was wrong; READs need the region's rkey only. Without a key
anyone who reaches it may change its state, so it then listens on loopback only (cli.py). The
completions waiting out the latency are bounded in bytes: a request that would exceed the bound is
dropped unexecuted and counted, as a NIC out of receive buffers drops it, and its sender times out.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from rdma_emulator.auth import Verifier
from rdma_emulator.memory import MemoryStore
from rdma_emulator.net import Delayer, Throttled
from rdma_emulator.protocol import CAS_SIZE, HEALTH_REGION, MAX_IO, SIGNED_OPS, Completion, Op, Request, Status, WireError

log = logging.getLogger(__name__)

DATA_OPS = (Op.READ, Op.WRITE, Op.CAS)
QUEUED_OVERHEAD = 512
"""Bytes charged for a waiting completion beyond its datagram: its heap entry, tuples and the sender's
address took 337-354 bytes under tracemalloc (20,000 queued READs of 8 B to 4 KiB), so small
completions cannot exceed the bound in number."""
DELAY_BUCKETS_S = (0.0, 20e-6, 100e-6, 500e-6, 2e-3, 10e-3, 100e-3)
"""Buckets of srem_memserver_completion_delay_seconds beyond the configured latency."""


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
    key: bytes | None = None
    """The control key; None: state-changing requests need no tag (loopback only, cli.py)."""
    quota_bytes: int | None = None
    """Bytes the regions of one client address may hold; None: the capacity."""
    quota_regions: int = 4096
    """Regions one client address may hold."""
    queue_bytes: int = 16 << 20
    """Bound on the completions waiting out the latency, each charged its size plus QUEUED_OVERHEAD."""

    def __post_init__(self) -> None:
        if self.latency_ns < 0 or not 0.0 <= self.loss < 1.0 or self.capacity_bytes <= 0:
            raise ValueError("latency must be >= 0, loss in [0, 1), capacity > 0")
        if (self.quota_bytes is not None and self.quota_bytes <= 0) or self.quota_regions <= 0 or self.queue_bytes <= 0:
            raise ValueError("quotas and the queue bound must be > 0")


class ServerMetrics:
    def __init__(self, registry: CollectorRegistry, latency_s: float) -> None:
        self.requests = Counter("srem_memserver_requests", "Requests served, by operation and completion status",
                                ["op", "status"], registry=registry)
        self.malformed = Counter("srem_memserver_malformed", "Datagrams that are not requests (dropped, no completion)", registry=registry)
        self.lost = Counter("srem_memserver_lost", "Requests dropped by the configured loss", registry=registry)
        self.bytes_read = Counter("srem_memserver_read_bytes", "Bytes returned by READs", registry=registry)
        self.bytes_written = Counter("srem_memserver_written_bytes", "Bytes stored by WRITEs", registry=registry)
        self.refused = Counter("srem_memserver_refused", "State-changing requests refused (status REFUSED), by reason: "
                               "unsigned, bad_tag, stale, replayed, busy", ["reason"], registry=registry)
        self.dropped = Counter("srem_memserver_dropped", "Requests dropped unexecuted, by reason (queue_full)", ["reason"],
                               registry=registry)
        self.regions = Gauge("srem_memserver_regions", "Registered memory regions", registry=registry)
        self.allocated = Gauge("srem_memserver_allocated_bytes", "Bytes in registered regions", registry=registry)
        self.queued = Gauge("srem_memserver_queued_completions", "Completions waiting out the latency", registry=registry)
        self.queued_bytes = Gauge("srem_memserver_queued_bytes", "What they are charged against --queue-mb", registry=registry)
        # Only for a latency. Its first bucket, 100 ns below the latency, holds the completions sent early (none, ever):
        # a monotonic clock's float is exact to 100 ns for 28 years of uptime, so rounding alone never lands there.
        self.delay = Histogram("srem_memserver_completion_delay_seconds",
                               "From a request's receipt to its delayed completion's send, on the server's clock",
                               buckets=(latency_s - 1e-7, *(latency_s + b for b in DELAY_BUCKETS_S)),
                               registry=registry) if latency_s else None
        self._children: dict[tuple[int, int], Counter] = {}

    def served(self, op: int, status: int) -> None:
        child = self._children.get((op, status))
        if child is None:
            name = Op(op).name if op in Op.__members__.values() else str(op)
            child = self._children[(op, status)] = self.requests.labels(op=name, status=Status(status).name)
        child.inc()


class MemoryServer(asyncio.DatagramProtocol):
    def __init__(self, config: ServerConfig, registry: CollectorRegistry | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """`clock` times the latency (seconds, monotonic)."""
        self.config = config
        self.store = MemoryStore(config.capacity_bytes, config.quota_bytes, config.quota_regions)
        self.verifier = Verifier(config.key) if config.key is not None else None
        self.registry = registry or CollectorRegistry()
        self._latency_s = config.latency_ns * 1e-9
        self.metrics = ServerMetrics(self.registry, self._latency_s)
        self._rng = random.Random(config.seed)
        self._clock = clock
        self._bad = Throttled(log)
        self.transport: asyncio.DatagramTransport | None = None
        self._delayer: Delayer | None = None
        self._queued = 0
        self._queued_bytes = 0
        self.metrics.queued.set_function(lambda: self._queued)
        self.metrics.queued_bytes.set_function(lambda: self._queued_bytes)

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
        self._delayer = Delayer(loop, self._send_delayed, self._clock)
        address = self.transport.get_extra_info("sockname")[:2]
        log.info("memory server on %s:%d, latency %g ns, loss %g, capacity %d bytes, %s",
                 *address, self.config.latency_ns, self.config.loss, self.config.capacity_bytes,
                 "control key required" if self.verifier else "NO control key: any local process may change its state")
        return address

    def _send(self, packet: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(packet, addr)

    def _send_delayed(self, item: object) -> None:
        packet, addr, received = item  # type: ignore[misc]
        self._queued -= 1
        self._queued_bytes -= len(packet) + QUEUED_OVERHEAD
        assert self.metrics.delay is not None
        self.metrics.delay.observe(self._clock() - received)
        self._send(packet, addr)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        received = self._clock()
        try:
            req = Request.unpack(data)
        except WireError as exc:
            self.metrics.malformed.inc()
            self._bad.warning("malformed", f"dropped a datagram from {addr[0]}:{addr[1]}: {exc}")
            return
        if self._latency_s:
            # Charged the largest completion it can have, so the bound holds whatever the request turns out to do.
            charge = Completion.HEADER + (min(req.length, MAX_IO) if req.op == Op.READ else CAS_SIZE) + QUEUED_OVERHEAD
            if self._queued_bytes + charge > self.config.queue_bytes:
                self.metrics.dropped.labels(reason="queue_full").inc()
                self._bad.warning("queue_full", f"dropped a request from {addr[0]}:{addr[1]}: {self._queued} completions "
                                  f"({self._queued_bytes} bytes) already wait out the latency")
                return
        if self.config.loss and req.op in DATA_OPS and self._rng.random() < self.config.loss:
            self.metrics.lost.inc()
            return
        completion = self._execute(req, addr)
        packet = completion.pack()
        if self._latency_s:
            assert self._delayer is not None
            self._queued += 1
            self._queued_bytes += len(packet) + QUEUED_OVERHEAD
            self._delayer.at(received + self._latency_s, (packet, addr, received))
        else:
            self._send(packet, addr)

    def _execute(self, req: Request, addr: tuple[str, int]) -> Completion:
        if self.verifier is not None and req.op in SIGNED_OPS and (reason := self.verifier.refusal(req)):
            self.metrics.refused.labels(reason=reason).inc()
            self.metrics.served(req.op, Status.REFUSED)
            self._bad.warning(f"refused-{reason}", f"refused {Op(req.op).name} from {addr[0]}:{addr[1]}: {reason}")
            return Completion(req.op, req.wr_id, Status.REFUSED)
        completion = self.store.execute(req, addr[0])
        self.metrics.served(completion.op, completion.status)
        if completion.ok:
            self._account(req, len(completion.payload))
        elif req.region != HEALTH_REGION:  # a health check's READ (check.py) is answered, not logged
            self._bad.warning(f"status-{completion.status}", f"{Status(completion.status).name} for a request from "
                              f"{addr[0]}:{addr[1]} (op {req.op}, region {req.region}, offset {req.offset}, length {req.length})")
        return completion

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
