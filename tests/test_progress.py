"""Progress off a terminal: whole lines now and then, and one at the end (issue 20, finding 12)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from srem_formats.progress import LineProgress


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_lines_every_interval_with_rate_and_time_left() -> None:
    clock, out = Clock(), io.StringIO()
    bar = LineProgress(total=10, desc="evaluating srem", unit="workload", stream=out, interval=30.0, clock=clock)
    for _ in range(4):
        clock.now += 10.0
        bar.update()
    bar.close()
    lines = out.getvalue().splitlines()
    # one line after 30 s (3 done, 0.1/s, 7 left -> 70 s), then the closing line
    assert lines == ["srem: evaluating srem: 3/10 workload, 0.1 workload/s, about 1m10s left",
                     "srem: evaluating srem: 4/10 workload in 40s"]


def test_iterating_closes_once_even_when_the_loop_breaks() -> None:
    clock, out = Clock(), io.StringIO()
    bar = LineProgress(range(100), desc="d", unit="u", stream=out, interval=1e9, clock=clock)
    for i in bar:
        if i == 4:
            break
    bar.close()
    assert out.getvalue().splitlines() == ["srem: d: 4/100 u in 0s"]


def test_a_resumed_count_is_not_part_of_the_rate() -> None:
    clock, out = Clock(), io.StringIO()
    bar = LineProgress(total=400, desc="training", unit="episode", initial=300, stream=out, interval=10.0, clock=clock)
    clock.now = 10.0
    bar.update(10)  # 10 episodes in 10 s: 90 left at 1/s
    assert out.getvalue().splitlines() == ["srem: training: 310/400 episode, 1 episode/s, about 1m30s left"]


def test_a_command_with_stderr_in_a_file_says_it_progressed(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "controller", "evaluate", "--scenario", "small", "--policy", "static",
                          "--limit", "2", "--csv", str(tmp_path / "out.csv")],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "srem: evaluating static: 2/2 workload in " in run.stderr
