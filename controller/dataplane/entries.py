"""What a switch holds, as plain values: table entries, default actions and meter configurations.

Names are the P4Info's (`SremIngress.nsh_steer`, field `spi`, ...); values are integers. An entity's
`key` is what identifies it on the switch (P4Runtime's notion of the same entry), so the difference
between two states is a comparison of dictionaries. Wildcards are omitted from matches, as P4Runtime
requires, so an entry built here equals the same entry read back from a switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Hashable, Mapping, Union

STEER = "SremIngress.nsh_steer"
SERVER_RETURN = "SremIngress.server_return"
PORT_ROLE = "SremIngress.port_role"
CLASSIFIER = "SremIngress.nsh_classifier"
RDMA_INDEX = "SremIngress.rdma_index"
IPV4 = "SremIngress.ipv4_lpm"
IDENTITY = "SremIngress.switch_identity"
FIREWALL = "SremIngress.vnfs.firewall"
NAT = "SremIngress.vnfs.nat_lb"
RATE_LIMITER = "SremIngress.vnfs.rate_limiter"
DSCP = "SremIngress.vnfs.dscp_classifier"
FLOW_METER = "SremIngress.vnfs.flow_meter"
CHAIN_COUNTER = "SremIngress.chain_counter"
VNF_COUNTER = "SremIngress.vnf_counter"
DROP_COUNTER = "SremIngress.drop_counter"


class DropReason(IntEnum):
    """The indices of drop_counter: DROP_* of p4src/include/define.p4."""

    PARSER = 0
    STEER_MISS = 1
    NSH_TTL = 2
    CHAIN_REJECTED = 3
    FIREWALL = 4
    METER = 5
    RDMA_INDEX_MISS = 6
    EMAC_RESPONSE = 7
    NO_ROUTE = 8
    PASSES = 9
    PORT_UNKNOWN = 10
    NSH_UNTRUSTED = 11
    SERVER_RETURN = 12
    EMAC_UNTRUSTED = 13
    EMAC_UNSOLICITED = 14
    EMAC_DUPLICATE = 15
    EMAC_LATE = 16
    INDEX_RANGE = 17
    IPV4_TTL = 18
    SPOOFED_SOURCE = 19
    UNHANDLED = 20
    SERVER_IPV4 = 21


@dataclass(frozen=True, slots=True)
class Exact:
    value: int


@dataclass(frozen=True, slots=True)
class Ternary:
    value: int
    mask: int


@dataclass(frozen=True, slots=True)
class Lpm:
    value: int
    prefix_len: int


FieldMatch = Union[Exact, Ternary, Lpm]
Params = tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class TableEntry:
    table: str
    match: tuple[tuple[str, FieldMatch], ...]
    """Sorted by field name; wildcard fields left out."""
    action: str
    params: Params = ()
    priority: int = 0

    @property
    def key(self) -> Hashable:
        return ("table", self.table, self.match, self.priority)


@dataclass(frozen=True, slots=True)
class DefaultAction:
    table: str
    action: str
    params: Params = ()

    @property
    def key(self) -> Hashable:
        return ("default", self.table)


@dataclass(frozen=True, slots=True)
class MeterConfig:
    meter: str
    index: int
    cir: int
    """Committed rate, bytes per second."""
    cburst: int
    pir: int
    pburst: int

    @property
    def key(self) -> Hashable:
        return ("meter", self.meter, self.index)

    def reset(self) -> MeterConfig:
        """The cell back to its unconfigured default (all zero: P4Runtime's MeterEntry without a config)."""
        return MeterConfig(self.meter, self.index, 0, 0, 0, 0)


Entity = Union[TableEntry, DefaultAction, MeterConfig]
SwitchState = dict[Hashable, Entity]
"""Everything the controller owns on one switch, by key."""


class Op(Enum):
    INSERT = "insert"
    MODIFY = "modify"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Update:
    op: Op
    entity: Entity


def table_entry(table: str, match: Mapping[str, FieldMatch], action: str, params: Mapping[str, int] | None = None,
                priority: int = 0) -> TableEntry:
    """An entry with its match in canonical form: sorted, all-wildcard ternaries and /0 prefixes dropped."""
    kept = tuple(sorted((name, m) for name, m in match.items()
                        if not (isinstance(m, Ternary) and m.mask == 0) and not (isinstance(m, Lpm) and m.prefix_len == 0)))
    return TableEntry(table, kept, action, tuple(sorted((params or {}).items())), priority)


def state_of(entities: list[Entity]) -> SwitchState:
    state: SwitchState = {}
    for entity in entities:
        if entity.key in state and state[entity.key] != entity:
            raise ValueError(f"two different entities for one key: {state[entity.key]} and {entity}")
        state[entity.key] = entity
    return state


def describe(entity: Entity) -> str:
    """One line naming the entity, for error messages."""
    if isinstance(entity, TableEntry):
        match = ", ".join(f"{name}={_show(m)}" for name, m in entity.match)
        params = ", ".join(f"{k}={v}" for k, v in entity.params)
        return f"{entity.table}[{match}] -> {entity.action}({params})"
    if isinstance(entity, DefaultAction):
        return f"{entity.table} default -> {entity.action}({', '.join(f'{k}={v}' for k, v in entity.params)})"
    return f"{entity.meter}[{entity.index}] cir={entity.cir} pir={entity.pir}"


def _show(m: FieldMatch) -> str:
    if isinstance(m, Exact):
        return hex(m.value)
    if isinstance(m, Ternary):
        return f"{m.value:#x}&&&{m.mask:#x}"
    return f"{m.value:#x}/{m.prefix_len}"
