"""A P4Runtime client for one switch, on the `p4runtime` package's gRPC stubs.

It does what the controller needs and nothing else: arbitration with an election id (and refuses
to go on as a backup), pipeline push (skipped when the switch already runs the same program, so a
restarted controller keeps the switch's state), batched writes whose failures name the entry,
reads, counter reads, packet-out and packet-in, and reconnecting.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.rpc import code_pb2, status_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from controller.dataplane.entries import Entity, Op, SwitchState, Update, describe
from controller.dataplane.p4info import EntryError, P4Schema, update_bytes, write_request_bytes
from controller.dataplane.p4program import BMV2_JSON, P4INFO
from controller.errors import SremError

log = logging.getLogger(__name__)


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


class SwitchClient:
    def __init__(self, name: str, address: str, device_id: int, schema: P4Schema, election_id: int = 1,
                 timeout_s: float = 5.0) -> None:
        self.name = name
        self.address = address
        self.device_id = device_id
        self.schema = schema
        self.election_id = p4runtime_pb2.Uint128(high=election_id >> 64, low=election_id & (2**64 - 1))
        self.timeout_s = timeout_s
        self.packets_in: queue.Queue[p4runtime_pb2.PacketIn] = queue.Queue()
        self._channel: grpc.Channel | None = None
        self._stub: p4runtime_pb2_grpc.P4RuntimeStub | None = None
        self._write: grpc.UnaryUnaryMultiCallable | None = None
        self._outbox: queue.Queue[p4runtime_pb2.StreamMessageRequest | None] = queue.Queue()
        self._arbitration: queue.Queue[p4runtime_pb2.MasterArbitrationUpdate | Exception] = queue.Queue()
        self._reader: threading.Thread | None = None

    # Connection

    def connect(self) -> None:
        """Open the channel and become primary; SwitchError if the switch is unreachable or says no."""
        self.close()
        self._channel = grpc.insecure_channel(self.address)
        try:
            grpc.channel_ready_future(self._channel).result(timeout=self.timeout_s)
        except grpc.FutureTimeoutError:
            self.close()
            raise SwitchError(self.name, f"unreachable at {self.address} (no P4Runtime server within {self.timeout_s:g} s)") from None
        self._stub = p4runtime_pb2_grpc.P4RuntimeStub(self._channel)
        # Write takes requests this module serialises itself (p4info.write_request_bytes).
        self._write = self._channel.unary_unary("/p4.v1.P4Runtime/Write", request_serializer=bytes,
                                                response_deserializer=p4runtime_pb2.WriteResponse.FromString)
        self._outbox, self._arbitration = queue.Queue(), queue.Queue()
        stream = self._stub.StreamChannel(self._requests())
        self._reader = threading.Thread(target=self._read_stream, args=(stream,), name=f"p4rt-{self.name}", daemon=True)
        self._reader.start()
        self._outbox.put(p4runtime_pb2.StreamMessageRequest(arbitration=p4runtime_pb2.MasterArbitrationUpdate(
            device_id=self.device_id, election_id=self.election_id)))
        try:
            reply = self._arbitration.get(timeout=self.timeout_s)
        except queue.Empty:
            self.close()
            raise SwitchError(self.name, f"no arbitration answer from {self.address} within {self.timeout_s:g} s") from None
        if isinstance(reply, Exception):
            self.close()
            raise SwitchError(self.name, f"arbitration failed at {self.address}: {_rpc_text(reply)}") from None
        if reply.status.code != code_pb2.OK:
            self.close()
            raise SwitchError(self.name, f"refuses mastership for election id {self._election_int()} "
                                         f"(status {code_pb2.Code.Name(reply.status.code)}: {reply.status.message or 'another controller is primary'})")

    def _election_int(self) -> int:
        return (self.election_id.high << 64) | self.election_id.low

    def _requests(self) -> Iterator[p4runtime_pb2.StreamMessageRequest]:
        outbox = self._outbox
        while (message := outbox.get()) is not None:
            yield message

    def _read_stream(self, stream: Iterable[p4runtime_pb2.StreamMessageResponse]) -> None:
        arbitration = self._arbitration
        try:
            for message in stream:
                if message.HasField("arbitration"):
                    arbitration.put(message.arbitration)
                elif message.HasField("packet"):
                    self.packets_in.put(message.packet)
        except grpc.RpcError as exc:
            arbitration.put(exc)

    def close(self) -> None:
        self._outbox.put(None)
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
            raise SwitchError(self.name, f"{what} failed: {_rpc_text(exc)}") from None

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
        config = p4runtime_pb2.ForwardingPipelineConfig(
            p4info=self.schema.p4info, p4_device_config=pipeline.device_config,
            cookie=p4runtime_pb2.ForwardingPipelineConfig.Cookie(cookie=pipeline.cookie))
        request = p4runtime_pb2.SetForwardingPipelineConfigRequest(
            device_id=self.device_id, election_id=self.election_id, config=config,
            action=p4runtime_pb2.SetForwardingPipelineConfigRequest.VERIFY_AND_COMMIT)
        self._call("pipeline push", self.stub.SetForwardingPipelineConfig, request)
        return True

    # Writes

    def write(self, updates: Sequence[Update], batch_size: int = 1000) -> None:
        """Apply updates in batches, in order; on the first failure raise SwitchError naming the entry.

        The next batch is encoded while the switch applies the current one.
        """
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
                    raise SwitchError(self.name, f"write failed: {_rpc_text(exc)}", applied=applied) from None
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
        return write_request_bytes(self.device_id, self.election_id.high, self.election_id.low, encoded)

    # Reads

    def read(self, entities: Sequence[p4runtime_pb2.Entity]) -> list[p4runtime_pb2.Entity]:
        request = p4runtime_pb2.ReadRequest(device_id=self.device_id, entities=entities)
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
        self._outbox.put(p4runtime_pb2.StreamMessageRequest(packet=packet))

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

