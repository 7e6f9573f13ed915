"""A P4Runtime server double that validates every request against the pushed P4Info, for CI without BMv2.

Error codes follow the P4Runtime 1.4 specification where it names one: malformed requests get
INVALID_ARGUMENT, missing entries NOT_FOUND, duplicate keys ALREADY_EXISTS, a full table
RESOURCE_EXHAUSTED, a const default action PERMISSION_DENIED. A batch with failed updates ends
the Write RPC with UNKNOWN and one ``p4.v1.Error`` per update in the ``grpc-status-details-bin``
trailer, as PI does. Under ROLLBACK_ON_ERROR and DATAPLANE_ATOMIC the updates that were valid but
not applied are reported as ABORTED.

Arbitration is PI's (BMv2's P4Runtime server): per device and role the live stream with the highest
election id is primary, every stream of the role is told when that changes, and when the primary leaves
the next highest becomes primary and is told so. (The spec's letter differs there: it keeps "the highest
election id ever seen", so after the primary leaves a lower id never becomes primary; Stratum does that.)
A stream that changes its device or role fails with FAILED_PRECONDITION, as the spec says.

With ``tls`` it serves only TLS and requires a client certificate signed by the same CA, as BMv2 with
``--grpc-server-ssl --grpc-server-with-client-auth`` does.
"""

from __future__ import annotations

import dataclasses
import functools
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from types import TracebackType
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import status_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from controller.dataplane.tls import TlsFiles

P4RUNTIME_API_VERSION = "1.4.1"
STATUS_DETAILS_KEY = "grpc-status-details-bin"

_HOST = "127.0.0.1"
# Every open StreamChannel holds a worker for its whole life, so leave room for unary RPCs.
_WORKERS = 16
_STOP_TIMEOUT_S = 5.0
_READ_CHUNK = 500

_Code = grpc.StatusCode
_MatchType = p4info_pb2.MatchField.MatchType
_Scope = p4info_pb2.ActionRef.Scope
_Update = p4runtime_pb2.Update
_Atomicity = p4runtime_pb2.WriteRequest.Atomicity
_PipelineAction = p4runtime_pb2.SetForwardingPipelineConfigRequest.Action
_ResponseType = p4runtime_pb2.GetForwardingPipelineConfigRequest.ResponseType

_MATCH_KINDS: dict[int, str] = {
    _MatchType.EXACT: "exact",
    _MatchType.LPM: "lpm",
    _MatchType.TERNARY: "ternary",
    _MatchType.RANGE: "range",
    _MatchType.OPTIONAL: "optional",
}
_NEEDS_PRIORITY = {_MatchType.TERNARY, _MatchType.RANGE, _MatchType.OPTIONAL}
_COMMIT_ACTIONS = {
    _PipelineAction.VERIFY_AND_COMMIT,
    _PipelineAction.VERIFY_AND_SAVE,
    _PipelineAction.COMMIT,
    _PipelineAction.RECONCILE_AND_COMMIT,
}

# (field id, normalised integers of the match) for each given field, sorted, then the priority.
_Match = tuple[int, tuple[int, ...]]
_Key = tuple[tuple[_Match, ...], int]
_M = TypeVar("_M", bound=Message)


class _P4Error(Exception):
    """One failed update or read filter: a canonical code and a message naming the P4 objects."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _RpcStatus(grpc.Status):
    """The grpc.Status that ``abort_with_status`` needs; grpc_status is not installed."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple[tuple[str, bytes], ...]) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


@dataclasses.dataclass(frozen=True)
class _StreamEnd:
    """Queued to a stream to finish it, with an error status when ``code`` is set."""

    code: grpc.StatusCode | None = None
    details: str = ""


@dataclasses.dataclass(eq=False)
class _Stream:
    """One StreamChannel: what it asked for in arbitration and the messages waiting to go out."""

    outbox: queue.Queue[p4runtime_pb2.StreamMessageResponse | _StreamEnd] = dataclasses.field(
        default_factory=queue.Queue)
    role: str = ""
    election_id: int = 0
    arbitrated: bool = False


@dataclasses.dataclass
class _State:
    """Everything a Write can change; copied whole so an all-or-nothing batch can be discarded."""

    entries: dict[int, dict[_Key, p4runtime_pb2.TableEntry]] = dataclasses.field(default_factory=dict)
    defaults: dict[int, p4runtime_pb2.TableEntry] = dataclasses.field(default_factory=dict)
    meters: dict[tuple[int, int], p4runtime_pb2.MeterConfig] = dataclasses.field(default_factory=dict)
    counters: dict[tuple[int, int], p4runtime_pb2.CounterData] = dataclasses.field(default_factory=dict)

    def copy(self) -> _State:
        # Stored messages are never mutated in place, so copying the containers is enough.
        return _State({table: dict(rows) for table, rows in self.entries.items()}, dict(self.defaults),
                      dict(self.meters), dict(self.counters))


_Change = Callable[[_State], None]


