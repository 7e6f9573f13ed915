"""The `srem` command line: topologies, scenarios, datasets, policies and experiments, the P4
program, the long-running external-memory processes (memory server, EMAC), and the live testbed.

A thin shell: every experiment's defaults live in controller/experiments.py, and each command's
flags are exactly the ones it uses (argparse refuses the rest). Every command that reports results
takes --json and then prints one JSON document on stdout (schemas in README.md); progress bars and
notes go to stderr. Bad input exits with status 2 and one line, `srem: error: WHERE: WHAT`, with
nothing written. A command writes only what it creates: a file already there is overwritten only with
--force, and a directory is replaced (with --force) only if it is an earlier output of the same command,
atomically (srem_formats/output_dir.py). SIGTERM interrupts like Ctrl-C, so the same cleanup runs.

Nothing heavy (torch, highspy, gymnasium, matplotlib) is imported at module level: `srem --help`
and every command's --help stay fast, and the commands import what they need.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from dataclasses import replace
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from controller import experiments
from controller.errors import SremError
from controller.model.dataset import GENERATED_BY, Dataset, default_dataset, generate_dataset
from controller.model.scenario import Scenario, load_scenario, preset_names
from controller.model.topology import Topology, load_topology
from controller.policies import policy_names
from controller.policies.fixed_search import SEARCH as FIXED_SEARCH
from controller.policies.fixed_search import SearchSettings
from controller.policies.schedule_search import SCHEDULE_SEARCH
from controller.report import per_hour_table, to_csv, to_json
from rdma_emulator import cli as emulator_cli
from srem_formats.arguments import (OneLineParser, checked, host_port, non_negative_int, parse_address, positive_float,
                                    positive_int, unit_interval)
from srem_formats.output_dir import OutputError, check_output, claim, output_dir
from topologies import builtin_names

if TYPE_CHECKING:  # the testbed's modules are imported by the commands that use them
    from controller.model.workload import Placement
    from controller.testbed.network import Testbed, TestbedOptions

T = TypeVar("T")

_Parser = OneLineParser


_some_steps = checked(int, lambda v: v >= 1, "an integer >= 1 or `all`")


def steps_count(text: str) -> int | None:
    """A positive number of steps, or `all` (None: the whole day, however many steps the scenario's day has)."""
    return None if text == "all" else _some_steps(text)


election_id = checked(int, lambda v: 1 <= v < 2**128, "an integer 1..2**128-1 (P4Runtime's election ids)")


def named_address(text: str) -> tuple[str, tuple[str, int]]:
    """NAME=HOST:PORT."""
    name, sep, address = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=HOST:PORT")
    return name, host_port(address)


def labelled_policy(text: str) -> tuple[str, str]:
    """`LABEL=SPEC` or `SPEC` (labelled by itself). A `=` after the first `:` belongs to the spec's
    argument (a path), so `srem:runs/lr=0.1.pt` is unlabelled."""
    label, sep, spec = text.partition("=")
    if not sep or ":" in label:
        return text, text
    if not label or not spec:
        raise argparse.ArgumentTypeError(f"{text!r} is not LABEL=SPEC or SPEC")
    return label, spec


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("srem")
    except PackageNotFoundError:
        return "(not installed: no package metadata)"


def _emit(args: argparse.Namespace, document: object, text: str) -> None:
    print(to_json(document) if args.json else text)


def _note(message: str) -> None:
    print(f"srem: note: {message}", file=sys.stderr)


def _refuse_existing_file(path: Path, force: bool, hint: str = "") -> None:
    """A file on disk is never overwritten without --force, and never replaced by one at all if it is a
    directory: refused before any work is done. (Directories: srem_formats/output_dir.py.)"""
    if path.is_dir():
        raise SremError("is a directory; give the path of a file", where=path)
    if path.exists() and not force:
        raise SremError(f"exists; pass --force to overwrite it{hint}", where=path)


def _write_file(out: Path, text: str) -> None:
    """A file written whole or not at all (an interrupted command leaves no half file)."""
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, out)
    except BaseException as exc:
        with suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError):
            raise SremError(f"cannot be written ({exc.strerror})", where=out) from None
        raise


def topology_summary(topology: Topology) -> str:
    spec = topology.spec
    bandwidths = [l.bandwidth_gbps for l in spec.links]
    delays = [l.delay_ms for l in spec.links]
    lines = [
        f"topology {topology.name} ({topology.source})",
        f"  {len(spec.switches)} switches, {len(spec.servers)} servers, {len(spec.links)} links",
        f"  link bandwidth {min(bandwidths):g}-{max(bandwidths):g} Gbps, delay {min(delays):g}-{max(delays):g} ms",
    ]
    for role in ("core", "aggregation", "edge", "switch"):
        names = [s.name for s in spec.switches if s.role == role]
        if names:
            lines.append(f"  {role:<11} {' '.join(names)}")
    attached: dict[str, list[str]] = {}
    servers = set(topology.server_names)
    for link in spec.links:
        for server, switch in ((link.a, link.b), (link.b, link.a)):
            if server in servers:
                attached.setdefault(switch, []).append(server)
    for switch, names in attached.items():
        lines.append(f"  servers under {switch}: {' '.join(names)}")
    return "\n".join(lines)


def cmd_topology(args: argparse.Namespace) -> None:
    topology = load_topology(args.name)
    document = topology.to_dict()
    if args.action == "show":
        _emit(args, document, topology_summary(topology))
        return
    text = json.dumps(document, indent=1)
    if args.out:
        _refuse_existing_file(Path(args.out), args.force)
        _write_file(Path(args.out), text + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)


def cmd_scenario_show(args: argparse.Namespace) -> None:
    scenario = load_scenario(args.scenario)
    _emit(args, scenario.spec.model_dump(mode="json"), scenario.to_yaml().rstrip())


def cmd_scenario_generate(args: argparse.Namespace) -> None:
    out = Path(args.out)
    check_output(out, GENERATED_BY, args.force)  # generate_dataset replaces an earlier dataset: asked here, before any work
    scenario = load_scenario(args.scenario)
    dataset = generate_dataset(scenario, out, seed=args.seed, progress=not args.quiet, workload_seed=args.workload_seed)
    m = dataset.manifest
    path = dataset.path
    document = {"path": str(path), "scenario": m.scenario, "scenario_hash": m.scenario_hash, "seed": m.seed,
                "workload_seed": m.traffic_seed, "splits": m.splits}
    _emit(args, document, f"wrote {path}: {m.splits['train']} train and {m.splits['test']} test workloads of {scenario.name} "
                          f"(seed {m.seed}, workload seed {m.traffic_seed})")


