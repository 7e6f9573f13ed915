"""The MDP state of section V-A as a feature vector, each part scaled into [-1, 1].

In paper order: (i) remaining storage of servers, (ii) of EMs and LMs, (iii) remaining processing
capacity of every instance, (iv) per node the remaining bandwidth of its adjacent links, (v) the
current placement one-hot per instance. Two readings of ours: "remaining" capacity of an instance
is its capacity on its current host minus the traffic its requests offer in the coming step (what
the controller knows when it decides), and the link loads are those of the previous step. We add
two time features (working hours, step of the day), which the paper's figures suggest its agent
could tell apart anyway from the offered traffic. With `schedule` (issue 19), two flags per instance
from the public schedule: it serves a class busy in the coming step, and one busy in the step after;
the rates of that later step are not known when deciding, its schedule is. With `hosts`, three
features per (instance, host) pair, the model's estimate (controller/model/estimates.py) of moving
the instance there with the others where they are: the share of its requests that keep their
deadlines in the coming step, the share expected to in the next step had it moved there now (the
schedule's busy classes at the mean busy rate and deadline seen so far), and how dear the host is
among the instance's hosts (IT, move and bandwidth cost, scaled to [0, 1]). The paper's state says
nothing of where an instance's requests enter and leave the network; these do.
"""

from __future__ import annotations

import numpy as np

from controller.model.estimates import ChainEstimator, next_step_traffic, step_traffic
from controller.model.evaluator import StepResult
from controller.model.feasibility import capacities
from controller.model.substrate import HostKind, Substrate
from controller.model.workload import Placement, Workload


def offered_demand_mbps(substrate: Substrate, workload: Workload) -> np.ndarray:
    """Traffic every instance's requests offer, per step the workload knows: shape (known steps, instances)."""
    demand = np.zeros((workload.known_steps, len(substrate.instances)))
    for req, instances in zip(workload.requests, workload.assignment):
        for k in instances:
            demand[:, k] += req.rate_mbps
    return demand


HOST_FEATURES = 3
"""Per (instance, host): kept share now, kept share next step, relative cost."""


def host_features(estimator: ChainEstimator, workload: Workload, step: int, placement: Placement) -> np.ndarray:
    """(instances, hosts, HOST_FEATURES), as the module docstring says."""
    p = np.asarray(placement)
    instances, hosts = len(p), len(estimator.tables.host_node)
    out = np.zeros((instances, hosts, HOST_FEATURES), dtype=np.float32)
    placed = np.ones(instances, dtype=bool)
    now = step_traffic(workload, step)
    ahead = next_step_traffic(workload, step)
    for k in range(instances):
        users = max(len(estimator.users[k][0]), 1)
        kept, cost = estimator.host_scores(k, p, p, placed, *now)
        out[k, :, 0] = kept / users
        if ahead is not None:
            out[k, :, 1] = estimator.host_scores(k, p, p, placed, *ahead, arrived=True)[0] / users
        out[k, :, 2] = (cost - cost.min()) / max(cost.max() - cost.min(), 1e-9)
    return out


class StateEncoder:
    def __init__(self, substrate: Substrate, schedule: bool = False, host_estimates: bool = False) -> None:
        self.schedule, self.host_estimates = schedule, host_estimates
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
        self.size = (len(hosts) + len(substrate.instances) + n + len(substrate.instances) * len(hosts) + 2
                     + (2 * len(substrate.instances) if schedule else 0))
        self.host_feature_count = HOST_FEATURES if host_estimates else 0
        self.size += len(substrate.instances) * len(hosts) * self.host_feature_count

    def encode(self, demand: np.ndarray, step: int, workload: Workload, working_hours: bool, placement: Placement,
               last: StepResult | None, estimator: ChainEstimator | None = None) -> np.ndarray:
        """`demand` is the traffic each instance's requests offer in the coming step (a row of
        offered_demand_mbps); `workload` gives the day's length and its schedule (and, known up to
        `step`, the traffic the host features read through `estimator`, built for this workload);
        `last` the previous step's evaluation, if any."""
        p = np.asarray(placement)
        tables = self.tables
        storage = np.clip(tables.room_left_mb(placement) / tables.storage_mb, -1.0, 1.0)
        cap = tables.processing_mbps[np.arange(len(p)), p]
        instance_room = np.clip((cap - demand) / cap, -1.0, 1.0)
        link_load = np.asarray(last.link_load_mbps) if last is not None else np.zeros_like(self.link_capacity)
        node_room = (self.incidence @ (self.link_capacity - link_load)) / self.node_bandwidth
        one_hot = np.zeros((len(p), len(tables.storage_mb)))
        one_hot[np.arange(len(p)), p] = 1.0
        time = [1.0 if working_hours else 0.0, step / max(workload.num_steps - 1, 1)]
        instances = len(p)
        extra = [workload.busy_instances(s, instances) for s in (step, step + 1)] if self.schedule else []
        if self.host_estimates:
            assert estimator is not None, "host features need the workload's estimator"
            extra.append(host_features(estimator, workload, step, placement).ravel())
        return np.concatenate([
            storage[self.server_hosts], storage[self.em_hosts], storage[self.lm_hosts],
            instance_room, node_room, one_hot.ravel(), time, *extra,
        ]).astype(np.float32)
