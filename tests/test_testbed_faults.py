"""Faults the live loop survives, on the `small` scenario's testbed with traffic and probes on every chain:
a switch killed mid-run, a memory server killed under an EM-hosted instance, and the controller
restarted. What must hold: the chains the fault touches lose probes only inside the fault window
(from the fault, moved earlier by the longest one-way latency measured before it for the probes
already on their way when it struck, to the healing step's reconfiguration), the others lose none,
and the next step makes the data plane whole again (the switches' tables read back are the deploy
path's entries).
A restarted controller reads the data plane back and writes nothing at all when its decision is
what is in force. Each test prints its recovery time (fault to the chain delivering again).

Besides, without a testbed: the outage analysis on records whose losses are known, reading a
placement back from the entries the deploy path writes, and ExternalMemory adopting regions it did
not write (kept when they hold the table it would write, replaced and freed when not).

Every decision is taken at the 10:00 step's rates (the chains' busy hour), as in test_testbed_live.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controller.dataplane import entries as E
from controller.dataplane.builder import Deployment, all_steering, deployment_of_step, desired_state, plan_em_regions
from controller.dataplane.consistency import choose_versions
from controller.dataplane.entries import TableEntry
from controller.dataplane.external_memory import ExternalMemory, regions_held
from controller.dataplane.layout import Layout
from controller.dataplane.server_functions import server_functions
from controller.model.constraints import storage_violations
from controller.model.dataset import Dataset
from controller.model.evaluator import StepEvaluator
from controller.model.scenario import load_scenario
from controller.model.substrate import HostKind, Substrate
from controller.model.workload import Placement, Workload
from controller.policies import make_policy
from controller.testbed import network
from controller.testbed import probes as P
from controller.testbed.loop import LiveLoop, LoopSettings, StepRecord, placement_held
from rdma_emulator.client import RdmaClient
from rdma_emulator.processes import Proc
from test_testbed_network import needs_testbed


STEP_S = 3.0
"""How long each step runs before the fault or the end (a few probes per chain at PROBE_PPS)."""
FAULT_S = 2.0
"""From the fault to the next step, which heals it."""
SETTINGS = LoopSettings(step_seconds=STEP_S, probe_pps=5.0, budget_pps=50.0)
MS = 1_000_000


# Choosing the decisions

def _moved(sub: Substrate, placement: Placement, to: dict[int, str]) -> Placement:
    return tuple(sub.host_index[to[k]] if k in to else h for k, h in enumerate(placement))


def moves(dataset: Dataset, workload: Workload, kind: str) -> Iterator[tuple[int, int, str]]:
    """(request, instance, switch): single-function chains at a busy rate whose instance, alone moved to the
    switch's `kind` memory (lm or em), fits there and keeps the chain carried at 10:00."""
    sub, initial = dataset.substrate, workload.initial_placement
    evaluator = StepEvaluator(sub, dataset.objective_weights)
    for request, instances in zip(workload.requests, workload.assignment):
        if len(instances) != 1 or request.rate_mbps[0] < 100:
            continue
        for switch in sub.switch_names:
            placement = _moved(sub, initial, {instances[0]: f"{kind}:{switch}"})
            if not storage_violations(sub, placement) and \
                    evaluator.evaluate(workload, 0, initial, placement).requests[request.id].carried:
                yield request.id, instances[0], switch


def carried(dataset: Dataset, workload: Workload, placement: Placement) -> set[int]:
    """The SPIs of the chains the step carries with this placement at 10:00."""
    evaluator = StepEvaluator(dataset.substrate, dataset.objective_weights)
    result = evaluator.evaluate(workload, 0, workload.initial_placement, placement)
    return {r.request + 1 for r in result.requests if r.carried}


# Reading the testbed

def emac_counter(testbed: network.Testbed, name: str, **labels: str) -> float:
    """A sample of the EMAC's Prometheus metrics (0 when it has not been counted yet)."""
    with urllib.request.urlopen(f"http://{testbed.emac_metrics}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return sum(s.value for family in text_string_to_metric_families(text) for s in family.samples
               if s.name == name and s.labels == labels)


def chains_on(loop: LiveLoop, switch: str) -> set[int]:
    """The SPIs with an entry on the switch: classified there, steered through it, or coming back to it from a server."""
    spis = set()
    for entity in (loop.plane.known or {})[switch].values():
        if isinstance(entity, TableEntry) and entity.table in (E.STEER, E.SERVER_RETURN):
            spis.add(dict(entity.match)["spi"].value)  # type: ignore[union-attr]
        elif isinstance(entity, TableEntry) and entity.table == E.CLASSIFIER:
            spis.add(dict(entity.params)["spi"])
    return spis


