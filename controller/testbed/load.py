"""How busy the machine was while a step ran, and what a step's probe loss is then blamed on.

Probes are lost for two reasons a user must tell apart: a fault (a process died, a deploy failed: the
step's notes say so) or overload (BMv2, the traffic agents and the loop need more CPU than the machine
has, and the switches drop from full queues). /proc/stat's busy share over the step separates the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROC_STAT = Path("/proc/stat")
OVERLOADED = 0.9
"""Busy share of all cores from which a step's loss without a fault is overload: the switches' threads, the
agents and the loop then wait for a core, and BMv2's queues overflow."""


@dataclass(frozen=True)
class CpuTimes:
    busy: int
    total: int


def cpu_times(stat: Path = PROC_STAT) -> CpuTimes:
    """The machine's CPU time so far, all cores (clock ticks): busy is all but idle and iowait."""
    fields = [int(v) for v in stat.read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal; guest time is inside user already
    return CpuTimes(total - idle, total)


def busy_share(before: CpuTimes, after: CpuTimes) -> float:
    """The share of all cores busy between two readings (0 when no tick passed)."""
    ticks = after.total - before.total
    return (after.busy - before.busy) / ticks if ticks > 0 else 0.0


def loss_cause(lost: int, faults: list[str], busy: float | None) -> str | None:
    """One line blaming a step's lost probes on what it can: None when none was lost."""
    if lost == 0:
        return None
    if faults:
        return f"{lost} probes lost in a step with faults (its notes)"
    if busy is not None and busy >= OVERLOADED:
        return (f"{lost} probes lost without a fault while the CPU was {busy:.0%} busy: the machine is overloaded, "
                "not faulty (lower --probe-pps or --budget-pps)")
    where = "" if busy is None else f" (CPU {busy:.0%} busy)"
    return f"{lost} probes lost without a fault or overload{where}: see the switches' logs"
