"""The live loop: a policy drives the testbed, one (accelerated) two-hour step every `step_seconds`.

Each step: read the switches' chain counters (recorded beside the step: the policy's observation is
the model's, as in simulation - the placement in force and the previous step's evaluation - so that
a policy decides on the testbed exactly as it was evaluated), ask the policy, evaluate the decision
with the model (which requests are accepted, on which paths), deploy it through the one
deploy path (rules, EM regions, the rack servers' functions, consistent switch updates), set every
traffic host's flows to the step's rates, and let the step run while probes measure it. Before the
first step the workload's initial configuration is deployed, so that the first decision is a real
reconfiguration of running traffic. Every part's wall time is logged and exported to Prometheus.

Faults, found as they happen (a loop that shares the testbed's namespace looks at its processes every
WATCH_S while a step runs and deploys the configuration in force again at once) and at the start of the
next step: a switch whose process died is restarted and refilled
(pipeline and state: the reconciler reads what it holds); a dead memory server or EMAC is restarted (a
memory server empty); a memory server that lost the tables in force - restarted here, or by Docker when
it is a container of its own - gets them written again at the step's deploy; an EMAC that restarted or
does not answer is reported. A loop in another container than the network (compose) sees its processes
through their sockets only: it reports what does not answer and repairs the state of what came back.
A deploy that fails leaves the last good configuration in force and the loop carries on with the next step. A controller that restarts
takes over with `resume` instead of `start`: it reads the placement in force, the chains' versions
and the EM regions back from the data plane, so its next step writes only what its decision changes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import ConfigDict, TypeAdapter

from controller.dataplane import entries as E
from controller.dataplane.deploy import Deployer, DeployReport
from controller.dataplane.entries import SwitchState, TableEntry
from controller.dataplane.external_memory import ExternalMemory, regions_held
from controller.dataplane.p4info import P4Schema
from controller.dataplane.p4runtime_client import Pipeline, SwitchClient
from controller.dataplane.rack_servers import RackServers
from controller.dataplane.reconciler import DataPlane
from controller.errors import SremError
from controller.model.dataset import Dataset
from controller.model.evaluator import StepEvaluator, StepResult
from controller.model.scenario import DataplaneParams
from controller.model.units import mbps_to_mb_per_s
from controller.model.substrate import Substrate
from controller.model.topology import NodeName
from controller.model.workload import Placement, Workload
from controller.policies.base import Policy, observe, start_day
from controller.testbed import state as st
from controller.testbed.load import busy_share, cpu_times
from controller.testbed.network import Testbed
from controller.testbed.probes import ProbeLog
from controller.testbed.scrape import metric
from controller.testbed.traffic_plan import Scale, scale_for, step_flows
from hosts.control import ControlError, call
from srem_formats.bounded_servers import MetricsServer, serve_metrics

log = logging.getLogger(__name__)
LM_TABLES = (E.FIREWALL, E.NAT, E.RATE_LIMITER, E.DSCP)


@dataclass(frozen=True)
class LoopSettings:
    step_seconds: float = 10.0
    """Wall time of one step (the model's two hours)."""
    probe_pps: float = 5.0
    """Probes per second per chain. With budget_pps, what a 2-core machine carries beside one other BMv2 without
    losing a probe (the demo's settings; 10 and 1000 lost 26% of probes there, issue 20)."""
    budget_pps: float = 300.0
    """Data packets per second in total at the workload's busiest step (traffic_plan.scale_for)."""
    payload: int = 200
    """UDP payload bytes of data and probe packets."""
    election_id: int = 1
    """The controller's P4Runtime election id: the switches take the highest connected one as primary."""
    role: str = ""
    """The controller's P4Runtime role (empty: full access to every table)."""


@dataclass
class StepRecord:
    __pydantic_config__ = ConfigDict(extra="forbid")  # a resumed run reads these back (STEP_RECORD): no unknown keys

    step: int
    hour: int
    working_hours: bool
    placement: dict[str, str]
    """Instance -> host name."""
    moved: list[str]
    accepted: int
    carried: int
    requests: int
    predicted_delay_ms: dict[int, float]
    """Chain (SPI) -> the model's delay of the carried chains once the step's configuration is in
    place: processing + transmission (eq. 16 without the step's one-off reconfiguration delay), what
    a probe sent during the step should see. When the deploy failed, those of the configuration that
    stayed in force (the previous step's)."""
    seconds: dict[str, float]
    """Wall time of each part: heal (when something had died), decide, evaluate, then the deploy
    path's (rules, em, build, prepare, servers, commit, drain, cleanup), flows."""
    started_ns: int
    reconfigured_ns: int
    """When the switches committed the step's configuration (after the deploy returned)."""
    counters: dict[int, int] = field(default_factory=dict)
    """Chain (SPI) -> packets its source switch classified so far (chain_counter), read at the step's start."""
    notes: list[str] = field(default_factory=list)
    """What went wrong in this step and what the loop did about it (one line each)."""
    written: dict[str, int] = field(default_factory=dict)
    """What the deploy wrote: switch_updates (entries and meter cells, all phases), em_regions and
    em_bytes (tables written to memory servers), em_adopted (regions a resumed controller read back
    and kept). All 0 when the data plane already held the decision."""
    repaired_ns: list[int] = field(default_factory=list)
    """When each repair made during the step (after its work, while it ran) had the configuration in force again."""
    cpu_busy: float | None = None
    """The share of all the machine's cores busy from the step's start to its end (load.py): what tells loss from
    overload apart from loss from faults. None for a step not held to its end by `run`."""


WATCH_S = 0.1
"""How often a running step looks for faults: a fault is found within this of happening (healing takes longer)."""
WATCHED = ("switch", "memserver", "emac")
"""The testbed processes whose death the loop repairs as it happens (the host processes are Mininet's)."""

STEP_RECORD = TypeAdapter(StepRecord)
"""Validates a step-N.json a resumed run reads back (JSON object keys, the chains, become ints again)."""


class Metrics:
    """The loop's Prometheus metrics, in their own registry (the CLI serves it when asked)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.part_seconds = Histogram("srem_loop_part_seconds", "Wall time of one part of a step", ["part"],
                                      registry=self.registry, buckets=(0.001, 0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10))
        self.step = Gauge("srem_loop_step", "The step the loop is in", registry=self.registry)
        self.accepted = Gauge("srem_loop_accepted_ratio", "Accepted requests / requests of the step (model)", registry=self.registry)
        self.faults = Counter("srem_loop_faults_total", "Faults the loop handled", ["kind"], registry=self.registry)
        self.deploys = Counter("srem_loop_deploys", "Configurations deployed, the initial one included", registry=self.registry)

    def serve(self, host: str, port: int) -> MetricsServer:
        """Serve /metrics on HOST:PORT (port 0: any) from a thread, until the returned server's `shutdown()`."""
        return serve_metrics(self.registry, host, port, name="loop metrics")


class LiveLoop:
    def __init__(self, testbed: Testbed, dataset: Dataset, dataplane: DataplaneParams, workload_index: int, policy: Policy,
                 settings: LoopSettings, out: Path, split: str = "test") -> None:
        workloads = dataset.split(split)
        if not 0 <= workload_index < len(workloads):
            raise SremError(f"workload {workload_index} out of range: the {split} split has {len(workloads)} (0..{len(workloads) - 1})",
                            where="--workload")
        self.substrate = dataset.substrate
        if testbed.topology.spec != self.substrate.spec.topology:
            missing = sorted(set(self.substrate.node_names) - set(testbed.layout.node_names))
            differs = f"it lacks {', '.join(missing[:3])}" if missing else "its nodes or links differ"
            raise SremError(f"the running network is not the scenario's topology ({differs}); bring the testbed up from "
                            "the scenario's topology file", where=str(testbed.run_dir))
        self.testbed, self.dataset, self.settings, self.out = testbed, dataset, settings, out
        self.workload: Workload = workloads[workload_index]
        self.policy = policy
        policy.bind(self.substrate)
        policy.use_objective(dataset.objective_weights)
        start_day(policy, self.substrate, self.workload)
        self.evaluator = StepEvaluator(self.substrate, dataset.objective_weights)
        layout = testbed.layout
        schema = P4Schema.load()
        self.clients = {n: SwitchClient(n, testbed.grpc_address(n), testbed.device_id(n), schema, timeout_s=10.0,
                                        election_id=settings.election_id, role=settings.role, tls=testbed.controller_tls,
                                        on_mastership=lambda line: log.warning("%s", line))
                        for n in layout.switches}
        self.plane = DataPlane(layout, self.substrate, self.clients, Pipeline.load(), drain_s=self._drain_s())
        self.memory = ExternalMemory(layout, self.substrate, testbed.memory_servers, key=testbed.memory_key)
        self.servers = RackServers(layout, self.substrate, {s: testbed.control_socket(s) for s in layout.servers})
        self.deployer = Deployer(self.plane, self.memory, dataplane, self.servers)
        self.agents = {s: testbed.control_socket(testbed.traffic_host(s)) for s in layout.switches}
        self.scale: Scale = scale_for(self.workload, settings.budget_pps, settings.payload)
        self.placement: Placement = self.workload.initial_placement
        self.last: StepResult | None = None
        self._step_cpu = cpu_times()
        """The machine's CPU time when the current step started (its record's cpu_busy)."""
        self.records: list[StepRecord] = []
        self.probes = ProbeLog()
        self.metrics = Metrics()
        self.emac_started: float | None = None
        """The EMAC's start time when last seen (its /metrics): a change means it restarted."""
        self._taken_over = False

    def _drain_s(self) -> float:
        """How long the old version's entries stay after the commit: a packet stamped with it may still
        be on its way through every server function of its chain (the longest chain at the highest rate
        on the slowest server), twice that for the switches' and hosts' own delays, which reach the
        same order on a loaded testbed (probes' p99 up to ~200 ms), plus a quarter second."""
        worst = max((r.rate_mbps[t] * len(r.chain) for r in self.workload.requests for t in range(self.workload.num_steps)),
                    default=0.0)
        per_mb = max(h.processing_delay_ms_per_mb for h in self.substrate.hosts)
        return 0.25 + 2 * mbps_to_mb_per_s(worst) * per_mb / 1e3

    def start(self, idle: Callable[[], None] | None = None) -> None:
        """Take the switches (push the program where missing) and deploy the workload's initial
        configuration; `idle` runs once the switches forward and before any chain traffic flows (the
        run's idle latency baseline)."""
        self.plane.connect()
        self.out.mkdir(parents=True, exist_ok=True)
        initial = self.evaluator.evaluate(self.workload, 0, self.placement, self.placement)
        self.deployer.deploy(self.workload, initial, resync=True)
        self.metrics.deploys.inc()
        self.emac_started = self._emac_started()
        if idle is not None:
            idle()
        self._set_flows(0)

    def resume(self) -> None:
        """Take over the data plane of a controller that stopped (the testbed and its traffic running on):
        become primary on every switch (the program is pushed only where none runs), and read back what is
        in force - every switch's entries (the chains' versions), the EM regions they point at (adopted,
        checked against their tables at the next deploy), the instances the rack servers serve - so the
        next step writes only what its decision changes. The traffic keeps its rates until that step."""
        self.plane.connect()
        self.out.mkdir(parents=True, exist_ok=True)
        held = self.plane.read()
        self.plane.known = held
        self.memory.adopt(regions_held(held))
        served = {name: {int(k) for k in client.status().get("instances", {})} for name, client in self.servers.clients.items()}
        self.placement = placement_held(self.substrate, held, served, self.workload.initial_placement)
        self.servers.location = {k: name for name, instances in served.items() for k in instances}

    def take_over(self, records: list[StepRecord], answers: Iterable[Mapping[str, object]]) -> None:
        """Continue the run a controller that stopped left in `out`: `resume` the data plane, then take its step
        records and probe answers as this run's (the tables then cover the whole day) and the evaluation of its
        last step as the previous one, so the policy observes what it would have. The next step is
        `len(records)`; the first step this loop runs notes the take-over. Records not of this run's day and
        scenario are refused (SremError) before anything is touched."""
        check_recorded(records, self.dataset, self.out)
        probes = recorded_probes(answers, self.out)
        self.resume()
        self.records = list(records)
        self.probes = probes
        if records:
            hosts = self.substrate.host_index
            names = [i.name for i in self.substrate.instances]
            placements = [tuple(hosts[r.placement[n]] for n in names) for r in records]
            before = placements[-2] if len(placements) > 1 else self.workload.initial_placement
            self.last = self.evaluator.evaluate(self.workload, records[-1].step, before, placements[-1])
        self._taken_over = True

    def run_step(self, step: int, placement: Placement | None = None) -> StepRecord:
        """One step: the policy's decision (or `placement`, to force one) made true and left running."""
        started = time.perf_counter()
        started_ns = time.time_ns()
        self._step_cpu = cpu_times()
        notes = self._heal()
        seconds: dict[str, float] = {"heal": time.perf_counter() - started} if notes else {}
        if self._taken_over:
            self._taken_over = False
            notes.append(f"a restarted controller took over: the configuration in force read back from the data plane, "
                         f"the run continued at step {step}")
        hour = self.dataset.hours[step]
        working = self.dataset.is_working_hour(hour)
        self.metrics.step.set(step)
        counters = self._counters(notes)
        t = time.perf_counter()
        observation = observe(self.substrate, self.workload, step, hour, working, self.placement, self.last)
        decided = tuple(int(h) for h in (placement if placement is not None else self.policy.decide(observation)))
        seconds["decide"] = time.perf_counter() - t
        t = time.perf_counter()
        result = self.evaluator.evaluate(self.workload, step, self.placement, decided)
        seconds["evaluate"] = time.perf_counter() - t
        previous = self.last
        try:
            report: DeployReport | None = self.deployer.deploy(self.workload, result, resync=bool(notes))
        except (SremError, ControlError, OSError) as exc:
            report = None
            notes.append(f"deploy failed, the last good configuration stays in force: {exc}")
            self.metrics.faults.labels("deploy").inc()
        reconfigured_ns = time.time_ns()
        written: dict[str, int] = {}
        if report is not None:
            self.metrics.deploys.inc()
            seconds.update(report.seconds)
            em = self.memory.last
            written = {"switch_updates": report.applied.plan.count(), "em_regions": em.regions, "em_bytes": em.bytes,
                       "em_adopted": em.adopted}
            moved = [self.substrate.instances[k].name for k, (a, b) in enumerate(zip(self.placement, decided)) if a != b]
            self.placement, self.last = decided, result
        else:
            moved = []
        t = time.perf_counter()
        self._set_flows(step)
        seconds["flows"] = time.perf_counter() - t
        for part, value in seconds.items():
            self.metrics.part_seconds.labels(part).observe(value)
        self.metrics.accepted.set(result.acceptance_ratio)
        used = time.perf_counter() - started
        if used > self.settings.step_seconds:
            notes.append(f"the step's work took {used:.2f} s, longer than the step ({self.settings.step_seconds:g} s)")
        hosts = self.substrate.hosts
        record = StepRecord(
            step, hour, working, {i.name: hosts[h].name for i, h in zip(self.substrate.instances, self.placement)}, moved,
            result.accepted, sum(r.carried for r in result.requests), len(result.requests),
            _carried_delays(result if report is not None else previous),
            seconds, started_ns, reconfigured_ns, counters, notes, written)
        self.records.append(record)
        self._write_record(record)
        return record

    def _write_record(self, record: StepRecord) -> None:
        # Written whole or not at all: a controller that takes over after a crash reads these back.
        path = self.out / f"step-{record.step}.json"
        path.with_suffix(".tmp").write_text(json.dumps(asdict(record), indent=1))
        os.replace(path.with_suffix(".tmp"), path)

    def run(self, steps: int | None = None, on_step: Callable[[StepRecord], None] | None = None,
            first: int = 0, forced: Mapping[int, Placement] | None = None) -> list[StepRecord]:
        """The day's steps from `first` (a resumed controller's next step), or `steps` of them, each lasting
        `step_seconds` (`forced[step]` replaces the policy's decision); probes collected after each."""
        last = len(self.dataset.hours) if steps is None else min(len(self.dataset.hours), first + steps)
        for step in range(first, last):
            began = time.perf_counter()
            record = self.run_step(step, (forced or {}).get(step))
            if on_step is not None:
                on_step(record)
            self.hold(began + self.settings.step_seconds)
            self.collect()
        return self.records

    def hold(self, until: float) -> None:
        """Let the step run until `until` (time.perf_counter()), repairing faults as they happen: every WATCH_S
        the testbed's processes are looked at (when this loop shares their namespace), and a fault found is healed
        and the configuration in force deployed again at once, noted in the step's record with when it was whole
        again."""
        while (left := until - time.perf_counter()) > 0:
            time.sleep(min(WATCH_S, left))
            if self._failed():
                self.repair()
        if self.records:
            record = self.records[-1]
            record.cpu_busy = busy_share(self._step_cpu, cpu_times())
            self._write_record(record)

    def repair(self) -> list[str]:
        """Heal what failed and deploy the configuration in force again (the reconciler refills a restarted
        switch, lost EM tables are written again); its notes go to the current step's record, rewritten."""
        notes = self._heal()
        if not notes:
            return notes
        # What is in force: the last deployed step's result, or before any step the workload's initial configuration.
        in_force = self.last or self.evaluator.evaluate(self.workload, 0, self.placement, self.placement)
        try:
            self.deployer.deploy(self.workload, in_force, resync=True)
            self.metrics.deploys.inc()
        except (SremError, ControlError, OSError) as exc:
            notes.append(f"redeploying the configuration in force failed; the next step deploys again: {exc}")
        if self.records:
            record = self.records[-1]
            record.notes += [f"during the step: {note}" for note in notes]
            record.repaired_ns.append(time.time_ns())
            self._write_record(record)
        for note in notes:
            log.warning("%s", note)
        return notes

    def _failed(self) -> bool:
        """Whether a switch, memory server or EMAC process of the testbed died since the last look (cheap: the state
        file and /proc). A loop in another container sees those through their sockets only, at the next step."""
        if not self.testbed.local:
            return False
        state = self.testbed.reload()
        return any(not st.alive(record) for key, record in state.processes.items() if key.split(":")[0] in WATCHED)

    def collect(self) -> None:
        """Every traffic host's probe records so far, into the run's log (and its raw answers to disk)."""
        with open(self.out / "probes.jsonl", "a") as f:
            for switch, path in self.agents.items():
                try:
                    answer = call(path, "collect", timeout=10.0)
                except ControlError as exc:
                    log.warning("no probes from %s: %s", switch, exc)
                    continue
                self.probes.add(answer)
                f.write(json.dumps(answer) + "\n")

    def stop_traffic(self) -> None:
        for path in self.agents.values():
            try:
                call(path, "flows", flows=[])
            except ControlError as exc:
                log.warning("%s", exc)

    def close(self) -> None:
        self.plane.close()

    def _set_flows(self, step: int) -> None:
        flows = step_flows(self.testbed.layout, self.substrate, self.workload, step, self.scale, self.settings.probe_pps)
        for switch, path in self.agents.items():
            call(path, "flows", flows=flows[switch])

    def _counters(self, notes: list[str]) -> dict[int, int]:
        """Each chain's cell of chain_counter at its source switch (cell by cell: reading the whole
        counter from BMv2 takes most of a second per switch)."""
        counts: dict[int, int] = {}
        for request in self.workload.requests:
            source = self.substrate.node_names[request.source]
            spi = request.id + 1
            try:
                cells = self.clients[source].read_counter(E.CHAIN_COUNTER, spi)
            except SremError as exc:
                notes.append(f"chain counter of {spi} on {source} unreadable: {exc}")
                continue
            counts[spi] = cells.get(spi, (0, 0))[0]
        return counts

    def _heal(self) -> list[str]:
        """Find what failed since the last step and repair what this controller can; one note per fault (the
        step's deploy then re-reads the switches and rewrites the lost EM tables). A controller that shares the
        testbed's process namespace restarts dead switches, memory servers and the EMAC itself; one in another
        container sees them through their sockets only (their containers restart them) and repairs their
        state. What cannot be repaired now is noted and left to the next step."""
        notes = self._heal_switches()
        if self.testbed.local:
            notes += self._restart_external_memory()
        notes += self._check_external_memory()
        return notes

    def _heal_switches(self) -> list[str]:
        notes = []
        for name, client in self.clients.items():
            if not self.testbed.local:
                if not self.testbed.grpc_answers(name):
                    self.metrics.faults.labels("switch").inc()
                    notes.append(f"switch {name} does not answer at {self.testbed.grpc_address(name)}: "
                                 "its rules cannot change this step")
                continue
            if self.testbed.switch_alive(name):
                continue
            self.metrics.faults.labels("switch").inc()
            try:
                self.testbed.restart_switch(name)
                client.connect()
                pushed = client.set_pipeline(self.plane.pipeline)
            except SremError as exc:
                notes.append(f"switch {name} had died and could not be restarted: {exc}")
                continue
            notes.append(f"switch {name} had died: restarted, {'pipeline pushed' if pushed else 'pipeline in place'}, "
                         "state refilled by the reconciler")
        return notes

    def _restart_external_memory(self) -> list[str]:
        notes = []
        for server in self.testbed.layout.servers.values():
            if self.testbed.process_alive(f"memserver:{server.name}"):
                continue
            self.metrics.faults.labels("memory_server").inc()
            try:
                self.testbed.restart_memory_server(server.name)
            except SremError as exc:
                notes.append(f"memory server of {server.name} had died and could not be restarted: {exc}")
                continue
            lost = self.memory.forget_server(server.server_id)
            notes.append(f"memory server of {server.name} had died: restarted empty; EM tables of instances "
                         f"{self._names(lost)} written again")
        if "emac" in self.testbed.reload().processes and not self.testbed.process_alive("emac"):
            self.metrics.faults.labels("emac").inc()
            try:
                self.testbed.restart_emac()
                notes.append("the EMAC had died: restarted (it holds no state; EM lookups in between were dropped)")
            except SremError as exc:
                notes.append(f"the EMAC had died and could not be restarted: {exc}")
            self.emac_started = self._emac_started()
        return notes

    def _check_external_memory(self) -> list[str]:
        """Memory servers that lost the regions in force (restarted empty) or do not answer, and an EMAC that
        restarted or does not answer, whoever restarts them."""
        notes = []
        servers = {s.server_id: s.name for s in self.testbed.layout.servers.values()}
        for server, state in self.memory.check().items():
            self.metrics.faults.labels("memory_server").inc()
            if state == "lost":
                lost = self.memory.forget_server(server)
                notes.append(f"memory server of {servers[server]} restarted empty: EM tables of instances {self._names(lost)} "
                             "written again")
            else:
                notes.append(f"memory server of {servers[server]} does not answer: lookups of the EM tables it holds fail "
                             "until it is back")
        if self.testbed.state.emac_metrics is not None:
            started = self._emac_started()
            if started is None:
                self.metrics.faults.labels("emac").inc()
                notes.append(f"the EMAC does not answer (its /metrics at {self.testbed.state.emac_metrics}): "
                             "EM lookups are dropped until it is back")
            elif self.emac_started is not None and started != self.emac_started:
                self.metrics.faults.labels("emac").inc()
                notes.append("the EMAC restarted since the last step: EM lookups sent while it was down were dropped; "
                             "it serves again (it holds no state)")
            if started is not None:
                self.emac_started = started
        return notes

    def _emac_started(self) -> float | None:
        address = self.testbed.reload().emac_metrics
        return None if address is None else metric(address, "srem_emac_start_time_seconds")

    def _names(self, instances: list[int]) -> str:
        return ", ".join(self.substrate.instances[k].name for k in instances) or "(none)"


def check_recorded(records: list[StepRecord], dataset: Dataset, out: Path) -> None:
    """Refuse (SremError naming the step file) records a resumed run cannot be of this dataset's day: more steps
    than the day has, another hour at a step, a placement of other instances or onto hosts it does not have."""
    hours, hosts = dataset.hours, dataset.substrate.host_index
    if len(records) > len(hours):
        raise SremError(f"{len(records)} step records, but the day has {len(hours)} steps", where=out)
    names = {i.name for i in dataset.substrate.instances}
    for r in records:
        where = out / f"step-{r.step}.json"
        if r.hour != hours[r.step]:
            raise SremError(f"records hour {r.hour} for step {r.step}, which is hour {hours[r.step]} of this day", where=where)
        if set(r.placement) != names:
            odd = sorted(set(r.placement) ^ names)
            raise SremError(f"its placement does not name this scenario's instances ({', '.join(odd[:3])}"
                            f"{' ...' if len(odd) > 3 else ''})", where=where)
        if unknown := sorted({h for h in r.placement.values() if h not in hosts}):
            raise SremError(f"its placement names {', '.join(unknown[:3])}, not a host of this scenario", where=where)


def recorded_probes(answers: Iterable[Mapping[str, object]], out: Path) -> ProbeLog:
    """The probe log of the answers a stopped controller wrote to OUT/probes.jsonl, one a line; SremError naming
    the line of the first the analysis cannot take."""
    probes = ProbeLog()
    for number, answer in enumerate(answers, 1):
        try:
            probes.add(answer)
        except SremError as exc:
            raise SremError(exc.one_line(), where=out / "probes.jsonl", key=f"line {number}") from None
    return probes


def _carried_delays(result: StepResult | None) -> dict[int, float]:
    """Chain (SPI) -> the model's processing + transmission delay, for the chains `result` carries."""
    if result is None:
        return {}
    return {r.request + 1: r.processing_ms + r.transmission_ms for r in result.requests if r.carried}


def placement_held(substrate: Substrate, held: Mapping[NodeName, SwitchState], served: Mapping[NodeName, Iterable[int]],
                   fallback: Placement) -> Placement:
    """The placement a data plane realises: an instance with rules in a switch's LM tables is in its LM, one
    with an entry in its RDMA table in its EM, one a rack server serves on that server; an instance none
    of them shows (on a server, carrying no chain: nothing depends on where) keeps its host in `fallback`."""
    index = substrate.host_index
    where: dict[int, int] = {}
    for server, instances in served.items():
        where.update(dict.fromkeys(instances, index[server]))
    for switch, state in held.items():
        for entity in state.values():
            if isinstance(entity, TableEntry) and (entity.table in LM_TABLES or entity.table == E.RDMA_INDEX):
                kind = "em" if entity.table == E.RDMA_INDEX else "lm"
                where[dict(entity.match)["instance"].value] = index[f"{kind}:{switch}"]  # type: ignore[union-attr]
    return tuple(where.get(k, h) for k, h in enumerate(fallback))
