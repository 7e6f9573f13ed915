"""Start-up time of the `srem` command; prints its figures.

Every command pays it: `srem --help` and `srem evaluate --policy static --help` import neither
torch nor the MILP solver (a test checks which modules they load; this measures what that buys).
Each is run 20 times in a fresh interpreter; the median and the spread are printed.

Run: .venv/bin/python benchmarks/bench_cli.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

COMMANDS = (["--help"], ["evaluate", "--policy", "static", "--help"], ["--version"])
RUNS = 20


def seconds(argv: list[str]) -> list[float]:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "controller", *argv], check=True, capture_output=True, timeout=60)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    for argv in COMMANDS:
        times = seconds(argv)
        print(f"srem {' '.join(argv)}: median {statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f}, {RUNS} runs)")


if __name__ == "__main__":
    main()
