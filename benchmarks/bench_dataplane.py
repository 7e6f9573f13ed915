"""Speed of the controller's data-plane side against BMv2 (targets: issue 4); prints its figures.

- building every switch's entries for a full `paper` configuration (10 switches), median;
- on one simple_switch_grpc on loopback, in the same run: BMv2's raw write rate (requests of 1,000
  entries serialised before the clock starts), the controller's write rate (building and converting its entries too), a
  single-update write, a pipeline push;
- on ten simple_switch_grpc (the paper fat-tree), pushing a reconfiguration that moves one VNF
  instance into one switch: time until the new configuration is in force (prepare + commit) and
  until the old one is gone (cleanup, no drain wait).

Needs simple_switch_grpc on PATH. Run: .venv/bin/python benchmarks/bench_dataplane.py
"""

from __future__ import annotations

import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from controller.dataplane import entries as E
from controller.dataplane.builder import all_steering, deployment_of_step, desired_state, plan_em_regions
from controller.dataplane.deploy import Deployer, SteeringOnly
from controller.dataplane.entries import Exact, Op, Ternary, Update, table_entry
from controller.dataplane.layout import Layout
from controller.dataplane.p4info import P4Schema
from controller.dataplane.p4runtime_client import Pipeline, SwitchClient
from controller.dataplane.reconciler import DataPlane
from controller.evaluation import run_day
from controller.model.dataset import default_dataset
from controller.model.evaluator import StepEvaluator
from controller.model.scenario import load_scenario
from controller.model.substrate import HostKind
from controller.policies import make_policy


@contextlib.contextmanager
def bmv2(count: int) -> Iterator[list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        socks = [Path(tmp) / f"s{i}.sock" for i in range(count)]
        procs = [subprocess.Popen(["simple_switch_grpc", "--device-id", "1", "--no-p4", "--log-level", "error", "--",
                                   "--grpc-server-addr", f"unix://{s}", "--cpu-port", "255"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for s in socks]
        try:
            for s in socks:
                for _ in range(200):
                    if s.exists():
                        break
                    time.sleep(0.05)
            yield [f"unix://{s}" for s in socks]
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=10)


def firewall_entries(count: int, instance: int) -> list[E.TableEntry]:
    return [table_entry(E.FIREWALL, {"instance": Exact(instance), "src_addr": Ternary(0xC6120000 + n, 0xFFFFFFFF)},
                        "SremIngress.vnfs.fw_deny", priority=1) for n in range(count)]


def main() -> None:
    if shutil.which("simple_switch_grpc") is None:
        sys.exit("bench_dataplane: simple_switch_grpc not on PATH (README: 'The P4 toolchain')")
    scenario = load_scenario("paper")
    ds = default_dataset(scenario, progress=False)
    sub = ds.substrate
    workload = ds.split("test", 1)[0]
    evaluator = StepEvaluator(sub, ds.objective_weights)
    policy = make_policy("srem")
    policy.bind(ds.substrate)
    result = run_day(evaluator, ds, workload, policy)[0]
    layout = Layout(sub.spec.topology)
    params = scenario.spec.dataplane
    times, count = [], 0
    for _ in range(30):
        start = time.perf_counter()
        deployment = deployment_of_step(layout, sub, workload, result, params.rules_per_mb)
        em = plan_em_regions(layout, sub, result.placement)
        steering = all_steering(layout, sub, deployment)
        versions = {spi: 1 for spi, s in steering.items() if s}
        state = desired_state(layout, sub, deployment, versions, em, steering)
        times.append((time.perf_counter() - start) * 1e3)
        count = sum(len(s) for s in state.values())
    print(f"build entries, paper, 10 switches: {count} entries, median {statistics.median(times):.1f} ms (target <= 50 ms)")

    schema, pipeline = P4Schema.load(), Pipeline.load()
    with bmv2(1) as (address,):
        client = SwitchClient("bench", address, 1, schema, timeout_s=30.0)
        client.connect()
        pushes = []
        for _ in range(5):
            start = time.perf_counter()
            client.set_pipeline(pipeline, force=True)
            pushes.append((time.perf_counter() - start) * 1e3)
        n = 20_000
        raw = [Update(Op.INSERT, e) for e in firewall_entries(n, 1)]  # the same entries for every run
        requests = [client.write_request(raw[i:i + 1000]) for i in range(0, n, 1000)]
        start = time.perf_counter()
        for request in requests:
            client.write_rpc(request, timeout=30)
        bmv2_rate = n / (time.perf_counter() - start)
        client.set_pipeline(pipeline, force=True)  # empty tables again: both runs insert into the same state
        updates = [Update(Op.INSERT, e) for e in firewall_entries(n, 1)]
        start = time.perf_counter()
        client.write(updates, batch_size=1000)
        ours = n / (time.perf_counter() - start)
        client.set_pipeline(pipeline, force=True)
        start = time.perf_counter()
        client.write([Update(Op.INSERT, e) for e in firewall_entries(n, 1)], batch_size=1000)
        with_building = n / (time.perf_counter() - start)
        singles = []
        for e in firewall_entries(200, 3):
            start = time.perf_counter()
            client.write([Update(Op.INSERT, e)])
            singles.append((time.perf_counter() - start) * 1e3)
        client.close()
    print(f"pipeline push: median {statistics.median(pushes):.1f} ms")
    print(f"BMv2 raw write rate (batches of 1000 serialised beforehand): {bmv2_rate:,.0f} entries/s")
    print(f"controller write rate (encode + write, batches of 1000): {ours:,.0f} entries/s = {100 * ours / bmv2_rate:.0f}% of raw (target >= 80%)")
    print(f"  including building the entries: {with_building:,.0f} entries/s = {100 * with_building / bmv2_rate:.0f}% of raw")
    print(f"single-update write: median {statistics.median(singles):.2f} ms")

    with bmv2(len(layout.switches)) as addresses:
        clients = {name: SwitchClient(name, a, 1, schema, timeout_s=30.0) for name, a in zip(layout.switches, addresses)}
        plane = DataPlane(layout, sub, clients, pipeline, drain_s=0.0)
        deployer = Deployer(plane, SteeringOnly(layout, sub), params)
        plane.connect()
        deployer.deploy(workload, result)
        in_force, total, updates = [], [], []
        instances = [k for k, h in enumerate(result.placement) if sub.hosts[h].kind is not HostKind.LM]
        lm_hosts = [h.index for h in sub.hosts if h.kind is HostKind.LM]
        for k in instances:
            for target in lm_hosts:
                moved = tuple(target if i == k else h for i, h in enumerate(result.placement))
                step = evaluator.evaluate(workload, 0, result.placement, moved)
                if not step.feasible:
                    continue
                for placement, res in ((moved, step), (result.placement, result)):
                    start = time.perf_counter()
                    report = deployer.deploy(workload, res)
                    total.append((time.perf_counter() - start) * 1e3)
                    in_force.append((report.seconds["prepare"] + report.seconds["commit"]) * 1e3)
                    updates.append(report.applied.plan.count())
                break
        plane.close()
    print(f"move one instance into a switch's LM (paper, 10 BMv2, {len(total)} moves, median {statistics.median(updates):.0f} updates): "
          f"new configuration in force after median {statistics.median(in_force):.1f} ms, complete (cleanup, no drain) "
          f"{statistics.median(total):.1f} ms (target <= 100 ms)")


if __name__ == "__main__":
    main()