class _Pipeline:
    """The committed ForwardingPipelineConfig with its P4Info objects indexed by id."""

    def __init__(self, config: p4runtime_pb2.ForwardingPipelineConfig) -> None:
        self.config = config
        p4info = config.p4info
        self.tables = {table.preamble.id: table for table in p4info.tables}
        self.actions = {action.preamble.id: action for action in p4info.actions}
        self.meters = {meter.preamble.id: meter for meter in p4info.meters}
        self.counters = {counter.preamble.id: counter for counter in p4info.counters}

    def table_named(self, name: str) -> p4info_pb2.Table:
        return _named(self.tables.values(), name, "table")

    def meter_named(self, name: str) -> p4info_pb2.Meter:
        return _named(self.meters.values(), name, "meter")


def _named(objects: Iterable[_M], name: str, kind: str) -> _M:
    for obj in objects:
        if name in (obj.preamble.name, obj.preamble.alias):
            return obj
    raise KeyError(f"no {kind} named {name!r} in the P4Info")


def _copied(message: _M) -> _M:
    duplicate = type(message)()
    duplicate.CopyFrom(message)
    return duplicate


def _to_int(data: bytes) -> int:
    return int.from_bytes(data, "big")


def _to_bytes(value: int) -> bytes:
    """P4Runtime canonical bytestring: big-endian without leading zero bytes, 0 as one zero byte."""
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def _uint128(value: p4runtime_pb2.Uint128) -> int:
    return (value.high << 64) | value.low


def _as_uint128(value: int) -> p4runtime_pb2.Uint128:
    return p4runtime_pb2.Uint128(high=value >> 64, low=value & ((1 << 64) - 1))


def _invalid(message: str) -> _P4Error:
    return _P4Error(_Code.INVALID_ARGUMENT, message)


def _check_value(where: str, what: str, data: bytes, bitwidth: int) -> int:
    if not data:
        raise _invalid(f"{where}: {what} is an empty bytestring")
    value = _to_int(data)
    if value >> bitwidth:
        raise _invalid(f"{where}: {what} {value:#x} does not fit {bitwidth} bits")
    return value


def _exact(where: str, bitwidth: int, match: p4runtime_pb2.FieldMatch) -> tuple[int, ...]:
    return (_check_value(where, "value", match.exact.value, bitwidth),)


def _optional(where: str, bitwidth: int, match: p4runtime_pb2.FieldMatch) -> tuple[int, ...]:
    return (_check_value(where, "value", match.optional.value, bitwidth),)


def _ternary(where: str, bitwidth: int, match: p4runtime_pb2.FieldMatch) -> tuple[int, ...]:
    value = _check_value(where, "value", match.ternary.value, bitwidth)
    mask = _check_value(where, "mask", match.ternary.mask, bitwidth)
    if mask == 0:
        raise _invalid(f"{where}: ternary mask is all zeros; omit the field for a don't-care match")
    if value & ~mask:
        raise _invalid(f"{where}: value {value:#x} has bits outside mask {mask:#x}")
    return value, mask


def _lpm(where: str, bitwidth: int, match: p4runtime_pb2.FieldMatch) -> tuple[int, ...]:
    value = _check_value(where, "value", match.lpm.value, bitwidth)
    prefix_len = match.lpm.prefix_len
    if prefix_len > bitwidth or prefix_len < 0:
        raise _invalid(f"{where}: prefix length {prefix_len} is outside 1..{bitwidth}")
    if prefix_len == 0:
        raise _invalid(f"{where}: prefix length 0; omit the field for a don't-care match")
    if value & ((1 << (bitwidth - prefix_len)) - 1):
        raise _invalid(f"{where}: value {value:#x} has bits set beyond the /{prefix_len} prefix")
    return value, prefix_len


def _range(where: str, bitwidth: int, match: p4runtime_pb2.FieldMatch) -> tuple[int, ...]:
    low = _check_value(where, "low", match.range.low, bitwidth)
    high = _check_value(where, "high", match.range.high, bitwidth)
    if low > high:
        raise _invalid(f"{where}: range low {low:#x} is above high {high:#x}")
    if low == 0 and high == (1 << bitwidth) - 1:
        raise _invalid(f"{where}: range covers every value; omit the field for a don't-care match")
    return low, high


_NORMALISERS: dict[str, Callable[[str, int, p4runtime_pb2.FieldMatch], tuple[int, ...]]] = {
    "exact": _exact, "optional": _optional, "ternary": _ternary, "lpm": _lpm, "range": _range,
}


def _canonical_match(field_id: int, kind: str, values: tuple[int, ...]) -> p4runtime_pb2.FieldMatch:
    match = p4runtime_pb2.FieldMatch(field_id=field_id)
    if kind == "exact":
        match.exact.value = _to_bytes(values[0])
    elif kind == "optional":
        match.optional.value = _to_bytes(values[0])
    elif kind == "ternary":
        match.ternary.value, match.ternary.mask = _to_bytes(values[0]), _to_bytes(values[1])
    elif kind == "lpm":
        match.lpm.value, match.lpm.prefix_len = _to_bytes(values[0]), values[1]
    else:
        match.range.low, match.range.high = _to_bytes(values[0]), _to_bytes(values[1])
    return match


def _normalise_field(where: str, info: p4info_pb2.MatchField,
                     match: p4runtime_pb2.FieldMatch) -> tuple[tuple[int, ...], p4runtime_pb2.FieldMatch]:
    expected = _MATCH_KINDS.get(info.match_type)
    if expected is None:
        raise _P4Error(_Code.UNIMPLEMENTED, f"{where}: match type {info.match_type} is not supported by the fake")
    kind = match.WhichOneof("field_match_type")
    if kind != expected:
        raise _invalid(f"{where}: the field is {expected} but the match is {kind or 'unset'}")
    values = _NORMALISERS[kind](where, info.bitwidth, match)
    return values, _canonical_match(info.id, kind, values)


