"""From a placement to the entries every switch needs: a pure function, no I/O.

Inputs are the model's own objects: the substrate (hosts and instances) and a `Deployment` - the
requests with their assignment (eq. 9), the placement, the per-request paths the step evaluator
chose (None for a rejected request) and every instance's rules - plus the configuration version of
every chain and where EM-hosted instances' rules live.

Per switch the state holds: its identity (switch id), every port's role (what the switch trusts
it to send: the traffic host, links to switches, servers, the EMAC, the CPU), IPv4 routes to every
traffic host and server, the classifier entries of chains starting here (push NSH, or drop a
rejected chain), the steering entries of every chain passing here and, where a chain comes back
from a server, the (port, SPI, SI, version) it may come back on, the rules of instances in its LM,
and for instances in its EM the RDMA-table entry with the instance's meter cells (plus meters,
which stay in the switch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controller.dataplane import entries as E
from controller.dataplane.entries import Entity, Exact, Lpm, MeterConfig, SwitchState, Ternary, table_entry
from controller.dataplane.layout import EMAC_PORT, HOST_PORT, Layout, PortRole
from controller.dataplane.rules import chain_flow, instance_rules, kind_of
from controller.model.evaluator import StepResult
from controller.model.routing import Path
from controller.model.substrate import HostKind, Substrate
from controller.model.topology import NodeName
from controller.model.workload import Placement, Request, Workload
from srem_formats.flows import Action, Flow, Rule, VnfKind

FULL32 = 0xFFFF_FFFF
FULL16 = 0xFFFF
FULL8 = 0xFF


@dataclass(frozen=True)
class EmRegion:
    """Where an EM-hosted instance's rules live: a memory region on a rack server."""

    server: int
    region: int
    rkey: int


@dataclass(frozen=True)
class Deployment:
    """What one step's decision asks of the data plane."""

    requests: tuple[Request, ...]
    placement: Placement
    assignment: tuple[tuple[int, ...], ...]
    paths: tuple[tuple[Path, ...] | None, ...]
    """Per request: one path per virtual link (source -> VNF 1 -> ... -> target), None when rejected."""
    rules: tuple[tuple[Rule, ...], ...]
    """Every instance's rules, wherever it runs."""


def deployment_of_step(layout: Layout, substrate: Substrate, workload: Workload, result: StepResult,
                       rules_per_mb: float) -> Deployment:
    """The deployment of an evaluated step: its placement, the evaluator's paths of the accepted
    requests, and every instance's rules (`rules_per_mb` of its storage, and one per chain it serves)."""
    rules = instance_rules(layout, substrate, workload.requests, workload.assignment, rules_per_mb)
    return Deployment(workload.requests, result.placement, workload.assignment, step_paths(result), tuple(rules))


@dataclass(frozen=True)
class Steer:
    """One steering decision: at `switch`, a packet of the chain with service index `si` gets `action`;
    SERVER_RETURN's action says it may come back with that index from the server on port `port`."""

    switch: NodeName
    si: int
    action: str
    params: tuple[tuple[str, int], ...]


SERVER_RETURN = "SremIngress.accept_server_return"


def spi_of(request: Request) -> int:
    """Service path ids start at 1; chain counters are indexed by it."""
    return request.id + 1


def chain_steering(layout: Layout, substrate: Substrate, request: Request, instances: tuple[int, ...],
                   placement: Placement, paths: tuple[Path, ...]) -> tuple[Steer, ...]:
    """The steering of one accepted chain: for each virtual link, forward along its path, then process or end.

    A server processes one function per visit and returns the packet to its switch with the
    service index decremented; the switch the next path leaves the server through takes it back
    (SERVER_RETURN) with that index only, from that server's port only.
    """
    names = substrate.node_names
    hosts = [substrate.hosts[placement[k]] for k in instances]
    stops = [request.source, *(h.node for h in hosts), request.target]
    steers: list[Steer] = []
    functions = len(instances)
    for i, path in enumerate(paths):
        si = functions - i
        nodes = [names[n] for n in _nodes_of(substrate, stops[i], path)]
        if len(nodes) == 1 and nodes[0] in layout.servers:
            # The next function is on the same server: one function per visit, so send it back in.
            nodes = [nodes[0], layout.servers[nodes[0]].switch, nodes[0]]
        for here, there in zip(nodes, nodes[1:]):
            if here not in layout.switches:
                if there in layout.switches:
                    steers.append(Steer(there, si, SERVER_RETURN, (("port", layout.port(there, here)),)))
                continue
            port = layout.port(here, there)
            if there in layout.servers:
                params = (("instance", instances[i]), ("port", port), ("server_mac", _mac_int(layout.servers[there].mac)))
                steers.append(Steer(here, si, "SremIngress.to_server", params))
            else:
                steers.append(Steer(here, si, "SremIngress.forward", (("dst_mac", _mac_int(layout.switches[there].mac)), ("port", port))))
        end = names[stops[i + 1]]
        if i == functions:
            steers.append(Steer(end, si, "SremIngress.chain_end", ()))
        elif hosts[i].kind is not HostKind.SERVER:
            action = "SremIngress.process_lm" if hosts[i].kind is HostKind.LM else "SremIngress.process_em"
            steers.append(Steer(end, si, action, (("instance", instances[i]), ("vnf_type", int(kind_of(substrate, instances[i]))))))
    return tuple(steers)


