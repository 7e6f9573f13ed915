"""The testbed's numbering plan, derived from the topology file alone: switch ids, ports, addresses.

The controller, the Mininet testbed and the EMAC all derive their numbers from here, so they agree
without a second configuration file. Every switch has:

- port 1: its traffic host (where the chains' traffic enters and leaves), 10.1.x.y;
- ports 2..: its links, in the order of the topology file;
- port EMAC_PORT: its External Memory Access Controller; port CPU_PORT: the controller.

Each port's role (PortRole: host, switch link, server, EMAC, CPU) is what the switch trusts it to
send (p4src/include/control/port_role.p4); `port_roles` lists them.

Servers get 10.2.x.y. Switch ids count from 1 in the file's order (0 means "unconfigured" in the
P4 program); servers' ids count from 1 too.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass
from enum import IntEnum
from functools import cached_property

from controller.model.topology import NodeName, TopologyFile

HOST_PORT = 1
FIRST_LINK_PORT = 2
EMAC_PORT = 100
CPU_PORT = 255
"""Must equal CPU_PORT of p4src/include/define.p4."""
GRPC_BASE_PORT = 50000
"""Switch N's P4Runtime server listens on GRPC_BASE_PORT + N in the testbed."""
SWITCH_NET = ipaddress.IPv4Address("10.1.0.0")
SERVER_NET = ipaddress.IPv4Address("10.2.0.0")
MAX_IDS = 65535


class PortRole(IntEnum):
    """What is attached to a port: PORT_ROLE_* of p4src/include/define.p4. A port without one sends nothing in."""

    HOST = 1
    """Plain IPv4 from the host's own address only."""
    LINK = 2
    """Another switch: NSH and plain IPv4."""
    SERVER = 3
    """NSH only for the chains the server sends back (server_return); plain IPv4."""
    EMAC = 4
    """Answers to the switch's outstanding EMAC requests only."""
    CPU = 5
    """The controller."""


def _mac(kind: int, number: int) -> str:
    return f"02:53:{kind:02x}:00:{number >> 8:02x}:{number & 0xFF:02x}"


@dataclass(frozen=True)
class SwitchLayout:
    name: NodeName
    switch_id: int
    ports: dict[NodeName, int]
    """Neighbour -> the port of this switch that leads to it."""

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{GRPC_BASE_PORT + self.switch_id}"

    @property
    def host_ip(self) -> ipaddress.IPv4Address:
        """The traffic host behind port HOST_PORT."""
        return SWITCH_NET + self.switch_id

    @property
    def host_mac(self) -> str:
        return _mac(1, self.switch_id)

    @property
    def mac(self) -> str:
        return _mac(0, self.switch_id)


@dataclass(frozen=True)
class ServerLayout:
    name: NodeName
    server_id: int
    switch: NodeName
    """The switch the server hangs off (its first link in the file)."""

    @property
    def ip(self) -> ipaddress.IPv4Address:
        return SERVER_NET + self.server_id

    @property
    def mac(self) -> str:
        return _mac(2, self.server_id)


class Layout:
    """Ids, ports and addresses of one topology."""

    def __init__(self, spec: TopologyFile) -> None:
        if len(spec.switches) > MAX_IDS or len(spec.servers) > MAX_IDS:
            raise ValueError(f"at most {MAX_IDS} switches and servers")
        self.spec = spec
        self.node_names = [n.name for n in [*spec.switches, *spec.servers]]
        self.neighbours: dict[NodeName, list[NodeName]] = {n: [] for n in self.node_names}
        for link in spec.links:
            self.neighbours[link.a].append(link.b)
            self.neighbours[link.b].append(link.a)
        self.switches = {
            s.name: SwitchLayout(s.name, i + 1, {n: FIRST_LINK_PORT + k for k, n in enumerate(self.neighbours[s.name])})
            for i, s in enumerate(spec.switches)
        }
        self.servers = {s.name: ServerLayout(s.name, i + 1, self.neighbours[s.name][0]) for i, s in enumerate(spec.servers)}

    def port(self, switch: NodeName, neighbour: NodeName) -> int:
        return self.switches[switch].ports[neighbour]

    def port_roles(self, switch: NodeName) -> dict[int, PortRole]:
        """Every port of `switch` -> its role."""
        roles = {HOST_PORT: PortRole.HOST, EMAC_PORT: PortRole.EMAC, CPU_PORT: PortRole.CPU}
        for neighbour, port in self.switches[switch].ports.items():
            if port in roles:
                raise ValueError(f"{switch}: the port to {neighbour} ({port}) is its {roles[port].name.lower()} port")
            roles[port] = PortRole.SERVER if neighbour in self.servers else PortRole.LINK
        return roles

    @cached_property
    def _hops(self) -> dict[NodeName, dict[NodeName, int]]:
        return {node: self._bfs(node) for node in self.node_names}

    def _bfs(self, source: NodeName) -> dict[NodeName, int]:
        hops = {source: 0}
        queue = deque([source])
        while queue:
            node = queue.popleft()
            for nxt in self.neighbours[node]:
                # Servers do not forward: a shortest path never passes through one.
                if nxt not in hops and (node == source or node in self.switches):
                    hops[nxt] = hops[node] + 1
                    queue.append(nxt)
        return hops

    def next_hop(self, switch: NodeName, target: NodeName) -> NodeName:
        """The neighbour of `switch` on a shortest path to `target`; the first in port order on ties."""
        hops = self._hops[target]
        return min((n for n in self.neighbours[switch] if n in hops and (n in self.switches or n == target)),
                   key=lambda n: (hops[n], self.port(switch, n)))

    def memory_server(self, switch: NodeName) -> ServerLayout:
        """The rack server whose DRAM is `switch`'s external memory: the nearest one, by file order on ties."""
        hops = self._hops[switch]
        return min(self.servers.values(), key=lambda s: (hops[s.name], s.server_id))
