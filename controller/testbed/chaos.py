"""The chaos soak's one job: say which faults strike the live testbed when (a seeded schedule), and judge what the
probes and the live loop's records say about them (the invariants).

Pure: the runner (benchmarks/bench_chaos.py) strikes, reads the testbed and hands the records here; nothing here
reads a socket, a file or a clock.

The schedule: `faults` faults in distinct steps of a soak of `steps` steps (step 0 is left fault-free: the soak's
first configuration settles), each kind as often as the others (±1) in a seeded random order, each at a random
moment of its step. The kinds: a switch's process killed (SIGKILL), a memory server's, the EMAC's, and the
controller killed and restarted - at a random moment of the step (`controller`: mostly while it holds the step,
sometimes still inside its work) or at a random point of the step's work (`controller-deploy`: deciding,
programming external memory, writing the switches, installing the rack servers' functions; the moment is a
fraction of the work time, which the runner measures on the steps before). A restarted controller takes over
the configuration in force (LiveLoop.take_over) and, when it was killed inside its work, runs the step again.

The invariants, per fault: its window runs from the moment it struck, moved earlier by the longest one-way
latency of the probes sent just before (those already on their way when it struck), to its recovery - the loop
noting the configuration whole again during the step (`repaired_ns`), or the next step that healed it at its
start (its `reconfigured_ns`), or, for the controller, the restarted one in control (taken over; having run the
step again when it was killed in its work). What must hold: every probe a chain lost while the configuration in
force carried it was sent inside some fault's window; each fault recovered within its kind's bound; after each
recovery the runner's checks (the switches' tables equal the deploy path's entries, every EM region the switches
point at holds its own instance's table) found nothing; no probe arrived at a host that is not its chain's
destination. Around a reconfiguration the chains whose admission changes (carried before, rejected after, or the
reverse) owe nothing between the step's start and its reconfiguration: which of their probes the old and the new
configuration carry depends on when their classifier flipped.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from controller.testbed.probes import GRACE_NS, ProbeLog

NS = 1_000_000_000


class Kind(str, Enum):
    SWITCH = "switch"
    MEMSERVER = "memserver"
    EMAC = "emac"
    CONTROLLER = "controller"
    """The controller killed (SIGKILL) at a random moment of the step, then restarted to take over."""
    CONTROLLER_DEPLOY = "controller-deploy"
    """The controller killed at a random point of the step's work, then restarted: it takes over and runs the step again."""

    @property
    def controller(self) -> bool:
        return self in (Kind.CONTROLLER, Kind.CONTROLLER_DEPLOY)


KINDS = tuple(Kind)


@dataclass(frozen=True)
class Fault:
    index: int
    step: int
    """The soak's step (counted across days) the fault strikes in."""
    kind: Kind
    at: float
    """When it strikes: seconds after the step started, or for CONTROLLER_DEPLOY the fraction of the step's work done."""
    pick: float
    """Which target, in [0, 1): the runner offers the candidates at the time (`choose`); for a switch, one of the topology's."""


@dataclass(frozen=True)
class Bounds:
    """How long after striking each kind of fault must have recovered (seconds)."""

    process_s: float = 5.0
    """A switch, memory server or EMAC killed: the loop notices within WATCH_S, restarts it and deploys the configuration
    in force again (a switch: the pipeline pushed and every entry written)."""
    controller_s: float = 15.0
    """A controller killed: a new process started (interpreter, imports, dataset), connected to every switch, the
    configuration in force read back, and the step run again when it died inside its work."""

    def of(self, kind: Kind) -> float:
        return self.controller_s if kind.controller else self.process_s


def schedule(seed: int, faults: int, steps: int, step_seconds: float, kinds: Sequence[Kind] = KINDS,
             first_step: int = 1, tail_s: float = 0.3) -> list[Fault]:
    """`faults` faults in distinct steps of [first_step, steps), in step order; every kind of `kinds` equally often
    (±1) in a random order; each strikes at a uniform moment of [0, step_seconds - tail_s) of its step (the last
    `tail_s` left for the runner to hand over to the next step), or for CONTROLLER_DEPLOY at a uniform fraction
    of the step's work. Deterministic in `seed`."""
    if faults < 0 or not kinds:
        raise ValueError("a schedule needs a number of faults >= 0 and at least one kind")
    if faults > steps - first_step:
        raise ValueError(f"{faults} faults need {faults + first_step} steps (one fault per step, none in the first "
                         f"{first_step}); {steps} given")
    if step_seconds <= tail_s:
        raise ValueError(f"steps of {step_seconds:g} s leave no moment to strike before the last {tail_s:g} s")
    rng = random.Random(seed)
    at_steps = sorted(rng.sample(range(first_step, steps), faults))
    order = [kinds[i % len(kinds)] for i in range(faults)]
    rng.shuffle(order)
    return [Fault(i, step, kind, rng.random() if kind is Kind.CONTROLLER_DEPLOY else rng.uniform(0.0, step_seconds - tail_s),
                  rng.random())
            for i, (step, kind) in enumerate(zip(at_steps, order))]


