"""The chaos soak (issue 20, item 11): an accelerated run of days of steps on the `small` scenario's live testbed,
with a policy reconfiguring it every step (instances moving between servers, switch LM and EM) and random faults -
a switch, a memory server or the EMAC killed (SIGKILL), the controller killed and restarted - at random moments of
random steps, also inside the controller's deploy; then the invariants (controller/testbed/chaos.py) and one
summary block: faults injected and survived, recovery p50/max, probes lost inside and outside the fault windows.

The controller runs in a process of its own (the live loop of `srem testbed run`: LiveLoop, the testbed attached),
driven step by step over a pipe, so that killing it is a real SIGKILL at any point of its work; a new one is
started and takes over (LiveLoop.take_over) with the day's step records so far, and runs the step again when
the old one died inside it. This process holds the testbed, strikes, reads the EMAC's metrics and, at the end,
every probe. After every step (so after every recovery) the controller checks that every switch's tables read
back equal the deploy path's entries, that every EM region the switches point at holds its own instance's table
(the rules the deploy path wrote for it), that the struck process lives, and reads the switches' drop counters
of EMAC answers a function cannot take.

What is not checked, because no signal says it: which rule a probe met on its way. The traffic agents record a
probe's chain (from its payload), send and arrival times and the host it reached - not its DSCP or the port a NAT
wrote - so the soak checks that no probe reached a host other than its chain's destination, and that the EMAC
never answered from a region holding another instance's table (it refuses such lookups, `unknown_instance`:
counted, and outside fault windows a failure).

Needs root, BMv2 and Mininet. Exit 0 when every invariant held, 1 when one failed (listed), 2 when it cannot run.

    .venv/bin/python benchmarks/bench_chaos.py [--faults 200] [--steps N] [--seed 0] [--bound-s 5] [--max-wall-s S]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import multiprocessing as mp
import os
import signal
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from controller.dataplane import entries as E
from controller.dataplane.external_memory import regions_held
from controller.dataplane.layout import Layout
from controller.errors import SremError
from controller.model.dataset import Dataset, default_dataset
from controller.model.scenario import load_scenario
from controller.policies import make_policy
from controller.testbed import chaos as C
from controller.testbed import network
from controller.testbed import probes as P
from controller.testbed.loop import STEP_RECORD, LiveLoop, LoopSettings
from controller.testbed.preflight import missing
from rdma_emulator.client import RdmaClient, RdmaError, RdmaTimeout
from rdma_emulator.protocol import MAX_IO

SCENARIO = "small"
START_TIMEOUT_S = 90.0
"""A controller process must be in control within this (interpreter, imports, dataset, P4Runtime, first deploy)."""
COMMAND_TIMEOUT_S = 60.0
"""Beyond its own duration, the longest any command to the controller may take before the soak gives up on it."""
RESTART_FAILED = "could not be restarted"
REPAIR_FAILED = "redeploying the configuration in force failed"
"""What the loop notes when its repair did not make the configuration whole again (loop.py)."""
CHECKED_DROPS = (E.DropReason.EMAC_RESPONSE,)
"""Switch drop reasons that must never count: an EM answer carrying an action its function does not take."""


@dataclass(frozen=True)
class Job:
    """What a controller process runs."""

    state_path: str
    out: str
    workload: int
    policy: str
    settings: LoopSettings
    records: list[dict[str, Any]] | None
    """None: a first controller (deploys the initial configuration); else it takes over after these step records."""


# The controller's process

def controller_main(conn: Connection, job: Job) -> None:
    """A controller: attach to the testbed, start or take over, then serve the runner's commands until `close`."""
    logging.basicConfig(level=logging.WARNING, format=f"controller {os.getpid()}: %(message)s")
    Path(job.out).mkdir(parents=True, exist_ok=True)
    trace = Trace(Path(job.out) / TRACE_FILE)
    trace.line("process started")
    scenario = load_scenario(SCENARIO)
    dataset = default_dataset(scenario, progress=False)
    testbed = network.Testbed.attach(Path(job.state_path))
    with trace.span("LiveLoop()"):
        loop = LiveLoop(testbed, dataset, scenario.spec.dataplane, job.workload, make_policy(job.policy), job.settings,
                        Path(job.out))
    trace.wrap(loop)
    with trace.span("start" if job.records is None else "take_over"):
        if job.records is None:
            loop.start()
        else:
            loop.take_over([STEP_RECORD.validate_python(r) for r in job.records], [])
    conn.send(("ready", time.time_ns()))
    while True:
        command, argument = conn.recv()
        trace.line(f"command {command} {argument if command != 'check' else ''}")
        if command == "step":
            record = loop.run_step(argument)
            conn.send(("step", asdict(record)))
        elif command == "hold":
            loop.hold(time.perf_counter() + max(0.0, argument - time.time()))
            conn.send(("hold", asdict(loop.records[-1]) if loop.records else None))
        elif command == "check":
            conn.send(("check", check(loop, argument)))
        elif command == "collect":
            loop.collect()
            conn.send(("collect", None))
        elif command == "stop_traffic":
            loop.stop_traffic()
            conn.send(("stop_traffic", None))
        elif command == "close":
            loop.close()
            conn.send(("close", None))
            return


