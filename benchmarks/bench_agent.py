"""Speed of the SR-EM agent on `paper`; prints its figures (targets: issue 3).

- training: episodes per second of `srem train` (hybrid), and the time the shipped policy's episodes take;
- a reconfiguration decision of the shipped trained policy for one step (features, forward pass,
  filters), median over the test set's steps.

Run: .venv/bin/python benchmarks/bench_agent.py [--episodes N]   (default: TrainConfig's, the shipped policy's training)
"""

from __future__ import annotations

import argparse
import statistics
import time

from controller.model.dataset import default_dataset
from controller.model.evaluator import StepEvaluator
from controller.model.scenario import load_scenario
from controller.policies import make_policy, observe, start_day
from controller.rl.training import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=TrainConfig.episodes)
    args = parser.parse_args()
    dataset = default_dataset(load_scenario("paper"))
    _, run = train(dataset, TrainConfig(episodes=args.episodes), progress=False)
    policy = make_policy("srem")
    policy.bind(dataset.substrate)
    evaluator = StepEvaluator(dataset.substrate)
    times = []
    for workload in dataset.test:
        start_day(policy, dataset.substrate, workload)
        placement, last = workload.initial_placement, None
        for step, hour in enumerate(dataset.hours):
            obs = observe(dataset.substrate, workload, step, hour, dataset.is_working_hour(hour), placement, last)
            start = time.perf_counter()
            decided = policy.decide(obs)
            times.append((time.perf_counter() - start) * 1000.0)
            last = evaluator.evaluate(workload, step, placement, decided)
            placement = decided
    print(f"training (hybrid, {args.episodes} episodes): {run.episodes_per_second:.1f} episodes/s, "
          f"{run.seconds:.0f} s; the shipped training ({TrainConfig.episodes} episodes) at this rate: "
          f"{TrainConfig.episodes / run.episodes_per_second / 60:.1f} min (target <= 15 min)")
    print(f"one reconfiguration decision of the shipped policy: median {statistics.median(times):.3f} ms, 99th percentile "
          f"{statistics.quantiles(times, n=100)[98]:.3f} ms over {len(times)} steps (target <= 10 ms)")


if __name__ == "__main__":
    main()
