"""What a rack server's VNF instance does to one chain packet, as pure functions of the frame, the
instance's rules, its meters' state and an explicit clock; and the JSON form of rules and meters.

The semantics are srem.p4's (include/control/vnfs.p4), so a function behaves the same whether the
policy put it in a switch's LM, in its EM or on a server:

- every rule matches exactly on (source, destination, protocol, destination port); a NAT's on
  (destination, protocol, destination port) only (controller/dataplane/builder.lm_entry);
- firewall: PERMIT passes, DENY drops, and a packet no rule matches is dropped;
- NAT: rewrites the destination address and port; a miss passes unchanged;
- rate limiter: the rule's two-rate three-colour meter (RFC 2698, colour-blind, BMv2's algorithm:
  buckets start full, a red packet takes no tokens, a yellow one only peak tokens) on the frame's
  bytes; red is dropped when the rule says drop_red, yellow (and red kept) get the rule's DSCP;
- DSCP classifier: sets the rule's DSCP; a miss passes unchanged.

L4 ports are read only where the switch's parser reads them (IHL 5, not a later fragment, TCP or
UDP) and are 0 otherwise. Checksums after a change: the IPv4 header's recomputed; a NAT updates
TCP's and a non-zero UDP checksum incrementally (RFC 1624), so a valid checksum stays valid (the
switch zeroes UDP's instead; a zero UDP checksum, what the traffic hosts send, stays zero).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import Enum, IntEnum
from typing import Any

from srem_formats.flows import Action, Flow, Rule, VnfKind
from srem_formats.wire import ETHERTYPE_NSH, NSH_LENGTH_WORDS, NSH_MD_CLASS_SREM, NSH_TLV_CONFIG_VERSION, Nsh

ETHERNET_LEN = 14
NSH_OFFSET = ETHERNET_LEN
IPV4_OFFSET = NSH_OFFSET + Nsh.SIZE
SI_OFFSET = NSH_OFFSET + 7
NSH_MD_TYPE_2 = 0x2
NSH_NEXT_PROTO_IPV4 = 0x1
NSH_TLV_VERSION_LENGTH = 4
"""The constants of p4src/include/define.p4 that srem_formats.wire writes as literals."""
IP_PROTO_TCP, IP_PROTO_UDP = 6, 17
TCP_HEADER_LEN, UDP_HEADER_LEN = 20, 8
TCP_CHECKSUM, UDP_CHECKSUM = 16, 6
"""Offsets of the checksum inside each L4 header."""

_NSH = struct.Struct("!BBBBIHBBI")
_IPV4 = struct.Struct("!BBHHHBBHII")
_PORTS = struct.Struct("!HH")
_U16 = struct.Struct("!H")
_ETHERTYPE_NSH = ETHERTYPE_NSH.to_bytes(2, "big")


class BadPacket(ValueError):
    """A frame this server cannot serve; `reason` is the counter it is counted under."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ConfigError(ValueError):
    """A configuration or state the server refuses; the message names what and where."""


class Drop(str, Enum):
    """Why an instance dropped a packet it served (the drop counters' names)."""

    FIREWALL = "firewall"
    METER = "meter"


class Color(IntEnum):
    """V1MODEL_METER_COLOR_*."""

    GREEN = 0
    YELLOW = 1
    RED = 2


@dataclass(frozen=True, slots=True)
class ServicePath:
    """What a chain packet's NSH says: the chain (SPI), the functions left (SI), the configuration version."""

    spi: int
    si: int
    version: int