def tables_are_the_deploy_paths(loop: LiveLoop) -> None:
    assert loop.plane.known is not None
    for name, held in loop.plane.read().items():
        assert held == loop.plane.known[name], f"{name}'s tables differ from the deploy path's entries"


def in_flight_ns(log: P.ProbeLog, before_ns: int) -> int:
    """The longest one-way latency of any probe sent before `before_ns`: a probe sent earlier than that
    before a fault had arrived when it struck."""
    rows = log.received.rows()
    rows = rows[rows[:, 2] < before_ns]
    assert len(rows), "no probe arrived before the fault"
    return int((rows[:, 3] - rows[:, 2]).max())


def check_fault_window(log: P.ProbeLog, first_ns: int, fault_ns: int, healed: StepRecord, touched: set[int],
                       carried_spis: set[int]) -> dict[int, int]:
    """The touched chains lost probes, all sent inside [fault - in flight, healed.reconfigured_ns); the other
    carried chains lost none from `first_ns` on. When each touched chain delivered again: the arrival of its
    first probe sent after its last lost one."""
    lost = P.outages(log, first_ns, log.horizon_ns)
    window = (fault_ns - in_flight_ns(log, fault_ns), healed.reconfigured_ns)
    assert touched <= carried_spis and touched, "the fault must touch some carried chain"
    assert set(lost) & carried_spis == touched, {c: lost.get(c) for c in (set(lost) & carried_spis) ^ touched}
    resumed = {}
    for chain in sorted(touched):
        outage = lost[chain]
        assert window[0] <= outage.first_lost_ns and outage.last_lost_ns < window[1], \
            (chain, (outage.first_lost_ns - fault_ns) / MS, (outage.last_lost_ns - healed.reconfigured_ns) / MS)
        assert outage.resumed_ns is not None, f"chain {chain} never delivered again"
        resumed[chain] = outage.resumed_ns
    return resumed


def recovery_text(fault_ns: int, healed: StepRecord, resumed: dict[int, int]) -> str:
    """Recovery times, from the fault and from the start of the step that healed it (ms, min-max over the chains)."""
    def span(values: list[float]) -> str:
        return f"{min(values):.0f}-{max(values):.0f}"
    return (f"chains {sorted(resumed)} delivered again {span([(t - fault_ns) / MS for t in resumed.values()])} ms after the "
            f"fault, {span([(t - healed.started_ns) / MS for t in resumed.values()])} ms after the healing step started "
            f"({(healed.started_ns - fault_ns) / MS:.0f} ms after the fault; restart {healed.seconds['heal'] * 1e3:.0f} ms, "
            f"reconfigured after {(healed.reconfigured_ns - healed.started_ns) / MS:.0f} ms)")


def finish(loop: LiveLoop) -> None:
    """Let the last step run, stop the traffic and collect every probe (the last ones after the grace)."""
    time.sleep(STEP_S)
    loop.stop_traffic()
    time.sleep(P.GRACE_NS / 1e9 + 0.5)
    loop.collect()


# Tests with the testbed

@needs_testbed
def test_a_killed_switch_is_restarted_and_refilled_and_its_chains_recover(tmp_path: Path, small_dataset: Dataset) -> None:
    scenario = load_scenario("small")
    workload = small_dataset.test[0]
    sub = small_dataset.substrate
    _, k, switch = next(moves(small_dataset, workload, "lm"))
    decision = _moved(sub, workload.initial_placement, {k: f"lm:{switch}"})
    with network.Testbed.start(scenario.topology, tmp_path / "net") as testbed:
        loop = LiveLoop(testbed, small_dataset, scenario.spec.dataplane, 0, make_policy("static"), SETTINGS, tmp_path / "run")
        try:
            loop.start()
            placed = loop.run_step(0, decision)
            touched = chains_on(loop, switch) & carried(small_dataset, workload, decision)
            time.sleep(STEP_S)
            killed_ns = time.time_ns()
            testbed.kill_switch(switch)
            time.sleep(FAULT_S)
            assert not testbed.switch_alive(switch)
            healed = loop.run_step(0, decision)
            assert testbed.switch_alive(switch) and testbed.grpc_answers(switch)
            tables_are_the_deploy_paths(loop)
            finish(loop)
        finally:
            loop.close()

    assert [note for note in healed.notes if switch in note] == [
        f"switch {switch} had died: restarted, pipeline pushed, state refilled by the reconciler"]
    assert healed.moved == [] and healed.written["switch_updates"] > 0
    resumed = check_fault_window(loop.probes, placed.started_ns, killed_ns, healed, touched, set(healed.predicted_delay_ms))
    print(f"\nswitch {switch} killed: {recovery_text(killed_ns, healed, resumed)}")