def _validate_match(table: p4info_pb2.Table,
                    entry: p4runtime_pb2.TableEntry) -> tuple[tuple[_Match, ...], list[p4runtime_pb2.FieldMatch]]:
    """The normalised key part of the match and the match in canonical form, sorted by field id."""
    name = table.preamble.name
    fields = {field.id: field for field in table.match_fields}
    seen: dict[int, tuple[tuple[int, ...], p4runtime_pb2.FieldMatch]] = {}
    for match in entry.match:
        info = fields.get(match.field_id)
        if info is None:
            raise _invalid(f"table {name}: unknown match field id {match.field_id}")
        where = f"table {name}: match field '{info.name}' (id {info.id})"
        if match.field_id in seen:
            raise _invalid(f"{where}: given more than once")
        seen[match.field_id] = _normalise_field(where, info, match)
    for info in table.match_fields:
        if info.match_type == _MatchType.EXACT and info.id not in seen:
            raise _invalid(f"table {name}: match field '{info.name}' (id {info.id}): exact field is missing")
    ordered = sorted(seen.items())
    return tuple((field_id, values) for field_id, (values, _) in ordered), [match for _, (_, match) in ordered]


def _check_priority(table: p4info_pb2.Table, priority: int) -> None:
    name = table.preamble.name
    if any(field.match_type in _NEEDS_PRIORITY for field in table.match_fields):
        if priority <= 0:
            raise _invalid(f"table {name}: priority must be > 0 in a table with ternary, range or optional "
                           f"fields (got {priority})")
    elif priority != 0:
        raise _invalid(f"table {name}: priority must be 0 in a table without ternary, range or optional "
                       f"fields (got {priority})")


def _check_params(where: str, info: p4info_pb2.Action, params: Iterable[p4runtime_pb2.Action.Param]) -> None:
    known = {param.id: param for param in info.params}
    seen: set[int] = set()
    for param in params:
        param_info = known.get(param.param_id)
        if param_info is None:
            raise _invalid(f"{where}: unknown param id {param.param_id}")
        param_where = f"{where}: param '{param_info.name}' (id {param_info.id})"
        if param.param_id in seen:
            raise _invalid(f"{param_where}: given more than once")
        seen.add(param.param_id)
        _check_value(param_where, "value", param.value, param_info.bitwidth)
    missing = [f"'{param.name}' (id {param.id})" for param in info.params if param.id not in seen]
    if missing:
        raise _invalid(f"{where}: missing params {', '.join(missing)}")


def _check_action(pipeline: _Pipeline, table: p4info_pb2.Table, table_action: p4runtime_pb2.TableAction, *,
                  default: bool) -> None:
    name = table.preamble.name
    kind = table_action.WhichOneof("type")
    if kind is None:
        raise _invalid(f"table {name}: no action given")
    if kind != "action":
        raise _invalid(f"table {name}: {kind} needs an action profile, which the table does not have")
    action_id = table_action.action.action_id
    info = pipeline.actions.get(action_id)
    if info is None:
        raise _invalid(f"table {name}: unknown action id {action_id}")
    action_name = info.preamble.name
    ref = next((ref for ref in table.action_refs if ref.id == action_id), None)
    if ref is None:
        raise _invalid(f"table {name}: action {action_name} is not one of the table's actions")
    if default and ref.scope == _Scope.TABLE_ONLY:
        raise _invalid(f"table {name}: action {action_name} is TABLE_ONLY and cannot be the default action")
    if not default and ref.scope == _Scope.DEFAULT_ONLY:
        raise _invalid(f"table {name}: action {action_name} is DEFAULT_ONLY and cannot be used in an entry")
    _check_params(f"table {name}: action {action_name}", info, table_action.action.params)


def _describe_key(table: p4info_pb2.Table, key: _Key) -> str:
    names = {field.id: field.name for field in table.match_fields}
    matches, priority = key
    parts = [f"{names[field_id]}={'/'.join(f'{value:#x}' for value in values)}" for field_id, values in matches]
    return " ".join(parts) + (f" priority={priority}" if priority else "")


def _apply_entry(table: p4info_pb2.Table, update_type: int, key: _Key, entry: p4runtime_pb2.TableEntry,
                 state: _State) -> None:
    name = table.preamble.name
    rows = state.entries.setdefault(table.preamble.id, {})
    if update_type == _Update.INSERT:
        if key in rows:
            raise _P4Error(_Code.ALREADY_EXISTS, f"table {name}: an entry with key {_describe_key(table, key)} "
                                                 f"already exists")
        if table.size and len(rows) >= table.size:
            raise _P4Error(_Code.RESOURCE_EXHAUSTED, f"table {name} is full ({table.size} entries)")
        rows[key] = entry
    elif key not in rows:
        raise _P4Error(_Code.NOT_FOUND, f"table {name}: no entry with key {_describe_key(table, key)}")
    elif update_type == _Update.MODIFY:
        rows[key] = entry
    else:
        del rows[key]


def _apply_default(table_id: int, entry: p4runtime_pb2.TableEntry, state: _State) -> None:
    state.defaults[table_id] = entry