def choose(pick: float, candidates: Sequence[str]) -> str:
    """The target `pick` names among the candidates (in their given order)."""
    if not candidates:
        raise ValueError("no candidate to strike")
    return candidates[min(int(pick * len(candidates)), len(candidates) - 1)]


# What happened

@dataclass(frozen=True)
class Span:
    """One step's configuration: the step started (its first attempt, for a step a killed controller had begun), its
    configuration was in force from `reconfigured_ns`, and it carried these chains (SPIs)."""

    started_ns: int
    reconfigured_ns: int
    carried: frozenset[int]


@dataclass(frozen=True)
class Struck:
    """A fault as it happened: its target, when it struck, when it had recovered (None: not within the soak), what the
    runner's checks after the recovery found wrong (empty: whole again), and whether it struck inside the step's work."""

    fault: Fault
    target: str
    struck_ns: int
    recovered_ns: int | None
    problems: tuple[str, ...] = ()
    in_work: bool = False

    @property
    def recovery_s(self) -> float | None:
        return None if self.recovered_ns is None else (self.recovered_ns - self.struck_ns) / NS


def recovered_at(struck_ns: int, repaired_ns: Iterable[int], healed_at_start_ns: Iterable[int] = ()) -> int | None:
    """The first moment after the fault the configuration in force was whole again: a repair made while a step ran,
    or the reconfiguration of a step that healed it at its start; None when neither came after it."""
    after = [t for t in (*repaired_ns, *healed_at_start_ns) if t > struck_ns]
    return min(after, default=None)


def in_flight_ns(log: ProbeLog, before_ns: int, lookback_ns: int = 10 * NS, default_ns: int = GRACE_NS) -> int:
    """The longest one-way latency of the probes sent in the `lookback_ns` before `before_ns` (the probes that may have
    been on their way at that moment); `default_ns` when none of them arrived."""
    rows = log.received.rows()
    rows = rows[(rows[:, 2] < before_ns) & (rows[:, 2] >= before_ns - lookback_ns)]
    return int((rows[:, 3] - rows[:, 2]).max()) if len(rows) else default_ns


def window_of(struck: Struck, in_flight: int, bounds: Bounds) -> tuple[int, int]:
    """[start, end) of the fault's window: from the strike less the in-flight time to its recovery (a fault that did
    not recover: to its bound, and it is not survived anyway)."""
    end = struck.recovered_ns if struck.recovered_ns is not None else struck.struck_ns + int(bounds.of(struck.fault.kind) * NS)
    return struck.struck_ns - in_flight, end


def lost_probes(log: ProbeLog, start_ns: int, end_ns: int, grace_ns: int = GRACE_NS) -> np.ndarray:
    """Rows (chain, seq, sent_ns) of the probes sent in [start_ns, end_ns) - up to the horizon less `grace_ns` - that
    never arrived (an arrival without a kernel stamp is an arrival), one row per probe, in send order."""
    end = min(end_ns, log.horizon_ns - grace_ns)
    sent = log.sent.rows()
    sent = sent[(sent[:, 2] >= start_ns) & (sent[:, 2] < end)]
    arrived = np.union1d(_keys(log.received.rows()), _keys(log.unstamped.rows()))
    lost = sent[~np.isin(_keys(sent), arrived)]
    _, first = np.unique(_keys(lost), return_index=True)
    lost = lost[first]
    return lost[np.argsort(lost[:, 2], kind="stable")]


def _keys(rows: np.ndarray) -> np.ndarray:
    """One integer per (chain, seq): chains below 2^23, sequence numbers below 2^40."""
    return (rows[:, 0] << 40) | rows[:, 1]


