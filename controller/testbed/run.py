"""`srem testbed run`: bring the testbed up, let a policy drive it for some steps of one workload,
measure with probes, write everything to the run directory, and tear down what it started.

The run directory holds the testbed's own files (state, switch logs, control sockets) under `net/`,
and the loop's: `step-N.json` per step (decision, timing, notes), `probes.jsonl` (the agents' raw
answers), `steps.md` (the per-step table printed at the end), `chains.md` (per-chain probe tables
per step with the model's predicted delay), `baseline.md` (idle latency between neighbouring hosts,
measured before any chain was installed) and `latency.png` (each chain's probe latency over time,
the reconfigurations marked).
"""

from __future__ import annotations

import contextlib
import json
import logging
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from controller.errors import SremError
from controller.model.dataset import Dataset
from controller.model.scenario import Scenario
from controller.policies.base import Policy
from controller.testbed import probes as P
from controller.testbed.load import loss_cause
from controller.testbed.loop import STEP_RECORD, LiveLoop, LoopSettings, StepRecord
from controller.testbed.network import Testbed, TestbedOptions
from controller.testbed.state import STATE_FILE
from hosts.control import MAX_LINE, call

log = logging.getLogger(__name__)
BASELINE_PROBES, BASELINE_PPS = 40, 100.0
WINDOW_NS = 1_000_000_000
"""Probes sent this long before and after a reconfiguration form its window."""


@dataclass
class RunResult:
    records: list[StepRecord]
    steps: list[dict[int, P.Stats]]
    reconfigurations: list[dict[int, P.Stats]]
    baseline: dict[tuple[str, str], P.Stats]
    scale_factor: float
    out: Path

    def totals(self, stats: dict[int, P.Stats]) -> tuple[int, int, int]:
        """(sent, lost, reordered) over the chains the model carried (the rest are dropped at their source on purpose)."""
        return (sum(s.sent for s in stats.values()), sum(s.lost for s in stats.values()), sum(s.reordered for s in stats.values()))


def run_testbed(scenario: Scenario, dataset: Dataset, workload: int, policy: Policy, settings: LoopSettings, out: Path,
                steps: int | None = None, forced: dict[int, tuple[int, ...]] | None = None,
                options: TestbedOptions = TestbedOptions(), say: Callable[[str], None] = lambda _: None,
                metrics: tuple[str, int] | None = None, attach: Path | None = None,
                hold: Callable[[], None] | None = None, resume: bool = False) -> RunResult:
    """Up, `steps` steps (default the whole day; `forced[step]` replaces the policy's decision), collect,
    down; the loop's Prometheus metrics served on `metrics` (host, port) while it runs. `attach`: the run
    directory of a testbed that is up (another process or container holds it; it stays up). `hold`: called
    once the results are written, with the last configuration and the traffic still running (it returns
    when the run should end: a signal). `resume`: `out` holds the steps a controller that stopped ran on
    the attached testbed (resumable): take over the data plane and continue after them. Bad input (a workload out of range, a policy that does not fit the
    network) is refused before anything starts."""
    tests = len(dataset.split("test"))
    if not 0 <= workload < tests:
        raise SremError(f"workload {workload} out of range: the test split has {tests} (0..{tests - 1})", where="--workload")
    policy.bind(dataset.substrate)
    out.mkdir(parents=True, exist_ok=True)
    with _testbed(scenario, out, options, attach) as testbed:
        say(f"testbed {'attached' if attach else 'up'} in {testbed.run_dir}: {len(testbed.layout.switches)} switches, "
            f"{len(testbed.layout.servers)} rack servers")
        loop = LiveLoop(testbed, dataset, scenario.spec.dataplane, workload, policy, settings, out)
        server = None
        if metrics is not None:
            server = loop.metrics.serve(*metrics)
            say(f"loop metrics on http://{metrics[0]}:{server.server_address[1]}/metrics")
        try:
            if resume:
                records, answers = _recorded(out)
                loop.take_over(records, answers)
                say(f"took over the configuration in force after {len(records)} recorded steps")
            else:
                _mark_attached(out, testbed)
                loop.start(idle=lambda: _baseline(testbed, loop))
                say(f"initial configuration deployed; data rates scaled by {loop.scale.factor:.2e} "
                    f"({loop.scale.pps_per_mbps:.3g} packets/s per Mbps)")
            first = len(loop.records)
            loop.run(None if steps is None else max(0, steps - first), on_step=lambda record: say(_step_line(record)),
                     first=first, forced=forced)
            if hold is None:
                loop.stop_traffic()
                time.sleep(P.GRACE_NS / 1e9 + 0.5)
            loop.collect()
            result = _analyse(loop, out)
            if hold is not None:
                say(f"results in {out}; holding the last configuration with its traffic running until stopped")
                hold()
        finally:
            if server is not None:
                server.shutdown()
                server.server_close()
            loop.close()
    return result


