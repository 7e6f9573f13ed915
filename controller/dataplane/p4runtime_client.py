"""A P4Runtime client for one switch, on the `p4runtime` package's gRPC stubs.

It does what the controller needs and nothing else: arbitration with an election id and a role (and
refuses to start as a backup), pipeline push (skipped when the switch already runs the same program, so a
restarted controller keeps the switch's state), batched writes whose failures name the entry, reads,
counter reads, packet-out and packet-in, and reconnecting.

Transport: TLS with a client certificate (`TlsFiles`, made by controller.dataplane.tls) through gRPC's own
TLS; plaintext only to a loopback address or a unix socket, where no one else is on the wire.

Mastership after connecting: the client watches its stream. P4Runtime makes the client with the highest
election id of a role primary; when another client with a higher id arrives, the switch tells this one
it is a backup, and this client says so in one line (logged, and passed to `on_mastership`), refuses
writes with a SwitchError naming the new primary's election id, and stays connected as a backup. That is
how it regains control: BMv2's P4Runtime server (PI), like the project's fake, makes the highest live
election id primary again when the other client leaves or lowers its id, and tells this client at once.
Re-sending its own arbitration would change nothing (PI ignores an update that repeats the stream's
election id, and a server following the letter of the spec never again makes primary an id lower than the
highest it has seen), so the client waits for that notice: `wait_primary` waits up to `regain_within_s`.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.rpc import code_pb2, status_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from controller.dataplane.entries import Entity, Op, SwitchState, Update, describe
from controller.dataplane.p4info import EntryError, P4Schema, update_bytes, write_request_bytes
from controller.dataplane.p4program import BMV2_JSON, P4INFO
from controller.dataplane.tls import TlsFiles
from controller.errors import SremError
from srem_formats.arguments import is_local

log = logging.getLogger(__name__)

MAX_ELECTION_ID = 2**128 - 1
REGAIN_WITHIN_S = 10.0
"""How long `wait_primary` waits, unless told otherwise, for the switch to make this client primary again."""
_PROBE_S = 1.0
"""Bound on the one fail-fast call that asks gRPC why a switch did not answer (its last connection error)."""

_OP = {Op.INSERT: p4runtime_pb2.Update.INSERT, Op.MODIFY: p4runtime_pb2.Update.MODIFY, Op.DELETE: p4runtime_pb2.Update.DELETE}


class SwitchError(SremError):
    """A switch that cannot be reached, will not make us primary, or rejects an entry."""

    def __init__(self, switch: str, message: str, entity: Entity | None = None, applied: Sequence[Update] = ()) -> None:
        what = f"{message}: {describe(entity)}" if entity is not None else message
        super().__init__(what, where=f"switch {switch}")
        self.switch = switch
        self.entity = entity
        self.applied = list(applied)
        """The updates of the failed write that the switch did apply (to roll back)."""


@dataclass(frozen=True)
class Pipeline:
    p4info_text: str
    device_config: bytes

    @property
    def cookie(self) -> int:
        """Identifies the program, so a switch already running it is left alone."""
        digest = hashlib.sha256(self.p4info_text.encode() + self.device_config).digest()
        return int.from_bytes(digest[:8], "big")

    @classmethod
    def load(cls, p4info: Path = P4INFO, device_config: Path = BMV2_JSON) -> Pipeline:
        return cls(p4info.read_text(), device_config.read_bytes())


class _Session:
    """One StreamChannel: its outgoing messages and what the switch last said on it, under `changed`."""

    def __init__(self) -> None:
        self.outbox: queue.Queue[p4runtime_pb2.StreamMessageRequest | None] = queue.Queue()
        self.changed = threading.Condition()
        self.arbitration: p4runtime_pb2.MasterArbitrationUpdate | None = None
        self.ended: grpc.RpcError | None = None
        self.closing = False
        self.lost_at: float | None = None
        """When the switch said another client is primary (time.monotonic), while it still says so."""

    @property
    def primary(self) -> bool:
        return self.ended is None and self.arbitration is not None and self.arbitration.status.code == code_pb2.OK

    def requests(self) -> Iterator[p4runtime_pb2.StreamMessageRequest]:
        while (message := self.outbox.get()) is not None:
            yield message


class SwitchClient:
    def __init__(self, name: str, address: str, device_id: int, schema: P4Schema, election_id: int = 1,
                 timeout_s: float = 5.0, *, role: str = "", tls: TlsFiles | None = None,
                 regain_within_s: float = REGAIN_WITHIN_S, on_mastership: Callable[[str], None] | None = None) -> None:
        """`role` empty is P4Runtime's default role (full access); `tls` None means plaintext, refused unless
        `address` is local; `on_mastership` gets the one line said when mastership is lost or regained or the
        stream ends (called on the stream's reader thread, so it must return quickly and not raise)."""
        if not 0 < election_id <= MAX_ELECTION_ID:
            raise SwitchError(name, f"election id {election_id} is outside 1..2**128-1")
        if tls is None and not is_local(address):
            raise SwitchError(name, f"refusing plaintext P4Runtime to {address}, which is not a loopback address: "
                                    "give the client TLS material (CA certificate, client certificate and key)")
        self.name = name
        self.address = address
        self.device_id = device_id
        self.schema = schema
        self.election_id = p4runtime_pb2.Uint128(high=election_id >> 64, low=election_id & (2**64 - 1))
        self.role = role
        self.tls = tls
        self.timeout_s = timeout_s
        self.regain_within_s = regain_within_s
        self.on_mastership = on_mastership
        self.packets_in: queue.Queue[p4runtime_pb2.PacketIn] = queue.Queue()
        # Appended to the requests write_request builds: a message's fields may come in any order.
        self._role_field = p4runtime_pb2.WriteRequest(role=role).SerializeToString()
        self._channel: grpc.Channel | None = None
        self._stub: p4runtime_pb2_grpc.P4RuntimeStub | None = None
        self._write: grpc.UnaryUnaryMultiCallable | None = None
        self._session: _Session | None = None
        self._reader: threading.Thread | None = None

    # Connection

    def connect(self) -> None:
        """Open the channel and become primary; SwitchError if the switch is unreachable or says no, SremError
        naming a TLS file that cannot be used."""
        self.close()
        self._channel = self._open_channel()
        try:
            grpc.channel_ready_future(self._channel).result(timeout=self.timeout_s)
        except grpc.FutureTimeoutError:
            why = self._unreachable_reason(self._channel)
            self.close()
            raise SwitchError(self.name, f"unreachable at {self.address} within {self.timeout_s:g} s {why}") from None
        self._stub = p4runtime_pb2_grpc.P4RuntimeStub(self._channel)
        # Write takes requests this module serialises itself (p4info.write_request_bytes).
        self._write = self._channel.unary_unary("/p4.v1.P4Runtime/Write", request_serializer=bytes,
                                                response_deserializer=p4runtime_pb2.WriteResponse.FromString)
        session = self._session = _Session()
        stream = self._stub.StreamChannel(session.requests())
        self._reader = threading.Thread(target=self._read_stream, args=(session, stream), name=f"p4rt-{self.name}", daemon=True)
        self._reader.start()
        arbitration = p4runtime_pb2.MasterArbitrationUpdate(device_id=self.device_id, election_id=self.election_id)
        if self.role:
            arbitration.role.name = self.role
        session.outbox.put(p4runtime_pb2.StreamMessageRequest(arbitration=arbitration))
        with session.changed:
            answered = session.changed.wait_for(lambda: session.arbitration is not None or session.ended is not None,
                                                timeout=self.timeout_s)
            reply, ended = session.arbitration, session.ended
        if not answered:
            self.close()
            raise SwitchError(self.name, f"no arbitration answer from {self.address} within {self.timeout_s:g} s")
        if ended is not None:
            self.close()
            raise SwitchError(self.name, f"arbitration failed at {self.address}: {_rpc_text(ended)}")
        assert reply is not None
        if reply.status.code != code_pb2.OK:
            self.close()
            raise SwitchError(self.name, f"refuses mastership for election id {self._election_int()}{self._role_text()} "
                                         f"(status {code_pb2.Code.Name(reply.status.code)}: {reply.status.message or 'another controller is primary'})")

    def _open_channel(self) -> grpc.Channel:
        if self.tls is None:
            return grpc.insecure_channel(self.address)
        ca, cert, key = self.tls.read()
        return grpc.secure_channel(self.address, grpc.ssl_channel_credentials(ca, key, cert))

    def _unreachable_reason(self, channel: grpc.Channel) -> str:
        """gRPC's last connection error, from one call that fails at once instead of waiting, with what it likely means."""
        try:
            p4runtime_pb2_grpc.P4RuntimeStub(channel).Capabilities(p4runtime_pb2.CapabilitiesRequest(), timeout=_PROBE_S)
        except grpc.RpcError as exc:
            text = exc.details().removeprefix("failed to connect to all addresses; last error: ")  # type: ignore[attr-defined]
        else:
            return "(it answered only after the wait)"
        if self.tls is None:
            hint = "; over plaintext: if the switch serves TLS, give the client TLS material" if "Socket closed" in text else ""
        elif "Socket closed" in text:
            hint = f"; the switch closed the TLS connection: it does not accept client certificate {self.tls.cert}"
        elif "CERTIFICATE_VERIFY_FAILED" in text:
            hint = f"; the switch's certificate is not signed by the CA of {self.tls.ca_cert}"
        elif "Hostname Verification" in text:
            hint = f"; the switch's certificate does not name {self.address.rpartition(':')[0]}"
        elif "WRONG_VERSION_NUMBER" in text:
            hint = "; the switch does not serve TLS there"
        else:
            hint = ""
        return f"({text}){hint}"

    def _election_int(self) -> int:
        return (self.election_id.high << 64) | self.election_id.low

    def _role_text(self) -> str:
        return f" of role {self.role!r}" if self.role else ""

    def _read_stream(self, session: _Session, stream: Iterable[p4runtime_pb2.StreamMessageResponse]) -> None:
        try:
            for message in stream:
                if message.HasField("arbitration"):
                    self._arbitrated(session, message.arbitration)
                elif message.HasField("packet"):
                    self.packets_in.put(message.packet)
        except grpc.RpcError as exc:
            with session.changed:
                session.ended = exc
                session.changed.notify_all()
                said = None if session.closing or session.arbitration is None else f"P4Runtime stream ended ({_rpc_text(exc)})"
            if said is not None:
                self._say(said)

    def _arbitrated(self, session: _Session, update: p4runtime_pb2.MasterArbitrationUpdate) -> None:
        """Record what the switch says; one line when this client stops or starts being primary after connecting."""
        with session.changed:
            first, was_primary = session.arbitration is None, session.primary
            session.arbitration = update
            said = None
            if not first and was_primary and not session.primary:
                session.lost_at = time.monotonic()
                said = self._not_primary(session)
                if update.status.code == code_pb2.ALREADY_EXISTS:
                    said += "; primary again when that client leaves or lowers its id"
            elif not first and not was_primary and session.primary:
                away = time.monotonic() - session.lost_at if session.lost_at is not None else 0.0
                session.lost_at = None
                said = f"primary again with election id {self._election_int()}{self._role_text()} after {away:.1f} s as a backup"
            session.changed.notify_all()
        if said is not None:
            self._say(said)

    def _not_primary(self, session: _Session) -> str:
        update = session.arbitration
        if session.ended is not None:
            return f"P4Runtime stream ended ({_rpc_text(session.ended)})"
        if update is None:
            return "not connected"
        if update.status.code == code_pb2.ALREADY_EXISTS:
            return (f"lost mastership to election id {(update.election_id.high << 64) | update.election_id.low} "
                    f"(ours is {self._election_int()}{self._role_text()})")
        return (f"lost mastership: the switch has no primary (status {code_pb2.Code.Name(update.status.code)}: "
                f"{update.status.message})")

    def _say(self, line: str) -> None:
        log.warning("switch %s: %s", self.name, line)
        if self.on_mastership is not None:
            self.on_mastership(f"switch {self.name}: {line}")

    @property
    def primary(self) -> bool:
        """Whether the switch last said this client is primary on a live stream."""
        session = self._session
        if session is None:
            return False
        with session.changed:
            return session.primary

    @property
    def mastership_lost(self) -> str | None:
        """Why this connected client is not primary, in one line (None while it is primary or not connected)."""
        session = self._session
        if session is None:
            return None
        with session.changed:
            return None if session.primary else self._not_primary(session)

    def wait_primary(self, timeout_s: float | None = None) -> bool:
        """Wait until the switch makes this client primary again, up to `timeout_s` (default `regain_within_s`);
        whether it is primary. False at once when not connected or the stream has ended: only connect() helps then."""
        session = self._session
        if session is None:
            return False
        with session.changed:
            session.changed.wait_for(lambda: session.primary or session.ended is not None,
                                     timeout=self.regain_within_s if timeout_s is None else timeout_s)
            return session.primary

    def _require_primary(self, what: str) -> None:
        session = self._session
        if session is None:
            raise SwitchError(self.name, "not connected")
        with session.changed:
            if not session.primary:
                raise SwitchError(self.name, f"{what} refused: {self._not_primary(session)}")

    def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with session.changed:
                session.closing = True
            session.outbox.put(None)
        if self._channel is not None:
            self._channel.close()
        if self._reader is not None:
            self._reader.join(timeout=self.timeout_s)
        self._channel = self._stub = self._reader = self._write = None

    @property
    def stub(self) -> p4runtime_pb2_grpc.P4RuntimeStub:
        if self._stub is None:
            raise SwitchError(self.name, "not connected")
        return self._stub

    @property
    def write_rpc(self) -> grpc.UnaryUnaryMultiCallable:
        """Write, taking a request serialised by `write_request`."""
        if self._write is None:
            raise SwitchError(self.name, "not connected")
        return self._write

    def _call(self, what: str, rpc, request):  # type: ignore[no-untyped-def]
        try:
            return rpc(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise SwitchError(self.name, f"{what} failed: {self._refusal(exc)}") from None

    def _refusal(self, exc: grpc.RpcError) -> str:
        """The RPC's error; for PERMISSION_DENIED, what the stream says about mastership when it says we lost it."""
        session = self._session
        if exc.code() == grpc.StatusCode.PERMISSION_DENIED and session is not None:  # type: ignore[attr-defined]
            with session.changed:
                if not session.primary:
                    return self._not_primary(session)
        return _rpc_text(exc)

    # Pipeline

    def pipeline_cookie(self) -> int | None:
        request = p4runtime_pb2.GetForwardingPipelineConfigRequest(
            device_id=self.device_id, response_type=p4runtime_pb2.GetForwardingPipelineConfigRequest.COOKIE_ONLY)
        try:
            reply = self.stub.GetForwardingPipelineConfig(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                return None
            raise SwitchError(self.name, f"reading the pipeline failed: {_rpc_text(exc)}") from None
        return reply.config.cookie.cookie if reply.config.HasField("cookie") else None

    def set_pipeline(self, pipeline: Pipeline, force: bool = False) -> bool:
        """Push the program unless the switch already runs it; True when pushed (the switch's tables are then empty)."""
        if not force and self.pipeline_cookie() == pipeline.cookie:
            return False
        self._require_primary("pipeline push")
        config = p4runtime_pb2.ForwardingPipelineConfig(
            p4info=self.schema.p4info, p4_device_config=pipeline.device_config,
            cookie=p4runtime_pb2.ForwardingPipelineConfig.Cookie(cookie=pipeline.cookie))
        request = p4runtime_pb2.SetForwardingPipelineConfigRequest(
            device_id=self.device_id, role=self.role, election_id=self.election_id, config=config,
            action=p4runtime_pb2.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT)
        self._call("pipeline push", self.stub.SetForwardingPipelineConfig, request)
        return True

    # Writes

    def write(self, updates: Sequence[Update], batch_size: int = 1000) -> None:
        """Apply updates in batches, in order; on the first failure raise SwitchError naming the entry.

        The next batch is encoded while the switch applies the current one. Refused at once, nothing sent,
        while the switch says another client is primary.
        """
        self._require_primary("write")
        applied: list[Update] = []
        batches = [updates[i:i + batch_size] for i in range(0, len(updates), batch_size)]
        pending = None
        for number, chunk in enumerate(batches):
            if pending is None:
                pending = self.write_rpc.future(self.write_request(chunk), timeout=self.timeout_s)
            following = self.write_request(batches[number + 1]) if number + 1 < len(batches) else None
            try:
                pending.result()
            except grpc.RpcError as exc:
                errors = _update_errors(exc)
                if errors is None:
                    raise SwitchError(self.name, f"write failed: {self._refusal(exc)}", applied=applied) from None
                done = [u for u, (code, _) in zip(chunk, errors) if code == code_pb2.OK]
                bad, (code, message) = next((u, e) for u, e in zip(chunk, errors) if e[0] != code_pb2.OK)
                raise SwitchError(self.name, f"{bad.op.name.lower()} rejected ({code_pb2.Code.Name(code)}: {message})",
                                  bad.entity, applied + done) from None
            applied.extend(chunk)
            pending = self.write_rpc.future(following, timeout=self.timeout_s) if following is not None else None

    def write_request(self, updates: Sequence[Update]) -> bytes:
        """A serialised WriteRequest; SwitchError naming the entry if the P4Info rejects one."""
        encoded = []
        for update in updates:
            try:
                encoded.append(update_bytes(_OP[update.op], self.schema.encode(update.entity)))
            except EntryError as exc:
                raise SwitchError(self.name, f"entry rejected by the P4Info ({exc})", update.entity) from None
        return write_request_bytes(self.device_id, self.election_id.high, self.election_id.low, encoded) + self._role_field

    # Reads

    def read(self, entities: Sequence[p4runtime_pb2.Entity]) -> list[p4runtime_pb2.Entity]:
        request = p4runtime_pb2.ReadRequest(device_id=self.device_id, role=self.role, entities=entities)
        try:
            return [e for reply in self.stub.Read(request, timeout=self.timeout_s) for e in reply.entities]
        except grpc.RpcError as exc:
            raise SwitchError(self.name, f"read failed: {_rpc_text(exc)}") from None

    def read_state(self, default_tables: Sequence[str] = (), meters: Sequence[str] = ()) -> SwitchState:
        """All table entries, the default entries of `default_tables` and the configured cells of `meters`."""
        filters = [p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry())]
        filters += [p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry(
            table_id=self.schema.tables[t].id, is_default_action=True)) for t in default_tables]
        filters += [p4runtime_pb2.Entity(meter_entry=p4runtime_pb2.MeterEntry(meter_id=self.schema.meters[m][0])) for m in meters]
        state: SwitchState = {}
        for proto in self.read(filters):
            if proto.HasField("meter_entry") and not _configured(proto.meter_entry.config):
                continue
            if proto.HasField("table_entry") and not proto.table_entry.action.HasField("action"):
                continue
            entity = self.schema.from_proto(proto)
            state[entity.key] = entity
        return state

    def read_counter(self, name: str, index: int | None = None) -> dict[int, tuple[int, int]]:
        """Counter cells: index -> (packets, bytes)."""
        counter_id, _ = self.schema.counters[name]
        entry = p4runtime_pb2.CounterEntry(counter_id=counter_id)
        if index is not None:
            entry.index.index = index
        cells = self.read([p4runtime_pb2.Entity(counter_entry=entry)])
        return {c.counter_entry.index.index: (c.counter_entry.data.packet_count, c.counter_entry.data.byte_count) for c in cells}

    # Packet I/O

    def packet_out(self, payload: bytes, egress_port: int) -> None:
        metadata = self.schema.p4info.controller_packet_metadata
        port_id = next(m.id for cpm in metadata if cpm.preamble.name == "packet_out" for m in cpm.metadata if m.name == "egress_port")
        packet = p4runtime_pb2.PacketOut(payload=payload)
        packet.metadata.add(metadata_id=port_id, value=egress_port.to_bytes(2, "big"))
        if self._session is None:
            raise SwitchError(self.name, "not connected")
        self._session.outbox.put(p4runtime_pb2.StreamMessageRequest(packet=packet))

    def packet_in(self, timeout_s: float) -> tuple[bytes, int] | None:
        """The next packet the switch sent the controller, with its ingress port; None after the timeout."""
        try:
            packet = self.packets_in.get(timeout=timeout_s)
        except queue.Empty:
            return None
        port = int.from_bytes(packet.metadata[0].value, "big") if packet.metadata else -1
        return packet.payload, port


def _configured(config: p4runtime_pb2.MeterConfig) -> bool:
    return any((config.cir, config.cburst, config.pir, config.pburst))


def _rpc_text(exc: BaseException) -> str:
    if isinstance(exc, grpc.RpcError):
        return f"{exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
    return str(exc)


def _update_errors(exc: grpc.RpcError) -> list[tuple[int, str]] | None:
    """Per-update (code, message) from a failed Write's status details, as P4Runtime servers report them."""
    for key, value in exc.trailing_metadata() or ():  # type: ignore[attr-defined]
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            errors = []
            for detail in status.details:
                error = p4runtime_pb2.Error()
                detail.Unpack(error)
                errors.append((error.canonical_code, error.message))
            return errors or None
    return None