@needs_testbed
def test_a_killed_memory_server_is_restarted_and_its_em_tables_written_again(tmp_path: Path, small_dataset: Dataset) -> None:
    scenario = load_scenario("small")
    workload = small_dataset.test[0]
    sub = small_dataset.substrate
    _, k, switch = next(moves(small_dataset, workload, "em"))
    decision = _moved(sub, workload.initial_placement, {k: f"em:{switch}"})
    server = Layout(sub.spec.topology).memory_server(switch).name
    touched = {r.id + 1 for r, instances in zip(workload.requests, workload.assignment) if k in instances} \
        & carried(small_dataset, workload, decision)
    with network.Testbed.start(scenario.topology, tmp_path / "net") as testbed:
        loop = LiveLoop(testbed, small_dataset, scenario.spec.dataplane, 0, make_policy("static"), SETTINGS, tmp_path / "run")
        try:
            loop.start()
            placed = loop.run_step(0, decision)
            region = loop.memory.active[k].region
            time.sleep(STEP_S)
            timeouts = emac_counter(testbed, "srem_emac_dropped_total", reason="timeout")
            killed_ns = time.time_ns()
            testbed.kill_process(f"memserver:{server}")
            time.sleep(FAULT_S)
            timeouts = emac_counter(testbed, "srem_emac_dropped_total", reason="timeout") - timeouts
            healed = loop.run_step(0, decision)
            assert testbed.process_alive(f"memserver:{server}")
            tables_are_the_deploy_paths(loop)
            finish(loop)
        finally:
            loop.close()

    assert timeouts > 0, "the EMAC reports the lookups the dead memory server left unanswered"
    assert [note for note in healed.notes if server in note] == [
        f"memory server of {server} had died: restarted empty; EM tables of instances {sub.instances[k].name} written again"]
    assert healed.written["em_regions"] == 1 and loop.memory.active[k].region != region
    resumed = check_fault_window(loop.probes, placed.started_ns, killed_ns, healed, touched, set(healed.predicted_delay_ms))
    print(f"\nmemory server of {server} killed under {sub.instances[k].name} in em:{switch} (EMAC timeouts {timeouts:.0f}): "
          f"{recovery_text(killed_ns, healed, resumed)}; table written again in {healed.seconds['em'] * 1e3:.0f} ms")


@needs_testbed
def test_a_silent_memory_server_fails_the_deploy_and_the_last_good_configuration_stays(tmp_path: Path,
                                                                                        small_dataset: Dataset) -> None:
    """A memory server that stops answering without dying (SIGSTOP; a container that is down looks the same to a
    controller elsewhere): the step notes it, its deploy - which must write a table there - fails and leaves the
    configuration in force (and reports that configuration's chains), and once the server answers again the
    same decision is deployed."""
    scenario = load_scenario("small")
    workload = small_dataset.test[0]
    sub = small_dataset.substrate
    layout = Layout(sub.spec.topology)
    # One instance and two switches whose EMs fit it and share a memory server: moving it from one to the other
    # writes a new region on that server.
    candidates: dict[int, list[str]] = {}
    for _, k, switch in moves(small_dataset, workload, "em"):
        candidates.setdefault(k, []).append(switch)
    k, first, second = next((k, a, b) for k, switches in candidates.items() for a in switches for b in switches
                            if a != b and layout.memory_server(a) == layout.memory_server(b))
    server = layout.memory_server(first).name
    placed_there = _moved(sub, workload.initial_placement, {k: f"em:{first}"})
    moved_on = _moved(sub, workload.initial_placement, {k: f"em:{second}"})
    with network.Testbed.start(scenario.topology, tmp_path / "net") as testbed:
        loop = LiveLoop(testbed, small_dataset, scenario.spec.dataplane, 0, make_policy("static"), SETTINGS, tmp_path / "run")
        pid = testbed.reload().processes[f"memserver:{server}"].pid
        try:
            loop.start()
            placed = loop.run_step(0, placed_there)
            os.kill(pid, signal.SIGSTOP)
            failed = loop.run_step(0, moved_on)
            assert loop.placement == placed_there
            tables_are_the_deploy_paths(loop)
            os.kill(pid, signal.SIGCONT)
            again = loop.run_step(0, moved_on)
            tables_are_the_deploy_paths(loop)
        finally:
            os.kill(pid, signal.SIGCONT)
            loop.close()

    assert f"memory server of {server} does not answer: lookups of the EM tables it holds fail until it is back" in failed.notes
    assert any(note.startswith("deploy failed, the last good configuration stays in force") for note in failed.notes)
    assert failed.moved == [] and failed.written == {}
    assert failed.predicted_delay_ms == placed.predicted_delay_ms, "the chains in force are the previous step's"
    assert again.notes == [] and again.moved == [sub.instances[k].name] and again.written["em_regions"] == 1
    assert loop.placement == moved_on


