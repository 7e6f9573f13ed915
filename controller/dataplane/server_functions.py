"""What every rack server's VNF process must serve for a deployment: a pure function, no I/O.

The switches steer a chain's packet to the server that hosts its next function (`to_server`,
builder.py) with the chain's SPI, its service index and its configuration version in NSH; the
server applies that instance's rules, holds the packet for the model's processing delay of the
request on that server (eq. 18's term of the function: rate in MB/s times the server's delay per
MB) and returns it with the index decremented. So a server needs, per (SPI, SI, version) it will
see, the instance and the hold, and per instance its kind, rules and meter cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from controller.dataplane.builder import Deployment, Steer, meter_config, spi_of
from controller.dataplane.layout import Layout
from controller.dataplane.rules import kind_of
from controller.model.delay import processing_delay_ms, processing_delay_ms_per_mb
from controller.model.substrate import HostKind, Substrate
from controller.model.topology import NodeName
from srem_formats.flows import Rule, VnfKind

TO_SERVER = "SremIngress.to_server"


@dataclass(frozen=True)
class ServedPath:
    spi: int
    si: int
    version: int
    instance: int
    delay_ms: float
    """The hold of this chain's packets: its rate at this step through the instance's per-MB delay there."""


@dataclass(frozen=True)
class ServedInstance:
    kind: VnfKind
    rules: tuple[Rule, ...]
    meters: dict[int, tuple[int, int, int, int]]
    """A rate limiter's cells: index -> (committed rate B/s, committed burst B, peak rate B/s, peak burst B)."""


@dataclass
class ServerFunctions:
    """One rack server's share of a deployment."""

    paths: list[ServedPath] = field(default_factory=list)
    instances: dict[int, ServedInstance] = field(default_factory=dict)


def server_functions(layout: Layout, substrate: Substrate, deployment: Deployment, step: int, versions: Mapping[int, int],
                     steering: Mapping[int, tuple[Steer, ...] | None]) -> dict[NodeName, ServerFunctions]:
    """Every rack server's paths and instances (servers hosting nothing get an empty entry, so that
    they drop what they held); `step` picks the requests' rates, `versions` and `steering` are the
    data plane's (DataPlane.apply chose them)."""
    served = {name: ServerFunctions() for name in layout.servers}
    server_of_port = {(s.switch, layout.port(s.switch, s.name)): s.name for s in layout.servers.values()}
    for request in deployment.requests:
        spi = spi_of(request)
        chain = steering.get(spi)
        if chain is None:
            continue
        for steer in chain:
            if steer.action != TO_SERVER:
                continue
            params = dict(steer.params)
            k = params["instance"]
            server = server_of_port[(steer.switch, params["port"])]
            host = substrate.hosts[deployment.placement[k]]
            assert host.kind is HostKind.SERVER and substrate.node_names[host.node] == server, (k, server)
            per_mb = processing_delay_ms_per_mb(substrate.instances[k].type, host)
            delay = processing_delay_ms(request.rate_mbps[step], (per_mb,))
            served[server].paths.append(ServedPath(spi, steer.si, versions[spi], k, delay))
            if k not in served[server].instances:
                kind = kind_of(substrate, k)
                rules = deployment.rules[k]
                meters = {}
                if kind is VnfKind.RATE_LIMITER:
                    for rule in rules:
                        m = meter_config(rule)
                        meters[rule.meter_index] = (m.cir, m.cburst, m.pir, m.pburst)
                served[server].instances[k] = ServedInstance(kind, rules, meters)
    return served
