"""Drives switches to the entries a deployment needs: read what they have, plan, apply in phases.

`DataPlane.apply` is the one entry point the live loop uses. It reads every switch's state (so a
restarted controller or switch converges), keeps each unchanged chain's version, builds the desired
entries, checks all of them against the P4Info before writing anything, then runs the consistent
update's phases. If prepare or commit fails on any switch, everything already written is undone in
reverse, so the old configuration stays in force; a failed cleanup leaves only unreachable entries,
which the next apply removes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from controller.dataplane import entries as E
from controller.dataplane.builder import Deployment, EmRegion, Steer, all_steering, desired_state
from controller.dataplane.consistency import Plan, choose_versions, plan_update, undo
from controller.dataplane.entries import SwitchState, Update
from controller.dataplane.layout import Layout
from controller.dataplane.p4info import EntryError
from controller.dataplane.p4runtime_client import Pipeline, SwitchClient, SwitchError
from controller.errors import SremError
from controller.model.substrate import HostKind, Substrate
from controller.model.topology import NodeName
from controller.model.workload import Placement

log = logging.getLogger(__name__)
BeforeCommit = Callable[[dict[int, int], Mapping[int, tuple[Steer, ...] | None]], None]


@dataclass
class ApplyReport:
    plan: Plan
    versions: dict[int, int]
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each phase: build (entries and plan), prepare, commit, drain, cleanup."""
    cleanup_error: str | None = None


class DataPlane:
    def __init__(self, layout: Layout, substrate: Substrate, clients: Mapping[NodeName, SwitchClient],
                 pipeline: Pipeline, drain_s: float = 0.05) -> None:
        self.layout = layout
        self.substrate = substrate
        self.clients = dict(clients)
        self.pipeline = pipeline
        self.drain_s = drain_s
        self.known: dict[NodeName, SwitchState] | None = None
        """What the switches hold after our last complete apply; None means read them first."""

    def connect(self) -> list[NodeName]:
        """Become primary on every switch and push the program where it is missing; the switches pushed to."""
        pushed = []
        for name, client in self.clients.items():
            client.connect()
            if client.set_pipeline(self.pipeline):
                pushed.append(name)
        return pushed

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def read(self) -> dict[NodeName, SwitchState]:
        return {name: client.read_state(default_tables=[E.IDENTITY], meters=[E.FLOW_METER]) for name, client in self.clients.items()}

    def check(self, placement: Placement, em_regions: Mapping[int, EmRegion]) -> None:
        """Reject a placement the data plane cannot realise, before anything is written."""
        hosts = self.substrate.hosts
        if len(placement) != len(self.substrate.instances):
            raise SremError(f"placement has {len(placement)} hosts for {len(self.substrate.instances)} VNF instances", where="placement")
        for k, h in enumerate(placement):
            if not 0 <= h < len(hosts):
                raise SremError(f"unknown host {h} (hosts are 0..{len(hosts) - 1})", where=f"placement of {self.substrate.instances[k].name}")
            if hosts[h].kind is HostKind.EM and k not in em_regions:
                raise SremError(f"no external-memory region for it on {hosts[h].name}", where=f"placement of {self.substrate.instances[k].name}")

    def apply(self, deployment: Deployment, em_regions: Mapping[int, EmRegion], resync: bool = False,
              before_commit: BeforeCommit | None = None) -> ApplyReport:
        """Make the switches hold this deployment, EM-hosted instances pointing at `em_regions`;
        `resync` reads the switches first even when we know what they hold. `before_commit(versions,
        steering)` runs between prepare and commit: what must serve the new versions before any
        packet carries them (the rack servers' functions); if it raises, prepare is undone."""
        self.check(deployment.placement, em_regions)
        current = self.read() if resync or self.known is None else self.known
        self.known = None
        started = time.perf_counter()
        steering = all_steering(self.layout, self.substrate, deployment)
        versions = choose_versions(current, steering)
        desired = desired_state(self.layout, self.substrate, deployment, versions, em_regions, steering)
        plan = plan_update(current, desired)
        self._validate(plan)
        report = ApplyReport(plan, versions, {"build": time.perf_counter() - started})
        done: list[tuple[NodeName, list[Update]]] = []
        for phase_name, phase in plan.phases()[:2]:
            if phase_name == "commit" and before_commit is not None:
                started = time.perf_counter()
                try:
                    before_commit(versions, steering)
                except BaseException:
                    self._roll_back(done, current)
                    raise
                report.seconds["servers"] = time.perf_counter() - started
            started = time.perf_counter()
            for switch, updates in phase.items():
                try:
                    self.clients[switch].write(updates)
                except SwitchError as exc:
                    done.append((switch, exc.applied))
                    self._roll_back(done, current)
                    raise SwitchError(switch, f"{phase_name} failed, previous configuration kept: {exc.message}") from None
                done.append((switch, updates))
            report.seconds[phase_name] = time.perf_counter() - started
        started = time.perf_counter()
        if plan.cleanup:
            time.sleep(self.drain_s)
        report.seconds["drain"] = time.perf_counter() - started
        started = time.perf_counter()
        for switch, updates in plan.cleanup.items():
            try:
                self.clients[switch].write(updates)
            except SwitchError as exc:
                report.cleanup_error = exc.one_line()
                log.warning("cleanup incomplete, retried at the next apply: %s", exc.one_line())
        report.seconds["cleanup"] = time.perf_counter() - started
        if report.cleanup_error is None:
            self.known = desired
        return report

    def _validate(self, plan: Plan) -> None:
        for _, phase in plan.phases():
            for switch, updates in phase.items():
                schema = self.clients[switch].schema
                for update in updates:
                    try:
                        schema.encode(update.entity)
                    except EntryError as exc:
                        raise SwitchError(switch, f"entry rejected by the P4Info, nothing written ({exc})") from None

    def _roll_back(self, done: list[tuple[NodeName, list[Update]]], before: Mapping[NodeName, SwitchState]) -> None:
        for switch, updates in reversed(done):
            try:
                self.clients[switch].write(undo(updates, before[switch]))
            except SwitchError as exc:
                log.error("rollback incomplete on %s, the next apply reconciles it: %s", switch, exc.one_line())
