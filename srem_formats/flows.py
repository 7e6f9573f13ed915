"""Flows, rules and the actions a VNF applies: what an LM table entry, an external-memory table and
the EMAC's answers all express."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class VnfKind(IntEnum):
    """The VNF_* codes of p4src/include/define.p4."""

    FIREWALL = 1
    NAT = 2
    RATE_LIMITER = 3
    CLASSIFIER = 4


class Action(IntEnum):
    """The EMAC_ACTION_* codes of p4src/include/define.p4."""

    PERMIT = 0
    DENY = 1
    REWRITE = 2
    SET_DSCP = 3
    METER = 4


@dataclass(frozen=True, slots=True)
class Flow:
    src: int
    dst: int
    protocol: int
    dst_port: int


@dataclass(frozen=True, slots=True)
class Rule:
    key: Flow
    """For a NAT, `key.src` is 0 (not matched)."""
    action: Action
    addr: int = 0
    port: int = 0
    dscp: int = 0
    meter_index: int = 0
    drop_red: bool = False
    rate_bps: int = 0
    """Bytes per second the rule's meter allows (rate limiter)."""