def _apply_meter(cell: tuple[int, int], entry: p4runtime_pb2.MeterEntry, state: _State) -> None:
    if entry.HasField("config"):
        state.meters[cell] = _copied(entry.config)
    else:
        state.meters.pop(cell, None)


def _apply_counter(cell: tuple[int, int], entry: p4runtime_pb2.CounterEntry, state: _State) -> None:
    if entry.HasField("data"):
        state.counters[cell] = _copied(entry.data)
    else:
        state.counters.pop(cell, None)


def _default_change(pipeline: _Pipeline, table: p4info_pb2.Table, update_type: int,
                    entry: p4runtime_pb2.TableEntry) -> _Change:
    name = table.preamble.name
    if table.const_default_action_id:
        raise _P4Error(_Code.PERMISSION_DENIED, f"table {name}: the default action is const")
    if update_type != _Update.MODIFY:
        raise _invalid(f"table {name}: the default entry can only be modified, not {_Update.Type.Name(update_type)}")
    if entry.match or entry.priority:
        raise _invalid(f"table {name}: the default entry must have no match fields and priority 0")
    _check_action(pipeline, table, entry.action, default=True)
    return functools.partial(_apply_default, table.preamble.id, _copied(entry))


def _table_key(table: p4info_pb2.Table, entry: p4runtime_pb2.TableEntry) -> tuple[_Key, list[p4runtime_pb2.FieldMatch]]:
    if not table.match_fields:
        raise _invalid(f"table {table.preamble.name} has no match fields; set its default action "
                       f"(is_default_action) instead")
    matches, canonical = _validate_match(table, entry)
    _check_priority(table, entry.priority)
    return (matches, entry.priority), canonical


def _table_change(pipeline: _Pipeline, update_type: int, entry: p4runtime_pb2.TableEntry) -> _Change:
    table = pipeline.tables.get(entry.table_id)
    if table is None:
        raise _invalid(f"unknown table id {entry.table_id}")
    if entry.is_default_action:
        return _default_change(pipeline, table, update_type, entry)
    key, canonical = _table_key(table, entry)
    # The spec ignores everything but the key in a DELETE.
    if update_type != _Update.DELETE:
        _check_action(pipeline, table, entry.action, default=False)
    stored = _copied(entry)
    del stored.match[:]
    stored.match.extend(canonical)
    return functools.partial(_apply_entry, table, update_type, key, stored)


def _check_index(where: str, index: int, size: int) -> None:
    if not 0 <= index < size:
        raise _invalid(f"{where}: index {index} is out of range (size {size})")


def _indexed_cell(kind: str, found: p4info_pb2.Meter | p4info_pb2.Counter | None, given_id: int, update_type: int,
                  has_index: bool, index: int) -> str:
    """Checks shared by meter and counter cells; returns the name to put in messages."""
    if found is None:
        raise _invalid(f"unknown {kind} id {given_id}")
    where = f"{kind} {found.preamble.name}"
    if update_type != _Update.MODIFY:
        raise _invalid(f"{where}: {kind} entries can only be modified, not {_Update.Type.Name(update_type)}")
    if not has_index:
        raise _invalid(f"{where}: index must be set")
    _check_index(where, index, found.size)
    return where


def _meter_change(pipeline: _Pipeline, update_type: int, entry: p4runtime_pb2.MeterEntry) -> _Change:
    meter = pipeline.meters.get(entry.meter_id)
    where = _indexed_cell("meter", meter, entry.meter_id, update_type, entry.HasField("index"), entry.index.index)
    config = entry.config
    if min(config.cir, config.cburst, config.pir, config.pburst) < 0:
        raise _invalid(f"{where}: rates and burst sizes must not be negative")
    if config.pir < config.cir:
        raise _invalid(f"{where}: pir {config.pir} is below cir {config.cir}")
    return functools.partial(_apply_meter, (meter.preamble.id, entry.index.index), _copied(entry))


def _counter_change(pipeline: _Pipeline, update_type: int, entry: p4runtime_pb2.CounterEntry) -> _Change:
    counter = pipeline.counters.get(entry.counter_id)
    _indexed_cell("counter", counter, entry.counter_id, update_type, entry.HasField("index"), entry.index.index)
    return functools.partial(_apply_counter, (counter.preamble.id, entry.index.index), _copied(entry))


def _validate_update(pipeline: _Pipeline, update: p4runtime_pb2.Update) -> _Change:
    """Check one update against the P4Info alone; the returned change checks the state when applied."""
    if update.type not in (_Update.INSERT, _Update.MODIFY, _Update.DELETE):
        raise _invalid("update type is UNSPECIFIED")
    kind = update.entity.WhichOneof("entity")
    if kind == "table_entry":
        return _table_change(pipeline, update.type, update.entity.table_entry)
    if kind == "meter_entry":
        return _meter_change(pipeline, update.type, update.entity.meter_entry)
    if kind == "counter_entry":
        return _counter_change(pipeline, update.type, update.entity.counter_entry)
    raise _P4Error(_Code.UNIMPLEMENTED, f"{kind or 'empty'} entities are not supported by the fake")


def _apply(state: _State, change: _Change | _P4Error) -> _P4Error | None:
    if isinstance(change, _P4Error):
        return change
    try:
        change(state)
    except _P4Error as error:
        return error
    return None