@contextlib.contextmanager
def _testbed(scenario: Scenario, out: Path, options: TestbedOptions, attach: Path | None) -> Iterator[Testbed]:
    """A testbed of our own in OUT/net, taken down at the end, or the one up in `attach`, left up."""
    if attach is None:
        with Testbed.start(scenario.topology, out / "net", options) as testbed:
            yield testbed
    else:
        yield Testbed.attach(attach / STATE_FILE)


ATTACHED = "attached.json"
"""In a run directory: the testbed the run drives (its state file and creation time), so that a restarted
controller knows whether the steps recorded there are this testbed's."""


def _mark_attached(out: Path, testbed: Testbed) -> None:
    (out / ATTACHED).write_text(json.dumps({"state": str(testbed.state.path), "created": testbed.state.created}) + "\n")


def resumable(out: Path, attach: Path) -> bool:
    """Whether `out` holds a run on the testbed that is up in `attach` (the same one, not an earlier testbed
    brought up in the same directory): a restarted controller can take it over."""
    try:
        marked = json.loads((out / ATTACHED).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return False
    testbed = Testbed.attach(attach / STATE_FILE)
    return marked == {"state": str(testbed.state.path), "created": testbed.state.created}


def _recorded(out: Path) -> tuple[list[StepRecord], list[dict[str, object]]]:
    """The step records (step-N.json, in order, up to the first missing) and the probe answers (probes.jsonl)
    a controller wrote in `out`; SremError naming the file (and line) when one is not what the loop writes.

    A step file is replaced whole (loop.py), so a bad one is corruption. probes.jsonl is appended to, so a
    controller killed mid-write leaves its last line cut short: that line is dropped, and cut off the file so
    that this run's answers start on a line of their own; a bad line before the last is corruption."""
    records = []
    while (path := out / f"step-{len(records)}.json").exists():
        records.append(_step_record(path, len(records)))
    probes = out / "probes.jsonl"
    return records, _probe_answers(probes) if probes.exists() else []


MAX_STEP_BYTES = 16 << 20
"""A step record names each instance's host and each chain's delay: kilobytes; one this large is not one."""


def _step_record(path: Path, step: int) -> StepRecord:
    if path.stat().st_size > MAX_STEP_BYTES:
        raise SremError(f"larger than {MAX_STEP_BYTES >> 20} MiB: not a step record", where=path)
    try:
        record = STEP_RECORD.validate_json(path.read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        at = ".".join(str(part) for part in first["loc"])
        raise SremError(f"not a step record ({at + ': ' if at else ''}{first['msg']})", where=path) from None
    if record.step != step:
        raise SremError(f"records step {record.step}, not {step}", where=path)
    return record


def _probe_answers(path: Path) -> list[dict[str, object]]:
    answers: list[dict[str, object]] = []
    kept = 0  # bytes of the file up to the end of the last good line
    with open(path, "rb+") as f:
        number = 0
        while line := f.readline(MAX_LINE + 1):
            number += 1
            try:
                answers.append(_probe_answer(line))
            except SremError as exc:
                if f.read(1):  # not the last line: corruption, not a write cut short
                    raise SremError(exc.message, where=path, key=f"line {number}") from None
                log.warning("%s: line %d, the last, is cut short (%s): dropped; a controller stopped while writing it",
                            path, number, exc.message)
                f.truncate(kept)
                break
            kept = f.tell()
            if not line.endswith(b"\n"):  # whole but for its newline: the next answer must not run on
                f.write(b"\n")
    return answers


def _probe_answer(line: bytes) -> dict[str, object]:
    """One line of probes.jsonl: a JSON object (SremError saying why not)."""
    if len(line) > MAX_LINE:
        raise SremError(f"longer than an answer can be ({MAX_LINE} bytes)")
    try:
        answer = json.loads(line)
    except (ValueError, RecursionError):
        raise SremError("not JSON") from None
    if not isinstance(answer, dict):
        raise SremError("not a JSON object")
    return answer  # what a traffic agent's answer holds is checked where it is taken in (loop.recorded_probes)


def _baseline(testbed: Testbed, loop: LiveLoop) -> None:
    """Idle probes from every traffic host to the hosts of its neighbouring switches, before chain traffic flows."""
    layout = testbed.layout
    for switch, path in loop.agents.items():
        targets = [str(layout.switches[n].host_ip) for n in layout.neighbours[switch] if n in layout.switches]
        if targets:
            call(path, "baseline", targets=targets, count=BASELINE_PROBES, pps=BASELINE_PPS)
    time.sleep(BASELINE_PROBES / BASELINE_PPS + 0.5)


def _step_line(r: StepRecord) -> str:
    push = r.seconds.get("prepare", 0.0) + r.seconds.get("commit", 0.0)
    line = (f"{r.hour:02d}:00  accepted {r.accepted}/{r.requests}, moved {len(r.moved)}; decide {r.seconds['decide'] * 1e3:.1f} ms, "
            f"evaluate {r.seconds['evaluate'] * 1e3:.1f} ms, build {r.seconds.get('build', 0.0) * 1e3:.0f} ms, "
            f"EM {r.seconds.get('em', 0.0) * 1e3:.0f} ms, servers {r.seconds.get('servers', 0.0) * 1e3:.0f} ms, "
            f"push {push * 1e3:.0f} ms, drain {r.seconds.get('drain', 0.0) * 1e3:.0f} ms")
    return line + "".join(f"\n  note: {n}" for n in r.notes)


def _analyse(loop: LiveLoop, out: Path) -> RunResult:
    records = loop.records
    per_step = P.step_stats(loop.probes, [r.started_ns for r in records], grace_ns=0) if records else []
    windows = P.reconfiguration_stats(loop.probes, [r.reconfigured_ns for r in records], WINDOW_NS, WINDOW_NS, grace_ns=0)
    result = RunResult(records, [_carried(s, r) for s, r in zip(per_step, records)],
                       [_carried(s, r) for s, r in zip(windows, records)], P.baseline_stats(loop.probes, grace_ns=0),
                       loop.scale.factor, out)
    (out / "steps.md").write_text(steps_table(result))
    (out / "chains.md").write_text("\n\n".join(
        P.table(stats, f"{r.hour:02d}:00 (step {r.step}), chains the model carried", r.predicted_delay_ms)
        for stats, r in zip(result.steps, records)))
    (out / "baseline.md").write_text(P.table(result.baseline, "idle baseline between neighbouring traffic hosts "
                                                              "(2 switch traversals)", key_name="hosts"))
    (out / "summary.json").write_text(json.dumps(summary(result), indent=1))
    plot_latency(loop.probes, records, out / "latency.png")
    return result


def _carried(stats: dict[int, P.Stats], record: StepRecord) -> dict[int, P.Stats]:
    return {chain: s for chain, s in stats.items() if chain in record.predicted_delay_ms}


def steps_table(result: RunResult) -> str:
    head = "| hour | accepted | moved | decide ms | evaluate ms | build ms | EM ms | servers ms | push ms | probes sent | lost | reordered | lost ±1 s of the change | median p50 ms | model median ms |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r, stats, window in zip(result.records, result.steps, result.reconfigurations):
        sent, lost, reordered = result.totals(stats)
        _, window_lost, _ = result.totals(window)
        p50 = [s.p50_us / 1e3 for s in stats.values() if s.p50_us == s.p50_us]
        s = r.seconds
        lines.append(f"| {r.hour:02d}:00 | {r.accepted}/{r.requests} | {len(r.moved)} | {s['decide'] * 1e3:.2f} | "
                     f"{s['evaluate'] * 1e3:.1f} | {s.get('build', 0) * 1e3:.0f} | {s.get('em', 0) * 1e3:.0f} | "
                     f"{s.get('servers', 0) * 1e3:.0f} | {(s.get('prepare', 0) + s.get('commit', 0)) * 1e3:.0f} | {sent} | {lost} | "
                     f"{reordered} | {window_lost} | {statistics.median(p50) if p50 else float('nan'):.3f} | "
                     f"{statistics.median(r.predicted_delay_ms.values()) if r.predicted_delay_ms else float('nan'):.3f} |")
    causes = [f"{r.hour:02d}:00: {cause}" for r, stats in zip(result.records, result.steps)
              if (cause := loss_cause(result.totals(stats)[1], r.notes, r.cpu_busy))]
    return "\n".join(lines) + "\n" + "".join(f"\n{line}" for line in causes) + ("\n" if causes else "")


def summary(result: RunResult) -> dict[str, object]:
    steps = []
    for r, stats, window in zip(result.records, result.steps, result.reconfigurations):
        sent, lost, reordered = result.totals(stats)
        steps.append({"step": r.step, "hour": r.hour, "accepted": r.accepted, "requests": r.requests, "moved": r.moved,
                      "seconds": r.seconds, "probes_sent": sent, "probes_lost": lost, "probes_reordered": reordered,
                      "probes_lost_around_reconfiguration": result.totals(window)[1], "notes": r.notes,
                      "cpu_busy": r.cpu_busy, "loss_cause": loss_cause(lost, r.notes, r.cpu_busy),
                      "chains": {str(c): {"p50_ms": s.p50_us / 1e3, "p99_ms": s.p99_us / 1e3, "lost": s.lost, "sent": s.sent,
                                          "model_ms": r.predicted_delay_ms.get(c)} for c, s in stats.items()}})
    return {"out": str(result.out), "scale_factor": result.scale_factor, "steps": steps}


def plot_latency(log: P.ProbeLog, records: list[StepRecord], path: Path) -> None:
    """Every probe's one-way latency against its send time, one colour per chain; reconfigurations as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = log.received.rows()
    fig, ax = plt.subplots(figsize=(9, 4.5))
    if len(rows):
        start = min(int(rows[:, 2].min()), min((r.started_ns for r in records), default=int(rows[:, 2].min())))
        t = (rows[:, 2] - start) / 1e9
        latency = (rows[:, 3] - rows[:, 2]) / 1e6
        ax.scatter(t, latency, c=rows[:, 0] % 20, cmap="tab20", s=2, linewidths=0)
        for r in records:
            ax.axvline((r.reconfigured_ns - start) / 1e9, color="black", linestyle="--", linewidth=0.8)
            ax.annotate(f"{r.hour:02d}:00", ((r.reconfigured_ns - start) / 1e9, 1), xycoords=("data", "axes fraction"),
                        ha="left", va="top", fontsize=8)
        ax.set_yscale("log")
    ax.set_xlabel("time since the first step (s)")
    ax.set_ylabel("one-way probe latency (ms)")
    ax.set_title("each chain's probes (one colour per chain); dashed: reconfigurations")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
