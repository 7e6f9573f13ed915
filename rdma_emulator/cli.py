"""The emulator's command line: `memserver` and `emac`, long-running processes.

Two programs offer these commands: `srem memserver|emac` (the controller's CLI mounts them) and
`python -m rdma_emulator memserver|emac`, which needs nothing of the controller, so the emulator's
containers hold only the emulator. Bad arguments and unusable addresses or interfaces are reported
as one line naming the flag, before anything is served.
"""

from __future__ import annotations

import argparse
import logging
import sys

from srem_formats.arguments import OneLineParser, fraction, host_port, non_negative_float, non_negative_int, positive_float

STARTED = "On start it prints one JSON line with the addresses it bound; it runs until SIGINT or SIGTERM; logs go to stderr."


class CommandError(Exception):
    """A command that cannot run as asked: `where` names the flag."""

    def __init__(self, message: str, where: str) -> None:
        super().__init__(f"{where}: {message}")


def memory_server(text: str) -> tuple[int, tuple[str, int]]:
    ident, sep, address = text.partition("=")
    if not sep or not ident.isdigit() or not 0 <= int(ident) <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"{text!r} is not ID=HOST:PORT (ID 0..65535)")
    return int(ident), host_port(address)


def _start_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)


def cmd_memserver(args: argparse.Namespace) -> None:
    from rdma_emulator.server import ServerConfig
    from rdma_emulator.service import BindError, run_memserver

    host, port = args.listen
    config = ServerConfig(host, port, args.latency_ns, args.loss, int(args.capacity_mb * 2**20), args.seed)
    _start_logging(args.log_level)
    try:
        run_memserver(config, args.metrics)
    except BindError as exc:
        raise CommandError(str(exc), where=exc.option) from None


def cmd_emac(args: argparse.Namespace) -> None:
    from rdma_emulator.emac import Attachment, EmacConfig
    from rdma_emulator.service import BindError, run_emac

    servers: dict[int, tuple[str, int]] = {}
    for ident, address in args.memory_server:
        if ident in servers:
            raise CommandError(f"memory server {ident} given twice", where="--memory-server")
        servers[ident] = address
    if not args.interface and not args.listen_udp:
        raise CommandError("nothing to serve: give --interface and/or --listen-udp", where="emac")
    attachments = []
    try:
        for name in args.interface:
            where = f"--interface {name}"
            attachments.append(Attachment.interface(name))
        for host, port in args.listen_udp:
            where = f"--listen-udp {host}:{port}"
            attachments.append(Attachment.udp(host, port))
    except OSError as exc:
        for attachment in attachments:
            attachment.close()
        raise CommandError(exc.strerror or str(exc), where=where) from None
    _start_logging(args.log_level)
    try:
        run_emac(EmacConfig(servers, args.timeout_ms / 1000, args.retries), attachments, args.metrics)
    except BindError as exc:
        raise CommandError(str(exc), where=exc.option) from None


def add_commands(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser] = OneLineParser) -> None:
    """`memserver` and `emac` as subcommands of `sub` (each sets `func`)."""
    common = parser_class(add_help=False)
    common.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="default info")
    common.add_argument("--metrics", type=host_port, default=None, metavar="HOST:PORT",
                        help="serve Prometheus /metrics here (port 0: any)")

    p = sub.add_parser("memserver", help="run an emulated RDMA memory server (a rack server's DRAM as switch external memory)",
                       description=STARTED, parents=[common])
    p.add_argument("--listen", type=host_port, default="127.0.0.1:7000", metavar="HOST:PORT",
                   help="UDP address (default 127.0.0.1:7000; port 0: any)")
    p.add_argument("--latency-ns", type=non_negative_float, default=0.0, help="added to every access (the scenario's delta_w; default 0)")
    p.add_argument("--loss", type=fraction, default=0.0, help="probability of dropping a READ/WRITE/CAS, 0 <= P < 1 (default 0)")
    p.add_argument("--capacity-mb", type=positive_float, default=1024.0, help="memory it registers regions in (default 1024)")
    p.add_argument("--seed", type=non_negative_int, default=None, help="seed of the loss draws")
    p.set_defaults(func=cmd_memserver)

    p = sub.add_parser("emac", help="run the External Memory Access Controller for one or more switches", description=STARTED,
                       parents=[common])
    p.add_argument("--memory-server", type=memory_server, action="append", required=True, metavar="ID=HOST:PORT",
                   help="a memory server the switches' RDMA tables name (repeatable; at least one)")
    p.add_argument("--interface", action="append", default=[], metavar="IFACE",
                   help="a switch's EMAC port (raw frames; needs CAP_NET_RAW)")
    p.add_argument("--listen-udp", type=host_port, action="append", default=[], metavar="HOST:PORT",
                   help="take frames in UDP datagrams here")
    p.add_argument("--timeout-ms", type=positive_float, default=50.0, help="wait for a READ completion (default 50)")
    p.add_argument("--retries", type=non_negative_int, default=1, help="times a READ is posted again after a timeout (default 1)")
    p.set_defaults(func=cmd_emac)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="rdma_emulator", description="The emulated RDMA external memory: memory servers and the EMAC.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=OneLineParser)
    add_commands(sub)
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except CommandError as exc:
        print(f"rdma_emulator: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0