HEAL_BOUND_S = 5.0
"""From a process's death to the configuration in force again, while the step runs (WATCH_S to notice, then the
restart and the redeploy). Measured here: see the test's printed line and README "Trust and limits"."""


def killed_during_the_step(loop: LiveLoop, kill: Callable[[], None]) -> int:
    """Kill something one second into holding the step just run, hold to its end; when it was killed."""
    killed: list[int] = []

    def strike() -> None:
        killed.append(time.time_ns())
        kill()

    timer = threading.Timer(1.0, strike)
    timer.start()
    try:
        loop.hold(time.perf_counter() + 1.0 + FAULT_S + HEAL_BOUND_S)
    finally:
        timer.join()
    return killed[0]


@needs_testbed
@pytest.mark.parametrize("kind", ["switch", "memserver"])
def test_a_process_killed_mid_step_is_healed_during_the_step(tmp_path: Path, small_dataset: Dataset, kind: str) -> None:
    """Issue 20, finding 15: faults were noticed at the next step only (a switch killed 3 s into a 10 s step lost
    probes for the rest of it and into the next). The loop holding a step looks every WATCH_S and heals at once."""
    scenario = load_scenario("small")
    workload = small_dataset.test[0]
    sub = small_dataset.substrate
    _, k, switch = next(moves(small_dataset, workload, "lm" if kind == "switch" else "em"))
    decision = _moved(sub, workload.initial_placement, {k: f"{'lm' if kind == 'switch' else 'em'}:{switch}"})
    server = Layout(sub.spec.topology).memory_server(switch).name
    key = f"switch:{switch}" if kind == "switch" else f"memserver:{server}"
    with network.Testbed.start(scenario.topology, tmp_path / "net") as testbed:
        loop = LiveLoop(testbed, small_dataset, scenario.spec.dataplane, 0, make_policy("static"), SETTINGS, tmp_path / "run")
        try:
            loop.start()
            placed = loop.run_step(0, decision)
            touched = (chains_on(loop, switch) if kind == "switch" else
                       {r.id + 1 for r, instances in zip(workload.requests, workload.assignment) if k in instances})
            touched &= carried(small_dataset, workload, decision)
            killed_ns = killed_during_the_step(loop, lambda: testbed.kill_process(key))
            assert testbed.process_alive(key)
            tables_are_the_deploy_paths(loop)
            finish(loop)
        finally:
            loop.close()

    record = json.loads((tmp_path / "run" / "step-0.json").read_text())
    assert len(record["repaired_ns"]) == 1 and all(note.startswith("during the step: ") for note in record["notes"])
    repaired_ns = record["repaired_ns"][0]
    assert 0 < repaired_ns - killed_ns < HEAL_BOUND_S * 1e9
    healed = dataclasses.replace(placed, reconfigured_ns=repaired_ns)
    resumed = check_fault_window(loop.probes, placed.started_ns, killed_ns, healed, touched, set(placed.predicted_delay_ms))
    print(f"\n{key} killed mid-step: whole again {(repaired_ns - killed_ns) / MS:.0f} ms after the fault; chains "
          f"{sorted(resumed)} delivered again {(min(resumed.values()) - killed_ns) / MS:.0f}-"
          f"{(max(resumed.values()) - killed_ns) / MS:.0f} ms after it")


