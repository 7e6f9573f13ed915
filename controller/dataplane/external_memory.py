"""Programs the rules of EM-hosted instances into memory servers, make-before-break.

Programming an instance into a switch's external memory (the traffic and delay of eq. 6 and 14) is:
register a region on the switch's memory server, RDMA-WRITE the instance's table into it
(em_table.py's layout), and only then point the switch's RDMA table at it (reconciler). Regions
are never rewritten in place: new rules, or a move to another switch, get a new region; the old one
is freed after the switches stopped using it. So a switch reads either the old table or the new
one, never a half-written one, and a failed reconfiguration frees what it wrote and leaves the
regions in use untouched. The deploy path (deploy.py) drives stage, then commit or abort.

Registering, writing and freeing are signed with the deployment's control key (rdma_emulator/auth.py),
which memory servers listening beyond loopback require: given to ExternalMemory, or read from the
file SREM_RDMA_KEY_FILE names.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from controller.dataplane import entries as E
from controller.dataplane.builder import Deployment, EmRegion
from controller.dataplane.entries import SwitchState, TableEntry
from controller.dataplane.layout import Layout
from controller.dataplane.rules import kind_of
from controller.errors import SremError
from controller.model.substrate import HostKind, Substrate
from rdma_emulator.auth import ENVIRONMENT, KeyFileError, key_from_environment
from rdma_emulator.client import RdmaClient, RdmaError, RdmaTimeout
from rdma_emulator.protocol import MAX_IO
from srem_formats import em_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Programmed:
    switch: str
    region: EmRegion
    digest: bytes | None
    """SHA-256 of the table in the region; None for a region adopted from the switches and not yet read back."""
    size: int


@dataclass
class ProgramReport:
    regions: int = 0
    bytes: int = 0
    """RDMA-written bytes: the control traffic of eq. 6."""
    seconds: float = 0.0
    freed: int = 0
    adopted: int = 0
    """Adopted regions this stage read back and kept (their contents were the table to write)."""


def regions_held(held: Mapping[str, SwitchState]) -> dict[int, tuple[str, EmRegion]]:
    """Instance -> (switch, region) of every RDMA-table entry in the switches' states (as read back)."""
    found = {}
    for switch, state in held.items():
        for entity in state.values():
            if isinstance(entity, TableEntry) and entity.table == E.RDMA_INDEX:
                instance = dict(entity.match)["instance"].value  # type: ignore[union-attr]
                params = dict(entity.params)
                found[instance] = (switch, EmRegion(params["server"], params["region"], params["rkey"]))
    return found


FROM_ENVIRONMENT = b""
"""ExternalMemory's default key: the one in the file SREM_RDMA_KEY_FILE names, or none when it is unset."""


