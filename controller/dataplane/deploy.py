"""The one path from a step's decision to the data plane: make an evaluated placement true in the
switches and in external memory, or leave the previous configuration in force.

`Deployer.deploy(workload, result)` builds the step's `Deployment` (the evaluator's paths, every
instance's rules at the scenario's `dataplane.rules_per_mb`), stages the EM-hosted instances'
tables in their memory servers, has `DataPlane.apply` move the switches over consistently, then
commits the regions (frees those no switch names any more) - or, if the switches refused, aborts
(frees what it staged). With rack servers (`RackServers`), their VNF processes get the new
configuration between the switches' prepare and commit, and retire the old one after the drain. The live loop calls it; tests and benchmarks call it too instead of
assembling the pieces themselves.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from collections.abc import Mapping
from typing import Protocol

from controller.dataplane.builder import Deployment, EmRegion, Steer, deployment_of_step, plan_em_regions
from controller.dataplane.layout import Layout
from controller.dataplane.rack_servers import RackServers
from controller.dataplane.reconciler import ApplyReport, DataPlane
from controller.model.evaluator import StepResult
from controller.model.scenario import DataplaneParams
from controller.model.substrate import Substrate
from controller.model.workload import Workload


class RegionStore(Protocol):
    """Where EM-hosted instances' tables are written before a switch may point at them."""

    def stage(self, deployment: Deployment) -> dict[int, EmRegion]:
        """Write what the deployment needs that is not in place; the region of every EM-hosted instance."""

    def commit(self) -> object:
        """The switches use the staged regions now."""

    def abort(self) -> None:
        """The switches kept the previous regions."""


class SteeringOnly:
    """A RegionStore with no memory server behind it: region names from plan_em_regions, nothing written.

    For tests and benchmarks of the switches' steering alone; a live data plane uses ExternalMemory."""

    def __init__(self, layout: Layout, substrate: Substrate) -> None:
        self.layout = layout
        self.substrate = substrate

    def stage(self, deployment: Deployment) -> dict[int, EmRegion]:
        return plan_em_regions(self.layout, self.substrate, deployment.placement)

    def commit(self) -> None:
        pass

    def abort(self) -> None:
        pass


@dataclass
class DeployReport:
    deployment: Deployment
    applied: ApplyReport
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each part: rules, em (staging and commit), then the data plane's own phases
    (build, prepare, commit, drain, cleanup)."""


class Deployer:
    def __init__(self, plane: DataPlane, regions: RegionStore, params: DataplaneParams, servers: RackServers | None = None) -> None:
        self.plane = plane
        self.regions = regions
        self.servers = servers
        self.rules_per_mb = params.rules_per_mb

    def deployment(self, workload: Workload, result: StepResult) -> Deployment:
        return deployment_of_step(self.plane.layout, self.plane.substrate, workload, result, self.rules_per_mb)

    def deploy(self, workload: Workload, result: StepResult, resync: bool = False) -> DeployReport:
        """Make `result`'s placement true; on any failure the previous configuration stays in force and the error propagates."""
        started = time.perf_counter()
        deployment = self.deployment(workload, result)
        return self.apply(deployment, resync, {"rules": time.perf_counter() - started}, step=result.step)

    def apply(self, deployment: Deployment, resync: bool = False, seconds: dict[str, float] | None = None,
              step: int = 0) -> DeployReport:
        """Stage the deployment's EM tables, move the switches over (the rack servers between prepare
        and commit, their processing delays at `step`'s rates), then commit the regions (or abort them)."""
        seconds = dict(seconds or {})
        started = time.perf_counter()
        regions = self.regions.stage(deployment)
        seconds["em"] = time.perf_counter() - started
        servers = self.servers

        def stage_servers(versions: dict[int, int], steering: Mapping[int, tuple[Steer, ...] | None]) -> None:
            assert servers is not None
            servers.stage(deployment, step, versions, steering)

        try:
            applied = self.plane.apply(deployment, regions, resync, stage_servers if servers is not None else None)
        except BaseException:
            self.regions.abort()
            if servers is not None:
                servers.abort()
            raise
        started = time.perf_counter()
        self.regions.commit()
        seconds["em"] += time.perf_counter() - started
        if servers is not None:
            started = time.perf_counter()
            servers.commit()
            applied.seconds["servers"] = applied.seconds.get("servers", 0.0) + time.perf_counter() - started
        return DeployReport(deployment, applied, {**seconds, **applied.seconds})
