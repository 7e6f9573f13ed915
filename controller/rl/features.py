"""The MDP state of section V-A as a feature vector, each part scaled into [-1, 1].

In paper order: (i) remaining storage of servers, (ii) of EMs and LMs, (iii) remaining processing
capacity of every instance, (iv) per node the remaining bandwidth of its adjacent links, (v) the
current placement one-hot per instance. Two readings of ours: "remaining" capacity of an instance
is its capacity on its current host minus the traffic its requests offer in the coming step (what
the controller knows when it decides), and the link loads are those of the previous step. We add
two time features (working hours, step of the day), which the paper's figures suggest its agent
could tell apart anyway from the offered traffic.
"""

from __future__ import annotations

import numpy as np

from controller.model.evaluator import StepResult
from controller.model.feasibility import capacities
from controller.model.substrate import HostKind, Substrate
from controller.model.workload import Placement, Workload


def offered_demand_mbps(substrate: Substrate, workload: Workload) -> np.ndarray:
    """Traffic every instance's requests offer, per step: shape (steps, instances)."""
    demand = np.zeros((workload.num_steps, len(substrate.instances)))
    for req, instances in zip(workload.requests, workload.assignment):
        for k in instances:
            demand[:, k] += req.rate_mbps
    return demand


class StateEncoder:
    def __init__(self, substrate: Substrate) -> None:
        self.tables = capacities(substrate)
        hosts = substrate.hosts
        self.kind = self.tables.kinds
        n = len(substrate.node_names)
        self.incidence = np.zeros((n, len(substrate.links)))
        for link in substrate.links:
            self.incidence[link.a, link.index] = self.incidence[link.b, link.index] = 1.0
        self.link_capacity = np.array([l.capacity_mbps for l in substrate.links])
        self.node_bandwidth = self.incidence @ self.link_capacity
        self.server_hosts = np.flatnonzero(self.kind == HostKind.SERVER)
        self.em_hosts = np.flatnonzero(self.kind == HostKind.EM)
        self.lm_hosts = np.flatnonzero(self.kind == HostKind.LM)
        self.size = (len(hosts) + len(substrate.instances) + n + len(substrate.instances) * len(hosts) + 2)

    def encode(self, demand: np.ndarray, step: int, working_hours: bool, placement: Placement, last: StepResult | None) -> np.ndarray:
        """`demand` is offered_demand_mbps(...) of the workload (one row per step of its day); `last`
        the previous step's evaluation, if any."""
        p = np.asarray(placement)
        tables = self.tables
        storage = np.clip(tables.room_left_mb(placement) / tables.storage_mb, -1.0, 1.0)
        cap = tables.processing_mbps[np.arange(len(p)), p]
        instance_room = np.clip((cap - demand[step]) / cap, -1.0, 1.0)
        link_load = np.asarray(last.link_load_mbps) if last is not None else np.zeros_like(self.link_capacity)
        node_room = (self.incidence @ (self.link_capacity - link_load)) / self.node_bandwidth
        one_hot = np.zeros((len(p), len(tables.storage_mb)))
        one_hot[np.arange(len(p)), p] = 1.0
        time = [1.0 if working_hours else 0.0, step / max(len(demand) - 1, 1)]
        return np.concatenate([
            storage[self.server_hosts], storage[self.em_hosts], storage[self.lm_hosts],
            instance_room, node_room, one_hot.ravel(), time,
        ]).astype(np.float32)