def _rolled_back() -> _P4Error:
    return _P4Error(_Code.ABORTED, "not applied: another update of the batch failed and the batch was rolled back")


def _initial_default(table: p4info_pb2.Table) -> p4runtime_pb2.TableEntry:
    entry = p4runtime_pb2.TableEntry(table_id=table.preamble.id, is_default_action=True)
    if table.HasField("initial_default_action"):
        initial = table.initial_default_action
        action = entry.action.action
        action.action_id = initial.action_id
        for argument in initial.arguments:
            action.params.add(param_id=argument.param_id, value=_to_bytes(_to_int(argument.value)))
    elif table.const_default_action_id:
        entry.action.action.action_id = table.const_default_action_id
    return entry


def _update_error(error: _P4Error | None) -> p4runtime_pb2.Error:
    if error is None:
        return p4runtime_pb2.Error(canonical_code=_Code.OK.value[0])
    return p4runtime_pb2.Error(canonical_code=error.code.value[0], message=error.message)


def _batch_status(results: list[_P4Error | None]) -> _RpcStatus:
    """UNKNOWN with one p4.v1.Error per update in the trailer, as PI reports a failed batch."""
    failures = [f"update {index}: {error.message}" for index, error in enumerate(results) if error is not None]
    details = f"{len(failures)} of {len(results)} updates failed: " + "; ".join(failures)
    status = status_pb2.Status(code=_Code.UNKNOWN.value[0], message=details)
    for error in results:
        status.details.add().Pack(_update_error(error))
    return _RpcStatus(_Code.UNKNOWN, details, ((STATUS_DETAILS_KEY, status.SerializeToString()),))


def _chunks(entities: list[p4runtime_pb2.Entity]) -> Iterator[list[p4runtime_pb2.Entity]]:
    # A read that finds nothing still answers with one empty response.
    for start in range(0, max(len(entities), 1), _READ_CHUNK):
        yield entities[start:start + _READ_CHUNK]