def read_nsh(frame: bytes) -> ServicePath:
    """The service path of an Ethernet + NSH frame; BadPacket for anything srem.p4's parser rejects."""
    if len(frame) < IPV4_OFFSET:
        raise BadPacket("truncated", f"{len(frame)}-byte frame: shorter than Ethernet + NSH ({IPV4_OFFSET} bytes)")
    if frame[12:14] != _ETHERTYPE_NSH:
        raise BadPacket("not_nsh", f"ethertype 0x{frame[12:14].hex()} is not NSH")
    b0, b1, md_type, next_protocol, path, md_class, tlv_type, tlv_length, version = _NSH.unpack_from(frame, NSH_OFFSET)
    if (b0 >> 5) != 0 or (b1 & 0x3F) != NSH_LENGTH_WORDS or (md_type & 0xF) != NSH_MD_TYPE_2 \
            or next_protocol != NSH_NEXT_PROTO_IPV4 or md_class != NSH_MD_CLASS_SREM or tlv_type != NSH_TLV_CONFIG_VERSION \
            or (tlv_length & 0x7F) != NSH_TLV_VERSION_LENGTH:
        raise BadPacket("not_srem_nsh", f"NSH {frame[NSH_OFFSET:IPV4_OFFSET].hex()} is not SR-EM's (version 0, no O bit, "
                                        "MD type 2 with the version TLV, IPv4 inside)")
    return ServicePath(path >> 8, path & 0xFF, version)


@dataclass(frozen=True, slots=True)
class Inner:
    """The inner IPv4 packet's lookup fields, and where its L4 header starts (None when not parsed)."""

    src: int
    dst: int
    protocol: int
    dst_port: int
    header_len: int
    l4: int | None


def parse_inner(frame: bytes) -> Inner:
    """The IPv4 header behind NSH and, where srem.p4 parses it, the TCP or UDP header; BadPacket otherwise."""
    if len(frame) < IPV4_OFFSET + 20:
        raise BadPacket("truncated", f"{len(frame)}-byte frame: no room for an IPv4 header behind NSH")
    version_ihl, _, _, _, fragment, _, protocol, _, src, dst = _IPV4.unpack_from(frame, IPV4_OFFSET)
    ihl = version_ihl & 0xF
    if version_ihl >> 4 != 4 or ihl < 5:
        raise BadPacket("not_ipv4", f"inner header version {version_ihl >> 4}, IHL {ihl}: not IPv4")
    header_len = ihl * 4
    if len(frame) < IPV4_OFFSET + header_len:
        raise BadPacket("truncated", f"{len(frame)}-byte frame: IPv4 options cut off")
    if ihl != 5 or fragment & 0x1FFF or protocol not in (IP_PROTO_TCP, IP_PROTO_UDP):
        return Inner(src, dst, protocol, 0, header_len, None)
    l4 = IPV4_OFFSET + header_len
    if len(frame) < l4 + (TCP_HEADER_LEN if protocol == IP_PROTO_TCP else UDP_HEADER_LEN):
        raise BadPacket("truncated", f"{len(frame)}-byte frame: {'TCP' if protocol == IP_PROTO_TCP else 'UDP'} header cut off")
    return Inner(src, dst, protocol, _PORTS.unpack_from(frame, l4)[1], header_len, l4)


# Meters


@dataclass(frozen=True, slots=True)
class MeterRates:
    """One meter cell's configuration, as P4Runtime's MeterConfig: rates in bytes per second, bursts in bytes."""

    cir: int
    cburst: int
    pir: int
    pburst: int


@dataclass(slots=True)
class TokenBuckets:
    """A two-rate three-colour meter's state: committed and peak tokens (bytes) as of time `last` (seconds)."""

    rates: MeterRates
    committed: float
    peak: float
    last: float

    @classmethod
    def full(cls, rates: MeterRates, now: float) -> TokenBuckets:
        """A freshly configured cell: BMv2 fills both buckets when a meter is (re)configured."""
        return cls(rates, float(rates.cburst), float(rates.pburst), now)

    def refill(self, now: float) -> None:
        elapsed = max(0.0, now - self.last)
        self.committed = min(self.committed + elapsed * self.rates.cir, self.rates.cburst)
        self.peak = min(self.peak + elapsed * self.rates.pir, self.rates.pburst)
        self.last = max(self.last, now)

    def execute(self, size: int, now: float) -> Color:
        """Meter a packet of `size` bytes at `now`: red takes nothing, yellow only peak tokens, green both."""
        self.refill(now)
        if self.peak < size:
            return Color.RED
        self.peak -= size
        if self.committed < size:
            return Color.YELLOW
        self.committed -= size
        return Color.GREEN