def _nodes_of(substrate: Substrate, source: int, path: Path) -> list[int]:
    nodes = [source]
    for link in path:
        l = substrate.links[link]
        nodes.append(l.b if l.a == nodes[-1] else l.a)
    return nodes


def _mac_int(mac: str) -> int:
    return int(mac.replace(":", ""), 16)


def all_steering(layout: Layout, substrate: Substrate, deployment: Deployment) -> dict[int, tuple[Steer, ...] | None]:
    """SPI -> the chain's steering, None for a rejected chain."""
    return {
        spi_of(r): None if paths is None else chain_steering(layout, substrate, r, instances, deployment.placement, paths)
        for r, instances, paths in zip(deployment.requests, deployment.assignment, deployment.paths)
    }


def desired_state(layout: Layout, substrate: Substrate, deployment: Deployment, versions: Mapping[int, int],
                  em_regions: Mapping[int, EmRegion],
                  steering: Mapping[int, tuple[Steer, ...] | None] | None = None) -> dict[NodeName, SwitchState]:
    """Every switch's entries for this deployment, with each chain's configuration version (SPI ->
    version) and the regions of EM-hosted instances; `steering` is all_steering's result when the
    caller already has it."""
    if steering is None:
        steering = all_steering(layout, substrate, deployment)
    rules = deployment.rules
    per_switch: dict[NodeName, list[Entity]] = {name: _base_entries(layout, name) for name in layout.switches}
    for request in deployment.requests:
        spi = spi_of(request)
        source = substrate.node_names[request.source]
        flow = chain_flow(layout, substrate, request)
        chain = steering[spi]
        if chain is None:
            per_switch[source].append(_classifier(flow, "SremIngress.reject_chain", {"spi": spi}))
            continue
        version = versions[spi]
        per_switch[source].append(_classifier(flow, "SremIngress.push_nsh",
                                              {"spi": spi, "si": len(request.chain), "config_version": version}))
        for steer in chain:
            per_switch[steer.switch].append(steer_entry(spi, version, steer))
    for k, host_index in enumerate(deployment.placement):
        host = substrate.hosts[host_index]
        if host.kind is HostKind.SERVER:
            continue
        switch = substrate.node_names[host.node]
        kind = kind_of(substrate, k)
        if host.kind is HostKind.LM:
            per_switch[switch].extend(lm_entry(k, kind, rule) for rule in rules[k])
        else:
            region = em_regions[k]
            meter_base, meter_count = meter_cells(kind, rules[k])
            per_switch[switch].append(table_entry(E.RDMA_INDEX, {"instance": Exact(k)}, "SremIngress.em_lookup",
                                                  {"server": region.server, "region": region.region, "rkey": region.rkey,
                                                   "emac_port": EMAC_PORT, "meter_base": meter_base,
                                                   "meter_count": meter_count}))
        if kind is VnfKind.RATE_LIMITER:
            per_switch[switch].extend(meter_config(rule) for rule in rules[k])
    return {name: E.state_of(items) for name, items in per_switch.items()}


def steer_entry(spi: int, version: int, steer: Steer) -> E.TableEntry:
    match = {"spi": Exact(spi), "si": Exact(steer.si), "config_version": Exact(version)}
    if steer.action == SERVER_RETURN:
        return table_entry(E.SERVER_RETURN, {**match, "port": Exact(dict(steer.params)["port"])}, steer.action)
    return table_entry(E.STEER, match, steer.action, dict(steer.params))


def meter_cells(kind: VnfKind, rules: tuple[Rule, ...]) -> tuple[int, int]:
    """(first, count) of the meter cells an EM-hosted instance's answers may use: its rules' (a rate
    limiter's, numbered consecutively by instance_rules), none for other kinds."""
    if kind is not VnfKind.RATE_LIMITER or not rules:
        return 0, 0
    indices = sorted(rule.meter_index for rule in rules)
    if indices != list(range(indices[0], indices[0] + len(indices))):
        raise ValueError(f"a rate limiter's meter cells must be consecutive, got {indices}")
    return indices[0], len(indices)


