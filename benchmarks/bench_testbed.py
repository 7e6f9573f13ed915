"""The live testbed on `paper` (10 BMv2 switches, 12 rack servers) with the shipped SR-EM policy; prints:

- per step, the controller's work: decide + evaluate + build + EM programming + push (prepare and
  commit) + rack servers (target: at most 1 s per step), and the drain;
- the largest probe rate per chain (with the chosen data scale) at which a whole day of steps loses no
  carried chain's probe: rates tried upwards, each a full run of `--steps` steps;
- probe timestamp precision: the idle baseline's spread between neighbouring traffic hosts (p50, p99,
  std of the one-way latency, microseconds).

Needs root, BMv2 and Mininet. Run: .venv/bin/python benchmarks/bench_testbed.py [--steps N] [--rates 5,10,20,40]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from controller.model.dataset import default_dataset
from controller.model.scenario import load_scenario
from controller.policies import make_policy
from controller.testbed.loop import LoopSettings
from controller.testbed.preflight import missing
from controller.testbed.run import RunResult, run_testbed

PARTS = ("decide", "evaluate", "rules", "build", "em", "prepare", "servers", "commit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--budget-pps", type=float, default=300.0)
    parser.add_argument("--rates", default="5,10,20", help="probe rates per chain to try, upwards")
    args = parser.parse_args()
    if lacking := missing():
        raise SystemExit(f"bench_testbed: needs {'; '.join(lacking)}")
    scenario = load_scenario("paper")
    dataset = default_dataset(scenario)
    best = None
    for rate in (float(r) for r in args.rates.split(",")):
        with tempfile.TemporaryDirectory(prefix="srem-bench-testbed-") as tmp:
            result = run_testbed(scenario, dataset, 0, make_policy("srem"), LoopSettings(
                step_seconds=args.step_seconds, probe_pps=rate, budget_pps=args.budget_pps), Path(tmp) / "run", args.steps)
        lost = sum(result.totals(s)[1] for s in result.steps)
        sent = sum(result.totals(s)[0] for s in result.steps)
        print(f"probes {rate:g}/s per chain, data scale {result.scale_factor:.2e}: {sent} probes sent, {lost} lost")
        if best is None:
            report(result)
        if lost:
            break
        best = rate
    print(f"largest probe rate without loss: {best if best is not None else 'none of those tried'} per chain")


def report(result: RunResult) -> None:
    print("per step, ms: " + ", ".join(PARTS) + " | controller total (target 1000) | drain")
    for r in result.records:
        parts = [r.seconds.get(p, 0.0) * 1e3 for p in PARTS]
        print(f"  {r.hour:02d}:00  " + " ".join(f"{v:7.1f}" for v in parts)
              + f" | {sum(parts):7.1f} | {r.seconds.get('drain', 0.0) * 1e3:6.1f}   moved {len(r.moved)}")
    spread = [s for s in result.baseline.values() if s.received]
    if spread:
        print(f"idle baseline over {len(spread)} host pairs (2 switch traversals): median p50 "
              f"{statistics.median(s.p50_us for s in spread):.0f} us, median p99 {statistics.median(s.p99_us for s in spread):.0f} us, "
              f"median std {statistics.median(s.std_us for s in spread):.0f} us")


if __name__ == "__main__":
    main()