# Rules


def rule_key(kind: VnfKind, key: Flow) -> tuple[int, ...]:
    """What a rule of this kind matches on: the NAT leaves the source out."""
    if kind is VnfKind.NAT:
        return key.dst, key.protocol, key.dst_port
    return key.src, key.dst, key.protocol, key.dst_port


ACTIONS_OF_KIND = {VnfKind.FIREWALL: (Action.PERMIT, Action.DENY), VnfKind.NAT: (Action.REWRITE,),
                   VnfKind.RATE_LIMITER: (Action.METER,), VnfKind.CLASSIFIER: (Action.SET_DSCP,)}


@dataclass(frozen=True)
class RuleTable:
    """One instance's rules, indexed by what they match."""

    kind: VnfKind
    rules: Mapping[tuple[int, ...], Rule]

    @classmethod
    def of(cls, kind: VnfKind, rules: tuple[Rule, ...]) -> RuleTable:
        """ConfigError for a rule whose action is not its kind's or whose key another rule has (P4Runtime
        refuses a second entry with the same match too)."""
        table: dict[tuple[int, ...], Rule] = {}
        for n, rule in enumerate(rules):
            if rule.action not in ACTIONS_OF_KIND[kind]:
                raise ConfigError(f"rule {n}: a {kind.name} takes {'/'.join(a.name for a in ACTIONS_OF_KIND[kind])}, "
                                  f"not {rule.action.name}")
            key = rule_key(kind, rule.key)
            if key in table:
                raise ConfigError(f"rule {n}: another rule already matches {key}")
            table[key] = rule
        return cls(kind, table)


@dataclass(frozen=True, slots=True)
class Verdict:
    drop: Drop | None
    frame: bytearray
    """The frame after the function (when not dropped)."""


def apply(table: RuleTable, frame: bytes, inner: Inner, meters: Mapping[int, TokenBuckets], now: float) -> Verdict:
    """The instance's function on one frame (parse_inner's `inner`); meters: the instance's cells by index."""
    out = bytearray(frame)
    kind = table.kind
    if kind is VnfKind.NAT:
        rule = table.rules.get((inner.dst, inner.protocol, inner.dst_port))
        if rule is not None:
            _rewrite_destination(out, inner, rule.addr, rule.port)
        return Verdict(None, out)
    rule = table.rules.get((inner.src, inner.dst, inner.protocol, inner.dst_port))
    if kind is VnfKind.FIREWALL:
        return Verdict(None if rule is not None and rule.action is Action.PERMIT else Drop.FIREWALL, out)
    if rule is None:
        return Verdict(None, out)
    if kind is VnfKind.CLASSIFIER:
        _set_dscp(out, inner, rule.dscp)
        return Verdict(None, out)
    color = meters[rule.meter_index].execute(len(frame), now)
    if color is Color.RED and rule.drop_red:
        return Verdict(Drop.METER, out)
    if color is not Color.GREEN:
        _set_dscp(out, inner, rule.dscp)
    return Verdict(None, out)


def returned(frame: bytearray, switch_mac: bytes, own_mac: bytes) -> bytearray:
    """The frame as the server sends it back: to its switch, from itself, one function fewer (SI - 1)."""
    frame[0:6] = switch_mac
    frame[6:12] = own_mac
    frame[SI_OFFSET] -= 1
    return frame


def ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _fix_ipv4_checksum(out: bytearray, inner: Inner) -> None:
    out[IPV4_OFFSET + 10:IPV4_OFFSET + 12] = b"\0\0"
    out[IPV4_OFFSET + 10:IPV4_OFFSET + 12] = _U16.pack(ipv4_checksum(bytes(out[IPV4_OFFSET:IPV4_OFFSET + inner.header_len])))


def _set_dscp(out: bytearray, inner: Inner, dscp: int) -> None:
    out[IPV4_OFFSET + 1] = (dscp << 2) | (out[IPV4_OFFSET + 1] & 0x3)
    _fix_ipv4_checksum(out, inner)


