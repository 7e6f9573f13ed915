"""The P4Info as a schema: names to ids and widths, and entities to and from P4Runtime protobufs.

Conversion checks what the P4Info can check before anything reaches a switch (unknown names,
values wider than their field, missing parameters), so a bad entry fails here with its name
rather than halfway through a batch. Byte strings are written in P4Runtime's canonical form.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from google.protobuf import text_format
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2

from controller.dataplane.entries import (
    DefaultAction,
    Entity,
    Exact,
    FieldMatch,
    Lpm,
    MeterConfig,
    TableEntry,
    Ternary,
    describe,
)
from controller.dataplane.p4program import P4INFO

MATCH_KIND = {p4info_pb2.MatchField.EXACT: "exact", p4info_pb2.MatchField.TERNARY: "ternary", p4info_pb2.MatchField.LPM: "lpm"}


class EntryError(ValueError):
    """An entity the P4Info rejects; the message names it."""


def encode(value: int, bitwidth: int) -> bytes:
    if value < 0 or value >> bitwidth:
        raise EntryError(f"value {value:#x} does not fit {bitwidth} bits")
    return value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big")


def decode(data: bytes) -> int:
    return int.from_bytes(data, "big")


@dataclass(frozen=True)
class FieldInfo:
    id: int
    bitwidth: int
    kind: str


@dataclass(frozen=True)
class TableInfo:
    id: int
    name: str
    fields: dict[str, FieldInfo]
    field_names: dict[int, str]
    actions: frozenset[int]
    needs_priority: bool


@dataclass(frozen=True)
class ActionInfo:
    id: int
    name: str
    params: dict[str, FieldInfo]
    param_names: dict[int, str]


class P4Schema:
    def __init__(self, p4info: p4info_pb2.P4Info) -> None:
        self.p4info = p4info
        self.tables: dict[str, TableInfo] = {}
        for t in p4info.tables:
            fields = {f.name: FieldInfo(f.id, f.bitwidth, MATCH_KIND.get(f.match_type, "other")) for f in t.match_fields}
            self.tables[t.preamble.name] = TableInfo(
                t.preamble.id, t.preamble.name, fields, {f.id: n for n, f in fields.items()},
                frozenset(a.id for a in t.action_refs), any(f.kind == "ternary" for f in fields.values()))
        self.actions: dict[str, ActionInfo] = {}
        for a in p4info.actions:
            params = {p.name: FieldInfo(p.id, p.bitwidth, "param") for p in a.params}
            self.actions[a.preamble.name] = ActionInfo(a.preamble.id, a.preamble.name, params, {p.id: n for n, p in params.items()})
        self.meters = {m.preamble.name: (m.preamble.id, m.size) for m in p4info.meters}
        self.counters = {c.preamble.name: (c.preamble.id, c.size) for c in p4info.counters}
        self.table_by_id = {t.id: t for t in self.tables.values()}
        self.action_by_id = {a.id: a for a in self.actions.values()}
        self.meter_by_id = {i: name for name, (i, _) in self.meters.items()}

    @classmethod
    def load(cls, path: Path = P4INFO) -> P4Schema:
        return cls(text_format.Parse(path.read_text(), p4info_pb2.P4Info()))

    def to_proto(self, entity: Entity) -> p4runtime_pb2.Entity:
        try:
            if isinstance(entity, TableEntry):
                return p4runtime_pb2.Entity(table_entry=self._table_entry(entity))
            if isinstance(entity, DefaultAction):
                table = self._table(entity.table)
                return p4runtime_pb2.Entity(table_entry=p4runtime_pb2.TableEntry(
                    table_id=table.id, action=self._action(table, entity.action, entity.params), is_default_action=True))
            return p4runtime_pb2.Entity(meter_entry=self._meter_entry(entity))
        except EntryError as e:
            raise EntryError(f"{describe(entity)}: {e}") from None

    def _table(self, name: str) -> TableInfo:
        if name not in self.tables:
            raise EntryError(f"no table {name!r} in the P4Info")
        return self.tables[name]

    def _action(self, table: TableInfo, name: str, params: tuple[tuple[str, int], ...]) -> p4runtime_pb2.TableAction:
        action = self.actions.get(name)
        if action is None or action.id not in table.actions:
            raise EntryError(f"table {table.name} has no action {name!r}")
        given = dict(params)
        if set(given) != set(action.params):
            raise EntryError(f"action {name} takes parameters {sorted(action.params)}, got {sorted(given)}")
        proto = p4runtime_pb2.Action(action_id=action.id)
        for pname, info in action.params.items():
            try:
                proto.params.add(param_id=info.id, value=encode(given[pname], info.bitwidth))
            except EntryError as e:
                raise EntryError(f"parameter {pname}: {e}") from None
        return p4runtime_pb2.TableAction(action=proto)

    def _table_entry(self, entry: TableEntry) -> p4runtime_pb2.TableEntry:
        table = self._table(entry.table)
        proto = p4runtime_pb2.TableEntry(table_id=table.id, priority=entry.priority,
                                         action=self._action(table, entry.action, entry.params))
        if table.needs_priority != (entry.priority > 0):
            raise EntryError("a priority is needed exactly when the table has ternary fields")
        for name, match in entry.match:
            info = table.fields.get(name)
            if info is None:
                raise EntryError(f"table {table.name} has no match field {name!r}")
            try:
                proto.match.append(_field_match(info, match))
            except EntryError as e:
                raise EntryError(f"field {name}: {e}") from None
        missing = [n for n, f in table.fields.items() if f.kind == "exact" and n not in dict(entry.match)]
        if missing:
            raise EntryError(f"exact field(s) {', '.join(missing)} missing")
        return proto

    def _meter_entry(self, config: MeterConfig) -> p4runtime_pb2.MeterEntry:
        if config.meter not in self.meters:
            raise EntryError(f"no meter {config.meter!r} in the P4Info")
        meter_id, size = self.meters[config.meter]
        if not 0 <= config.index < size:
            raise EntryError(f"index {config.index} outside 0..{size - 1}")
        entry = p4runtime_pb2.MeterEntry(meter_id=meter_id, index=p4runtime_pb2.Index(index=config.index))
        if config != config.reset():
            entry.config.CopyFrom(p4runtime_pb2.MeterConfig(cir=config.cir, cburst=config.cburst, pir=config.pir, pburst=config.pburst))
        return entry

    def from_proto(self, entity: p4runtime_pb2.Entity) -> Entity:
        """The entity a switch reports, in this module's terms (for comparing with what we want)."""
        if entity.HasField("meter_entry"):
            m = entity.meter_entry
            return MeterConfig(self.meter_by_id[m.meter_id], m.index.index, m.config.cir, m.config.cburst, m.config.pir, m.config.pburst)
        e = entity.table_entry
        table = self.table_by_id[e.table_id]
        action = self.action_by_id[e.action.action.action_id]
        params = tuple(sorted((action.param_names[p.param_id], decode(p.value)) for p in e.action.action.params))
        if e.is_default_action:
            return DefaultAction(table.name, action.name, params)
        match = tuple(sorted((table.field_names[m.field_id], _from_field_match(m)) for m in e.match))
        return TableEntry(table.name, match, action.name, params, e.priority)


