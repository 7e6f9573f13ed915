"""Consistent reconfiguration, planned as pure functions: versions, then the three phases of an update.

Per-packet consistency (Reitblatt et al., SIGCOMM 2012) by versioning: the classifier stamps each
packet with its chain's configuration version (the NSH version TLV) and every switch steers on
(SPI, SI, version), so a packet is handled by the configuration it entered with, old or new, never
a mix. A reconfiguration therefore runs in three phases:

1. prepare - install everything new (steering under the new version, rules, RDMA-table entries,
   meters, routes); packets cannot reach any of it yet;
2. commit  - switch each changed chain's classifier to its new version (one atomic entry each);
3. cleanup - after in-flight packets have drained, delete what only the old version used.

A chain keeps its version while its steering is unchanged; versions are read back from the switches,
so a restarted controller continues where the last one stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.dataplane import entries as E
from controller.dataplane.builder import Steer, steer_entry
from controller.dataplane.entries import Entity, MeterConfig, Op, SwitchState, TableEntry, Update
from controller.model.topology import NodeName

Phase = dict[NodeName, list[Update]]

_PREPARE_ORDER = {E.IDENTITY: 0, E.PORT_ROLE: 0, E.IPV4: 1, E.FIREWALL: 2, E.NAT: 2, E.RATE_LIMITER: 2, E.DSCP: 2,
                  E.RDMA_INDEX: 3, E.SERVER_RETURN: 4, E.STEER: 4}
_VERSIONED = (E.STEER, E.SERVER_RETURN)
"""The tables whose entries belong to one (chain, version): steering and where servers send chains back."""


def _version_of(entry: TableEntry) -> int:
    return dict(entry.match)["config_version"].value  # type: ignore[union-attr]


def _spi_of(entry: TableEntry) -> int:
    return dict(entry.match)["spi"].value if entry.table in _VERSIONED else dict(entry.params)["spi"]  # type: ignore[union-attr]


def choose_versions(current: Mapping[NodeName, SwitchState],
                    steering: Mapping[int, tuple[Steer, ...] | None]) -> dict[int, int]:
    """SPI -> version for every accepted chain: the one in force if its steering is unchanged, else a fresh one."""
    in_force: dict[int, int] = {}
    installed: dict[tuple[int, int], set[tuple[NodeName, Entity]]] = {}
    highest: dict[int, int] = {}
    for switch, state in current.items():
        for entity in state.values():
            if not isinstance(entity, TableEntry):
                continue
            if entity.table == E.CLASSIFIER and entity.action == "SremIngress.push_nsh":
                in_force[_spi_of(entity)] = dict(entity.params)["config_version"]
            elif entity.table in _VERSIONED:
                spi, version = _spi_of(entity), _version_of(entity)
                installed.setdefault((spi, version), set()).add((switch, entity))
                highest[spi] = max(highest.get(spi, 0), version)
    versions = {}
    for spi, steers in steering.items():
        if steers is None:
            continue
        version = in_force.get(spi)
        if version is not None and installed.get((spi, version), set()) == {(s.switch, steer_entry(spi, version, s)) for s in steers}:
            versions[spi] = version
        else:
            versions[spi] = (max(highest.get(spi, 0), version or 0) + 1) % 2**32
    return versions


@dataclass
class Plan:
    prepare: Phase = field(default_factory=dict)
    commit: Phase = field(default_factory=dict)
    cleanup: Phase = field(default_factory=dict)

    def phases(self) -> list[tuple[str, Phase]]:
        return [("prepare", self.prepare), ("commit", self.commit), ("cleanup", self.cleanup)]

    @property
    def empty(self) -> bool:
        return not any(updates for _, phase in self.phases() for updates in phase.values())

    def count(self) -> int:
        return sum(len(updates) for _, phase in self.phases() for updates in phase.values())


def plan_update(current: Mapping[NodeName, SwitchState], desired: Mapping[NodeName, SwitchState]) -> Plan:
    """The updates that take every switch from `current` to `desired`, in consistent-update phases.

    Default actions and meter cells always exist on a switch, so they are modified, never inserted
    or deleted; a meter cell no rule uses any more is reset in cleanup.
    """
    plan = Plan()
    for switch in sorted(set(current) | set(desired)):
        have, want = current.get(switch, {}), desired.get(switch, {})
        prepare, commit, cleanup = [], [], []
        for key, entity in want.items():
            old = have.get(key)
            if old == entity:
                continue
            op = Op.INSERT if old is None and isinstance(entity, TableEntry) else Op.MODIFY
            (commit if isinstance(entity, TableEntry) and entity.table == E.CLASSIFIER else prepare).append(Update(op, entity))
        for key, entity in have.items():
            if key not in want and isinstance(entity, TableEntry):
                cleanup.append(Update(Op.DELETE, entity))
            elif key not in want and isinstance(entity, MeterConfig):
                cleanup.append(Update(Op.MODIFY, entity.reset()))
        prepare.sort(key=lambda u: _PREPARE_ORDER.get(getattr(u.entity, "table", ""), 2))
        cleanup.sort(key=lambda u: -_PREPARE_ORDER.get(getattr(u.entity, "table", ""), 2))
        for phase, updates in ((plan.prepare, prepare), (plan.commit, commit), (plan.cleanup, cleanup)):
            if updates:
                phase[switch] = updates
    return plan


def undo(updates: list[Update], before: SwitchState) -> list[Update]:
    """The updates that revert `updates` (applied to a switch whose state was `before`), newest first.

    A meter cell that had no configuration goes back to none; a default action that had no value
    of ours keeps the new one (the switch's own default is not known).
    """
    reverted = []
    for update in reversed(updates):
        if update.op is Op.INSERT:
            reverted.append(Update(Op.DELETE, update.entity))
        elif update.op is Op.DELETE:
            reverted.append(Update(Op.INSERT, update.entity))
        elif update.entity.key in before:
            reverted.append(Update(Op.MODIFY, before[update.entity.key]))
        elif isinstance(update.entity, MeterConfig):
            reverted.append(Update(Op.MODIFY, update.entity.reset()))
    return reverted