def _rewrite_destination(out: bytearray, inner: Inner, addr: int, port: int) -> None:
    old = bytes(out[IPV4_OFFSET + 16:IPV4_OFFSET + 20])
    out[IPV4_OFFSET + 16:IPV4_OFFSET + 20] = addr.to_bytes(4, "big")
    _fix_ipv4_checksum(out, inner)
    if inner.l4 is None:
        return
    old += bytes(out[inner.l4 + 2:inner.l4 + 4])
    out[inner.l4 + 2:inner.l4 + 4] = _U16.pack(port)
    at = inner.l4 + (TCP_CHECKSUM if inner.protocol == IP_PROTO_TCP else UDP_CHECKSUM)
    checksum = _U16.unpack_from(out, at)[0]
    if inner.protocol == IP_PROTO_UDP and checksum == 0:
        return  # no checksum: nothing to keep valid
    new = bytes(out[IPV4_OFFSET + 16:IPV4_OFFSET + 20]) + bytes(out[inner.l4 + 2:inner.l4 + 4])
    checksum = _incremental_checksum(checksum, old, new)
    if inner.protocol == IP_PROTO_UDP and checksum == 0:
        checksum = 0xFFFF  # 0 means "no checksum" in UDP (RFC 768)
    out[at:at + 2] = _U16.pack(checksum)


def _incremental_checksum(checksum: int, old: bytes, new: bytes) -> int:
    """RFC 1624, eq. 3: HC' = ~(~HC + ~m + m') over the 16-bit words that changed."""
    total = ~checksum & 0xFFFF
    for (m,), (m_new,) in zip(struct.iter_unpack("!H", old), struct.iter_unpack("!H", new)):
        total += (~m & 0xFFFF) + m_new
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


# JSON: the one place rules, meters and instance specs cross the control channel


def _uint(obj: Mapping[str, Any], name: str, bits: int, where: str) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << bits:
        raise ConfigError(f"{where}: {name} must be an integer in [0, 2^{bits}), got {value!r}")
    return value