TRACE_FILE = "trace.log"


class Trace:
    """When each part of a controller's work began and ended (`TIME_NS part begin|end`), written unbuffered, so that
    the last lines of a controller killed with SIGKILL say what it was doing (OUT/controller-N/trace.log)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def line(self, text: str) -> None:
        os.write(self.fd, f"{time.time_ns()} {text}\n".encode())

    @contextlib.contextmanager
    def span(self, what: str) -> Iterator[None]:
        self.line(f"{what} begin")
        try:
            yield
        finally:
            self.line(f"{what} end")

    def wrap(self, loop: LiveLoop) -> None:
        """Trace the parts of the loop's work: the switches' writes, the data plane's apply and reads, the rack servers'
        installs and retirements, external memory, the traffic agents' flows."""
        self._method(loop, "_set_flows", "flows")
        self._method(loop, "_counters", "counters")
        self._method(loop, "repair", "repair")
        for name in ("apply", "read", "connect"):
            self._method(loop.plane, name, f"plane.{name}")
        for name, client in loop.clients.items():
            self._method(client, "write", f"write {name}", sized=True)
        for name in ("stage", "commit", "abort"):
            self._method(loop.servers, name, f"servers.{name}")
            self._method(loop.memory, name, f"memory.{name}")
        for name, client in loop.servers.clients.items():
            self._method(client, "install", f"install {name}")
            self._method(client, "retire", f"retire {name}")

    def _method(self, owner: object, name: str, what: str, sized: bool = False) -> None:
        inner = getattr(owner, name)

        def traced(*args: Any, **kwargs: Any) -> Any:
            with self.span(f"{what}{f' ({len(args[0])})' if sized and args else ''}"):
                return inner(*args, **kwargs)

        setattr(owner, name, traced)


def check(loop: LiveLoop, alive: str | None) -> dict[str, Any]:
    """What is wrong with the data plane now (problems, one line each), the memory servers holding EM tables in force
    and the switches' counts of the checked drop reasons (with each switch process's start, to tell restarts)."""
    problems: list[str] = []
    if alive is not None and not loop.testbed.process_alive(alive):
        problems.append(f"{alive} is not running")
    held = loop.plane.read()
    known = loop.plane.known
    if known is None:
        problems.append("the deploy path's entries are unknown (its last deploy did not complete)")
    else:
        problems += [f"{name}'s tables differ from the deploy path's entries ({len(set(state.items()) ^ set(known[name].items()))} "
                     "entries)" for name, state in held.items() if state != known[name]]
    problems += em_problems(loop, held)
    pointed = regions_held(held)
    servers = {s.server_id: s.name for s in loop.testbed.layout.servers.values()}
    drops = {}
    for name, client in loop.clients.items():
        start = loop.testbed.reload().processes[f"switch:{name}"].start
        drops[name] = (start, sum(client.read_counter(E.DROP_COUNTER, int(r)).get(int(r), (0, 0))[0] for r in CHECKED_DROPS))
    return {"problems": problems, "em_servers": sorted({servers[region.server] for _, region in pointed.values()}),
            "drops": drops}


