"""Programs the rack servers' VNF processes for a deployment, make-before-break like the switches.

Between the switches' prepare and commit (DataPlane.apply's `before_commit`), every server gets a
new generation holding all the (SPI, SI, version) paths it must serve - unchanged chains with their
old versions - so packets of both the old and the new versions find their function during the
change; an instance that moves between servers takes its meters and counters along before any
packet reaches it there. After the switches' drain the old generations are retired. A restarted
controller starts numbering after the newest generation the servers report.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from controller.dataplane.builder import Deployment, Steer
from controller.dataplane.layout import Layout
from controller.dataplane.server_functions import server_functions
from controller.model.substrate import Substrate
from controller.model.topology import NodeName
from hosts.functions import InstanceSpec, MeterRates, ServicePath
from hosts.rack_server_client import RackServerClient, move_state
from hosts.vnf_service import PathSpec


class RackServers:
    def __init__(self, layout: Layout, substrate: Substrate, sockets: Mapping[NodeName, Path], timeout_s: float = 5.0) -> None:
        self.layout = layout
        self.substrate = substrate
        self.clients = {name: RackServerClient(path, timeout_s) for name, path in sockets.items()}
        self.generation = max((max(c.status().get("generations", [0]) or [0]) for c in self.clients.values()), default=0)
        self.location: dict[int, NodeName] = {}
        """Instance -> the server that serves it now."""
        self._pending: tuple[int, dict[int, NodeName]] | None = None

    def stage(self, deployment: Deployment, step: int, versions: Mapping[int, int],
              steering: Mapping[int, tuple[Steer, ...] | None]) -> None:
        """Install the next generation on every server and carry moved instances' state."""
        generation = self.generation + 1
        served = server_functions(self.layout, self.substrate, deployment, step, versions, steering)
        location: dict[int, NodeName] = {}
        for server, functions in served.items():
            paths = {ServicePath(p.spi, p.si, p.version): PathSpec(p.instance, p.delay_ms) for p in functions.paths}
            instances = {k: InstanceSpec.of(i.kind, i.rules, 0.0, {c: MeterRates(*m) for c, m in i.meters.items()})
                         for k, i in functions.instances.items()}
            self.clients[server].install(generation, paths, instances)
            location.update(dict.fromkeys(instances, server))
        for k, server in location.items():
            before = self.location.get(k)
            if before is not None and before != server:
                move_state(self.clients[before], self.clients[server], k)
        self._pending = (generation, location)

    def commit(self) -> None:
        """After the switches' drain: only the new generation stays."""
        if self._pending is None:
            return
        generation, location = self._pending
        for client in self.clients.values():
            client.retire(generation)
        self.generation, self.location, self._pending = generation, location, None

    def abort(self) -> None:
        """The switches kept the old versions: the old generations, not yet retired, still serve them."""
        if self._pending is not None:
            self.generation = self._pending[0]
        self._pending = None