class FakeP4RuntimeServer(p4runtime_pb2_grpc.P4RuntimeServicer):
    """An in-process P4Runtime server for one device, with state inspection and fault injection for tests.

    ``reject_entry`` is called with the server lock held, so it must not call back into the server.
    """

    def __init__(self, device_id: int = 1, name: str = "fake", tls: TlsFiles | None = None) -> None:
        self.device_id = device_id
        self.name = name
        self.tls = tls
        self.refuse_mastership = False
        self.fail_next_writes = 0
        self.reject_entry: Callable[[p4runtime_pb2.Update], str | None] | None = None
        self.packets_out: list[tuple[bytes, dict[int, int]]] = []
        self.write_count = 0
        self.updates_applied = 0
        self._lock = threading.Lock()
        self._pipeline: _Pipeline | None = None
        self._state = _State()
        self._streams: list[_Stream] = []
        self._server: grpc.Server | None = None
        self._executor: futures.ThreadPoolExecutor | None = None
        self._port = 0

    @property
    def address(self) -> str:
        return f"{_HOST}:{self._port}"

    def start(self) -> str:
        """Serve on an ephemeral port the first time and on the same port after a stop; return the address."""
        if self._server is not None:
            raise RuntimeError(f"fake P4Runtime server {self.name!r} is already running")
        credentials = None
        if self.tls is not None:
            ca, cert, key = self.tls.read()
            credentials = grpc.ssl_server_credentials([(key, cert)], root_certificates=ca, require_client_auth=True)
        executor = futures.ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix=f"p4rt-{self.name}")
        # Without this a restart could silently share the port with a stranger's socket.
        server = grpc.server(executor, options=[("grpc.so_reuseport", 0)])
        p4runtime_pb2_grpc.add_P4RuntimeServicer_to_server(self, server)
        if credentials is None:
            self._port = server.add_insecure_port(f"{_HOST}:{self._port}")
        else:
            self._port = server.add_secure_port(f"{_HOST}:{self._port}", credentials)
        server.start()
        self._server, self._executor = server, executor
        return self.address

    def stop(self) -> None:
        """Cancel every RPC, as a switch that goes down would, and wait for the handlers to finish."""
        server, executor = self._server, self._executor
        if server is None or executor is None:
            return
        self._server = self._executor = None
        server.stop(grace=None).wait(_STOP_TIMEOUT_S)
        with self._lock:
            for stream in self._streams:
                stream.outbox.put(_StreamEnd())
            self._streams.clear()
        executor.shutdown(wait=True)

    def restart(self, clear_state: bool = True) -> str:
        """Stop and serve again on the same port; a cleared switch has no pipeline and no entries."""
        self.stop()
        if clear_state:
            with self._lock:
                self._pipeline = None
                self._state = _State()
        return self.start()

    def __enter__(self) -> FakeP4RuntimeServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()

    @property
    def primary_election_id(self) -> int | None:
        """The election id of the default role's primary."""
        return self.primary_of("")

    def primary_of(self, role: str) -> int | None:
        with self._lock:
            primary = self._primary(role)
            return None if primary is None else primary.election_id

    def entries(self, table_name: str | None = None) -> list[p4runtime_pb2.TableEntry]:
        with self._lock:
            if table_name is None:
                tables = list(self._state.entries)
            else:
                tables = [self._require_pipeline_for_inspection().table_named(table_name).preamble.id]
            return [_copied(entry) for table in tables for entry in self._state.entries.get(table, {}).values()]

    def default_entry(self, table_name: str) -> p4runtime_pb2.TableEntry:
        with self._lock:
            return _copied(self._default_entry(self._require_pipeline_for_inspection().table_named(table_name)))

    def meter_config(self, meter_name: str, index: int) -> p4runtime_pb2.MeterConfig | None:
        with self._lock:
            meter = self._require_pipeline_for_inspection().meter_named(meter_name)
            config = self._state.meters.get((meter.preamble.id, index))
            return None if config is None else _copied(config)

    def send_packet_in(self, payload: bytes, metadata: dict[int, int]) -> None:
        """Deliver a PacketIn to the primary controller, the only one the spec lets receive it."""
        packet = p4runtime_pb2.PacketIn(payload=payload)
        for metadata_id, value in metadata.items():
            packet.metadata.add(metadata_id=metadata_id, value=_to_bytes(value))
        with self._lock:
            primary = self._primary("")
            if primary is None:
                raise RuntimeError("no primary controller is connected to receive the PacketIn")
            primary.outbox.put(p4runtime_pb2.StreamMessageResponse(packet=packet))

    def _require_pipeline_for_inspection(self) -> _Pipeline:
        if self._pipeline is None:
            raise RuntimeError("no forwarding pipeline has been set")
        return self._pipeline

    def _default_entry(self, table: p4info_pb2.Table) -> p4runtime_pb2.TableEntry:
        stored = self._state.defaults.get(table.preamble.id)
        return _initial_default(table) if stored is None else stored

    def _primary(self, role: str) -> _Stream | None:
        if self.refuse_mastership:
            return None
        candidates = [stream for stream in self._streams if stream.role == role]
        return max(candidates, key=lambda stream: stream.election_id, default=None)

    def _arbitration_reply(self, stream: _Stream, primary: _Stream | None) -> p4runtime_pb2.StreamMessageResponse:
        reply = p4runtime_pb2.StreamMessageResponse()
        update = reply.arbitration
        update.device_id = self.device_id
        if stream.role:
            update.role.name = stream.role
        if primary is None:
            update.election_id.CopyFrom(_as_uint128(stream.election_id))
            update.status.code = _Code.PERMISSION_DENIED.value[0]
            update.status.message = "mastership refused by the fake switch"
            return reply
        update.election_id.CopyFrom(_as_uint128(primary.election_id))
        if primary is stream:
            update.status.code = _Code.OK.value[0]
            update.status.message = "primary"
        else:
            update.status.code = _Code.ALREADY_EXISTS.value[0]
            update.status.message = f"backup; the primary has election id {primary.election_id}"
        return reply

    def _notify_role(self, role: str) -> None:
        primary = self._primary(role)
        for stream in self._streams:
            if stream.role == role:
                stream.outbox.put(self._arbitration_reply(stream, primary))

    def _arbitrate(self, stream: _Stream, update: p4runtime_pb2.MasterArbitrationUpdate) -> _StreamEnd | None:
        role, election_id = update.role.name, _uint128(update.election_id)
        if stream.arbitrated and (update.device_id, role) != (self.device_id, stream.role):
            return _StreamEnd(_Code.FAILED_PRECONDITION, f"this stream is device {self.device_id}, role {stream.role!r}; "
                                                         "open another stream to change them")
        if update.device_id != self.device_id:
            return _StreamEnd(_Code.NOT_FOUND, f"device {update.device_id} not found; this switch is device "
                                               f"{self.device_id}")
        with self._lock:
            if any(other is not stream and other.role == role and other.election_id == election_id
                   for other in self._streams):
                return _StreamEnd(_Code.INVALID_ARGUMENT, f"election id {election_id} is already used by another "
                                                          f"controller of role {role!r}")
            before = self._primary(role)
            stream.role, stream.election_id, stream.arbitrated = role, election_id, True
            if stream not in self._streams:
                self._streams.append(stream)
            after = self._primary(role)
            if after is not before:
                self._notify_role(role)
            else:
                stream.outbox.put(self._arbitration_reply(stream, after))
        return None

    def _packet_out(self, stream: _Stream, packet: p4runtime_pb2.PacketOut) -> None:
        with self._lock:
            # As in PI, a PacketOut from anyone but the primary is dropped.
            if self._primary(stream.role) is stream:
                self.packets_out.append((packet.payload, {meta.metadata_id: _to_int(meta.value)
                                                          for meta in packet.metadata}))

    def _drop_stream(self, stream: _Stream) -> None:
        with self._lock:
            if stream not in self._streams:
                return
            was_primary = self._primary(stream.role) is stream
            self._streams.remove(stream)
            if was_primary and self._primary(stream.role) is not None:
                self._notify_role(stream.role)

    def _read_stream(self, stream: _Stream, requests: Iterator[p4runtime_pb2.StreamMessageRequest]) -> None:
        try:
            for request in requests:
                kind = request.WhichOneof("update")
                if kind == "arbitration":
                    end = self._arbitrate(stream, request.arbitration)
                    if end is not None:
                        stream.outbox.put(end)
                        return
                elif kind == "packet":
                    self._packet_out(stream, request.packet)
        except grpc.RpcError:
            pass  # grpc raises from the request iterator when the client cancels: the stream is over.
        finally:
            self._drop_stream(stream)
            stream.outbox.put(_StreamEnd())

    def StreamChannel(self, request_iterator: Iterator[p4runtime_pb2.StreamMessageRequest],
                      context: grpc.ServicerContext) -> Iterator[p4runtime_pb2.StreamMessageResponse]:
        stream = _Stream()
        context.add_callback(lambda: stream.outbox.put(_StreamEnd()))
        # gRPC's sync API cannot read and write a stream in one thread, so requests are read in another.
        threading.Thread(target=self._read_stream, args=(stream, request_iterator), daemon=True,
                         name=f"p4rt-{self.name}-stream").start()
        while True:
            message = stream.outbox.get()
            if isinstance(message, _StreamEnd):
                if message.code is not None:
                    context.abort(message.code, message.details)
                return
            yield message

    def _check_device(self, device_id: int, context: grpc.ServicerContext) -> None:
        if device_id != self.device_id:
            context.abort(_Code.NOT_FOUND, f"device {device_id} not found; this switch is device {self.device_id}")

    def _check_primary(self, role: str, election_id: p4runtime_pb2.Uint128, context: grpc.ServicerContext) -> None:
        primary = self._primary(role)
        if primary is None or primary.election_id != _uint128(election_id):
            holder = "no primary" if primary is None else f"the primary has election id {primary.election_id}"
            context.abort(_Code.PERMISSION_DENIED, f"election id {_uint128(election_id)} is not the primary "
                                                   f"of role {role!r} ({holder})")

    def _require_pipeline(self, context: grpc.ServicerContext) -> _Pipeline:
        if self._pipeline is None:
            context.abort(_Code.FAILED_PRECONDITION, "no forwarding pipeline has been set")
        return self._pipeline

    def SetForwardingPipelineConfig(self, request: p4runtime_pb2.SetForwardingPipelineConfigRequest,
                                    context: grpc.ServicerContext) -> p4runtime_pb2.SetForwardingPipelineConfigResponse:
        with self._lock:
            self._check_device(request.device_id, context)
            self._check_primary(request.role, request.election_id, context)
            if request.action not in _COMMIT_ACTIONS | {_PipelineAction.VERIFY}:
                context.abort(_Code.INVALID_ARGUMENT, f"pipeline action {_PipelineAction.Name(request.action)} "
                                                      f"is not supported")
            if request.config.p4info.ByteSize() == 0:
                context.abort(_Code.INVALID_ARGUMENT, "the pipeline config has an empty P4Info")
            if request.action in _COMMIT_ACTIONS:
                self._commit(request.action, _copied(request.config))
        return p4runtime_pb2.SetForwardingPipelineConfigResponse()

    def _commit(self, action: int, config: p4runtime_pb2.ForwardingPipelineConfig) -> None:
        # Reconciling onto the same P4Info is the one way to keep the forwarding state.
        keep_state = (action == _PipelineAction.RECONCILE_AND_COMMIT and self._pipeline is not None
                      and self._pipeline.config.p4info == config.p4info)
        self._pipeline = _Pipeline(config)
        if not keep_state:
            self._state = _State()

    def GetForwardingPipelineConfig(self, request: p4runtime_pb2.GetForwardingPipelineConfigRequest,
                                    context: grpc.ServicerContext) -> p4runtime_pb2.GetForwardingPipelineConfigResponse:
        with self._lock:
            self._check_device(request.device_id, context)
            stored = self._require_pipeline(context).config
            config = p4runtime_pb2.ForwardingPipelineConfig()
            if stored.HasField("cookie"):
                config.cookie.CopyFrom(stored.cookie)
            if request.response_type in (_ResponseType.ALL, _ResponseType.P4INFO_AND_COOKIE):
                config.p4info.CopyFrom(stored.p4info)
            if request.response_type in (_ResponseType.ALL, _ResponseType.DEVICE_CONFIG_AND_COOKIE):
                config.p4_device_config = stored.p4_device_config
        return p4runtime_pb2.GetForwardingPipelineConfigResponse(config=config)

    def Capabilities(self, request: p4runtime_pb2.CapabilitiesRequest,
                     context: grpc.ServicerContext) -> p4runtime_pb2.CapabilitiesResponse:
        return p4runtime_pb2.CapabilitiesResponse(p4runtime_api_version=P4RUNTIME_API_VERSION)

    def Write(self, request: p4runtime_pb2.WriteRequest, context: grpc.ServicerContext) -> p4runtime_pb2.WriteResponse:
        with self._lock:
            self.write_count += 1
            if self.fail_next_writes > 0:
                self.fail_next_writes -= 1
                context.abort(_Code.UNAVAILABLE, "injected failure (fail_next_writes)")
            self._check_device(request.device_id, context)
            self._check_primary(request.role, request.election_id, context)
            pipeline = self._require_pipeline(context)
            if request.atomicity not in _Atomicity.values():
                context.abort(_Code.INVALID_ARGUMENT, f"unknown atomicity {request.atomicity}")
            results = self._write(pipeline, request)
            self.updates_applied += sum(error is None for error in results)
        if any(error is not None for error in results):
            context.abort_with_status(_batch_status(results))
        return p4runtime_pb2.WriteResponse()

    def _prepare(self, pipeline: _Pipeline, update: p4runtime_pb2.Update) -> _Change | _P4Error:
        try:
            change = _validate_update(pipeline, update)
        except _P4Error as error:
            return error
        rejection = self.reject_entry(update) if self.reject_entry is not None else None
        if rejection:
            return _invalid(rejection)
        return change

    def _write(self, pipeline: _Pipeline, request: p4runtime_pb2.WriteRequest) -> list[_P4Error | None]:
        # Every update is checked against the P4Info before any is applied.
        changes = [self._prepare(pipeline, update) for update in request.updates]
        if request.atomicity == _Atomicity.CONTINUE_ON_ERROR:
            return [_apply(self._state, change) for change in changes]
        return self._write_all_or_nothing(changes)

    def _write_all_or_nothing(self, changes: list[_Change | _P4Error]) -> list[_P4Error | None]:
        results = [change if isinstance(change, _P4Error) else None for change in changes]
        if all(error is None for error in results):
            trial = self._state.copy()
            results = [_apply(trial, change) for change in changes]
            if all(error is None for error in results):
                self._state = trial
                return results
        return [error or _rolled_back() for error in results]

    def Read(self, request: p4runtime_pb2.ReadRequest,
             context: grpc.ServicerContext) -> Iterator[p4runtime_pb2.ReadResponse]:
        with self._lock:
            self._check_device(request.device_id, context)
            pipeline = self._require_pipeline(context)
            try:
                entities = [found for wanted in request.entities for found in self._read(pipeline, wanted)]
            except _P4Error as error:
                context.abort(error.code, error.message)
        for chunk in _chunks(entities):
            yield p4runtime_pb2.ReadResponse(entities=chunk)

    def _read(self, pipeline: _Pipeline, wanted: p4runtime_pb2.Entity) -> list[p4runtime_pb2.Entity]:
        kind = wanted.WhichOneof("entity")
        if kind == "table_entry":
            return [p4runtime_pb2.Entity(table_entry=entry) for entry in self._read_table(pipeline, wanted.table_entry)]
        if kind == "meter_entry":
            return [p4runtime_pb2.Entity(meter_entry=entry) for entry in self._read_meter(pipeline, wanted.meter_entry)]
        if kind == "counter_entry":
            return [p4runtime_pb2.Entity(counter_entry=entry)
                    for entry in self._read_counter(pipeline, wanted.counter_entry)]
        raise _P4Error(_Code.UNIMPLEMENTED, f"reading {kind or 'empty'} entities is not supported by the fake")

    def _read_table(self, pipeline: _Pipeline, wanted: p4runtime_pb2.TableEntry) -> list[p4runtime_pb2.TableEntry]:
        if wanted.table_id == 0:
            tables = list(pipeline.tables.values())
        elif wanted.table_id in pipeline.tables:
            tables = [pipeline.tables[wanted.table_id]]
        else:
            raise _P4Error(_Code.NOT_FOUND, f"unknown table id {wanted.table_id}")
        if wanted.is_default_action:
            return [self._default_entry(table) for table in tables]
        if wanted.match:
            if not wanted.table_id:
                raise _invalid("a read filtered by match fields needs a table id")
            key, _ = _table_key(tables[0], wanted)
            entry = self._state.entries.get(wanted.table_id, {}).get(key)
            return [] if entry is None else [entry]
        return [entry for table in tables for entry in self._state.entries.get(table.preamble.id, {}).values()]

    def _read_meter(self, pipeline: _Pipeline, wanted: p4runtime_pb2.MeterEntry) -> list[p4runtime_pb2.MeterEntry]:
        found = []
        for meter in self._cells_of(pipeline.meters, wanted.meter_id, "meter"):
            for index in self._indices(meter, "meter", wanted.HasField("index"), wanted.index.index):
                entry = p4runtime_pb2.MeterEntry(meter_id=meter.preamble.id, index=p4runtime_pb2.Index(index=index))
                config = self._state.meters.get((meter.preamble.id, index))
                if config is not None:
                    entry.config.CopyFrom(config)
                found.append(entry)
        return found

    def _read_counter(self, pipeline: _Pipeline,
                      wanted: p4runtime_pb2.CounterEntry) -> list[p4runtime_pb2.CounterEntry]:
        found = []
        for counter in self._cells_of(pipeline.counters, wanted.counter_id, "counter"):
            for index in self._indices(counter, "counter", wanted.HasField("index"), wanted.index.index):
                entry = p4runtime_pb2.CounterEntry(counter_id=counter.preamble.id, index=p4runtime_pb2.Index(index=index))
                entry.data.CopyFrom(self._state.counters.get((counter.preamble.id, index), p4runtime_pb2.CounterData()))
                found.append(entry)
        return found

    @staticmethod
    def _cells_of(objects: dict[int, _M], object_id: int, kind: str) -> list[_M]:
        if object_id == 0:
            return list(objects.values())
        if object_id not in objects:
            raise _P4Error(_Code.NOT_FOUND, f"unknown {kind} id {object_id}")
        return [objects[object_id]]

    @staticmethod
    def _indices(obj: p4info_pb2.Meter | p4info_pb2.Counter, kind: str, has_index: bool, index: int) -> Iterable[int]:
        if not has_index:
            return range(obj.size)
        _check_index(f"{kind} {obj.preamble.name}", index, obj.size)
        return (index,)