def _dataset_source(args: argparse.Namespace) -> Dataset | Scenario:
    """The dataset given with --data (checked against --scenario), or the scenario whose default
    dataset to use: generating that is left to `_dataset`, after output paths were checked."""
    if args.data is None:
        return load_scenario(args.scenario or "paper")
    dataset = Dataset(Path(args.data))
    if args.scenario is not None:
        wanted = load_scenario(args.scenario).content_hash()
        if wanted != dataset.manifest.scenario_hash:
            raise SremError(
                f"dataset was generated from scenario {dataset.manifest.scenario} ({dataset.manifest.scenario_hash[:12]}), "
                f"not from {args.scenario} ({wanted[:12]})",
                where=args.data,
            )
    return dataset


def _scenario_name(source: Dataset | Scenario) -> str:
    return source.manifest.scenario if isinstance(source, Dataset) else source.name


def _dataset(source: Dataset | Scenario, args: argparse.Namespace) -> Dataset:
    return source if isinstance(source, Dataset) else default_dataset(source, progress=not args.quiet)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from controller.evaluation import evaluate_policy
    from controller.policies import make_policy

    policy = make_policy(args.policy)
    source = _dataset_source(args)
    # Named by the spec (not the policy's name), so `srem:a.pt` and `srem:b.pt` get their own files.
    default_csv = (f"evaluate-{experiments.safe_name(_scenario_name(source))}-{experiments.safe_name(args.policy)}-{args.split}"
                   f"{f'-limit{args.limit}' if args.limit else ''}.csv")
    csv_path = Path(args.csv) if args.csv else Path("results") / default_csv
    _refuse_existing_file(csv_path, args.force)
    dataset = _dataset(source, args)
    report = evaluate_policy(dataset, policy, args.split, args.limit, progress=not args.quiet, spec=args.policy)
    _write_file(csv_path, to_csv(report))
    print(f"wrote {csv_path}", file=sys.stderr)
    _emit(args, report.to_dict(), per_hour_table(report))


def _refuse_flags(args: argparse.Namespace, flags: dict[str, str], why: str) -> None:
    """A flag given that the command's mode does not use is an error, not silently ignored. flags: dest -> --flag."""
    for dest, flag in flags.items():
        if getattr(args, dest) not in (None, False):
            raise SremError(f"not used {why}", where=flag)


