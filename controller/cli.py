"""The `srem` command line: topologies, scenarios, datasets, policies and experiments, the P4
program, and the long-running external-memory processes (memory server, EMAC).

Every command that reports results takes --json and then prints one JSON document on stdout
(schemas in README.md); progress bars and notes go to stderr. Bad input exits with status 2 and
one line naming the file, the key and what is wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

from controller.errors import SremError
from controller.model.dataset import Dataset, default_dataset, generate_dataset
from controller.model.scenario import load_scenario, preset_names
from controller.model.topology import Topology, load_topology
from controller.report import per_hour_table, to_csv, to_json
from topologies import builtin_names


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _emit(args: argparse.Namespace, document: object, text: str) -> None:
    print(to_json(document) if args.json else text)


def topology_summary(topology: Topology) -> str:
    spec = topology.spec
    degree: dict[str, int] = {n: 0 for n in topology.node_names}
    for link in spec.links:
        degree[link.a] += 1
        degree[link.b] += 1
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
        Path(args.out).write_text(text + "\n")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)


def cmd_scenario_show(args: argparse.Namespace) -> None:
    scenario = load_scenario(args.scenario)
    _emit(args, scenario.spec.model_dump(mode="json"), scenario.to_yaml().rstrip())


def cmd_scenario_generate(args: argparse.Namespace) -> None:
    scenario = load_scenario(args.scenario)
    dataset = generate_dataset(scenario, Path(args.out), seed=args.seed, progress=not args.quiet)
    m = dataset.manifest
    document = {"path": str(dataset.path), "scenario": m.scenario, "scenario_hash": m.scenario_hash, "seed": m.seed, "splits": m.splits}
    _emit(args, document, f"wrote {dataset.path}: {m.splits['train']} train and {m.splits['test']} test workloads of {scenario.name} (seed {m.seed})")


def _dataset_for(args: argparse.Namespace) -> Dataset:
    if args.data is None:
        return default_dataset(load_scenario(args.scenario or "paper"), progress=not args.quiet)
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


def cmd_evaluate(args: argparse.Namespace) -> None:
    from controller.evaluation import evaluate_policy
    from controller.policies import make_policy

    if args.limit is not None and args.limit < 1:
        raise SremError(f"must be at least 1, got {args.limit}", where="--limit")
    policy = make_policy(args.policy)
    dataset = _dataset_for(args)
    report = evaluate_policy(dataset, policy, args.split, args.limit, progress=not args.quiet)
    csv_path = Path(args.csv) if args.csv else Path("results") / f"evaluate-{report.scenario}-{policy.name}-{args.split}.csv"
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    csv_path.write_text(to_csv(report))
    print(f"wrote {csv_path}", file=sys.stderr)
    _emit(args, report.to_dict(), per_hour_table(report))


def cmd_train(args: argparse.Namespace) -> None:
    from controller.policies.ddqn_cm import ddqn_cm_config, ddqn_cm_reward
    from controller.rl.training import TrainConfig, train

    for flag in ("episodes", "seed"):
        if getattr(args, flag) is not None and getattr(args, flag) < (1 if flag == "episodes" else 0):
            raise SremError(f"out of range: {getattr(args, flag)}", where=f"--{flag}")
    overrides = {k: v for k, v in (("episodes", args.episodes), ("seed", args.seed), ("learning_rate", args.learning_rate),
                                   ("discount", args.discount)) if v is not None}
    dataset = _dataset_for(args)
    if args.agent == "ddqn-cm":
        config, reward_fn = ddqn_cm_config(**overrides), ddqn_cm_reward
    else:
        config, reward_fn = TrainConfig(variant=args.variant, **overrides), None
    out = Path(args.out or f"results/{dataset.manifest.scenario}-{args.agent if args.agent == 'ddqn-cm' else args.variant}-seed{config.seed}.pt")
    _, run = train(dataset, config, checkpoint=out, resume=args.resume, reward_fn=reward_fn, progress=not args.quiet)
    done = len(run.rewards)
    tail = run.rewards[-max(done // 10, 1):]
    document = {"checkpoint": str(out), "episodes": done, "seconds": run.seconds,
                "episodes_per_second": run.episodes_per_second,
                "final_reward": sum(tail) / len(tail) if tail else None, "rewards": run.rewards}
    text = f"wrote {out}: {done} episodes, mean reward of the last tenth {document['final_reward']:.3f}, {run.seconds:.0f} s"
    _emit(args, document, text)


FIG6_POLICIES = {"SR-EM": "srem", "LAG": "lag", "DDQN-CM": "ddqn-cm", "RANDOM": "random", "static": "static"}


def cmd_experiment(args: argparse.Namespace) -> None:
    from controller import experiments

    out = Path(args.out or f"results/{args.figure}")
    if args.figure == "fig5":
        scenario = args.scenario or ("small" if args.quick else "paper")
        dataset = default_dataset(load_scenario(scenario), progress=not args.quiet)
        episodes = args.episodes or (200 if args.quick else 12000)
        seeds = list(range(args.seeds or (2 if args.quick else 3)))
        result = experiments.fig5(dataset, episodes, seeds, out, progress=not args.quiet)
        document = {"out": str(out), "scenario": scenario, "episodes": episodes, "seeds": seeds,
                    "episodes_per_second": result.episodes_per_second,
                    "final_reward": {v: dict(zip(("mean", "std"), result.final(v))) for v in experiments.FIG5_VARIANTS}}
        _emit(args, document, (out / "fig5.md").read_text().rstrip() + f"\nwrote {out}/fig5.csv, fig5.png, fig5.md")
        return
    if args.figure == "gap":
        dataset = default_dataset(load_scenario(args.scenario or "small"), progress=not args.quiet)
        limit = args.limit or (2 if args.quick else None)
        policies = {label: spec for label, spec in FIG6_POLICIES.items() if label not in ("SR-EM", "DDQN-CM")}
        if args.policy:
            policies = {spec: spec for spec in args.policy} | policies
        text = experiments.optimality_gap(dataset, policies, args.time_limit, limit, out, progress=not args.quiet)
        _emit(args, {"out": str(out), "table": text}, text.rstrip() + f"\nwrote {out}/gap.csv, gap.md")
        return
    dataset = default_dataset(load_scenario(args.scenario or "paper"), progress=not args.quiet)
    limit = args.limit or (30 if args.quick else None)
    reports = experiments.fig6(dataset, FIG6_POLICIES, out, limit, progress=not args.quiet)
    document = {"out": str(out), "policies": {label: r.to_dict() for label, r in reports.items()}}
    _emit(args, document, (out / "fig6.md").read_text().rstrip() + f"\nwrote {out}/fig6.csv, fig6a.png, fig6b.png, fig6c.png, fig6.md")


def cmd_p4_compile(args: argparse.Namespace) -> None:
    from controller.dataplane.p4program import BUILD, compile_program

    result = compile_program()
    document = {"out": str(BUILD), "command": result.command, "warnings": result.warnings}
    _emit(args, document, (result.warnings + "\n" if result.warnings else "") + f"wrote {BUILD}/ ({' '.join(result.command[:1])})")


def cmd_shell(args: argparse.Namespace) -> None:
    """Replace this process with p4runtime-shell connected to the switch."""
    import os

    from controller.dataplane.layout import Layout

    layout = Layout(load_topology(args.topology).spec)
    if args.switch not in layout.switches:
        raise SremError(f"no switch {args.switch!r} in topology {args.topology} (switches: {', '.join(layout.switches)})", where="SWITCH")
    address = args.address or layout.switches[args.switch].grpc_address
    command = [sys.executable, "-m", "p4runtime_sh", "--grpc-addr", address, "--device-id", str(args.device_id),
               "--election-id", args.election_id]
    os.execv(sys.executable, command)


def _address(text: str, where: str) -> tuple[str, int]:
    from rdma_emulator.net import parse_address

    try:
        return parse_address(text)
    except ValueError as exc:
        raise SremError(str(exc), where=where) from None


def _start_logging(level: str) -> None:
    import logging

    logging.basicConfig(level=level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)


def cmd_memserver(args: argparse.Namespace) -> None:
    from rdma_emulator.server import ServerConfig
    from rdma_emulator.service import BindError, run_memserver

    host, port = _address(args.listen, "--listen")
    metrics = _address(args.metrics, "--metrics") if args.metrics else None
    for value, name, ok in ((args.latency_ns, "--latency-ns", args.latency_ns >= 0), (args.loss, "--loss", 0 <= args.loss < 1),
                            (args.capacity_mb, "--capacity-mb", args.capacity_mb > 0)):
        if not ok:
            raise SremError(f"{value:g} is out of range", where=name)
    config = ServerConfig(host, port, args.latency_ns, args.loss, int(args.capacity_mb * 2**20), args.seed)
    _start_logging(args.log_level)
    try:
        run_memserver(config, metrics)
    except BindError as exc:
        raise SremError(str(exc), where=exc.option) from None


def cmd_emac(args: argparse.Namespace) -> None:
    from rdma_emulator.emac import Attachment, EmacConfig
    from rdma_emulator.service import BindError, run_emac

    servers: dict[int, tuple[str, int]] = {}
    for item in args.memory_server:
        ident, sep, address = item.partition("=")
        if not sep or not ident.isdigit() or not 0 <= int(ident) <= 0xFFFF:
            raise SremError(f"{item!r} is not ID=HOST:PORT (ID 0..65535)", where="--memory-server")
        servers[int(ident)] = _address(address, f"--memory-server {ident}")
    if not args.interface and not args.listen_udp:
        raise SremError("nothing to serve: give --interface and/or --listen-udp", where="srem emac")
    if args.timeout_ms <= 0 or args.retries < 0:
        raise SremError("--timeout-ms must be > 0 and --retries >= 0", where="srem emac")
    metrics = _address(args.metrics, "--metrics") if args.metrics else None
    attachments = []
    try:
        for name in args.interface:
            where = f"--interface {name}"
            attachments.append(Attachment.interface(name))
        for text in args.listen_udp:
            where = f"--listen-udp {text}"
            attachments.append(Attachment.udp(*_address(text, "--listen-udp")))
    except OSError as exc:
        for attachment in attachments:
            attachment.close()
        raise SremError(exc.strerror or str(exc), where=where) from None
    _start_logging(args.log_level)
    try:
        run_emac(EmacConfig(servers, args.timeout_ms / 1000, args.retries), attachments, metrics)
    except BindError as exc:
        raise SremError(str(exc), where=exc.option) from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="srem", description="SR-EM: reconfigure service function chains across servers and P4 switch memories.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    json_flag = _Parser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    quiet_flag = _Parser(add_help=False)
    quiet_flag.add_argument("--quiet", action="store_true", help="no progress bar")

    topo = sub.add_parser("topology", help="show or export a topology file")
    topo_sub = topo.add_subparsers(dest="action", required=True, parser_class=_Parser)
    for action, text in (("show", "summarise a topology"), ("export", "print the topology file (JSON)")):
        p = topo_sub.add_parser(action, help=text, parents=[json_flag])
        p.add_argument("name", help=f"built-in topology ({', '.join(builtin_names())}) or a topology file")
        if action == "export":
            p.add_argument("--out", help="write to this file instead of stdout")
        p.set_defaults(func=cmd_topology)

    scen = sub.add_parser("scenario", help="show a scenario or generate its dataset")
    scen_sub = scen.add_subparsers(dest="action", required=True, parser_class=_Parser)
    p = scen_sub.add_parser("show", help="print a scenario as YAML (a preset is a good start for your own)", parents=[json_flag])
    p.add_argument("scenario", help=f"preset ({', '.join(preset_names())}) or a scenario YAML file")
    p.set_defaults(func=cmd_scenario_show)
    p = scen_sub.add_parser("generate", help="generate a dataset (substrate, train and test workloads)", parents=[json_flag, quiet_flag])
    p.add_argument("--scenario", required=True, help="preset name or scenario YAML file")
    p.add_argument("--seed", type=int, default=None, help="dataset seed (default: the scenario's dataset.seed)")
    p.add_argument("--out", required=True, help="dataset directory to write (replaced whole)")
    p.set_defaults(func=cmd_scenario_generate)

    p = sub.add_parser("evaluate", help="run a policy over a dataset split and print the per-hour table", parents=[json_flag, quiet_flag])
    p.add_argument("--scenario", default=None, help="preset name or scenario YAML file (default: paper)")
    p.add_argument("--data", default=None, help="dataset directory (default: the scenario's dataset, generated once and cached)")
    p.add_argument("--policy", default="static", help="policy name, or name:ARG")
    p.add_argument("--split", default="test", choices=["train", "test"])
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N workloads")
    p.add_argument("--csv", default=None, help="CSV output path (default: results/evaluate-SCENARIO-POLICY-SPLIT.csv)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("train", help="train the SR-EM agent (or the DDQN-CM baseline); checkpoints are resumable", parents=[json_flag, quiet_flag])
    p.add_argument("--scenario", default=None, help="preset name or scenario YAML file (default: paper)")
    p.add_argument("--data", default=None, help="dataset directory (default: the scenario's cached dataset)")
    p.add_argument("--agent", default="srem", choices=["srem", "ddqn-cm"])
    p.add_argument("--variant", default="hybrid", choices=["hybrid", "static", "dynamic", "none"], help="SR-EM's filters")
    p.add_argument("--episodes", type=int, default=None, help="episodes (default 12000)")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--learning-rate", type=float, default=None, help="default 0.2 (the paper's)")
    p.add_argument("--discount", type=float, default=None, help="default 0.3 (the paper's)")
    p.add_argument("--out", default=None, help="checkpoint path (default results/SCENARIO-VARIANT-seedN.pt)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint at --out up to --episodes")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("experiment", help="regenerate the paper's Fig. 5 or Fig. 6 (CSV, PNG, markdown)", parents=[json_flag, quiet_flag])
    p.add_argument("figure", choices=["fig5", "fig6", "gap"], help="gap: every method against the exact optimum (default scenario small)")
    p.add_argument("--quick", action="store_true", help="a smoke run in under two minutes")
    p.add_argument("--scenario", default=None, help="fig5: default paper (small with --quick); fig6: paper (the shipped policies are for it)")
    p.add_argument("--episodes", type=int, default=None, help="fig5: episodes per run")
    p.add_argument("--seeds", type=int, default=None, help="fig5: seeds per variant")
    p.add_argument("--limit", type=int, default=None, help="fig6: test workloads")
    p.add_argument("--time-limit", type=float, default=60.0, help="gap: seconds per step for the exact solver")
    p.add_argument("--policy", action="append", default=[], help="gap: also compare this policy (e.g. srem:CHECKPOINT); repeatable")
    p.add_argument("--out", default=None, help="output directory (default results/FIGURE)")
    p.set_defaults(func=cmd_experiment)

    p4 = sub.add_parser("p4", help="the P4 program")
    p4_sub = p4.add_subparsers(dest="action", required=True, parser_class=_Parser)
    p = p4_sub.add_parser("compile", help="recompile p4src/srem.p4 into p4src/build/ (local p4c, else the p4lang/p4c image)",
                          parents=[json_flag])
    p.set_defaults(func=cmd_p4_compile)

    p = sub.add_parser("shell", help="interactive p4runtime-shell on a running switch, for debugging")
    p.add_argument("switch", metavar="SWITCH", help="switch name in the topology")
    p.add_argument("--topology", default="paper", help="built-in topology or topology file (default: paper)")
    p.add_argument("--address", default=None, help="P4Runtime address (default: 127.0.0.1:50000+switch id, the testbed's)")
    p.add_argument("--device-id", type=int, default=1)
    p.add_argument("--election-id", default="0,2",
                   help="HIGH,LOW (default 0,2: above the controller's 1, so the shell becomes primary and can write)")
    p.set_defaults(func=cmd_shell)

    log_flag = _Parser(add_help=False)
    log_flag.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    log_flag.add_argument("--metrics", default=None, metavar="HOST:PORT", help="serve Prometheus /metrics here (port 0: any)")

    started = ("On start it prints one JSON line with the addresses it bound; it runs until SIGINT or SIGTERM; "
               "logs go to stderr.")
    p = sub.add_parser("memserver", help="run an emulated RDMA memory server (a rack server's DRAM as switch external memory)",
                       description=started, parents=[log_flag])
    p.add_argument("--listen", default="127.0.0.1:7000", metavar="HOST:PORT", help="UDP address (default 127.0.0.1:7000; port 0: any)")
    p.add_argument("--latency-ns", type=float, default=0.0, help="added to every access (the scenario's delta_w; default 0)")
    p.add_argument("--loss", type=float, default=0.0, help="probability of dropping a READ/WRITE/CAS (default 0)")
    p.add_argument("--capacity-mb", type=float, default=1024.0, help="memory it registers regions in (default 1024)")
    p.add_argument("--seed", type=int, default=None, help="seed of the loss draws")
    p.set_defaults(func=cmd_memserver)

    p = sub.add_parser("emac", help="run the External Memory Access Controller for one or more switches", description=started,
                       parents=[log_flag])
    p.add_argument("--memory-server", action="append", default=[], metavar="ID=HOST:PORT",
                   help="a memory server the switches' RDMA tables name (repeatable)")
    p.add_argument("--interface", action="append", default=[], metavar="IFACE", help="a switch's EMAC port (raw frames; root)")
    p.add_argument("--listen-udp", action="append", default=[], metavar="HOST:PORT", help="take frames in UDP datagrams here")
    p.add_argument("--timeout-ms", type=float, default=50.0, help="wait for a READ completion (default 50)")
    p.add_argument("--retries", type=int, default=1, help="times a READ is posted again after a timeout (default 1)")
    p.set_defaults(func=cmd_emac)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except SremError as exc:
        print(f"srem: error: {exc.one_line()}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("srem: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
