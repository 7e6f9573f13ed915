"""The rules of every VNF instance: what its table holds, in LM or in EM alike.

An instance holds round(storage in MB x rules_per_mb) rules (the scenario's scale factor: BMv2
cannot hold hundreds of MB of entries, and the factor keeps the ratio between types), or more when
its chains need more: one rule per chain it serves, so that the chains' own traffic is handled
(permitted, translated, metered, classified), the rest filler rules on addresses no traffic uses
(198.18.0.0/15, RFC 2544's benchmarking range).

A chain's traffic is one UDP flow from the traffic host of its source switch to that of its
target, destination port FLOW_PORT + request id; a NAT rewrites the port to NAT_PORT + request id,
and the functions after it match the rewritten port. Every rule matches exactly (source,
destination, protocol, destination port) - the NAT only (destination, protocol, port) - so that the
same rule is an LM table entry and a key in EM's hash table (the EMAC issue).
"""

from __future__ import annotations

import ipaddress

from controller.dataplane.layout import Layout
from controller.model.substrate import Substrate
from controller.model.workload import Request
from srem_formats.flows import Action, Flow, Rule, VnfKind

FLOW_PORT = 10000
NAT_PORT = 40000
UDP = 17
FILLER_SRC = int(ipaddress.IPv4Address("198.18.0.0"))
FILLER_DST = int(ipaddress.IPv4Address("198.19.0.1"))
CHAIN_DSCP = 26
"""AF31: the class the DSCP classifier gives chain traffic."""
FILLER_RATE_BPS = 125_000
"""1 Mbit/s: what filler rules' meters allow."""


KIND_OF_TYPE = {"firewall": VnfKind.FIREWALL, "nat": VnfKind.NAT, "rate_limiter": VnfKind.RATE_LIMITER,
                "classifier": VnfKind.CLASSIFIER}


def kind_of(substrate: Substrate, instance: int) -> VnfKind:
    name = substrate.instances[instance].type.name
    if name not in KIND_OF_TYPE:
        raise ValueError(f"VNF type {name!r} has no in-network implementation (known: {', '.join(KIND_OF_TYPE)})")
    return KIND_OF_TYPE[name]


def chain_flow(layout: Layout, substrate: Substrate, request: Request) -> Flow:
    src, dst = (layout.switches[substrate.node_names[n]].host_ip for n in (request.source, request.target))
    return Flow(int(src), int(dst), UDP, FLOW_PORT + request.id)


def _chain_rule(kind: VnfKind, flow: Flow, request: Request, meter_index: int) -> Rule:
    if kind is VnfKind.FIREWALL:
        return Rule(flow, Action.PERMIT)
    if kind is VnfKind.NAT:
        return Rule(Flow(0, flow.dst, flow.protocol, flow.dst_port), Action.REWRITE, addr=flow.dst, port=NAT_PORT + request.id)
    if kind is VnfKind.RATE_LIMITER:
        peak = max(request.rate_mbps)
        return Rule(flow, Action.METER, meter_index=meter_index, dscp=0, drop_red=True, rate_bps=int(peak * 1e6 / 8 * 1.2))
    return Rule(flow, Action.SET_DSCP, dscp=CHAIN_DSCP)


def _filler_rule(kind: VnfKind, n: int, meter_index: int) -> Rule:
    flow = Flow(FILLER_SRC + n, FILLER_DST, UDP, 9)
    if kind is VnfKind.FIREWALL:
        return Rule(flow, Action.DENY)
    if kind is VnfKind.NAT:
        return Rule(Flow(0, FILLER_SRC + n, UDP, 9), Action.REWRITE, addr=FILLER_DST, port=9)
    if kind is VnfKind.RATE_LIMITER:
        return Rule(flow, Action.METER, meter_index=meter_index, drop_red=True, rate_bps=FILLER_RATE_BPS)
    return Rule(flow, Action.SET_DSCP, dscp=0)


def instance_rules(layout: Layout, substrate: Substrate, requests: tuple[Request, ...],
                   assignment: tuple[tuple[int, ...], ...], rules_per_mb: float) -> list[tuple[Rule, ...]]:
    """Every instance's rules: its chains' first, then filler. Meter indices are unique across instances."""
    chain_rules: list[list[tuple[Request, Flow]]] = [[] for _ in substrate.instances]
    for request, instances in zip(requests, assignment):
        flow = chain_flow(layout, substrate, request)
        for k in instances:
            chain_rules[k].append((request, flow))
            if kind_of(substrate, k) is VnfKind.NAT:
                flow = Flow(flow.src, flow.dst, flow.protocol, NAT_PORT + request.id)
    rules: list[tuple[Rule, ...]] = []
    meter = 0
    for k, inst in enumerate(substrate.instances):
        kind = kind_of(substrate, k)
        own: list[Rule] = []
        for request, flow in chain_rules[k]:
            own.append(_chain_rule(kind, flow, request, meter))
            meter += kind is VnfKind.RATE_LIMITER
        for n in range(max(0, round(inst.type.storage_mb * rules_per_mb) - len(own))):
            own.append(_filler_rule(kind, n, meter))
            meter += kind is VnfKind.RATE_LIMITER
        rules.append(tuple(own))
    return rules