def cmd_train(args: argparse.Namespace) -> None:
    if args.resume and args.force:
        raise SremError("continues the checkpoint at --out, --force starts it afresh: give one of them", where="--resume")
    if args.agent == "best-fixed":
        _train_best_fixed(args)
        return
    if args.agent == "best-schedule":
        _train_best_schedule(args)
        return
    _refuse_flags(args, {"budget": "--budget", "sample": "--sample"},
                  f"by --agent {args.agent} (only by best-fixed and best-schedule)")
    if args.agent == "ddqn-cm":
        _refuse_flags(args, {"variant": "--variant"}, "by --agent ddqn-cm (SR-EM's filters; DDQN-CM has none)")
    from controller.policies.ddqn_cm import ddqn_cm_config, ddqn_cm_reward
    from controller.rl.agent import TrainConfig
    from controller.rl.training import train

    overrides = {k: v for k, v in (("episodes", args.episodes), ("seed", args.seed), ("learning_rate", args.learning_rate),
                                   ("discount", args.discount), ("features", args.features), ("teacher", args.teacher))
                 if v is not None}
    if args.agent == "ddqn-cm":
        config, reward_fn = ddqn_cm_config(**overrides), ddqn_cm_reward
    else:
        config, reward_fn = TrainConfig(variant=args.variant or "hybrid", **overrides), None
    source = _dataset_source(args)
    name = args.agent if args.agent == "ddqn-cm" else config.variant
    out = Path(args.out or f"results/{experiments.safe_name(_scenario_name(source))}-{name}-seed{config.seed}.pt")
    if not args.resume:
        _refuse_existing_file(out, args.force, hint=", or --resume to continue it")
    dataset = _dataset(source, args)
    if args.resume:
        _refuse_fewer_episodes(out, dataset, config.episodes)
    days = _teacher_days(dataset, config.teacher, config.demonstrations) if config.teacher else ()
    _, run = train(dataset, config, checkpoint=out, resume=args.resume, reward_fn=reward_fn, progress=not args.quiet,
                   teacher_days=days)
    done = len(run.rewards)
    tail = run.rewards[-max(done // 10, 1):]
    document = {"checkpoint": str(out), "episodes": done, "seconds": run.seconds,
                "episodes_per_second": run.episodes_per_second,
                "final_reward": sum(tail) / len(tail) if tail else None, "rewards": run.rewards}
    text = f"wrote {out}: {done} episodes, mean reward of the last tenth {document['final_reward']:.3f}, {run.seconds:.0f} s"
    _emit(args, document, text)


def _refuse_fewer_episodes(checkpoint: Path, dataset: Dataset, episodes: int) -> None:
    """--resume trains up to --episodes: a checkpoint already past them would be rewritten as it is, as if continued."""
    from controller.rl.checkpoint import load_checkpoint

    if not checkpoint.exists():
        return  # --resume of nothing starts afresh
    done = load_checkpoint(checkpoint, dataset.substrate, dataset.manifest.scenario_hash).get("episode")
    if isinstance(done, int) and episodes < done:
        raise SremError(f"{episodes} is fewer than the {done} episodes {checkpoint} has done; give --episodes {done} or more "
                        "to continue it", where="--episodes")


def _teacher_days(dataset: Dataset, spec: str, workloads: int) -> list[tuple[int, list[Placement]]]:
    """The teacher's placements on the first training workloads (its policy made in one line or refused)."""
    from controller.policies import make_policy
    from controller.policies.fixed_search import policy_days

    return list(enumerate(policy_days(dataset, make_policy(spec), dataset.split("train", workloads))))


def _train_best_fixed(args: argparse.Namespace) -> None:
    """Search the best fixed placement on the training workloads and write it as a placement file."""
    from controller.policies.fixed import placement_document
    from controller.policies.fixed_search import search_with_progress

    settings, scenario, out, dataset = _search_inputs(args, FIXED_SEARCH, "a placement file", "fixed")
    result = search_with_progress(dataset, settings, show=not args.quiet)
    substrate = dataset.substrate
    measured = {"acceptance_working_hours": result.score.acceptance, "cost_per_workload_day": result.score.cost_per_workload_day,
                "search": {"start": result.start, "budget": settings.budget, "evaluations": result.evaluations,
                           "sample": result.workloads, "seed": settings.seed,
                           "local_optimum": result.converged, "seconds": round(result.seconds, 1)}}
    document = placement_document(substrate, scenario, result.placement, **measured)
    _write_document(out, document)
    hosts = ", ".join(f"{k} {h}" for k, h in document["placement"].items())
    text = (f"wrote {out}: working-hours acceptance {result.score.acceptance:.3f}, cost per workload-day "
            f"{result.score.cost_per_workload_day:.3f} on {result.workloads} training workloads "
            f"(from {result.start}, {result.evaluations} placements evaluated in {result.seconds:.0f} s"
            f"{', a local optimum' if result.converged else ', budget spent'})\n  {hosts}\n"
            f"  use it with --policy fixed:{out}")
    _emit(args, {"placement_file": str(out), **{k: v for k, v in document.items() if k not in ("format", "version")}}, text)


def _train_best_schedule(args: argparse.Namespace) -> None:
    """Search the best schedule (a placement per step) on the training workloads and write it as a schedule file."""
    from controller.policies.best_schedule import schedule_document
    from controller.policies.schedule_search import search_with_progress

    settings, scenario, out, dataset = _search_inputs(args, SCHEDULE_SEARCH, "a schedule file", "best-schedule")
    result = search_with_progress(dataset, settings, show=not args.quiet)
    measured = {"acceptance_working_hours": result.score.acceptance, "cost_per_workload_day": result.score.cost_per_workload_day,
                "search": {"start": result.start, "budget": settings.budget, "evaluations": result.evaluations,
                           "sample": result.workloads, "screen": settings.screen, "seed": settings.seed,
                           "local_optimum": result.converged, "seconds": round(result.seconds, 1),
                           "starts": {label: {"acceptance_working_hours": score.acceptance,
                                              "cost_per_workload_day": score.cost_per_workload_day}
                                      for label, score in result.starts.items()}}}
    document = schedule_document(dataset.substrate, scenario, dataset.hours, result.schedule, **measured)
    _write_document(out, document)
    text = (f"wrote {out}: working-hours acceptance {result.score.acceptance:.3f}, cost per workload-day "
            f"{result.score.cost_per_workload_day:.3f} on {result.workloads} training workloads "
            f"(from {result.start}, {result.evaluations} candidates judged in {result.seconds:.0f} s"
            f"{', a local optimum' if result.converged else ', budget spent'})\n"
            f"  use it with --policy best-schedule:{out}")
    _emit(args, {"schedule_file": str(out), **{k: v for k, v in document.items() if k not in ("format", "version")}}, text)


S = TypeVar("S", bound="SearchSettings")


def _search_inputs(args: argparse.Namespace, defaults: S, what: str, policy: str) -> tuple[S, str, Path, Dataset]:
    """What `--agent best-fixed|best-schedule` searches with: its settings with the flags given, the scenario,
    the output file (a .json name, not overwritten without --force) and the dataset; training flags refused."""
    _refuse_flags(args, {"variant": "--variant", "episodes": "--episodes", "learning_rate": "--learning-rate",
                         "discount": "--discount", "features": "--features", "teacher": "--teacher", "resume": "--resume"},
                  f"by --agent {args.agent} (a search, not training)")
    settings = replace(defaults, **{k: v for k, v in (("budget", args.budget), ("sample", args.sample), ("seed", args.seed))
                                    if v is not None})
    source = _dataset_source(args)
    scenario = _scenario_name(source)
    out = Path(args.out or f"results/{experiments.safe_name(scenario)}-{args.agent}.json")
    if out.suffix != ".json":
        raise SremError(f"{what}'s name ends in .json ({policy}:FILE.json reads it)", where="--out")
    _refuse_existing_file(out, args.force)
    return settings, scenario, out, _dataset(source, args)


def _write_document(out: Path, document: dict[str, Any]) -> None:
    _write_file(out, json.dumps(document, indent=1) + "\n")


def _settings(args: argparse.Namespace, full: T, quick: T, **budgets: Any) -> tuple[T, dict[str, Any]]:
    """The experiment's defaults (quick ones with --quick), with the flags given on top; and those
    flags' values (budgets), which name the output folder."""
    given = {name: value for name, value in budgets.items() if value is not None}
    base = quick if args.quick else full
    return replace(base, **given, **({"scenario": args.scenario} if args.scenario else {})), given  # type: ignore[type-var]


def _output(args: argparse.Namespace, experiment: str, scenario: Scenario, budgets: dict[str, Any]) -> Path:
    flags = {name.removesuffix("_s").replace("_", "-"): value for name, value in budgets.items()}
    methods = [f"{label}={spec}" if label != spec else spec for label, spec in getattr(args, "policy", [])]
    out = Path(args.out) if args.out else experiments.results_folder(experiment, scenario.name, quick=args.quick,
                                                                       methods=methods, budgets=flags)
    check_output(out, f"experiment {experiment}", args.force, hint=", or choose another --out")
    return out


def _results_dir(args: argparse.Namespace, out: Path) -> AbstractContextManager[Path]:
    """Where the experiment writes its run: staged, then put at `out` when it completes."""
    return output_dir(out, f"experiment {args.experiment}", args.force)


def _methods(args: argparse.Namespace, defaults: dict[str, str], dataset: Dataset) -> experiments.Methods:
    """The defaults with --policy LABEL=SPEC on top (same label: replaced; new label: added), bound up front."""
    given = dict(args.policy)
    methods = experiments.bind_methods(dataset, {**defaults, **given}, given)
    scenario = dataset.manifest.scenario
    for label, why in methods.left_out.items():
        name = defaults[label].partition(":")[0]
        if name == "fixed":
            hint = (f"pass --policy '{label}=fixed:FILE' with a placement file searched on {scenario} "
                    f"(srem train --agent best-fixed --scenario {scenario})")
        elif name == "best-schedule":
            hint = (f"pass --policy '{label}=best-schedule:FILE' with a schedule file searched on {scenario} "
                    f"(srem train --agent best-schedule --scenario {scenario})")
        else:
            hint = f"pass --policy '{label}={name}:CHECKPOINT' with a checkpoint trained on {scenario}"
        _note(f"{label} left out ({why}); to include it, {hint}")
    return methods


def cmd_fig5(args: argparse.Namespace) -> None:
    settings, budgets = _settings(args, experiments.FIG5, experiments.FIG5_QUICK, episodes=args.episodes, seeds=args.seeds)
    scenario = load_scenario(settings.scenario)
    out = _output(args, "fig5", scenario, budgets)
    dataset = default_dataset(scenario, progress=not args.quiet)
    with _results_dir(args, out) as staging:
        result = experiments.fig5(dataset, settings.episodes, list(range(settings.seeds)), staging, progress=not args.quiet)
    _emit(args, {"out": str(out), **result.to_dict()}, result.markdown().rstrip() + f"\nwrote {out}/fig5.csv, fig5.png, fig5.md")


def cmd_fig6(args: argparse.Namespace) -> None:
    settings, budgets = _settings(args, experiments.FIG6, experiments.FIG6_QUICK, limit=args.limit)
    scenario = load_scenario(settings.scenario)
    out = _output(args, "fig6", scenario, budgets)
    dataset = default_dataset(scenario, progress=not args.quiet)
    methods = _methods(args, dict(settings.methods), dataset)
    with _results_dir(args, out) as staging:
        result = experiments.fig6(dataset, methods, staging, settings.limit, progress=not args.quiet)
    _emit(args, {"out": str(out), **result.to_dict()},
          result.markdown().rstrip() + f"\nwrote {out}/fig6.csv, fig6a.png, fig6b.png, fig6c.png, fig6.md")


def cmd_gap(args: argparse.Namespace) -> None:
    settings, budgets = _settings(args, experiments.GAP, experiments.GAP_QUICK, limit=args.limit, time_limit_s=args.time_limit,
                                  day_time_limit_s=args.day_time_limit)
    scenario = load_scenario(settings.scenario)
    out = _output(args, "gap", scenario, budgets)
    dataset = default_dataset(scenario, progress=not args.quiet)
    methods = _methods(args, dict(settings.methods), dataset)
    with _results_dir(args, out) as staging:
        result = experiments.optimality_gap(dataset, methods, settings.time_limit_s, settings.limit, staging,
                                            progress=not args.quiet, day_time_limit_s=settings.day_time_limit_s)
    _emit(args, {"out": str(out), **result.to_dict()}, result.markdown().rstrip() + f"\nwrote {out}/gap.csv, gap-day.csv, gap.md")


def cmd_p4_compile(args: argparse.Namespace) -> None:
    from controller.dataplane.p4program import BUILD, compile_program

    result = compile_program()
    document = {"out": str(BUILD), "command": result.command, "warnings": result.warnings}
    _emit(args, document, (result.warnings + "\n" if result.warnings else "") + f"wrote {BUILD}/ ({' '.join(result.command[:1])})")


def cmd_shell(args: argparse.Namespace) -> None:
    """Replace this process with p4runtime-shell connected to the switch, once its P4Runtime port answers."""
    import socket

    from controller.dataplane.layout import Layout

    layout = Layout(load_topology(args.topology).spec)
    if args.switch not in layout.switches:
        raise SremError(f"no switch {args.switch!r} in topology {args.topology} (switches: {', '.join(layout.switches)})", where="SWITCH")
    address = args.address or layout.switches[args.switch].grpc_address
    try:
        host, port = parse_address(address)
    except ValueError as exc:
        raise SremError(str(exc), where="--address") from None
    # p4runtime-shell meets a switch that is not there with three CRITICAL tracebacks; a TCP connect
    # says the same in one line.
    try:
        socket.create_connection((host, port), timeout=2.0).close()
    except OSError as exc:
        raise SremError(f"no P4Runtime server answers at {address} ({exc.strerror or exc}); is the switch running?",
                        where=f"switch {args.switch}") from None
    device_id = layout.switches[args.switch].switch_id if args.device_id is None else args.device_id
    command = [sys.executable, "-m", "p4runtime_sh", "--grpc-addr", address, "--device-id", str(device_id),
               "--election-id", args.election_id]
    os.execv(sys.executable, command)


def _refuse_without_testbed_tools(where: str) -> None:
    from controller.testbed.preflight import missing

    if lacking := missing():
        raise SremError(f"the testbed needs {'; '.join(lacking)}", where=where)


def _testbed_options(args: argparse.Namespace, topology: Topology) -> TestbedOptions:
    """TestbedOptions from `srem testbed up|serve`'s flags; remote memory servers must be the topology's rack servers, all."""
    from controller.testbed.network import TestbedOptions

    remote = dict(args.memory_server)
    if remote:
        servers = [s.name for s in topology.spec.servers]
        if unknown := sorted(set(remote) - set(servers)):
            raise SremError(f"{', '.join(unknown)}: not a rack server of {topology.name} ({', '.join(servers)})", where="--memory-server")
        if lacking := [s for s in servers if s not in remote]:
            raise SremError(f"no memory server for {', '.join(lacking)}: give one per rack server", where="--memory-server")
    try:
        return TestbedOptions(bandwidth_scale=args.bandwidth_scale, emulate_delay=not args.no_delay,
                              external_memory=not (args.no_external_memory or remote or args.emac_metrics),
                              host_processes=not args.no_host_processes, switch_args=tuple(args.switch_arg),
                              ready_timeout_s=args.timeout, grpc_host=args.grpc_host, advertise_host=args.advertise,
                              remote_memory_servers={name: f"{host}:{port}" for name, (host, port) in remote.items()},
                              remote_emac_metrics=None if args.emac_metrics is None else "%s:%d" % args.emac_metrics,
                              tls_dir=None if args.tls_dir is None else Path(args.tls_dir))
    except ValueError as exc:  # the one check of the options the flags above do not make: TLS off loopback
        raise SremError(f"{exc}: give --tls-dir", where="--grpc-host") from None


def cmd_testbed_up(args: argparse.Namespace) -> None:
    import time

    from controller.testbed import holder, inventory
    from controller.testbed import state as testbed_state

    _refuse_without_testbed_tools("srem testbed up")
    topology = load_scenario(args.scenario).topology if args.scenario else load_topology(args.topology)
    if (current := testbed_state.pointed()) is not None:
        raise inventory.already_up(current)
    run_dir = Path(args.run_dir or f"results/testbed-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    check_output(run_dir, "testbed up", False, force_flag=None, hint="; choose another --run-dir")
    options = _testbed_options(args, topology)
    process = holder.spawn(claim(run_dir, "testbed up", False, force_flag=None), topology, options)
    holder.wait_ready(process, run_dir, holder.UP_TIMEOUT_S + 3 * args.timeout)
    state = testbed_state.load(run_dir / testbed_state.STATE_FILE)
    document = {"run_dir": state.run_dir, "holder_pid": process.pid, "topology": topology.name,
                "switches": {name: {"grpc": r.grpc, "device_id": r.switch_id} for name, r in state.switches.items()},
                "memory_servers": state.memory_servers, "emac_metrics": state.emac_metrics, "delay_emulated": state.delay_emulated,
                "bandwidth_scale": state.bandwidth_scale}
    lines = [f"testbed up: {state.run_dir} ({topology.name}, holder pid {process.pid}; srem testbed down stops it)"]
    lines += [f"  {name:<10} P4Runtime {r.grpc}  device id {r.switch_id}" for name, r in state.switches.items()]
    if state.memory_servers:
        lines.append("  memory servers: " + ", ".join(f"{name} {address}" for name, address in state.memory_servers.items()))
        lines.append(f"  EMAC metrics: http://{state.emac_metrics}/metrics")
    if not state.delay_emulated and any(link.delay_ms > 0 for link in topology.spec.links):
        from controller.testbed.links import delay_note

        _note(delay_note(topology))
    _emit(args, document, "\n".join(lines))


def _testbed_state_path(args: argparse.Namespace) -> Path | None:
    """The state file of --run-dir, else of the testbed this machine has up; None if there is none."""
    from controller.testbed import state as testbed_state

    if args.run_dir is None:
        return testbed_state.pointed()
    path = Path(args.run_dir) / testbed_state.STATE_FILE
    if not path.exists():
        raise SremError("holds no testbed state file (the network's run directory?)", where=args.run_dir)
    return path


def cmd_testbed_status(args: argparse.Namespace) -> None:
    from controller.testbed import inventory
    from controller.testbed import state as testbed_state

    path = _testbed_state_path(args)
    if path is None:
        _emit(args, {"up": False}, "no testbed is up")
        return
    state = testbed_state.load(path)
    if state.pid_namespace != testbed_state.pid_namespace():
        raise SremError("its processes run in another PID namespace (a container): ask there, e.g. "
                        f"docker-compose exec network srem testbed status --run-dir {state.run_dir}", where=state.run_dir)
    report = inventory.status(state)
    lines = [f"testbed {report.run_dir}: {report.status}, {'healthy' if report.healthy else 'NOT healthy'}"]
    for s in report.switches:
        lines.append(f"  switch {s.name:<10} pid {s.pid:<8} {'alive' if s.alive else 'DEAD':<6} "
                     f"P4Runtime {s.grpc} {'answers' if s.grpc_answers else 'does NOT answer'}")
    for p in report.processes:
        where = f" in {p.host}" if p.host else ""
        lines.append(f"  {p.role:<9} {p.name:<10} pid {p.pid:<8} {'alive' if p.alive else 'DEAD'}{where}")
    _emit(args, {"up": True, **report.to_dict()}, "\n".join(lines))


def cmd_testbed_down(args: argparse.Namespace) -> None:
    from controller.testbed import inventory

    if os.geteuid() != 0:
        raise SremError("needs root (it stops the testbed's processes and deletes its interfaces)", where="srem testbed down")
    report = inventory.down()
    if report is None:
        _emit(args, {"down": False}, "no testbed is up")
        return
    _emit(args, {"down": True, "run_dir": report.run_dir, "stopped": report.stopped, "interfaces_deleted": report.interfaces},
          f"testbed down: {report.run_dir} ({len(report.stopped)} processes stopped, {len(report.interfaces)} interfaces deleted)")


def cmd_testbed_run(args: argparse.Namespace) -> None:
    from controller.policies import make_policy
    from controller.testbed import state as testbed_state
    from controller.testbed.loop import LoopSettings
    from controller.testbed.run import resumable, run_testbed, steps_table, summary

    if args.resume and args.attach is None:
        raise SremError("continues a run on a testbed that is up: give --attach too", where="--resume")
    attach = None
    if args.attach is not None:
        attach = Path(args.attach).resolve()
        if not (attach / testbed_state.STATE_FILE).exists():
            raise SremError("holds no testbed state file (the run directory of `srem testbed serve` or `up`)", where="--attach")
    else:
        _refuse_without_testbed_tools("srem testbed run")
        if (current := testbed_state.pointed()) is not None:
            from controller.testbed import inventory

            raise inventory.already_up(current)
    scenario = load_scenario(args.scenario)
    out = Path(args.out or f"results/testbed-{experiments.safe_name(scenario.name)}-wl{args.workload}-{experiments.safe_name(args.policy)}")
    resume = attach is not None and args.resume and resumable(out, attach)
    if not resume:
        check_output(out, "testbed run", args.force)
    dataset = default_dataset(scenario, progress=not args.quiet)
    policy = make_policy(args.policy)
    count = len(dataset.hours) if args.steps is None else args.steps
    if count > len(dataset.hours):
        raise SremError(f"the day has {len(dataset.hours)} steps", where="--steps")
    if not resume:  # written in place as the run goes: a restarted controller continues it (--resume)
        claim(out, "testbed run", args.force)
    given = {"probe_pps": args.probe_pps, "budget_pps": args.budget_pps, "election_id": args.election_id, "role": args.role}
    settings = LoopSettings(step_seconds=args.step_seconds, **{k: v for k, v in given.items() if v is not None})
    result = run_testbed(scenario, dataset, args.workload, policy, settings, out.resolve(), count,
                         say=lambda line: None if args.json else print(line, file=sys.stderr), metrics=args.metrics,
                         attach=attach, hold=_until_signalled if args.hold else None, resume=resume)
    _emit(args, summary(result), f"{steps_table(result)}\nper-chain tables: {out}/chains.md; latency plot: {out}/latency.png")


def _until_signalled() -> None:
    """Return at SIGTERM or SIGINT (a container being stopped, Ctrl-C)."""
    import signal
    import threading

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def cmd_testbed_serve(args: argparse.Namespace) -> None:
    import json

    from controller.testbed import holder, inventory
    from controller.testbed import state as testbed_state

    _refuse_without_testbed_tools("srem testbed serve")
    topology = load_scenario(args.scenario).topology if args.scenario else load_topology(args.topology)
    options = _testbed_options(args, topology)
    run_dir = Path(args.run_dir).resolve()
    check_output(run_dir, "testbed serve", args.replace, force_flag="--replace", hint=" (what it recorded is stopped first)")
    if args.replace:
        # A container that starts again finds what its previous run left: nothing of it runs any more.
        for stale in {p for p in (testbed_state.pointed(), run_dir / testbed_state.STATE_FILE) if p is not None and p.exists()}:
            inventory.down(stale)
        testbed_state.POINTER.unlink(missing_ok=True)
    claim(run_dir, "testbed serve", args.replace, force_flag="--replace")

    def ready(testbed: Testbed) -> None:
        state = testbed.state
        print(json.dumps({"ready": state.run_dir, "switches": {n: r.grpc for n, r in state.switches.items()},
                          "memory_servers": state.memory_servers, "emac_metrics": state.emac_metrics}), flush=True)

    holder.hold(run_dir, topology, options, ready)


def cmd_testbed_probe(args: argparse.Namespace) -> None:
    import time

    from controller.testbed import probes as P
    from controller.testbed import state as testbed_state
    from hosts.control import ControlError, call

    path = _testbed_state_path(args)
    if path is None:
        raise SremError("no testbed is up (srem testbed up, or srem testbed run)", where="srem testbed probe")
    state = testbed_state.load(path)
    sockets = [Path(state.run_dir) / "ctl" / f"traffic-{h}.sock" for h, r in state.hosts.items() if r.kind == "traffic"]

    def collect() -> list[dict[str, Any]]:
        try:
            return [call(socket_path, "collect", timeout=10.0) for socket_path in sockets]
        except ControlError as exc:
            raise SremError(str(exc), where="srem testbed probe") from None

    collect()  # what the agents held from before (they keep a bounded number of records between collects)
    started = time.time_ns()
    time.sleep(args.seconds)
    log = P.ProbeLog()
    for answer in collect():
        log.add(answer)
    stats = P.window_stats(log, started, time.time_ns(), grace_ns=int(min(args.seconds / 2, 1.0) * 1e9))
    _emit(args, {str(c): {"sent": s.sent, "lost": s.lost, "reordered": s.reordered, "p50_ms": s.p50_us / 1e3,
                          "p99_ms": s.p99_us / 1e3} for c, s in stats.items()},
          P.table(stats, f"probes of the last {args.seconds:g} s per chain"))


def _experiment_parsers(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    """One subcommand per experiment, each with only the flags it uses; defaults shown from controller/experiments.py."""
    fig5, fig5q = experiments.FIG5, experiments.FIG5_QUICK
    fig6, fig6q = experiments.FIG6, experiments.FIG6_QUICK
    gap, gapq = experiments.GAP, experiments.GAP_QUICK
    methods = ", ".join(f"{label}={spec}" for label, spec in experiments.METHODS.items())
    policy_help = (f"LABEL=SPEC or SPEC (labelled by itself): replaces the method of that label or adds one; repeatable. "
                   f"The methods: {methods}. srem and ddqn-cm load checkpoints, fixed:best a placement file, shipped for the "
                   f"paper network; on another network they are left out with a note unless given here, e.g. "
                   f"--policy SR-EM=srem:results/small-hybrid-seed0.pt")
    out_help = "output directory (default results/EXPERIMENT-SCENARIO[-POLICY...][-quick][-FLAGVALUE...])"

    def add(name: str, func: Callable[[argparse.Namespace], None], help_text: str, quick_text: str,
            scenario_default: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=parents)
        p.add_argument("--scenario", default=None, help=f"preset name or scenario YAML file (default {scenario_default})")
        p.add_argument("--quick", action="store_true", help=f"a smoke run: {quick_text}")
        p.add_argument("--out", default=None, help=out_help)
        p.add_argument("--force", action="store_true", help="overwrite the output directory if it holds results")
        p.set_defaults(func=func)
        return p

    p = add("fig5", cmd_fig5, "Fig. 5: how SR-EM learns with static, dynamic and hybrid filters - the greedy policy's reward "
            "on test workloads during training, the training reward, and what each filter removes (CSV, PNG, markdown)",
            f"scenario {fig5q.scenario}, {fig5q.episodes} episodes, {fig5q.seeds} seeds",
            f"{fig5.scenario}; {fig5q.scenario} with --quick")
    p.add_argument("--episodes", type=positive_int, default=None, help=f"training episodes per run (default {fig5.episodes})")
    p.add_argument("--seeds", type=positive_int, default=None, help=f"runs per variant, seeds 0..N-1 (default {fig5.seeds})")

    p = add("fig6", cmd_fig6, "Fig. 6: every method's acceptance, cost and placement per hour over the test workloads",
            f"the first {fig6q.limit} test workloads", fig6.scenario)
    p.add_argument("--limit", type=positive_int, default=None, help="the first N test workloads (default: all)")
    p.add_argument("--policy", type=labelled_policy, action="append", default=[], metavar="[LABEL=]SPEC", help=policy_help)

    p = add("gap", cmd_gap, "every method's acceptance and cost against the exact optimum (ilp) of every step and the "
            "day-long optimum of every workload (an oracle with the whole day, started from its best method's day)",
            f"the first {gapq.limit} test workloads, {gapq.day_time_limit_s:g} s per day-long optimum", gap.scenario)
    p.add_argument("--limit", type=positive_int, default=None, help="the first N test workloads (default: all)")
    p.add_argument("--time-limit", type=positive_float, default=None, metavar="SECONDS",
                   help=f"the exact solver's time limit per step (default {gap.time_limit_s:g})")
    p.add_argument("--day-time-limit", type=positive_float, default=None, metavar="SECONDS",
                   help=f"the day-long optimum's time limit per workload (default {gap.day_time_limit_s:g})")
    p.add_argument("--policy", type=labelled_policy, action="append", default=[], metavar="[LABEL=]SPEC", help=policy_help)


def _testbed_parsers(sub: argparse._SubParsersAction, json_flag: argparse.ArgumentParser) -> None:
    """`srem testbed up|status|down`: the live testbed for interactive use (controller/testbed/)."""
    from controller.testbed.processes import READY_TIMEOUT_S

    network = _Parser(add_help=False)
    source = network.add_mutually_exclusive_group(required=True)
    source.add_argument("--scenario", help="preset name or scenario YAML file: its topology")
    source.add_argument("--topology", help=f"built-in topology ({', '.join(builtin_names())}) or a topology file")
    network.add_argument("--bandwidth-scale", type=positive_float, default=1.0,
                         help="each link's htb rate is its topology bandwidth times this (default 1)")
    network.add_argument("--no-delay", action="store_true", help="do not emulate link delay even where the kernel has netem")
    network.add_argument("--no-external-memory", action="store_true", help="start no memory servers and no EMAC")
    network.add_argument("--no-host-processes", action="store_true",
                         help="start neither the rack servers' VNF service nor the traffic hosts' agents (hosts/)")
    network.add_argument("--switch-arg", action="append", default=[], metavar="ARG",
                         help="one more simple_switch_grpc option, repeatable; write it with '=': --switch-arg=--pcap=DIR")
    network.add_argument("--timeout", type=positive_float, default=READY_TIMEOUT_S, metavar="SECONDS",
                         help=f"bound on each start-up wait: the switches, the memory servers, the host processes "
                              f"(default {READY_TIMEOUT_S:g})")
    network.add_argument("--grpc-host", default="127.0.0.1",
                         help="where the switches' P4Runtime servers listen (default 127.0.0.1; 0.0.0.0 for a controller in "
                              "another container)")
    network.add_argument("--advertise", default=None, metavar="HOST",
                         help="the host name controllers reach the P4Runtime ports at, as the state file records it "
                              "(default: --grpc-host)")
    network.add_argument("--tls-dir", default=None, metavar="DIR",
                         help="make a CA and certificates in DIR and serve P4Runtime over TLS that accepts only the "
                              "controller's client certificate (required when --grpc-host is not loopback)")
    network.add_argument("--memory-server", type=named_address, action="append", default=[], metavar="SERVER=HOST:PORT",
                         help="the memory server of rack server SERVER runs elsewhere, at HOST:PORT (one per rack server; "
                              "then none is started here, nor the EMAC)")
    network.add_argument("--emac-metrics", type=host_port, default=None, metavar="HOST:PORT",
                         help="/metrics of an EMAC run elsewhere on the switches' EMAC ends (then none is started here)")

    p = sub.add_parser("up", parents=[json_flag, network],
                       help="bring the network of a topology up (Mininet, one BMv2 per switch, memory servers, EMAC) and leave "
                            "it running in a background holder process; returns when every switch answers")
    p.add_argument("--run-dir", default=None, help="where the state file, logs and control sockets go "
                                                   "(default results/testbed-YYYYmmdd-HHMMSS)")
    p.set_defaults(func=cmd_testbed_up)
    p = sub.add_parser("serve", parents=[network],
                       help="build the network as `up` does and hold it in the foreground until SIGTERM (a container's main "
                            "process); prints one JSON line when every switch answers")
    p.add_argument("--run-dir", required=True, help="where the state file, logs and control sockets go")
    p.add_argument("--replace", action="store_true",
                   help="take over a run directory left by a previous serve (what it recorded is removed first)")
    p.set_defaults(func=cmd_testbed_serve)
    run_dir = _Parser(add_help=False)
    run_dir.add_argument("--run-dir", default=None, help="the testbed's run directory (default: the one up on this machine)")
    p = sub.add_parser("status", parents=[json_flag, run_dir],
                       help="each switch's process and P4Runtime port, every other process of the testbed")
    p.set_defaults(func=cmd_testbed_status)
    p = sub.add_parser("run", parents=[json_flag],
                       help="bring the testbed up, let a policy reconfigure it live step by step for one workload while probes "
                            "measure every chain, print the per-step table, write the run directory, tear down")
    p.add_argument("--scenario", default="paper", help="preset name or scenario YAML file (default paper): its topology and dataset")
    p.add_argument("--workload", type=non_negative_int, default=0, help="index of the test workload (default 0)")
    p.add_argument("--policy", default="srem", help="policy SPEC as for srem evaluate (default srem: the shipped checkpoint)")
    p.add_argument("--steps", type=steps_count, default=None, help="the first N steps of the day, or `all` (default all)")
    p.add_argument("--step-seconds", type=positive_float, default=10.0, help="wall time of one two-hour step (default 10)")
    # Defaults are LoopSettings' (None: not given), written out in the help: importing the loop here would make --help slow.
    p.add_argument("--probe-pps", type=positive_float, default=None, help="probes per second per chain (default 5)")
    p.add_argument("--budget-pps", type=positive_float, default=None,
                   help="data packets per second in total at the workload's busiest step; sets the scale factor (default 300)")
    p.add_argument("--election-id", type=election_id, default=None,
                   help="the controller's P4Runtime election id, 1..2**128-1 (default 1); the switches make the highest "
                        "connected one primary")
    p.add_argument("--role", default=None, help="the controller's P4Runtime role (default: none, full access)")
    p.add_argument("--out", default=None, help="run directory (default results/testbed-SCENARIO-wlN-POLICY)")
    p.add_argument("--metrics", type=host_port, default=None, metavar="HOST:PORT",
                   help="serve the loop's Prometheus metrics (each part's time, step, acceptance, faults) while it runs")
    p.add_argument("--force", action="store_true", help="replace the run directory if it holds results")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.add_argument("--attach", default=None, metavar="RUN_DIR",
                   help="drive the testbed that is up in RUN_DIR (srem testbed serve|up) instead of bringing one up; it stays up")
    p.add_argument("--resume", action="store_true",
                   help="with --attach: when --out holds steps a controller ran on this same testbed (it was restarted), take "
                        "over the configuration in force and continue after them; otherwise start afresh")
    p.add_argument("--hold", action="store_true",
                   help="after the steps, keep the last configuration and its traffic running until SIGTERM or Ctrl-C "
                        "(for srem testbed probe)")
    p.set_defaults(func=cmd_testbed_run)
    p = sub.add_parser("probe", parents=[json_flag, run_dir], help="the probe table of the running testbed's chains over the next SECONDS")
    p.add_argument("--seconds", type=positive_float, default=5.0, help="how long to measure (default 5)")
    p.set_defaults(func=cmd_testbed_probe)
    p = sub.add_parser("down", parents=[json_flag],
                       help="stop the testbed and remove everything it recorded (also after a crash); nothing up is not an error")
    p.set_defaults(func=cmd_testbed_down)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="srem", description="SR-EM: reconfigure service function chains across servers and P4 switch memories.")
    parser.add_argument("--version", action="version", version=f"srem {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    json_flag = _Parser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    quiet_flag = _Parser(add_help=False)
    quiet_flag.add_argument("--quiet", action="store_true", help="no progress bar")

    topo = sub.add_parser("topology", help="show or export a topology file")
    topo_sub = topo.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=_Parser)
    for action, text in (("show", "summarise a topology"), ("export", "print the topology file (JSON)")):
        p = topo_sub.add_parser(action, help=text, parents=[json_flag])
        p.add_argument("name", help=f"built-in topology ({', '.join(builtin_names())}) or a topology file")
        if action == "export":
            p.add_argument("--out", help="write to this file instead of stdout")
            p.add_argument("--force", action="store_true", help="overwrite the --out file if it exists")
        p.set_defaults(func=cmd_topology)

    scen = sub.add_parser("scenario", help="show a scenario or generate its dataset")
    scen_sub = scen.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=_Parser)
    p = scen_sub.add_parser("show", help="print a scenario as YAML (a preset is a good start for your own)", parents=[json_flag])
    p.add_argument("scenario", help=f"preset ({', '.join(preset_names())}) or a scenario YAML file")
    p.set_defaults(func=cmd_scenario_show)
    p = scen_sub.add_parser("generate", help="generate a dataset (substrate, train and test workloads)", parents=[json_flag, quiet_flag])
    p.add_argument("--scenario", required=True, help="preset name or scenario YAML file")
    p.add_argument("--seed", type=non_negative_int, default=None, help="dataset seed (default: the scenario's dataset.seed)")
    p.add_argument("--workload-seed", type=non_negative_int, default=None,
                   help="draw the workloads with this seed instead: the same network (substrate) with fresh traffic, "
                        "for testing a trained policy on workloads it never saw")
    p.add_argument("--out", required=True,
                   help="dataset directory to create (an existing one only if empty, or with --force if it is a dataset "
                        "srem generated)")
    p.add_argument("--force", action="store_true", help="replace the dataset --out holds, generated before by srem")
    p.set_defaults(func=cmd_scenario_generate)

    p = sub.add_parser("evaluate", help="run a policy over a dataset split and print the per-hour table", parents=[json_flag, quiet_flag])
    p.add_argument("--scenario", default=None, help="preset name or scenario YAML file (default: paper)")
    p.add_argument("--data", default=None, help="dataset directory (default: the scenario's dataset, generated once and cached)")
    p.add_argument("--policy", default="static", metavar="SPEC",
                   help=f"NAME, NAME:ARG or module.path:ClassName[:ARG] (default static); NAME is one of {', '.join(policy_names())} "
                        "(srem[:CHECKPOINT], ddqn-cm[:CHECKPOINT], random[:SEED], ilp[:SECONDS per step], "
                        "fixed:servers|em:SWITCH|lm:SWITCH|round-robin|best|FILE.json)")
    p.add_argument("--split", default="test", choices=["train", "test"], help="the dataset's workloads to run (default test)")
    p.add_argument("--limit", type=positive_int, default=None, help="evaluate only the first N workloads")
    p.add_argument("--csv", default=None,
                   help="CSV output path (default results/evaluate-SCENARIO-SPEC-SPLIT[-limitN].csv, SPEC made file-name safe)")
    p.add_argument("--force", action="store_true", help="overwrite the CSV if it exists")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("train", help="train the SR-EM agent (or the DDQN-CM baseline; checkpoints are resumable), or search "
                       "the best fixed placement (--agent best-fixed) or schedule (--agent best-schedule)",
                       parents=[json_flag, quiet_flag])
    p.add_argument("--scenario", default=None, help="preset name or scenario YAML file (default: paper)")
    p.add_argument("--data", default=None, help="dataset directory (default: the scenario's cached dataset)")
    p.add_argument("--agent", default="srem", choices=["srem", "ddqn-cm", "best-fixed", "best-schedule"],
                   help="default srem; best-fixed: local search for the one placement of every step with the best "
                        "working-hours acceptance (then least cost) on the training workloads, written as a placement file "
                        "for --policy fixed:FILE; best-schedule: the same for one placement per step, written as a "
                        "schedule file for --policy best-schedule:FILE")
    p.add_argument("--variant", default=None, choices=["hybrid", "static", "dynamic", "none"],
                   help="SR-EM's filters (default hybrid; ddqn-cm has none)")
    p.add_argument("--episodes", type=positive_int, default=None,
                   help="episodes (default 5000; with --resume, the total to reach; best-fixed, best-schedule: not used)")
    p.add_argument("--seed", type=non_negative_int, default=None,
                   help="seed of the network's initialisation, exploration and replay sampling; for best-fixed and "
                        "best-schedule, of the "
                        "workload sample and the search order (default 0)")
    # The defaults of controller/rl/agent.py's TrainConfig and controller/policies/ddqn_cm.py's ddqn_cm_config, written
    # out because importing them imports torch (tests/test_cli_rough_edges.py checks they agree).
    p.add_argument("--learning-rate", type=positive_float, default=None, help="default 0.2 for both agents (the paper's)")
    p.add_argument("--discount", type=unit_interval, default=None,
                   help="default 0.7 for srem, 0.3 for ddqn-cm (the paper's value)")
    p.add_argument("--features", default=None, choices=["paper", "schedule", "hosts"],
                   help="SR-EM's state: the paper's, with the public schedule's busy flags, or with those and the model's "
                        "estimate of every instance on every host (default paper)")
    p.add_argument("--teacher", default=None, metavar="SPEC",
                   help="a policy whose days on the training workloads SR-EM learns from, before and beside its own "
                        "episodes (e.g. schedule-foresight; default none)")
    p.add_argument("--budget", type=positive_int, default=None,
                   help=f"best-fixed: placements to evaluate at most (default {FIXED_SEARCH.budget}); best-schedule: "
                        f"candidates to judge at most (default {SCHEDULE_SEARCH.budget})")
    p.add_argument("--sample", type=positive_int, default=None,
                   help=f"best-fixed, best-schedule: training workloads to judge them on (default {FIXED_SEARCH.sample})")
    p.add_argument("--out", default=None,
                   help="checkpoint path (default results/SCENARIO-VARIANT-seedN.pt); for best-fixed the placement file "
                        "(default results/SCENARIO-best-fixed.json), for best-schedule the schedule file "
                        "(default results/SCENARIO-best-schedule.json)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint at --out up to --episodes (not with --force)")
    p.add_argument("--force", action="store_true", help="overwrite the checkpoint at --out (start afresh; not with --resume)")
    p.set_defaults(func=cmd_train)

    exp = sub.add_parser("experiment", help="the paper's Fig. 5 and Fig. 6, and the gap to the exact optimum")
    _experiment_parsers(exp.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True, parser_class=_Parser),
                        [json_flag, quiet_flag])

    p4 = sub.add_parser("p4", help="the P4 program")
    p4_sub = p4.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=_Parser)
    p = p4_sub.add_parser("compile", help="recompile p4src/srem.p4 into p4src/build/ (local p4c, else the p4lang/p4c image)",
                          parents=[json_flag])
    p.set_defaults(func=cmd_p4_compile)

    p = sub.add_parser("shell", help="interactive p4runtime-shell on a running switch, for debugging")
    p.add_argument("switch", metavar="SWITCH", help="switch name in the topology")
    p.add_argument("--topology", default="paper", help="built-in topology or topology file (default: paper)")
    p.add_argument("--address", default=None, metavar="HOST:PORT",
                   help="P4Runtime address (default: 127.0.0.1:50000+switch id, the testbed's)")
    p.add_argument("--device-id", type=non_negative_int, default=None,
                   help="P4Runtime device id (default: the switch id, as the testbed starts it)")
    p.add_argument("--election-id", default="0,2",
                   help="HIGH,LOW (default 0,2: above the controller's 1, so the shell becomes primary and can write)")
    p.set_defaults(func=cmd_shell)

    emulator_cli.add_commands(sub, _Parser)

    testbed = sub.add_parser("testbed", help="the live testbed: a Mininet network of BMv2 switches from a topology file")
    _testbed_parsers(testbed.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=_Parser), json_flag)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised wherever the command is, so that it unwinds as from Ctrl-C: staging folders removed,
    a testbed taken down, nothing half-written left at a final path."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Commands that wait for SIGTERM (serve, --hold, the emulator's services) install their own handler over this one.
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        args.func(args)
    except (SremError, OutputError) as exc:
        print(f"srem: error: {exc.one_line()}", file=sys.stderr)
        return 2
    except emulator_cli.CommandError as exc:
        print(f"srem: error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("srem: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("srem: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    except BrokenPipeError:
        return 0
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
