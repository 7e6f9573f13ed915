"""The live loop end to end on the `small` scenario's testbed (Mininet, BMv2, memory servers, EMAC, rack
servers' VNF processes, traffic agents): the workload's initial configuration, then forced
reconfigurations of running traffic - one instance server -> EM and another server -> LM, then the
first on to LM of the same switch - with probes on every chain. What must hold: every carried chain's
probes are delivered, none lost or reordered around the changes; the moved chain's latency falls in
the order the model predicts (server slowest, then EM, then LM); every switch's tables read back are
exactly the deploy path's entries; nothing is left afterwards.

All three decisions are taken at the 10:00 step's rates (the chains' busy hour), so that the only
thing changing between them is where the instances run.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from controller.model.constraints import storage_violations
from controller.model.dataset import Dataset, default_dataset
from controller.model.evaluator import StepEvaluator
from controller.model.scenario import load_scenario
from controller.model.substrate import Substrate
from controller.model.workload import Placement, Workload
from controller.policies import make_policy
from controller.testbed import probes as P
from controller.testbed import state as testbed_state
from controller.testbed.loop import LiveLoop, LoopSettings
from controller.testbed import network
from test_testbed_network import needs_testbed

STEP_S = 6.0
SETTINGS = LoopSettings(step_seconds=STEP_S, probe_pps=5.0, budget_pps=50.0)


def moves(dataset: Dataset, workload: Workload) -> tuple[int, int, str, int, str]:
    """A single-function chain carried at 10:00 at a busy rate whose instance fits one switch's EM and
    LM, and another instance that fits another switch's LM: (chain's request, instance, switch,
    other instance, other switch)."""
    sub, initial = dataset.substrate, workload.initial_placement
    evaluator = StepEvaluator(sub, dataset.objective_weights)
    for request, instances in zip(workload.requests, workload.assignment):
        if len(instances) != 1 or request.rate_mbps[0] < 100:
            continue
        k = instances[0]
        for switch in sub.switch_names:
            em, lm = (_moved(sub, initial, {k: f"{kind}:{switch}"}) for kind in ("em", "lm"))
            if storage_violations(sub, em) or storage_violations(sub, lm):
                continue
            if not all(evaluator.evaluate(workload, 0, initial, p).requests[request.id].carried for p in (em, lm)):
                continue
            for other in range(len(sub.instances)):
                for switch2 in sub.switch_names:
                    both = _moved(sub, initial, {k: f"em:{switch}", other: f"lm:{switch2}"})
                    if other != k and switch2 != switch and not storage_violations(sub, both):
                        return request.id, k, switch, other, switch2
    raise AssertionError("no chain to move in the first test workload")


def _moved(sub: Substrate, placement: Placement, to: dict[int, str]) -> Placement:
    return tuple(sub.host_index[to[k]] if k in to else h for k, h in enumerate(placement))


def leftover_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "simple_switch_grpc" in line or "hosts.rack_server" in line
            or "hosts.traffic" in line or "controller memserver" in line or "controller emac" in line]


@needs_testbed
def test_forced_moves_on_running_traffic_lose_nothing_and_latency_follows_the_model(tmp_path: Path) -> None:
    scenario = load_scenario("small")
    dataset = default_dataset(scenario, progress=False)
    workload = dataset.test[0]
    chain, k, switch, other, switch2 = moves(dataset, workload)
    sub = dataset.substrate
    initial = workload.initial_placement
    decisions = [initial, _moved(sub, initial, {k: f"em:{switch}", other: f"lm:{switch2}"}),
                 _moved(sub, initial, {k: f"lm:{switch}", other: f"lm:{switch2}"})]
    state_path = tmp_path / "net" / testbed_state.STATE_FILE
    with network.Testbed.start(scenario.topology, tmp_path / "net") as testbed:
        loop = LiveLoop(testbed, dataset, scenario.spec.dataplane, 0, make_policy("static"), SETTINGS, tmp_path / "run")
        try:
            loop.start()
            time.sleep(2.0)
            records = []
            for placement in decisions:
                records.append(loop.run_step(0, placement))
                time.sleep(STEP_S)
                loop.collect()
                assert loop.plane.known is not None
                for name, held in loop.plane.read().items():
                    assert held == loop.plane.known[name], f"{name}'s tables differ from the deploy path's entries"
            loop.stop_traffic()
            time.sleep(P.GRACE_NS / 1e9 + 0.5)
            loop.collect()
        finally:
            loop.close()
    assert leftover_processes() == []
    assert testbed_state.present_interfaces("srm") == []
    assert not state_path.exists() or not [key for key, r in testbed_state.load(state_path).processes.items()
                                           if testbed_state.alive(r)]

    assert [r.moved for r in records] == [[], sorted([sub.instances[k].name, sub.instances[other].name],
                                                     key=lambda n: sub.instance_index[n]), [sub.instances[k].name]]
    spi = chain + 1
    per_step = P.step_stats(loop.probes, [r.started_ns for r in records], grace_ns=0)
    around = P.reconfiguration_stats(loop.probes, [r.reconfigured_ns for r in records[1:]], 1_000_000_000, 1_000_000_000,
                                     grace_ns=0)
    for stats, record in zip(per_step, records):
        carried = {c: s for c, s in stats.items() if c in record.predicted_delay_ms}
        assert carried and all(s.sent > 0 and s.lost == 0 and s.reordered == 0 for s in carried.values()), \
            {c: s for c, s in carried.items() if s.lost or s.reordered}
    for window, record in zip(around, records[1:]):
        carried = {c: s for c, s in window.items() if c in record.predicted_delay_ms}
        assert all(s.lost == 0 and s.reordered == 0 for s in carried.values())
    evaluator = StepEvaluator(sub, dataset.objective_weights)
    model = [evaluator.evaluate(workload, 0, p, p).requests[chain].delay_ms for p in decisions]
    assert model[0] > model[1] > model[2], "the model's own order: a server's processing, then EM's, then LM's"
    assert [r.predicted_delay_ms[spi] for r in records] == pytest.approx(model)
    server, em, lm = (stats[spi].p50_us for stats in per_step)
    assert server > em > lm, f"chain {spi}: server {server:.0f} us, EM {em:.0f} us, LM {lm:.0f} us"


@needs_testbed
def test_a_chain_through_local_then_external_memory_of_one_switch_loses_nothing(tmp_path: Path) -> None:
    """Two functions of one chain on one switch, the first in LM and the next in EM: the EM lookup is
    sent from a recirculated pass, on which BMv2 leaves ingress_global_timestamp at 0 (its answers
    were all dropped as late until the request was timed from the packet's arrival)."""
    scenario = load_scenario("small")
    dataset = default_dataset(scenario, progress=False)
    workload, sub = dataset.test[0], dataset.substrate
    evaluator = StepEvaluator(sub, dataset.objective_weights)
    initial = workload.initial_placement
    chain, placement = next((r.id, p) for r, instances in zip(workload.requests, workload.assignment) if len(instances) >= 2
                            for switch in sub.switch_names
                            for p in [_moved(sub, initial, {instances[0]: f"lm:{switch}", instances[1]: f"em:{switch}"})]
                            if not storage_violations(sub, p) and evaluator.evaluate(workload, 0, initial, p).requests[r.id].carried)
    with network.Testbed.start(scenario.topology, tmp_path / "net") as testbed:
        loop = LiveLoop(testbed, dataset, scenario.spec.dataplane, 0, make_policy("static"), SETTINGS, tmp_path / "run")
        try:
            loop.start()
            record = loop.run_step(0, placement)
            time.sleep(STEP_S)
            loop.stop_traffic()
            time.sleep(P.GRACE_NS / 1e9 + 0.5)
            loop.collect()
        finally:
            loop.close()
    stats = P.window_stats(loop.probes, record.reconfigured_ns, 1 << 62, grace_ns=0)[chain + 1]
    assert stats.sent > 0 and stats.lost == 0 and stats.reordered == 0, stats