def em_problems(loop: LiveLoop, held: dict[str, Any]) -> list[str]:
    """Every EM region a switch points at must hold the table the deploy path wrote for that instance, and every
    EM-hosted instance of the configuration in force must have one."""
    in_force = loop.last or loop.evaluator.evaluate(loop.workload, 0, loop.placement, loop.placement)
    tables = loop.memory.tables(loop.deployer.deployment(loop.workload, in_force))
    pointed = regions_held(held)
    problems = [f"instance {k} is in EM of {switch} but no switch points at a region of it"
                for k, (switch, _) in tables.items() if k not in pointed]
    problems += [f"{switch} points at a region for instance {k}, which is not in its EM" for k, (switch, _) in pointed.items()
                 if tables.get(k, ("", b""))[0] != switch]
    for k, (switch, region) in pointed.items():
        if tables.get(k, ("", b""))[0] != switch:
            continue
        data = tables[k][1]
        try:
            back = asyncio.run(read_region(loop.testbed.memory_servers[region.server], region.region, region.rkey, len(data)))
        except (RdmaError, RdmaTimeout, OSError) as exc:
            problems.append(f"the EM region of instance {k} on {switch} cannot be read: {exc}")
            continue
        if hashlib.sha256(back).digest() != hashlib.sha256(data).digest():
            problems.append(f"the EM region {switch} points at for instance {k} does not hold its table")
    return problems


async def read_region(address: tuple[str, int], region: int, rkey: int, length: int) -> bytes:
    client = await RdmaClient(*address, timeout_s=0.5, retries=3).open()
    try:
        pieces = await asyncio.gather(*(client.read(region, rkey, offset, min(MAX_IO, length - offset))
                                        for offset in range(0, length, MAX_IO)))
    finally:
        client.close()
    return b"".join(pieces)


# The runner's side

class ControllerGone(Exception):
    """The controller process died or did not answer in time."""