def owed(spans: Sequence[Span], chain: int, sent_ns: int) -> bool | None:
    """Whether the configuration in force when the probe was sent must deliver it: True (carried), False (the chain
    is rejected, or the probe predates the first span), None (excused: sent while a reconfiguration changed the
    chain's admission). `spans` in time order."""
    k = bisect.bisect_right([s.started_ns for s in spans], sent_ns) - 1
    if k < 0:
        return False
    span = spans[k]
    if sent_ns >= span.reconfigured_ns:
        return chain in span.carried
    if k == 0:
        return False
    before, after = chain in spans[k - 1].carried, chain in span.carried
    return before if before == after else None


# The verdict

@dataclass(frozen=True)
class FaultVerdict:
    struck: Struck
    window: tuple[int, int]
    lost: int
    """Probes the carried chains lost inside this fault's window (a probe inside two windows counts for the first)."""
    chains: tuple[int, ...]
    bound_s: float

    @property
    def within_bound(self) -> bool:
        r = self.struck.recovery_s
        return r is not None and r <= self.bound_s

    @property
    def survived(self) -> bool:
        return self.within_bound and not self.struck.problems


@dataclass
class Verdict:
    faults: list[FaultVerdict]
    lost_outside: np.ndarray
    """Rows (chain, seq, sent_ns) of probes carried chains lost outside every fault's window."""
    lost_excused: int
    """Probes lost by chains whose admission a reconfiguration was changing (owed nothing)."""
    misdelivered: dict[int, int] = field(default_factory=dict)
    """Chain -> probes that arrived at a host other than the chain's destination."""
    other_failures: list[str] = field(default_factory=list)
    """Invariants checked by the runner outside the faults (e.g. EM answers of the wrong function)."""

    @property
    def lost_inside(self) -> int:
        return sum(f.lost for f in self.faults)

    @property
    def survived(self) -> int:
        return sum(f.survived for f in self.faults)

    def failures(self) -> list[str]:
        """Every invariant that failed, one line each (empty: all hold)."""
        out = []
        for f in self.faults:
            s = f.struck
            name = f"fault {s.fault.index} ({s.fault.kind.value} {s.target}, step {s.fault.step})"
            if s.recovery_s is None:
                out.append(f"{name}: never recovered")
            elif not f.within_bound:
                out.append(f"{name}: recovered after {s.recovery_s:.2f} s, bound {f.bound_s:g} s")
            out += [f"{name}: {p}" for p in s.problems]
        if len(self.lost_outside):
            chains = sorted({int(c) for c in self.lost_outside[:, 0]})
            out.append(f"{len(self.lost_outside)} probes lost outside every fault window (chains {chains[:10]}"
                       f"{' ...' if len(chains) > 10 else ''})")
        if self.misdelivered:
            out.append(f"probes delivered to another host than their chain's destination: {dict(sorted(self.misdelivered.items()))}")
        return out + self.other_failures


def judge(log: ProbeLog, spans: Sequence[Span], struck: Sequence[Struck], bounds: Bounds, start_ns: int | None = None,
          grace_ns: int = GRACE_NS) -> Verdict:
    """Every probe lost from `start_ns` (default: the first span's reconfiguration) to the horizon, put inside the first
    fault window holding its send time, or outside every window when the configuration in force owed it."""
    spans = sorted(spans, key=lambda s: s.started_ns)
    start = spans[0].reconfigured_ns if start_ns is None and spans else (start_ns or 0)
    windows = [window_of(s, in_flight_ns(log, s.struck_ns), bounds) for s in struck]
    inside: list[list[tuple[int, int, int]]] = [[] for _ in struck]
    outside, excused = [], 0
    for chain, seq, sent in lost_probes(log, start, 1 << 62, grace_ns).tolist():
        due = owed(spans, chain, sent)
        if due is None:
            excused += 1
            continue
        if not due:
            continue
        holder = next((i for i, (a, b) in enumerate(windows) if a <= sent < b), None)
        if holder is None:
            outside.append((chain, seq, sent))
        else:
            inside[holder].append((chain, seq, sent))
    verdicts = [FaultVerdict(s, w, len(lost), tuple(sorted({c for c, _, _ in lost})), bounds.of(s.fault.kind))
                for s, w, lost in zip(struck, windows, inside)]
    rows = np.array(outside, dtype=np.int64).reshape(-1, 3)
    return Verdict(verdicts, rows, excused)


