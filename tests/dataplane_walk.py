"""A packet walked through switch states the way srem.p4 would treat it: the tests' reference data plane.

It follows the chain's steering from its source switch and, like the switch, takes a packet only
from a port whose role lets it send that packet: NSH arriving from another switch needs a link port
there, and a packet a server sends back needs the server_return entry for that (port, SPI, SI,
version).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.dataplane import entries as E
from controller.dataplane.entries import Exact, SwitchState, TableEntry
from controller.dataplane.layout import HOST_PORT, Layout, PortRole
from srem_formats.flows import Flow

ROLE_ACTIONS = {"SremIngress.host_port": PortRole.HOST}


@dataclass
class Walk:
    outcome: str
    """'delivered', 'rejected', 'unclassified', 'miss at SWITCH', 'rdma index miss at SWITCH',
    'untrusted port at SWITCH' or 'server return refused at SWITCH'."""
    processed: list[tuple[str, int]] = field(default_factory=list)
    """(where, instance) in order: a switch name for LM/EM, a server name."""
    end: str = ""
    version: int | None = None
    hops: list[tuple[str, int]] = field(default_factory=list)
    """(switch, destination MAC) of every forward to another switch."""


def port_role(state: SwitchState, port: int) -> PortRole | None:
    """The role a switch state gives a port, None without one."""
    entry = state.get(("table", E.PORT_ROLE, (("port", Exact(port)),), 0))
    if not isinstance(entry, TableEntry):
        return None
    return ROLE_ACTIONS.get(entry.action) or PortRole(dict(entry.params)["role"])


def classify(state: SwitchState, flow: Flow) -> TableEntry | None:
    for entity in state.values():
        if isinstance(entity, TableEntry) and entity.table == E.CLASSIFIER:
            m = dict(entity.match)
            if (m["src_addr"].value, m["dst_addr"].value, m["protocol"].value, m["dst_port"].value) == (  # type: ignore[union-attr]
                    flow.src, flow.dst, flow.protocol, flow.dst_port):
                return entity
    return None


def walk(layout: Layout, states: dict[str, SwitchState], source: str, flow: Flow, version_override: int | None = None) -> Walk:
    if port_role(states[source], HOST_PORT) is not PortRole.HOST:
        return Walk(f"untrusted port at {source}")
    entry = classify(states[source], flow)
    if entry is None:
        return Walk("unclassified")
    params = dict(entry.params)
    if entry.action == "SremIngress.reject_chain":
        return Walk("rejected")
    spi, si, version = params["spi"], params["si"], version_override or params["config_version"]
    result = Walk("delivered", version=version)
    where = source
    by_port = {sw: {p: n for n, p in s.ports.items()} for sw, s in layout.switches.items()}
    for _ in range(200):
        key = ("table", E.STEER, (("config_version", Exact(version)), ("si", Exact(si)), ("spi", Exact(spi))), 0)
        steer = states[where].get(key)
        if not isinstance(steer, TableEntry):
            result.outcome = f"miss at {where}"
            return result
        p = dict(steer.params)
        if steer.action == "SremIngress.forward":
            there = by_port[where][p["port"]]
            result.hops.append((where, p["dst_mac"]))
            if port_role(states[there], layout.port(there, where)) is not PortRole.LINK:
                result.outcome = f"untrusted port at {there}"
                return result
            where = there
        elif steer.action == "SremIngress.to_server":
            result.processed.append((by_port[where][p["port"]], p["instance"]))
            si -= 1
            back = ("table", E.SERVER_RETURN, (("config_version", Exact(version)), ("port", Exact(p["port"])),
                                               ("si", Exact(si)), ("spi", Exact(spi))), 0)
            if port_role(states[where], p["port"]) is not PortRole.SERVER or back not in states[where]:
                result.outcome = f"server return refused at {where}"
                return result
        elif steer.action in ("SremIngress.process_lm", "SremIngress.process_em"):
            if steer.action.endswith("em") and ("table", E.RDMA_INDEX, (("instance", Exact(p["instance"])),), 0) not in states[where]:
                result.outcome = f"rdma index miss at {where}"
                return result
            result.processed.append((where, p["instance"]))
            si -= 1
        else:
            result.end = where
            return result
    result.outcome = "loop"
    return result
