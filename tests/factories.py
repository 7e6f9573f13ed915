"""Hand-built substrates and workloads for tests whose expectations are computed by hand."""

from __future__ import annotations

from typing import Any

from controller.model.substrate import Substrate, substrate_from_dict
from controller.model.workload import Request, Schedule, Workload


def topology_dict(switches: list[str], servers: list[str], links: list[tuple[str, str, float, float]]) -> dict[str, Any]:
    return {
        "format": "srem-topology",
        "version": 1,
        "name": "hand",
        "switches": [{"name": s} for s in switches],
        "servers": [{"name": m} for m in servers],
        "links": [{"a": a, "b": b, "bandwidth_gbps": bw, "delay_ms": d} for a, b, bw, d in links],
    }


def server(storage_gb: float = 16.0, price_per_gb: float = 0.01, delay: float = 0.5) -> dict[str, float]:
    return {"storage_gb": storage_gb, "price_per_gb": price_per_gb, "processing_delay_ms_per_mb": delay}


def switch(lm: float = 40.0, em: float = 1000.0, table: float = 40.0, lm_price: float = 0.002, em_price: float = 0.0015,
           delay: float = 0.002, rdma_ns: float = 1500.0) -> dict[str, float]:
    return {"local_memory_mb": lm, "external_memory_mb": em, "rdma_table_mb": table, "lm_price_per_mb": lm_price,
            "em_price_per_mb": em_price, "processing_delay_ms_per_mb": delay, "rdma_access_delay_ns": rdma_ns}


def vnf(name: str, storage_mb: float, server_mbps: float = 1000.0, switch_mbps: float = 100_000.0, accesses: int = 2,
        instances: int = 1, programming_mb: float | None = None) -> dict[str, Any]:
    return {"name": name, "storage_mb": storage_mb, "instances": instances, "server_capacity_mbps": server_mbps,
            "switch_capacity_mbps": switch_mbps, "rdma_accesses": accesses,
            "programming_mb": storage_mb if programming_mb is None else programming_mb}


def substrate(topology: dict[str, Any], vnfs: list[dict[str, Any]], link_prices: list[float] | None = None,
              servers: dict[str, dict] | None = None, switches: dict[str, dict] | None = None,
              controller_gbps: float = 50.0, controller_price: float = 0.005, step_seconds: float = 7200.0) -> Substrate:
    data = {
        "format": "srem-substrate",
        "version": 1,
        "topology": topology,
        "link_price_per_gb": link_prices if link_prices is not None else [0.002] * len(topology["links"]),
        "controller_link": {"bandwidth_gbps": controller_gbps, "price_per_gb": controller_price},
        "rdma_index_fraction": 0.01,
        "servers": {m["name"]: (servers or {}).get(m["name"], server()) for m in topology["servers"]},
        "switches": {s["name"]: (switches or {}).get(s["name"], switch()) for s in topology["switches"]},
        "vnf_types": vnfs,
        "step_seconds": step_seconds,
    }
    return substrate_from_dict(data, "<test>")


def one_class(requests: int, steps: int, busy: frozenset[int] = frozenset()) -> Schedule:
    """Every request in one service class, busy at `busy`."""
    return Schedule(("all",), (busy,), (0,) * requests, steps)


def workload(sub: Substrate, requests: list[tuple[list[str], str, str, list[float], list[float]]],
             placement: dict[str, str], assignment: list[list[str]] | None = None,
             schedule: Schedule | None = None) -> Workload:
    """requests: (chain of type names, source, target, rate per step, deadline per step); instances default to #0;
    schedule: default one class, never busy."""
    reqs, assigned = [], []
    for rid, (chain, src, dst, rates, deadlines) in enumerate(requests):
        types = tuple(sub.type_index[t] for t in chain)
        reqs.append(Request(rid, types, sub.node_index[src], sub.node_index[dst], tuple(rates), tuple(deadlines)))
        names = assignment[rid] if assignment else [f"{t}#0" for t in chain]
        assigned.append(tuple(sub.instance_index[n] for n in names))
    steps = len(requests[0][3]) if requests else 0
    return Workload(0, tuple(reqs), placement_of(sub, placement), tuple(assigned), schedule or one_class(len(reqs), steps))


def placement_of(sub: Substrate, hosts: dict[str, str]) -> tuple[int, ...]:
    """{instance name: host name} -> placement tuple."""
    placement = [0] * len(sub.instances)
    for inst, host in hosts.items():
        placement[sub.instance_index[inst]] = sub.host_index[host]
    return tuple(placement)