def misdelivered(answers: Iterable[Mapping[str, Any]], destination: Mapping[int, str]) -> dict[int, int]:
    """Chain -> probes that arrived at a traffic agent whose address is not the chain's destination (`destination`:
    chain -> its target host's address), from the agents' raw `collect` answers; chains without a known destination
    count wherever they arrive."""
    wrong: dict[int, int] = {}
    for answer in answers:
        address = answer.get("address")
        for chain in (answer.get("probes_received") or {}).get("chain", []):
            if destination.get(int(chain)) != address:
                wrong[int(chain)] = wrong.get(int(chain), 0) + 1
    return wrong


def counter_growth(samples: Sequence[tuple[float, float]]) -> float:
    """How much a counter grew over a series of (its process's start time, value) samples, a change of start time (or a
    value going down) meaning the process restarted and counted from 0 again."""
    growth = 0.0
    for (started, value), (started_next, value_next) in zip(samples, samples[1:]):
        restarted = started_next != started or value_next < value
        growth += value_next if restarted else value_next - value
    return growth


def growth_outside(samples: Sequence[tuple[int, float, float]], windows: Sequence[tuple[int, int]]) -> float:
    """How much a counter grew in the intervals between its samples - (when, its process's start time, value), in time
    order, the first counting from 0 - that overlap no window [start, end)."""
    if not samples:
        return 0.0
    series = [(-(1 << 62), samples[0][1], 0.0), *samples]
    outside = 0.0
    for (t0, *before), (t1, *after) in zip(series, series[1:]):
        if not any(a < t1 and t0 < b for a, b in windows):
            outside += counter_growth([tuple(before), tuple(after)])  # type: ignore[list-item]
    return outside


def probes_sent(log: ProbeLog, start_ns: int, grace_ns: int = GRACE_NS) -> int:
    """Probes sent from `start_ns` to the horizon less `grace_ns` (what `judge` looked at)."""
    sent = log.sent.rows()
    sent = sent[(sent[:, 2] >= start_ns) & (sent[:, 2] < log.horizon_ns - grace_ns)]
    return len(np.unique(_keys(sent)))


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100, linear between ranks); NaN for no values."""
    if not values:
        return math.nan
    return float(np.percentile(np.asarray(values, dtype=float), q))


def summary(verdict: Verdict, sent: int, bounds: Bounds) -> str:
    """The soak's result block: faults injected by kind, survived, recovery p50/max, probes lost inside and outside
    the fault windows, and every invariant that failed."""
    kinds = {k: sum(f.struck.fault.kind is k for f in verdict.faults) for k in KINDS}
    recoveries = [f.struck.recovery_s for f in verdict.faults if f.struck.recovery_s is not None]
    worst = max((f for f in verdict.faults if f.struck.recovery_s is not None), key=lambda f: f.struck.recovery_s or 0.0,
                default=None)
    by_kind = {k: [f.struck.recovery_s for f in verdict.faults if f.struck.fault.kind is k and f.struck.recovery_s is not None]
               for k in KINDS}
    lines = [
        f"faults injected: {len(verdict.faults)} (" + ", ".join(f"{k.value} {n}" for k, n in kinds.items()) + ")",
        f"faults survived: {verdict.survived} (recovered within the bound - {bounds.process_s:g} s for a process, "
        f"{bounds.controller_s:g} s for the controller - and the checks after it found nothing)",
        f"recovery s: p50 {percentile(recoveries, 50):.2f}, max {max(recoveries, default=math.nan):.2f}"
        + (f" ({worst.struck.fault.kind.value} {worst.struck.target}, step {worst.struck.fault.step})" if worst else ""),
        "recovery s by kind (p50/max): " + ", ".join(
            f"{k.value} {percentile(v, 50):.2f}/{max(v):.2f}" for k, v in by_kind.items() if v),
        f"probes sent: {sent}; lost inside fault windows: {verdict.lost_inside} "
        f"(in {sum(f.lost > 0 for f in verdict.faults)} of the faults); lost outside any window: {len(verdict.lost_outside)}; "
        f"lost by chains whose admission a reconfiguration was changing (owed nothing): {verdict.lost_excused}",
    ]
    failures = verdict.failures()
    lines.append("invariants: all hold" if not failures else f"invariants FAILED ({len(failures)}):")
    lines += [f"  - {line}" for line in failures[:40]]
    if len(failures) > 40:
        lines.append(f"  ... and {len(failures) - 40} more")
    return "\n".join(lines)