def _field_match(info: FieldInfo, match: FieldMatch) -> p4runtime_pb2.FieldMatch:
    proto = p4runtime_pb2.FieldMatch(field_id=info.id)
    if isinstance(match, Exact) and info.kind == "exact":
        proto.exact.value = encode(match.value, info.bitwidth)
    elif isinstance(match, Ternary) and info.kind == "ternary":
        if match.value & ~match.mask:
            raise EntryError(f"ternary value {match.value:#x} has bits outside mask {match.mask:#x}")
        proto.ternary.value = encode(match.value, info.bitwidth)
        proto.ternary.mask = encode(match.mask, info.bitwidth)
    elif isinstance(match, Lpm) and info.kind == "lpm":
        if not 0 < match.prefix_len <= info.bitwidth or match.value & ((1 << (info.bitwidth - match.prefix_len)) - 1):
            raise EntryError(f"bad prefix {match.value:#x}/{match.prefix_len}")
        proto.lpm.value = encode(match.value, info.bitwidth)
        proto.lpm.prefix_len = match.prefix_len
    else:
        raise EntryError(f"{type(match).__name__.lower()} match on a {info.kind} field")
    return proto


def _from_field_match(m: p4runtime_pb2.FieldMatch) -> FieldMatch:
    if m.HasField("exact"):
        return Exact(decode(m.exact.value))
    if m.HasField("ternary"):
        return Ternary(decode(m.ternary.value), decode(m.ternary.mask))
    return Lpm(decode(m.lpm.value), m.lpm.prefix_len)
