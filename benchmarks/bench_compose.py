"""The compose stack (docker-compose.yml) as users start it; prints:

- per run, the time from `docker-compose up -d` to every service healthy, and the time `down` takes
  (and that it left no container or network of the project);
- with --day, the controller's whole day (the default: `paper`, the shipped SR-EM) after the first run
  became healthy: probes sent, lost and lost around reconfigurations, and each step's controller work;
- the size of each image.

Needs docker-compose, a Docker engine and the images (scripts/prepare-images.sh where nothing can be pulled).
Run: .venv/bin/python benchmarks/bench_compose.py [--runs 3] [--day]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "srembench"
IMAGES = ("srem-network:local", "srem-emulator:local", "srem-controller:local")
BOUND_S = 600.0
"""A hung stack stops the benchmark, not a figure."""


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=True).stdout


def compose(env: dict[str, str], *args: str) -> None:
    subprocess.run(["docker-compose", "-p", PROJECT, *args], cwd=ROOT, env={**os.environ, **env}, capture_output=True,
                   text=True, timeout=BOUND_S, check=True)


def statuses() -> list[str]:
    return docker("ps", "-a", "--filter", f"label=com.docker.compose.project={PROJECT}", "--format", "{{.Status}}").splitlines()


def up_until_healthy(env: dict[str, str]) -> float:
    started = time.perf_counter()
    compose(env, "up", "-d", "--no-build")
    config = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    expected = sum(1 for service in config["services"].values() if "profiles" not in service)
    while (time.perf_counter() - started) < BOUND_S:
        now = statuses()
        if len(now) == expected and all("(healthy)" in s for s in now):
            return time.perf_counter() - started
        time.sleep(0.25)
    raise SystemExit(f"bench_compose: not every service healthy within {BOUND_S:g} s: {statuses()}")


def down(env: dict[str, str]) -> float:
    started = time.perf_counter()
    compose(env, "down", "--remove-orphans")
    seconds = time.perf_counter() - started
    left = statuses() + docker("network", "ls", "-q", "--filter", f"label=com.docker.compose.project={PROJECT}").split()
    if left:
        raise SystemExit(f"bench_compose: down left {left}")
    return seconds


def day(results: Path) -> None:
    summary_path = results / "compose" / "run" / "summary.json"
    deadline = time.monotonic() + BOUND_S
    while not summary_path.exists():
        if time.monotonic() > deadline:
            raise SystemExit("bench_compose: the controller's day did not end in time")
        time.sleep(2)
    steps = json.loads(summary_path.read_text())["steps"]
    sent, lost = sum(s["probes_sent"] for s in steps), sum(s["probes_lost"] for s in steps)
    around = sum(s["probes_lost_around_reconfiguration"] for s in steps)
    print(f"day: {len(steps)} steps, probes sent {sent}, lost {lost} ({100 * lost / max(sent, 1):.2f}%), "
          f"{around} of them within 1 s of a reconfiguration")
    parts = ("decide", "evaluate", "rules", "build", "em", "prepare", "servers", "commit")
    for s in steps:
        work = sum(s["seconds"].get(p, 0.0) for p in parts)
        split = ", ".join(f"{p} {s['seconds'][p] * 1e3:.0f}" for p in parts if p in s["seconds"])
        print(f"  {s['hour']:02d}:00  accepted {s['accepted']}/{s['requests']}, moved {len(s['moved'])}, controller work "
              f"{work * 1e3:.0f} ms ({split}), probes lost {s['probes_lost']}/{s['probes_sent']}, notes {len(s['notes'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="up/down cycles to time (default 3)")
    parser.add_argument("--day", action="store_true", help="also let the first run's controller finish its day")
    args = parser.parse_args()
    for image in IMAGES:
        size = int(docker("image", "inspect", "--format", "{{.Size}}", image))
        print(f"image {image}: {size / 1e6:.0f} MB")
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="srem-bench-compose-") as tmp:
            env = {"SREM_RESULTS": tmp}
            try:
                healthy = up_until_healthy(env)
                if run == 0 and args.day:
                    day(Path(tmp))
            finally:
                took = down(env)
            print(f"run {run + 1}: up -d to every service healthy {healthy:.1f} s, down {took:.1f} s, nothing left")


if __name__ == "__main__":
    main()