@needs_testbed
def test_a_restarted_controller_takes_over_without_writing_anything(tmp_path: Path, small_dataset: Dataset) -> None:
    scenario = load_scenario("small")
    workload = small_dataset.test[0]
    sub = small_dataset.substrate
    _, k, switch = next(moves(small_dataset, workload, "em"))
    both = (_moved(sub, workload.initial_placement, {k: f"em:{switch}", i: f"lm:{s}"})
            for _, i, s in moves(small_dataset, workload, "lm") if i != k and s != switch)
    decision = next(p for p in both if not storage_violations(sub, p))
    runs = [tmp_path / "run-1", tmp_path / "run-2"]
    with network.Testbed.start(scenario.topology, tmp_path / "net") as testbed:
        first = LiveLoop(testbed, small_dataset, scenario.spec.dataplane, 0, make_policy("static"), SETTINGS, runs[0])
        second: LiveLoop | None = None
        try:
            first.start()
            placed = first.run_step(0, decision)
            time.sleep(STEP_S)
            first.collect()
            first.close()
            restarted_ns = time.time_ns()
            second = LiveLoop(testbed, small_dataset, scenario.spec.dataplane, 0, make_policy("static"), SETTINGS, runs[1])
            second.resume()
            resumed_ns = time.time_ns()
            assert second.placement == decision, "the placement in force, read back from the data plane"
            again = second.run_step(0, decision)
            tables_are_the_deploy_paths(second)
            finish(second)
        finally:
            first.close()  # again: the test may have failed before the restart
            if second is not None:
                second.close()

    assert again.notes == [] and again.moved == []
    assert again.written == {"switch_updates": 0, "em_regions": 0, "em_bytes": 0, "em_adopted": 1}, \
        "the switches' entries and the EM region are what the decision needs: nothing written"
    log = P.ProbeLog()
    for run in runs:
        for line in (run / "probes.jsonl").read_text().splitlines():
            log.add(json.loads(line))
    spis = set(again.predicted_delay_ms)
    on_servers = {r.id + 1 for r, instances in zip(workload.requests, workload.assignment)
                  if any(sub.hosts[decision[i]].kind is HostKind.SERVER for i in instances)} & spis
    assert on_servers, "some carried chain crosses a rack server's function"
    stats = P.window_stats(log, placed.started_ns, log.horizon_ns)
    assert all(stats[c].sent > 0 and stats[c].lost == 0 and stats[c].reordered == 0 for c in spis), \
        {c: stats[c] for c in spis if stats[c].lost or stats[c].reordered}
    assert spis <= set(P.window_stats(log, restarted_ns, again.reconfigured_ns)), "every chain's probes went on meanwhile"
    print(f"\ncontroller restarted: resume took {(resumed_ns - restarted_ns) / MS:.0f} ms, its first step "
          f"{(again.reconfigured_ns - again.started_ns) / MS:.0f} ms (switch updates 0, EM regions adopted 1); "
          f"no probe of {len(spis)} carried chains lost")


# Without a testbed

def _log(chain: int, sent_ns: list[int], arrived: dict[int, int], unstamped: tuple[int, ...] = ()) -> P.ProbeLog:
    """One chain's probes seq 0.. sent at `sent_ns`; `arrived`: seq -> latency ns; `unstamped`: seqs that arrived unstamped."""
    def columns(names: tuple[str, ...], rows: list[tuple[int, ...]]) -> dict[str, list[int]]:
        return {n: [r[i] for r in rows] for i, n in enumerate(names)}
    log = P.ProbeLog()
    far = 10 * P.GRACE_NS
    log.add({"name": "a", "address": "10.1.0.1", "now_ns": far, "data": columns(("chain", "sent", "received"), []),
             "probes_sent": columns(P.PROBE_SENT, [(chain, seq, t) for seq, t in enumerate(sent_ns)]),
             "probes_received": columns(P.PROBE_RECEIVED, []), "baseline_sent": columns(P.BASELINE_SENT, []),
             "baseline_received": columns(P.BASELINE_RECEIVED, [])})
    log.add({"name": "b", "address": "10.1.0.2", "now_ns": far, "data": columns(("chain", "sent", "received"), []),
             "probes_sent": columns(P.PROBE_SENT, []), "baseline_sent": columns(P.BASELINE_SENT, []),
             "probes_received": columns(P.PROBE_RECEIVED, [(chain, s, sent_ns[s], sent_ns[s] + t) for s, t in arrived.items()]),
             "probes_unstamped": columns(P.PROBE_UNSTAMPED, [(chain, s, sent_ns[s]) for s in unstamped]),
             "baseline_received": columns(P.BASELINE_RECEIVED, [])})
    return log


