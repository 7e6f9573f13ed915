"""Loss without a fault blamed on overload when the machine was busy (issue 20, finding 14): the run says which."""

from __future__ import annotations

import time
from pathlib import Path

from controller.testbed.load import OVERLOADED, CpuTimes, busy_share, cpu_times, loss_cause


def test_busy_share_reads_proc_stat_as_the_kernel_writes_it(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 50 2 25 400 10 1 1 0 0 0\n")
    before = cpu_times(stat)
    assert before == CpuTimes(busy=160, total=980)
    stat.write_text("cpu  190 5 60 820 20 3 2 0 0 0\n")
    assert busy_share(before, cpu_times(stat)) == 100 / 120
    assert busy_share(before, before) == 0.0


def test_the_machine_is_seen_busy_while_it_computes() -> None:
    before = cpu_times()
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        pass
    assert busy_share(before, cpu_times()) > 0.0


def test_loss_is_blamed_on_faults_then_overload_then_nothing_known() -> None:
    assert loss_cause(0, ["switch s1 had died"], 0.99) is None
    assert "with faults" in loss_cause(5, ["switch s1 had died"], 0.99)
    overload = loss_cause(5, [], OVERLOADED)
    assert overload.startswith("5 probes lost without a fault while the CPU was 90% busy: the machine is overloaded")
    assert "lower --probe-pps or --budget-pps" in overload
    assert loss_cause(5, [], 0.5) == "5 probes lost without a fault or overload (CPU 50% busy): see the switches' logs"
    assert loss_cause(5, [], None) == "5 probes lost without a fault or overload: see the switches' logs"