def bounded_number(obj: Mapping[str, Any], name: str, where: str, low: float, high: float) -> float:
    """obj[name] as a finite float in [low, high]; ConfigError naming it and `where` otherwise."""
    value = obj.get(name)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or not low <= value <= high:
        raise ConfigError(f"{where}: {name} must be a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _fields(obj: object, required: set[str], optional: set[str], where: str) -> Mapping[str, Any]:
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: expected an object, got {type(obj).__name__}")
    unknown, missing = set(obj) - required - optional, required - set(obj)
    if unknown or missing:
        raise ConfigError(f"{where}: " + "; ".join(part for part in (
            f"unknown keys {sorted(unknown)}" if unknown else "", f"missing keys {sorted(missing)}" if missing else "") if part))
    return obj


def _list(obj: Mapping[str, Any], name: str, where: str) -> list[Any]:
    value = obj.get(name)
    if not isinstance(value, list):
        raise ConfigError(f"{where}: {name} must be a list, got {type(value).__name__}")
    return value


_RULE_WIDTHS = {"addr": 32, "port": 16, "dscp": 6, "meter_index": 16, "rate_bps": 63}
_FLOW_WIDTHS = {"src": 32, "dst": 32, "protocol": 8, "dst_port": 16}


def rule_to_json(rule: Rule) -> dict[str, Any]:
    return {**asdict(rule), "action": rule.action.name}


def rule_from_json(obj: object, where: str) -> Rule:
    fields = _fields(obj, {"key", "action"}, {*_RULE_WIDTHS, "drop_red"}, where)
    key = _fields(fields["key"], set(_FLOW_WIDTHS), set(), f"{where}.key")
    flow = Flow(*(_uint(key, name, bits, f"{where}.key") for name, bits in _FLOW_WIDTHS.items()))
    if fields["action"] not in Action.__members__:
        raise ConfigError(f"{where}: action {fields['action']!r} is not one of {', '.join(Action.__members__)}")
    drop_red = fields.get("drop_red", False)
    if not isinstance(drop_red, bool):
        raise ConfigError(f"{where}: drop_red must be true or false, got {drop_red!r}")
    values = {name: _uint(fields, name, bits, where) for name, bits in _RULE_WIDTHS.items() if name in fields}
    return Rule(flow, Action[fields["action"]], drop_red=drop_red, **values)


def meter_rates_from_json(obj: object, where: str) -> tuple[int, MeterRates]:
    """(index, rates) of {"index", "cir", "cburst", "pir", "pburst"}; the peak rate may not be below the committed one."""
    names = ("cir", "cburst", "pir", "pburst")
    fields = _fields(obj, {"index", *names}, set(), where)
    rates = MeterRates(*(_uint(fields, name, 63, where) for name in names))
    if rates.pir < rates.cir:
        raise ConfigError(f"{where}: peak rate {rates.pir} below committed rate {rates.cir}")
    return _uint(fields, "index", 16, where), rates


def meter_rates_to_json(index: int, rates: MeterRates) -> dict[str, int]:
    return {"index": index, **asdict(rates)}


MAX_DELAY_MS = 10_000.0
"""A longer hold per packet would be a unit mistake, not a model's delay."""


@dataclass(frozen=True)
class InstanceSpec:
    """What a server needs to run one VNF instance: its kind, rules, meter cells and processing delay."""

    kind: VnfKind
    rules: tuple[Rule, ...]
    delay_ms: float
    """Held this long per packet: the model's processing delay of the instance on this server."""
    meters: Mapping[int, MeterRates]
    """A rate limiter's cells by index, one per rule (the switch's MeterConfig of the rule); empty otherwise."""
    table: RuleTable

    @classmethod
    def of(cls, kind: VnfKind, rules: tuple[Rule, ...], delay_ms: float, meters: Mapping[int, MeterRates]) -> InstanceSpec:
        """ConfigError unless every rule fits the kind and a rate limiter's meters are exactly its rules' cells."""
        used = {rule.meter_index for rule in rules} if kind is VnfKind.RATE_LIMITER else set()
        if set(meters) != used:
            missing, extra = sorted(used - set(meters)), sorted(set(meters) - used)
            raise ConfigError(f"{kind.name}: meters must be its rules' cells: " + "; ".join(part for part in (
                f"no rates for cells {missing}" if missing else "", f"no rule uses cells {extra}" if extra else "") if part))
        if not 0.0 <= delay_ms <= MAX_DELAY_MS:
            raise ConfigError(f"{kind.name}: delay_ms {delay_ms} outside [0, {MAX_DELAY_MS:g}]")
        return cls(kind, tuple(rules), float(delay_ms), dict(meters), RuleTable.of(kind, tuple(rules)))

    def to_json(self, instance: int) -> dict[str, Any]:
        return {"instance": instance, "kind": self.kind.name, "delay_ms": self.delay_ms,
                "rules": [rule_to_json(r) for r in self.rules],
                "meters": [meter_rates_to_json(i, r) for i, r in sorted(self.meters.items())]}

    @staticmethod
    def from_json(obj: object, where: str) -> tuple[int, InstanceSpec]:
        """(instance, spec); ConfigError naming the field for anything malformed."""
        fields = _fields(obj, {"instance", "kind", "delay_ms", "rules", "meters"}, set(), where)
        instance = _uint(fields, "instance", 16, where)
        where = f"{where} (instance {instance})"
        if fields["kind"] not in VnfKind.__members__:
            raise ConfigError(f"{where}: kind {fields['kind']!r} is not one of {', '.join(VnfKind.__members__)}")
        rules = tuple(rule_from_json(r, f"{where}.rules[{n}]") for n, r in enumerate(_list(fields, "rules", where)))
        meters: dict[int, MeterRates] = {}
        for n, m in enumerate(_list(fields, "meters", where)):
            index, rates = meter_rates_from_json(m, f"{where}.meters[{n}]")
            if index in meters:
                raise ConfigError(f"{where}.meters[{n}]: cell {index} given twice")
            meters[index] = rates
        delay = bounded_number(fields, "delay_ms", where, 0.0, MAX_DELAY_MS)
        try:
            return instance, InstanceSpec.of(VnfKind[fields["kind"]], rules, delay, meters)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