def _classifier(flow: Flow, action: str, params: dict[str, int]) -> E.TableEntry:
    match = {"src_addr": Ternary(flow.src, FULL32), "dst_addr": Ternary(flow.dst, FULL32),
             "protocol": Ternary(flow.protocol, FULL8), "dst_port": Ternary(flow.dst_port, FULL16)}
    return table_entry(E.CLASSIFIER, match, action, params, priority=1)


def _base_entries(layout: Layout, name: NodeName) -> list[Entity]:
    """Identity, port roles and IPv4 routes (shortest path, first port on ties) to every traffic host and server."""
    me = layout.switches[name]
    items: list[Entity] = [E.DefaultAction(E.IDENTITY, "SremIngress.set_switch_id", (("switch_id", me.switch_id),))]
    items += [port_role_entry(port, role, int(me.host_ip)) for port, role in sorted(layout.port_roles(name).items())]
    targets = [(s.name, s.host_ip, s.host_mac) for s in layout.switches.values()]
    targets += [(s.name, s.ip, s.mac) for s in layout.servers.values()]
    for target, ip, mac in targets:
        if target == name:
            port, next_mac = HOST_PORT, mac
        else:
            # The next switch's own address, or the server's when the next hop is the server itself.
            hop = layout.next_hop(name, target)
            port = layout.port(name, hop)
            next_mac = layout.switches[hop].mac if hop in layout.switches else mac
        items.append(table_entry(E.IPV4, {"dst_addr": Lpm(int(ip), 32)}, "SremIngress.route",
                                 {"port": port, "dst_mac": _mac_int(next_mac)}))
    return items


def port_role_entry(port: int, role: PortRole, host_addr: int) -> E.TableEntry:
    """A port's role; a host port names the one source address it may send from."""
    if role is PortRole.HOST:
        return table_entry(E.PORT_ROLE, {"port": Exact(port)}, "SremIngress.host_port", {"host_addr": host_addr})
    return table_entry(E.PORT_ROLE, {"port": Exact(port)}, "SremIngress.set_port_role", {"role": int(role)})


def lm_entry(instance: int, kind: VnfKind, rule: Rule) -> E.TableEntry:
    """A rule as an entry of its type's LM table, scoped by the instance."""
    k = rule.key
    five = {"instance": Exact(instance), "src_addr": Ternary(k.src, FULL32), "dst_addr": Ternary(k.dst, FULL32),
            "protocol": Ternary(k.protocol, FULL8), "dst_port": Ternary(k.dst_port, FULL16)}
    if kind is VnfKind.FIREWALL:
        action = "SremIngress.vnfs.fw_permit" if rule.action is Action.PERMIT else "SremIngress.vnfs.fw_deny"
        return table_entry(E.FIREWALL, five, action, priority=1)
    if kind is VnfKind.NAT:
        match = {"instance": Exact(instance), "dst_addr": Exact(k.dst), "protocol": Exact(k.protocol), "dst_port": Exact(k.dst_port)}
        return table_entry(E.NAT, match, "SremIngress.vnfs.nat_rewrite", {"addr": rule.addr, "port": rule.port})
    if kind is VnfKind.RATE_LIMITER:
        return table_entry(E.RATE_LIMITER, five, "SremIngress.vnfs.rl_meter",
                           {"meter_index": rule.meter_index, "mark_dscp": rule.dscp, "drop_red": int(rule.drop_red)}, priority=1)
    return table_entry(E.DSCP, five, "SremIngress.vnfs.set_dscp", {"dscp": rule.dscp}, priority=1)


def meter_config(rule: Rule) -> MeterConfig:
    """Two-rate meter: yellow above the rule's rate, red above twice it; bursts of 10 ms at those rates."""
    return MeterConfig(E.FLOW_METER, rule.meter_index, rule.rate_bps, max(rule.rate_bps // 100, 1500),
                       2 * rule.rate_bps, max(rule.rate_bps // 50, 3000))


def step_paths(result: StepResult) -> tuple[tuple[Path, ...] | None, ...]:
    """The evaluator's paths of every request whose traffic the step carries; None for the others,
    which their source switch drops."""
    return tuple(r.paths if r.carried else None for r in result.requests)


def plan_em_regions(layout: Layout, substrate: Substrate, placement: Placement) -> dict[int, EmRegion]:
    """Region names for tests and benchmarks of steering alone, where no memory server runs: one per
    EM-hosted instance on its switch's memory server, numbered (switch id, instance), the number as
    key. A live data plane gets its regions from ExternalMemory.stage, which writes them first."""
    regions = {}
    for k, h in enumerate(placement):
        host = substrate.hosts[h]
        if host.kind is HostKind.EM:
            switch = layout.switches[substrate.node_names[host.node]]
            region = (switch.switch_id << 16) | k
            regions[k] = EmRegion(layout.memory_server(switch.name).server_id, region, region)
    return regions
