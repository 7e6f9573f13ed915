"""Speed of the step evaluator on the `paper` scenario; prints its figures (targets: issue 2).

- one step of a paper workload (90 requests): median over many steps, for the static placement and
  for random placements over all hosts (more hosts in play, more distinct paths);
- a whole day of the 300 test workloads with the static policy, dataset already loaded.

Run: .venv/bin/python benchmarks/bench_evaluator.py
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from controller.evaluation import evaluate_policy
from controller.model.dataset import default_dataset
from controller.model.evaluator import StepEvaluator
from controller.model.scenario import load_scenario
from controller.policies import make_policy


def median_step_ms(evaluator: StepEvaluator, workloads, placements) -> float:
    times = []
    for wl, (prev, new) in zip(workloads, placements):
        for step in range(wl.num_steps):
            start = time.perf_counter()
            evaluator.evaluate(wl, step, prev, new)
            times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main() -> None:
    dataset = default_dataset(load_scenario("paper"))
    test = dataset.test
    evaluator = StepEvaluator(dataset.substrate, dataset.objective_weights)
    rng = np.random.default_rng(0)
    hosts, instances = len(dataset.substrate.hosts), len(dataset.substrate.instances)
    median_step_ms(evaluator, test[:20], [(w.initial_placement, w.initial_placement) for w in test[:20]])  # warm caches
    static = median_step_ms(evaluator, test, [(w.initial_placement, w.initial_placement) for w in test])
    random_pairs = [(tuple(rng.integers(0, hosts, instances)), tuple(rng.integers(0, hosts, instances))) for _ in test]
    randomised = median_step_ms(evaluator, test, random_pairs)
    start = time.perf_counter()
    evaluate_policy(dataset, make_policy("static"), "test", progress=False)
    day = time.perf_counter() - start
    print(f"one paper step (90 requests), static placement:  median {static:.2f} ms   (target <= 5 ms)")
    print(f"one paper step (90 requests), random placements: median {randomised:.2f} ms   (target <= 5 ms)")
    print(f"a day of the 300 test workloads (1800 steps):    {day:.2f} s   (target <= 10 s)")


if __name__ == "__main__":
    main()