class Controller:
    """One controller process and the pipe to it."""

    def __init__(self, job: Job) -> None:
        context = mp.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=controller_main, args=(child, job), daemon=True)
        self.process.start()
        child.close()
        self.ready_ns = self.wait("ready", START_TIMEOUT_S)

    def send(self, command: str, argument: Any = None) -> None:
        self.conn.send((command, argument))

    def poll(self, timeout_s: float) -> bool:
        """Whether an answer is waiting (within `timeout_s`)."""
        try:
            return self.conn.poll(max(0.0, timeout_s))
        except (EOFError, OSError):
            raise ControllerGone("the controller's pipe closed") from None

    def wait(self, command: str, timeout_s: float = COMMAND_TIMEOUT_S) -> Any:
        if not self.poll(timeout_s):
            raise ControllerGone(f"no answer to {command!r} within {timeout_s:g} s")
        try:
            kind, value = self.conn.recv()
        except (EOFError, OSError):
            raise ControllerGone(f"the controller died answering {command!r} (exit {self.process.exitcode})") from None
        if kind != command:
            raise ControllerGone(f"answered {kind!r} to {command!r}")
        return value

    def call(self, command: str, argument: Any = None, timeout_s: float = COMMAND_TIMEOUT_S) -> Any:
        self.send(command, argument)
        return self.wait(command, timeout_s)

    def kill(self) -> int:
        """SIGKILL it (a fault); when it struck."""
        struck = time.time_ns()
        if self.process.pid is not None:
            try:
                os.kill(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.join(10)
        self.conn.close()
        return struck

    def close(self) -> None:
        try:
            if self.process.is_alive():
                self.call("close", timeout_s=20)
        except ControllerGone:
            pass
        finally:
            if self.process.is_alive():
                self.kill()


@dataclass
class Soak:
    """A soak's inputs and what it gathered (what the verdict is computed from, saved to OUT/soak.json)."""

    out: Path
    faults: int = 200
    steps: int | None = None
    seed: int = 0
    step_seconds: float = 3.0
    bounds: C.Bounds = C.Bounds()
    policy: str = "schedule-foresight"
    workload: int = 0
    probe_pps: float = 5.0
    budget_pps: float = 50.0
    max_wall_s: float | None = None
    spans: list[C.Span] = field(default_factory=list)
    struck: list[C.Struck] = field(default_factory=list)
    emac: list[tuple[int, float, dict[str, float]]] = field(default_factory=list)
    """(when, the EMAC's start time, dropped and answered lookups by reason) after every step the EMAC answered."""
    drops: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    """Switch -> (its process's start, checked drops) after every step."""
    problems_between_faults: list[str] = field(default_factory=list)
    runner_error: str | None = None
    steps_run: int = 0
    incarnations: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    """Every step's final record, in soak order."""
    controller_kills: list[tuple[float, float, float]] = field(default_factory=list)
    """Per controller kill: seconds into the step, and where the deploy ran in the steps before (from, to; median)."""
    em_servers: list[str] = field(default_factory=list)
    """The memory servers holding EM tables in force at the last check (a memory server fault strikes one of them)."""
    controller: Controller | None = None
    """The controller process in charge now."""

    @property
    def settings(self) -> LoopSettings:
        return LoopSettings(step_seconds=self.step_seconds, probe_pps=self.probe_pps, budget_pps=self.budget_pps)

    @property
    def work_s(self) -> list[float]:
        """The controller's work in each of the last five steps."""
        return [_work_s(r) for r in self.records[-5:]]


def run_soak(soak: Soak) -> tuple[C.Verdict, int]:
    """Up, the soak, down (whatever happens); the verdict and the number of probes sent. What the verdict is computed
    from goes to OUT/soak.json (`--rejudge OUT` computes it again)."""
    scenario = load_scenario(SCENARIO)
    dataset = default_dataset(scenario, progress=False)
    steps = soak.steps if soak.steps is not None else soak.faults + soak.faults // 10 + 1
    faults = C.schedule(soak.seed, soak.faults, steps, soak.step_seconds)
    soak.out.mkdir(parents=True, exist_ok=True)
    with network.Testbed.start(scenario.topology, soak.out / "net") as testbed:
        try:
            _new_controller(soak, testbed, None)
            _steps(soak, testbed, len(dataset.hours), steps, {f.step: f for f in faults})
        except (ControllerGone, SremError, OSError) as exc:
            soak.runner_error = f"the soak stopped at step {soak.steps_run}: {exc}"
        finally:
            if soak.controller is not None:
                _finish(soak.controller)
                soak.controller.close()
    save(soak)
    return verdict_of(soak, dataset)


def _new_controller(soak: Soak, testbed: network.Testbed, records: list[dict[str, Any]] | None) -> Controller:
    """Start a controller process (the first, or one that takes over after `records`); it is in charge from now."""
    out = soak.out / f"controller-{soak.incarnations}"
    soak.incarnations += 1
    soak.controller = Controller(Job(str(testbed.state.path), str(out), soak.workload, soak.policy, soak.settings, records))
    return soak.controller


def _steps(soak: Soak, testbed: network.Testbed, day_length: int, steps: int, faults: dict[int, C.Fault]) -> None:
    day: list[dict[str, Any]] = []
    began = time.monotonic()
    for n in range(steps):
        if soak.max_wall_s is not None and time.monotonic() - began > soak.max_wall_s:
            break
        if n % day_length == 0:
            day = []
        _one_step(soak, testbed, n, n % day_length, day, faults.get(n))
        soak.steps_run = n + 1
        _progress(soak, n, steps, began)


def _one_step(soak: Soak, testbed: network.Testbed, n: int, position: int, day: list[dict[str, Any]],
              fault: C.Fault | None) -> None:
    """Step n (the day's `position`): run it and strike when the fault is due, hold it to its end (and until the fault
    recovered), check the data plane, collect the probes."""
    started_ns, t0 = time.time_ns(), time.time()
    record, struck = _run_and_strike(soak, testbed, position, day, fault, t0)
    assert soak.controller is not None
    end = t0 + soak.step_seconds
    held = soak.controller.call("hold", end, timeout_s=max(0.0, end - time.time()) + COMMAND_TIMEOUT_S)
    record = held if held is not None else record
    alive = None
    if struck is not None and not struck.fault.kind.controller:
        record = _hold_until_recovered(soak, struck, record)
        struck = _with_recovery(struck, record)
        alive = _process_key(struck)
    day[-1] = record
    result = soak.controller.call("check", alive)
    soak.controller.call("collect")
    _note_step(soak, testbed, n, started_ns, record, struck, result)


def _run_and_strike(soak: Soak, testbed: network.Testbed, position: int, day: list[dict[str, Any]], fault: C.Fault | None,
                    t0: float) -> tuple[dict[str, Any], C.Struck | None]:
    """The step's work, with the fault struck at its moment; the step's record (appended to the day's)."""
    if fault is not None and fault.kind.controller:
        return _controller_fault(soak, testbed, fault, position, day, t0)
    assert soak.controller is not None
    soak.controller.send("step", position)
    struck = _process_fault(soak, testbed, fault, t0) if fault is not None else None
    record = soak.controller.wait("step")
    day.append(record)
    return record, struck


def _note_step(soak: Soak, testbed: network.Testbed, n: int, started_ns: int, record: dict[str, Any], struck: C.Struck | None,
               result: dict[str, Any]) -> None:
    """Keep what the step left for the verdict: its span, the fault with what the check found, the counters."""
    _sample_emac(soak, testbed)
    for name, sample in result["drops"].items():
        soak.drops.setdefault(name, []).append(tuple(sample))
    soak.records.append(record)
    soak.spans.append(C.Span(min(started_ns, record["started_ns"]), record["reconfigured_ns"],
                             frozenset(int(c) for c in record["predicted_delay_ms"])))
    soak.em_servers = result["em_servers"]
    if struck is not None:
        soak.struck.append(C.Struck(struck.fault, struck.target, struck.struck_ns, struck.recovered_ns,
                                    tuple(result["problems"]), struck.in_work))
    elif result["problems"]:
        soak.problems_between_faults += [f"step {n} (no fault): {p}" for p in result["problems"]]


def _process_key(struck: C.Struck) -> str:
    return f"{struck.fault.kind.value}:{struck.target}" if struck.fault.kind is not C.Kind.EMAC else "emac"


def _process_fault(soak: Soak, testbed: network.Testbed, fault: C.Fault, t0: float) -> C.Struck:
    """Kill a switch, memory server or the EMAC at the fault's moment of the step (the controller may still be at work).
    A memory server fault strikes one holding EM tables in force, when any does."""
    assert soak.controller is not None
    layout = testbed.layout
    if fault.kind is C.Kind.SWITCH:
        target = C.choose(fault.pick, sorted(layout.switches))
    elif fault.kind is C.Kind.MEMSERVER:
        target = C.choose(fault.pick, soak.em_servers or sorted(layout.servers))
    else:
        target = "emac"
    time.sleep(max(0.0, t0 + fault.at - time.time()))
    in_work = not soak.controller.poll(0)
    struck = C.Struck(fault, target, time.time_ns(), None, in_work=in_work)
    testbed.kill_process(_process_key(struck))
    return struck


def _controller_fault(soak: Soak, testbed: network.Testbed, fault: C.Fault, position: int, day: list[dict[str, Any]],
                      t0: float) -> tuple[dict[str, Any], C.Struck]:
    """Kill the controller at the fault's moment (CONTROLLER_DEPLOY: that fraction of the step's work, as long as the
    last steps' took) and start another that takes over; it runs the step again if the old one had not finished it.
    Recovered: when the new one is in control (and has run the step again)."""
    assert soak.controller is not None
    old = soak.controller
    work = sorted(soak.work_s)[len(soak.work_s) // 2] if soak.work_s else 0.5
    moment = t0 + (fault.at * work if fault.kind is C.Kind.CONTROLLER_DEPLOY else fault.at)
    old.send("step", position)
    soak.controller_kills.append((moment - t0, *_deploy_window(soak.records[-5:])))
    finished = old.poll(moment - time.time())
    if finished:
        day.append(old.wait("step"))
        if (left := moment - time.time()) > 0:  # strike while it holds the step
            old.send("hold", moment + 1.0)
            time.sleep(left)
    struck_ns = old.kill()
    new = _new_controller(soak, testbed, list(day))
    if finished:
        recovered = new.ready_ns
    else:
        day.append(new.call("step", position))
        recovered = day[-1]["reconfigured_ns"]
    return day[-1], C.Struck(fault, "controller", struck_ns, recovered, in_work=not finished)


DEPLOY_PARTS = ("rules", "em", "build", "prepare", "servers", "commit", "drain", "cleanup")


def _deploy_window(records: list[dict[str, Any]]) -> tuple[float, float]:
    """Where in its step the deploy ran (seconds from the step's start: from, to), the median over these records."""
    if not records:
        return float("nan"), float("nan")
    ends = sorted(_work_s(r) for r in records)
    lengths = sorted(sum(r["seconds"].get(p, 0.0) for p in DEPLOY_PARTS) for r in records)
    end, length = ends[len(ends) // 2], lengths[len(lengths) // 2]
    return end - length, end


def _work_s(record: dict[str, Any]) -> float:
    """The controller's work in a step: from its start to the configuration in force."""
    return (record["reconfigured_ns"] - record["started_ns"]) / 1e9


def _hold_until_recovered(soak: Soak, struck: C.Struck, record: dict[str, Any]) -> dict[str, Any]:
    """Hold on (the loop repairs as it holds) until the step's record shows a repair after the strike, at most the
    fault's bound past it."""
    assert soak.controller is not None
    deadline = struck.struck_ns / 1e9 + soak.bounds.of(struck.fault.kind) + 1.0
    while C.recovered_at(struck.struck_ns, record["repaired_ns"]) is None and time.time() < deadline:
        held = soak.controller.call("hold", min(time.time() + 0.5, deadline), timeout_s=COMMAND_TIMEOUT_S)
        record = held if held is not None else record
    return record


def _with_recovery(struck: C.Struck, record: dict[str, Any]) -> C.Struck:
    """The recovery of a process fault: a repair the loop made during the step; a step that healed it at its start
    counts too (its reconfiguration). A repair the loop noted as failed is none."""
    healed = [record["reconfigured_ns"]] if "heal" in record["seconds"] else []
    failed = any(REPAIR_FAILED in note or RESTART_FAILED in note for note in record["notes"])
    recovered = None if failed else C.recovered_at(struck.struck_ns, record["repaired_ns"], healed)
    return C.Struck(struck.fault, struck.target, struck.struck_ns, recovered, struck.problems, struck.in_work)


def _sample_emac(soak: Soak, testbed: network.Testbed) -> None:
    address = testbed.reload().emac_metrics
    if address is None:
        return
    try:
        with urllib.request.urlopen(f"http://{address}/metrics", timeout=2) as answer:
            text = answer.read().decode()
    except OSError:
        return
    started, counts = 0.0, {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "srem_emac_start_time_seconds":
                started = sample.value
            elif sample.name == "srem_emac_dropped_total":
                counts[sample.labels["reason"]] = sample.value
            elif sample.name == "srem_emac_lookups_total":
                counts[f"answered_{sample.labels['result']}"] = sample.value
    soak.emac.append((time.time_ns(), started, counts))


def _finish(controller: Controller) -> None:
    """Stop the traffic, let the last probes arrive, collect them."""
    try:
        controller.call("stop_traffic")
        time.sleep(P.GRACE_NS / 1e9 + 0.5)
        controller.call("collect")
    except ControllerGone:
        pass


def _progress(soak: Soak, n: int, steps: int, began: float) -> None:
    if (n + 1) % 10 == 0:
        print(f"bench_chaos: step {n + 1}/{steps}, faults struck {len(soak.struck)}, {time.monotonic() - began:.0f} s",
              file=sys.stderr, flush=True)


# Saving and judging

def save(soak: Soak) -> None:
    """What the verdict is computed from, beside the probes the controllers wrote (OUT/soak.json, OUT/steps.jsonl)."""
    doc = {"faults": soak.faults, "seed": soak.seed, "step_seconds": soak.step_seconds, "policy": soak.policy,
           "workload": soak.workload, "bounds": asdict(soak.bounds), "steps_run": soak.steps_run,
           "incarnations": soak.incarnations, "runner_error": soak.runner_error,
           "spans": [[s.started_ns, s.reconfigured_ns, sorted(s.carried)] for s in soak.spans],
           "struck": [{**asdict(s), "fault": {**asdict(s.fault), "kind": s.fault.kind.value}} for s in soak.struck],
           "emac": soak.emac, "drops": soak.drops, "problems_between_faults": soak.problems_between_faults,
           "controller_kills": soak.controller_kills}
    (soak.out / "soak.json").write_text(json.dumps(doc))
    with open(soak.out / "steps.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in soak.records)


def load(out: Path) -> Soak:
    doc = json.loads((out / "soak.json").read_text())
    soak = Soak(out, faults=doc["faults"], seed=doc["seed"], step_seconds=doc["step_seconds"], policy=doc["policy"],
                workload=doc["workload"], bounds=C.Bounds(**doc["bounds"]))
    soak.steps_run, soak.incarnations, soak.runner_error = doc["steps_run"], doc["incarnations"], doc["runner_error"]
    soak.spans = [C.Span(a, b, frozenset(c)) for a, b, c in doc["spans"]]
    soak.struck = [C.Struck(C.Fault(**{**s["fault"], "kind": C.Kind(s["fault"]["kind"])}), s["target"], s["struck_ns"],
                            s["recovered_ns"], tuple(s["problems"]), s["in_work"]) for s in doc["struck"]]
    soak.emac = [(t, started, counts) for t, started, counts in doc["emac"]]
    soak.drops = {name: [tuple(x) for x in samples] for name, samples in doc["drops"].items()}
    soak.problems_between_faults = doc["problems_between_faults"]
    soak.controller_kills = [tuple(k) for k in doc["controller_kills"]]
    soak.records = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    return soak


def answers(out: Path) -> Iterator[dict[str, Any]]:
    """Every traffic agent's collect answer, in the order the controllers took them (a torn last line skipped)."""
    paths = sorted(out.glob("controller-*/probes.jsonl"), key=lambda p: int(p.parent.name.rsplit("-", 1)[1]))
    for path in paths:
        for line in path.read_text().splitlines():
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def verdict_of(soak: Soak, dataset: Dataset) -> tuple[C.Verdict, int]:
    """The invariants over what the soak gathered and every probe; and how many probes were judged."""
    log = P.ProbeLog()
    raw = list(answers(soak.out))
    for answer in raw:
        log.add(answer)
    layout = Layout(dataset.substrate.spec.topology)
    workload = dataset.test[soak.workload]
    destination = {r.id + 1: str(layout.switches[dataset.substrate.node_names[r.target]].host_ip) for r in workload.requests}
    verdict = C.judge(log, soak.spans, soak.struck, soak.bounds)
    verdict.misdelivered = C.misdelivered(raw, destination)
    verdict.other_failures += _counter_failures(soak, verdict) + soak.problems_between_faults
    if soak.runner_error:
        verdict.other_failures.append(soak.runner_error)
    start = soak.spans[0].reconfigured_ns if soak.spans else 0
    return verdict, C.probes_sent(log, start)


def _counter_failures(soak: Soak, verdict: C.Verdict) -> list[str]:
    """The switches dropped no EM answer as one their function cannot take; the EMAC refused no lookup as another
    instance's table (or a region gone) outside the fault windows."""
    out = []
    for name, samples in soak.drops.items():
        if (grown := C.counter_growth([(0.0, 0.0), *samples])) > 0:
            out.append(f"{name} dropped {grown:.0f} EM answers carrying an action its function does not take")
    windows = [f.window for f in verdict.faults]
    refused = C.growth_outside([(t, started, counts.get("unknown_instance", 0.0)) for t, started, counts in soak.emac], windows)
    if refused > 0:
        out.append(f"the EMAC refused {refused:.0f} lookups outside every fault window: their region held another "
                   "instance's table or was gone")
    return out


def _emac_total(soak: Soak, key: str) -> float:
    """How much one of the EMAC's counters grew over the soak, its restarts included."""
    series = [(started, counts.get(key, 0.0)) for _, started, counts in soak.emac]
    return C.counter_growth([(series[0][0], 0.0), *series]) if series else 0.0


def report(soak: Soak, verdict: C.Verdict, sent: int, wall_s: float | None) -> str:
    """The summary block, after what ran."""
    busy = [r["cpu_busy"] for r in soak.records if r.get("cpu_busy") is not None]
    kills = soak.controller_kills
    in_deploy = sum(a <= at < b for at, a, b in kills)
    in_work = sum(at < b for at, _, b in kills)
    answered = _emac_total(soak, "answered_hit") + _emac_total(soak, "answered_miss")
    refused = _emac_total(soak, "unknown_instance")
    return "\n".join([
        f"chaos soak: {SCENARIO}, policy {soak.policy}, seed {soak.seed}, {soak.steps_run} steps of {soak.step_seconds:g} s "
        f"({soak.steps_run / 6:.1f} days), {soak.incarnations} controller processes"
        + (f", {wall_s:.0f} s wall" if wall_s is not None else "") + f"; run directory {soak.out}",
        f"controller kills: {len(kills)}, {in_work} of them inside the step's work and {in_deploy} inside its deploy (by "
        f"the timing of the steps before); machine busy over the steps: median {C.percentile(busy, 50):.0%}, "
        f"max {max(busy, default=float('nan')):.0%}",
        f"EM lookups answered {answered:.0f}; refused by the EMAC as another instance's table or a region gone "
        f"{refused:.0f} (all inside fault windows unless listed below)",
        C.summary(verdict, sent, soak.bounds),
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faults", type=int, default=200)
    parser.add_argument("--steps", type=int, default=None, help="default: faults + faults/10 + 1 (one fault per step)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--step-seconds", type=float, default=3.0)
    parser.add_argument("--bound-s", type=float, default=C.Bounds.process_s, help="recovery bound of a killed process")
    parser.add_argument("--controller-bound-s", type=float, default=C.Bounds.controller_s)
    parser.add_argument("--policy", default="schedule-foresight")
    parser.add_argument("--max-wall-s", type=float, default=None, help="stop striking after this long (what ran is judged)")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: a new one under /tmp, kept)")
    parser.add_argument("--rejudge", type=Path, default=None, metavar="OUT", help="judge a finished soak's run directory again")
    args = parser.parse_args(argv)
    if args.rejudge is not None:
        soak = load(args.rejudge)
        verdict, sent = verdict_of(soak, default_dataset(load_scenario(SCENARIO), progress=False))
        print(report(soak, verdict, sent, None))
        return 1 if verdict.failures() else 0
    if lacking := missing():
        print(f"bench_chaos: needs {'; '.join(lacking)}", file=sys.stderr)
        return 2
    out = args.out or Path(tempfile.mkdtemp(prefix="srem-chaos-"))
    soak = Soak(out, faults=args.faults, steps=args.steps, seed=args.seed, step_seconds=args.step_seconds,
                bounds=C.Bounds(args.bound_s, args.controller_bound_s), policy=args.policy, max_wall_s=args.max_wall_s)
    began = time.monotonic()
    try:
        verdict, sent = run_soak(soak)
    except SremError as exc:  # the testbed could not come up (another one is up, a switch did not start)
        print(f"bench_chaos: {exc.one_line()}", file=sys.stderr)
        return 2
    text = report(soak, verdict, sent, time.monotonic() - began)
    print(text)
    (out / "summary.txt").write_text(text + "\n")
    return 1 if verdict.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