class ExternalMemory:
    def __init__(self, layout: Layout, substrate: Substrate, servers: Mapping[int, tuple[str, int]],
                 timeout_s: float = 0.2, retries: int = 3, key: bytes | None = FROM_ENVIRONMENT) -> None:
        """`key`: the control key the memory servers share; None: unsigned (servers on loopback without a key)."""
        self.layout = layout
        self.substrate = substrate
        self.servers = dict(servers)
        self.timeout_s = timeout_s
        self.retries = retries
        if key == FROM_ENVIRONMENT:
            try:
                key = key_from_environment()
            except KeyFileError as exc:
                raise SremError(str(exc), where=ENVIRONMENT) from None
        self.key = key
        self.active: dict[int, Programmed] = {}
        """Instance -> the region its switch's RDMA table points to."""
        self._staged: dict[int, Programmed] | None = None
        self._fresh: list[Programmed] = []
        self.last = ProgramReport()

    def tables(self, deployment: Deployment) -> dict[int, tuple[str, bytes]]:
        """EM-hosted instance -> (its switch, its table's bytes)."""
        tables = {}
        rules = deployment.rules
        for k, h in enumerate(deployment.placement):
            host = self.substrate.hosts[h]
            if host.kind is HostKind.EM:
                switch = self.substrate.node_names[host.node]
                accesses = self.substrate.instances[k].type.rdma_accesses
                tables[k] = (switch, em_table.encode(kind_of(self.substrate, k), k, accesses, rules[k]))
        return tables

    def stage(self, deployment: Deployment) -> dict[int, EmRegion]:
        """Write every EM-hosted instance's table that is not already in place; the regions to point at."""
        if self._staged is not None:
            raise RuntimeError("stage() again before commit() or abort()")
        started = time.perf_counter()
        staged: dict[int, Programmed] = {}
        todo: list[tuple[int, str, bytes, bytes]] = []
        unread: list[tuple[int, str, bytes, bytes, EmRegion]] = []
        for k, (switch, data) in self.tables(deployment).items():
            digest = hashlib.sha256(data).digest()
            current = self.active.get(k)
            if current is not None and current.switch == switch and current.digest == digest:
                staged[k] = current
            elif current is not None and current.switch == switch and current.digest is None \
                    and current.region.server == self._server_of(switch):
                unread.append((k, switch, data, digest, current.region))
            else:
                todo.append((k, switch, data, digest))
        self._fresh = []
        try:
            adopted = asyncio.run(self._program(todo, staged, unread))
        except (RdmaError, RdmaTimeout, OSError) as exc:
            self._release(self._fresh)
            self._fresh = []
            raise SremError(f"programming external memory failed, nothing changed: {exc}", where="external memory") from None
        self._staged = staged
        self.last = ProgramReport(len(self._fresh), sum(p.size for p in self._fresh), time.perf_counter() - started,
                                  adopted=adopted)
        return {k: p.region for k, p in staged.items()}

    def commit(self) -> ProgramReport:
        """The switches now use the staged regions: free the ones they no longer point at."""
        if self._staged is None:
            raise RuntimeError("commit() without stage()")
        in_use = {p.region for p in self._staged.values()}
        stale = [p for p in self.active.values() if p.region not in in_use]
        self.active, self._staged, self._fresh = self._staged, None, []
        self.last.freed = self._release(stale)
        return self.last

    def abort(self) -> None:
        """The switches kept the old regions: free the ones this stage wrote."""
        self._release(self._fresh)
        self._staged, self._fresh = None, []

    def adopt(self, held: Mapping[int, tuple[str, EmRegion]]) -> None:
        """Take the regions the switches point at (regions_held of their states) as the ones in force,
        unverified: the next stage keeps each whose contents are the table it would write and writes
        the others anew; commit then frees the adopted regions no switch uses any more."""
        for k, (switch, region) in held.items():
            if k not in self.active:
                self.active[k] = Programmed(switch, region, None, 0)

    def forget_server(self, server: int) -> list[int]:
        """A memory server restarted empty: forget what we had written there, so that the next stage
        writes those instances' tables again (under new region names, so the switches move over
        consistently). The instances whose tables were lost."""
        lost = [k for k, p in self.active.items() if p.region.server == server]
        for k in lost:
            del self.active[k]
        return lost

    def check(self) -> dict[int, str]:
        """The memory servers holding regions in force that lost them ("lost": a region is refused, the server
        restarted empty) or do not answer ("silent"): one READ of one region's header per server."""
        probes: dict[int, EmRegion] = {}
        for programmed in self.active.values():
            probes.setdefault(programmed.region.server, programmed.region)

        async def one(server: int, region: EmRegion) -> str | None:
            try:
                client = await RdmaClient(*self.servers[server], self.timeout_s, self.retries).open()
            except OSError:  # its name no longer resolves: a container that is down
                return "silent"
            try:
                await client.read(region.region, region.rkey, 0, em_table.HEADER_SIZE)
            except RdmaError:
                return "lost"
            except RdmaTimeout:
                return "silent"
            finally:
                client.close()
            return None

        async def every() -> list[str | None]:
            return await asyncio.gather(*(one(server, region) for server, region in probes.items()))

        found = asyncio.run(every()) if probes else []
        return {server: state for server, state in zip(probes, found) if state is not None}

    def _release(self, programmed: list[Programmed]) -> int:
        """Free regions, best effort: a region that cannot be freed now is logged (it only costs memory)."""
        if not programmed:
            return 0
        try:
            return asyncio.run(self._free_all(programmed))
        except (RdmaError, RdmaTimeout, OSError) as exc:
            log.warning("could not free every external-memory region: %s", exc)
            return 0

    def _server_of(self, switch: str) -> int:
        return self.layout.memory_server(switch).server_id

    async def _with_clients(self, servers: set[int], work: Callable[[dict[int, RdmaClient]], Awaitable[int | None]]) -> int | None:
        missing = servers - self.servers.keys()
        if missing:
            raise SremError(f"no address for memory server(s) {sorted(missing)}", where="external memory")
        clients = {s: await RdmaClient(*self.servers[s], self.timeout_s, self.retries, self.key).open() for s in servers}
        try:
            return await work(clients)
        finally:
            for client in clients.values():
                client.close()

    async def _program(self, todo: list[tuple[int, str, bytes, bytes]], staged: dict[int, Programmed],
                       unread: list[tuple[int, str, bytes, bytes, EmRegion]]) -> int:
        """Keep the unread (adopted) regions that hold their table, write `todo` and the others; how many were kept."""
        kept = []

        async def check(clients: dict[int, RdmaClient], k: int, switch: str, data: bytes, digest: bytes,
                        region: EmRegion) -> None:
            if await _holds(clients[region.server], region, data):
                staged[k] = Programmed(switch, region, digest, len(data))
                kept.append(k)
            else:
                todo.append((k, switch, data, digest))

        async def one(clients: dict[int, RdmaClient], k: int, switch: str, data: bytes, digest: bytes) -> None:
            server = self._server_of(switch)
            client = clients[server]
            region, rkey = await client.alloc(len(data))
            programmed = Programmed(switch, EmRegion(server, region, rkey), digest, len(data))
            self._fresh.append(programmed)  # before writing: a failed write must free it too
            await client.write_all(region, rkey, data)
            staged[k] = programmed

        async def work(clients: dict[int, RdmaClient]) -> int:
            _raise_first(await asyncio.gather(*(check(clients, *item) for item in unread), return_exceptions=True))
            _raise_first(await asyncio.gather(*(one(clients, *item) for item in todo), return_exceptions=True))
            return len(kept)

        servers = {self._server_of(switch) for _, switch, _, _ in todo} | {region.server for *_, region in unread}
        return await self._with_clients(servers, work) or 0

    async def _free_all(self, programmed: list[Programmed]) -> int:
        async def work(clients: dict[int, RdmaClient]) -> int:
            _raise_first(await asyncio.gather(*(clients[p.region.server].free(p.region.region, p.region.rkey) for p in programmed),
                                              return_exceptions=True))
            return len(programmed)

        return await self._with_clients({p.region.server for p in programmed}, work) or 0


async def _holds(client: RdmaClient, region: EmRegion, data: bytes, window: int = 8) -> bool:
    """Whether the region's first len(data) bytes are `data` (False when the server refuses the region:
    freed, another key, shorter); read in MAX_IO pieces, `window` at a time, stopping at the first difference."""
    pieces = [(offset, data[offset:offset + MAX_IO]) for offset in range(0, len(data), MAX_IO)]
    try:
        for start in range(0, len(pieces), window):
            batch = pieces[start:start + window]
            got = await asyncio.gather(*(client.read(region.region, region.rkey, offset, len(piece)) for offset, piece in batch))
            if any(back != piece for back, (_, piece) in zip(got, batch)):
                return False
    except RdmaError:
        return False
    return True


def _raise_first(results: list[object]) -> None:
    """gather(return_exceptions=True) lets every operation finish, so none is left half-done behind an error."""
    for result in results:
        if isinstance(result, BaseException):
            raise result
