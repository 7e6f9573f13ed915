"""A packet walked through switch states the way srem.p4 would treat it: the tests' reference data plane."""

from __future__ import annotations

from dataclasses import dataclass, field

from controller.dataplane import entries as E
from controller.dataplane.entries import Exact, SwitchState, TableEntry
from controller.dataplane.layout import Layout
from srem_formats.flows import Flow


@dataclass
class Walk:
    outcome: str
    """'delivered', 'rejected', 'unclassified' or 'miss at SWITCH'."""
    processed: list[tuple[str, int]] = field(default_factory=list)
    """(where, instance) in order: a switch name for LM/EM, a server name."""
    end: str = ""
    version: int | None = None


def classify(state: SwitchState, flow: Flow) -> TableEntry | None:
    for entity in state.values():
        if isinstance(entity, TableEntry) and entity.table == E.CLASSIFIER:
            m = dict(entity.match)
            if (m["src_addr"].value, m["dst_addr"].value, m["protocol"].value, m["dst_port"].value) == (  # type: ignore[union-attr]
                    flow.src, flow.dst, flow.protocol, flow.dst_port):
                return entity
    return None


def walk(layout: Layout, states: dict[str, SwitchState], source: str, flow: Flow, version_override: int | None = None) -> Walk:
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
            where = by_port[where][p["port"]]
        elif steer.action == "SremIngress.to_server":
            result.processed.append((by_port[where][p["port"]], p["instance"]))
            si -= 1
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
