"""The External Memory Access Controller: answers a switch's table misses from external memory.

srem.p4 sends a packet whose function lives in EM out of its EMAC port with an EMAC request header
(srem_formats/wire.py) naming the memory server, region and rkey of the instance's table
and the lookup key. The EMAC reads the table's header (once per region: regions are immutable),
walks the hash table with the n_f reads the layout prescribes (srem_formats/em_table.py),
and sends the packet back with a response header carrying the rule's action, or a miss. The answer
echoes the request's switch, instance, type and sequence number and the packet comes back unchanged
behind it: the switch matches the answer to its request by these and drops what matches nothing.

The request carries everything needed, so the EMAC holds no copy of the placement and one process
can serve several switches: `attach` it to each switch's EMAC port (an interface, AF_PACKET) or to
a UDP socket that carries the same frames (tests, benchmarks, tunnels). A lookup that cannot be
answered correctly - memory server unknown or not answering, region refused, table of another
instance - is dropped, counted and logged, never answered with a guess.

Each memory server has its own budget of lookups in flight: a flood of requests naming one server
(a dead one holds each for its whole timeout) is dropped beyond that server's budget and cannot
starve the lookups to the others.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from rdma_emulator.client import RdmaClient, RdmaError, RdmaTimeout
from rdma_emulator.net import Throttled
from rdma_emulator.protocol import Status
from srem_formats import em_table
from srem_formats.em_table import Header, TableError
from srem_formats.flows import Flow
from srem_formats.wire import ETHERTYPE_EMAC_REQUEST, ETHERTYPE_EMAC_RESPONSE, STATUS_HIT, STATUS_MISS, EmacRequest, EmacResponse

log = logging.getLogger(__name__)

ETH_HEADER = 14
PACKET_OUTGOING = 4
RECV_BATCH = 64
LATENCY_BUCKETS = (25e-6, 50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3, 50e-3, 0.2)


@dataclass(frozen=True)
class EmacConfig:
    memory_servers: Mapping[int, tuple[str, int]]
    """Memory server id (the request's `server` field) -> its address."""
    timeout_s: float = 0.05
    retries: int = 1
    max_in_flight: int = 1024
    """Lookups in flight per memory server."""
    header_cache: int = 4096


class Drop(Exception):
    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def parse_frame(frame: bytes) -> EmacRequest:
    if len(frame) < ETH_HEADER + EmacRequest.SIZE:
        raise Drop("malformed", f"frame of {len(frame)} bytes, an EMAC request needs {ETH_HEADER + EmacRequest.SIZE}")
    ethertype = int.from_bytes(frame[12:14], "big")
    if ethertype != ETHERTYPE_EMAC_REQUEST:
        raise Drop("malformed", f"ethertype 0x{ethertype:04x} is not an EMAC request")
    return EmacRequest.unpack(frame[ETH_HEADER:])


def response_frame(frame: bytes, response: EmacResponse) -> bytes:
    """The request frame with its request header replaced by the response: the rest goes back as it came."""
    return frame[:12] + ETHERTYPE_EMAC_RESPONSE.to_bytes(2, "big") + response.pack() + frame[ETH_HEADER + EmacRequest.SIZE:]


class Attachment:
    """One switch-facing socket: a switch's EMAC port (AF_PACKET) or a UDP socket carrying frames."""

    def __init__(self, name: str, sock: socket.socket, raw: bool) -> None:
        self.name = name
        self.sock = sock
        self.raw = raw
        sock.setblocking(False)

    @classmethod
    def interface(cls, ifname: str) -> Attachment:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETHERTYPE_EMAC_REQUEST))
        sock.bind((ifname, 0))
        return cls(ifname, sock, raw=True)

    @classmethod
    def udp(cls, host: str, port: int) -> Attachment:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((host, port))
        return cls("udp:%s:%d" % sock.getsockname()[:2], sock, raw=False)

    def receive(self) -> list[tuple[bytes, object]]:
        frames = []
        for _ in range(RECV_BATCH):
            try:
                frame, addr = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            if self.raw and addr[2] == PACKET_OUTGOING:
                continue
            frames.append((frame, addr))
        return frames

    def send(self, frame: bytes, addr: object) -> bool:
        try:
            if self.raw:
                self.sock.send(frame)
            else:
                self.sock.sendto(frame, addr)
        except (BlockingIOError, InterruptedError, OSError):
            return False
        return True

    def close(self) -> None:
        self.sock.close()


class EmacMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.lookups = Counter("srem_emac_lookups", "Lookups answered, by result", ["result"], registry=registry)
        self.dropped = Counter("srem_emac_dropped", "Requests dropped unanswered, by reason", ["reason"], registry=registry)
        self.reads = Counter("srem_emac_rdma_reads", "RDMA READs posted (table headers included)", registry=registry)
        self.latency = Histogram("srem_emac_lookup_seconds", "From request received to response sent",
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.in_flight = Gauge("srem_emac_in_flight", "Requests being served", registry=registry)
        self.server_in_flight = Gauge("srem_emac_server_in_flight", "Requests being served, by the memory server they read",
                                      ["server"], registry=registry)
        self.unexpected = Gauge("srem_emac_unexpected_completions", "Completions matching no request (late or garbage)",
                                registry=registry)
        self.hit, self.miss = self.lookups.labels(result="hit"), self.lookups.labels(result="miss")
        # A controller tells a restarted EMAC (lookups lost while it was down) from one that ran on by this value.
        self.started = Gauge("srem_emac_start_time_seconds", "When this EMAC started (Unix time)", registry=registry)
        self.started.set(time.time())


class Emac:
    def __init__(self, config: EmacConfig, registry: CollectorRegistry | None = None) -> None:
        self.config = config
        self.registry = registry or CollectorRegistry()
        self.metrics = EmacMetrics(self.registry)
        self.clients: dict[int, RdmaClient] = {}
        self.attachments: list[Attachment] = []
        self._headers: OrderedDict[tuple[int, int, int], Header] = OrderedDict()
        self._in_flight = {server: 0 for server in config.memory_servers}
        self._tasks: set[asyncio.Task[None]] = set()
        self._bad = Throttled(log)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.metrics.in_flight.set_function(lambda: sum(self._in_flight.values()))
        for server in config.memory_servers:
            self.metrics.server_in_flight.labels(server=str(server)).set_function(lambda server=server: self._in_flight[server])
        self.metrics.unexpected.set_function(lambda: sum(c.unexpected for c in self.clients.values()))

    async def start(self, attachments: list[Attachment]) -> None:
        for server, (host, port) in self.config.memory_servers.items():
            self.clients[server] = await RdmaClient(host, port, self.config.timeout_s, self.config.retries).open()
        self._loop = loop = asyncio.get_running_loop()
        for attachment in attachments:
            loop.add_reader(attachment.sock.fileno(), self._readable, attachment)
            self.attachments.append(attachment)
            log.info("EMAC serving %s", attachment.name)

    def close(self) -> None:
        for attachment in self.attachments:
            if self._loop is not None:
                self._loop.remove_reader(attachment.sock.fileno())
            attachment.close()
        for task in self._tasks:
            task.cancel()
        for client in self.clients.values():
            client.close()

    def _readable(self, attachment: Attachment) -> None:
        for frame, addr in attachment.receive():
            received = time.perf_counter()
            try:
                request = parse_frame(frame)
            except Drop as drop:
                self._drop(drop, attachment)
                continue
            client = self.clients.get(request.server)
            if client is None:
                self._drop(Drop("unknown_server", f"no memory server {request.server} configured"), attachment, request)
                continue
            if self._in_flight[request.server] >= self.config.max_in_flight:
                self._drop(Drop("overload", f"{self._in_flight[request.server]} requests in flight to memory server "
                                f"{request.server}"), attachment, request)
                continue
            self._in_flight[request.server] += 1
            task = asyncio.ensure_future(self._serve(attachment, frame, addr, request, client, received))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, attachment: Attachment, frame: bytes, addr: object, request: EmacRequest, client: RdmaClient,
                     received: float) -> None:
        try:
            response = await self.lookup(request, client)
            if attachment.send(response_frame(frame, response), addr):
                self.metrics.latency.observe(time.perf_counter() - received)
            else:
                self._drop(Drop("send_failed", "the switch-side socket refused the response"), attachment)
        except Drop as drop:
            self._drop(drop, attachment, request)
        except Exception as exc:  # a bug must cost one packet, not the process; counted so it is seen
            self._drop(Drop("internal_error", repr(exc)), attachment, request)
        finally:
            self._in_flight[request.server] -= 1

    def _drop(self, drop: Drop, attachment: Attachment, request: EmacRequest | None = None) -> None:
        self.metrics.dropped.labels(reason=drop.reason).inc()
        about = "" if request is None else f" (switch {request.switch_id}, instance {request.instance}, seq {request.seq})"
        self._bad.warning(drop.reason, f"{attachment.name}: dropped a request{about}, {drop.reason}: {drop}")

    async def lookup(self, request: EmacRequest, client: RdmaClient) -> EmacResponse:
        """The response to one request, read through the client of the server it names, or Drop saying why there is none."""
        header = await self._header(client, request)
        if header.instance != request.instance or header.kind != request.vnf_type:
            raise Drop("unknown_instance", f"region {request.region} holds instance {header.instance} type {header.kind}, "
                       f"not instance {request.instance} type {request.vnf_type}")
        steps = em_table.walk(header, Flow(request.src_addr, request.dst_addr, request.protocol, request.dst_port))
        found = None
        try:
            offset, length = next(steps)
            while True:
                data = await self._read(client, request, offset, length)
                offset, length = steps.send(data)
        except StopIteration as done:
            found = done.value
        except TableError as exc:
            raise Drop("bad_table", f"region {request.region}: {exc}") from None
        base = (request.switch_id, request.instance, request.vnf_type, request.seq)
        if found is None:
            self.metrics.miss.inc()
            return EmacResponse(*base, status=STATUS_MISS, action=0)
        self.metrics.hit.inc()
        return EmacResponse(*base, status=STATUS_HIT, action=found.action, addr=found.addr, port=found.port,
                            dscp=found.dscp, meter_index=found.meter_index, flags=found.flags)

    async def _header(self, client: RdmaClient, request: EmacRequest) -> Header:
        key = (request.server, request.region, request.rkey)
        header = self._headers.get(key)
        if header is not None:
            self._headers.move_to_end(key)
            return header
        try:
            header = Header.unpack(await self._read(client, request, 0, em_table.HEADER_SIZE))
        except TableError as exc:
            raise Drop("unknown_instance", f"region {request.region} on server {request.server}: {exc}") from None
        self._headers[key] = header
        if len(self._headers) > self.config.header_cache:
            self._headers.popitem(last=False)
        return header

    async def _read(self, client: RdmaClient, request: EmacRequest, offset: int, length: int) -> bytes:
        self.metrics.reads.inc()
        try:
            return await client.read(request.region, request.rkey, offset, length)
        except RdmaTimeout as exc:
            raise Drop("timeout", str(exc)) from None
        except RdmaError as exc:
            reason = "unknown_instance" if exc.status == Status.ACCESS_ERROR else "rdma_error"
            raise Drop(reason, f"region {request.region}: {exc}") from None