def test_an_outage_spans_the_lost_probes_and_ends_with_the_next_arrival() -> None:
    sent = [i * MS for i in range(10)]
    lost = {3, 4, 6}
    log = _log(1, sent, {s: 500 + s for s in range(10) if s not in lost | {8}}, unstamped=(8,))
    assert P.outages(log, 0, P.GRACE_NS) == {1: P.Outage(3, 3 * MS, 6 * MS, 7 * MS + 507)}, "an unstamped arrival is no loss"
    assert P.outages(log, 5 * MS, P.GRACE_NS) == {1: P.Outage(1, 6 * MS, 6 * MS, 7 * MS + 507)}, "only probes sent in the window"
    assert P.outages(log, 7 * MS, P.GRACE_NS) == {}
    assert P.outages(_log(2, sent, {s: 500 for s in range(8)}), 0, P.GRACE_NS) == {2: P.Outage(2, 8 * MS, 9 * MS, None)}


def _deployment(dataset: Dataset, placement: Placement) -> tuple[Layout, Deployment]:
    sub, workload = dataset.substrate, dataset.test[0]
    layout = Layout(sub.spec.topology)
    result = StepEvaluator(sub, dataset.objective_weights).evaluate(workload, 0, workload.initial_placement, placement)
    return layout, deployment_of_step(layout, sub, workload, result, load_scenario("small").spec.dataplane.rules_per_mb)


def test_the_placement_in_force_is_read_back_from_switches_and_rack_servers(small_dataset: Dataset) -> None:
    sub, workload = small_dataset.substrate, small_dataset.test[0]
    _, k, lm = next(moves(small_dataset, workload, "lm"))
    _, k2, em = next(m for m in moves(small_dataset, workload, "em") if m[1] != k)
    placement = _moved(sub, workload.initial_placement, {k: f"lm:{lm}", k2: f"em:{em}"})
    layout, deployment = _deployment(small_dataset, placement)
    steering = all_steering(layout, sub, deployment)
    versions = choose_versions({}, steering)
    held = desired_state(layout, sub, deployment, versions, plan_em_regions(layout, sub, placement), steering)
    served = {name: set(f.instances) for name, f in server_functions(layout, sub, deployment, 0, versions, steering).items()}
    in_switches = {i for i, h in enumerate(placement) if sub.hosts[h].kind is not HostKind.SERVER}
    on_servers = set().union(*served.values())
    assert len(in_switches) == 2 and on_servers, "instances of all three kinds of host to read back"
    elsewhere = tuple(sub.host_index[sub.server_names[0] if sub.hosts[h].name != sub.server_names[0] else sub.server_names[1]]
                      for h in placement)
    assert placement_held(sub, held, served, elsewhere) == tuple(
        h if i in in_switches | on_servers else elsewhere[i] for i, h in enumerate(placement))


def test_a_fresh_external_memory_adopts_the_regions_holding_its_tables_and_replaces_the_others(
        memserver: Proc, small_dataset: Dataset) -> None:
    sub, workload = small_dataset.substrate, small_dataset.test[0]
    em_hosts = [h for h, host in enumerate(sub.hosts) if host.kind is HostKind.EM]
    placement = tuple(em_hosts[k % len(em_hosts)] if k < 3 else h for k, h in enumerate(workload.initial_placement))
    layout, deployment = _deployment(small_dataset, placement)
    servers = {s.server_id: memserver.address("memserver") for s in layout.servers.values()}
    old = ExternalMemory(layout, sub, servers)
    regions = old.stage(deployment)
    old.commit()
    held = desired_state(layout, sub, deployment, choose_versions({}, all_steering(layout, sub, deployment)), regions)
    assert regions_held(held) == {k: (sub.node_names[sub.hosts[placement[k]].node], regions[k]) for k in range(3)}
    table = old.tables(deployment)[1][1]
    count = "srem_memserver_regions"

    async def alter_1_and_free_2() -> None:
        client = await RdmaClient(*memserver.address("memserver"), timeout_s=1.0).open()
        try:
            await client.write(regions[1].region, regions[1].rkey, len(table) - 1, bytes([table[-1] ^ 1]))
            await client.free(regions[2].region, regions[2].rkey)
        finally:
            client.close()

    asyncio.run(alter_1_and_free_2())
    before = memserver.metrics()[count]
    fresh = ExternalMemory(layout, sub, servers)
    fresh.adopt(regions_held(held))
    again = fresh.stage(deployment)
    assert (fresh.last.adopted, fresh.last.regions) == (1, 2), "instance 0's region kept; 1 (altered) and 2 (gone) written"
    assert again[0] == regions[0] and again[1] != regions[1] and again[2] != regions[2]
    fresh.commit()
    assert memserver.metrics()[count] - before == 1, "the altered region freed, the new two in use"
