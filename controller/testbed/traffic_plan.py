"""What every traffic host sends in a step: each chain's flow at its rate scaled down, plus probes. Pure.

BMv2 forwards a few thousand packets per second per switch on these machines, while a `paper`
working-hours step offers gigabits per second. So data rates are scaled by one factor for the whole
run, chosen so that the busiest step offers `budget_pps` data packets per second in total; every
chain keeps its share of the traffic and its step-to-step profile. Probes go at a fixed rate per
chain whatever its data rate, so that every chain is measured as often. A chain's packets are one
UDP flow from its source switch's traffic host to its target's (rules.chain_flow), the probes in
the same flow so that they cross the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.dataplane.builder import spi_of
from controller.dataplane.layout import Layout
from controller.dataplane.rules import chain_flow
from controller.model.substrate import Substrate
from controller.model.topology import NodeName
from controller.model.workload import Workload

SOURCE_PORT = 20000
"""Source port of every chain flow (the switches do not match it)."""


@dataclass(frozen=True)
class Scale:
    """Data packets per second = rate in Mbps x `pps_per_mbps`."""

    pps_per_mbps: float
    payload: int

    @property
    def factor(self) -> float:
        """The fraction of the model's bit rate the testbed sends."""
        return self.pps_per_mbps * self.payload * 8 / 1e6


def scale_for(workload: Workload, budget_pps: float, payload: int) -> Scale:
    """The factor that makes the workload's busiest step offer `budget_pps` data packets per second."""
    busiest = max(sum(r.rate_mbps[t] for r in workload.requests) for t in range(workload.num_steps))
    return Scale(budget_pps / busiest if busiest > 0 else 0.0, payload)


def step_flows(layout: Layout, substrate: Substrate, workload: Workload, step: int, scale: Scale,
               probe_pps: float) -> dict[NodeName, list[dict[str, object]]]:
    """Source switch -> the `flows` request of its traffic host's agent (hosts/traffic.py) for `step`."""
    flows: dict[NodeName, list[dict[str, object]]] = {name: [] for name in layout.switches}
    for request in workload.requests:
        flow = chain_flow(layout, substrate, request)
        flows[substrate.node_names[request.source]].append({
            "chain": spi_of(request), "dst": str(layout.switches[substrate.node_names[request.target]].host_ip),
            "dst_port": flow.dst_port, "src_port": SOURCE_PORT, "payload": scale.payload,
            "data_pps": request.rate_mbps[step] * scale.pps_per_mbps, "probe_pps": probe_pps,
        })
    return flows

