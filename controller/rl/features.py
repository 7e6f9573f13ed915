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
    def __init__(self, substrate: Substrate, num_steps: int) -> None:
        self.sub = substrate
        self.num_steps = num_steps
        hosts = substrate.hosts
        self.kind = np.array([h.kind for h in hosts])
        self.host_storage = np.array([h.storage_mb for h in hosts])
        self.instance_storage = np.array([i.type.storage_mb for i in substrate.instances])
        self.capacity = np.array([[substrate.instance_capacity_mbps(i.index, h.index) for h in hosts] for i in substrate.instances])
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

    def remaining_storage(self, placement: Placement) -> np.ndarray:
        """MB left on every host under `placement` (eq. 7's slack)."""
        used = np.bincount(np.asarray(placement), weights=self.instance_storage, minlength=len(self.host_storage))
        return self.host_storage - used

    def encode(self, demand: np.ndarray, step: int, working_hours: bool, placement: Placement, last: StepResult | None) -> np.ndarray:
        """`demand` is offered_demand_mbps(...) of the workload; `last` the previous step's evaluation, if any."""
        p = np.asarray(placement)
        storage = np.clip(self.remaining_storage(placement) / self.host_storage, -1.0, 1.0)
        cap = self.capacity[np.arange(len(p)), p]
        instance_room = np.clip((cap - demand[step]) / cap, -1.0, 1.0)
        link_load = np.asarray(last.link_load_mbps) if last is not None else np.zeros_like(self.link_capacity)
        node_room = (self.incidence @ (self.link_capacity - link_load)) / self.node_bandwidth
        one_hot = np.zeros((len(p), len(self.host_storage)))
        one_hot[np.arange(len(p)), p] = 1.0
        time = [1.0 if working_hours else 0.0, step / max(self.num_steps - 1, 1)]
        return np.concatenate([
            storage[self.server_hosts], storage[self.em_hosts], storage[self.lm_hosts],
            instance_room, node_room, one_hot.ravel(), time,
        ]).astype(np.float32)
