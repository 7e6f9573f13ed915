"""The emulator's command line: `memserver` and `emac`, long-running processes, and `keygen`, which
writes the control key the controller and the memory servers share (auth.py).

Two programs offer these commands: `srem memserver|emac|keygen` (the controller's CLI mounts them) and
`python -m rdma_emulator memserver|emac|keygen`, which needs nothing of the controller, so the emulator's
containers hold only the emulator. Bad arguments, key files and unusable addresses or interfaces are
reported as one line naming the flag, before anything is served.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from pathlib import Path

from srem_formats.arguments import (OneLineParser, fraction, host_port, non_negative_float, non_negative_int, positive_float,
                                    positive_int)

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


def key_target(text: str) -> tuple[Path, int | None]:
    path, sep, owner = text.rpartition(":")
    if sep and owner.isdigit() and path:
        return Path(path), int(owner)
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text), None


def loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _start_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)


def cmd_memserver(args: argparse.Namespace) -> None:
    from rdma_emulator.auth import KeyFileError, load_key
    from rdma_emulator.server import ServerConfig
    from rdma_emulator.service import BindError, run_memserver

    host, port = args.listen
    if args.key_file is None and not loopback(host):
        raise CommandError(f"required to listen on {host} (not loopback): without a control key anyone who reaches the port "
                           "may allocate, write and free its memory (make one with `keygen`)", where="--key-file")
    try:
        key = load_key(args.key_file) if args.key_file is not None else None
    except KeyFileError as exc:
        raise CommandError(str(exc), where="--key-file") from None
    capacity = int(args.capacity_mb * 2**20)
    config = ServerConfig(host, port, args.latency_ns, args.loss, capacity, args.seed, key,
                          None if args.quota_mb is None else int(args.quota_mb * 2**20),
                          args.quota_regions, max(1, int(args.queue_mb * 2**20)))
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
        run_emac(EmacConfig(servers, args.timeout_ms / 1000, args.retries, args.max_in_flight), attachments, args.metrics)
    except BindError as exc:
        raise CommandError(str(exc), where=exc.option) from None


def cmd_keygen(args: argparse.Namespace) -> None:
    from rdma_emulator.auth import KeyFileError, write_key_files

    try:
        made = write_key_files(args.file, keep=args.keep)
    except KeyFileError as exc:
        raise CommandError(str(exc), where="keygen") from None
    print(f"{'wrote a new' if made else 'kept the'} control key: {', '.join(str(path) for path, _ in args.file)}", file=sys.stderr)


def add_commands(sub: argparse._SubParsersAction, parser_class: type[argparse.ArgumentParser] = OneLineParser) -> None:
    """`memserver`, `emac` and `keygen` as subcommands of `sub` (each sets `func`)."""
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
    p.add_argument("--key-file", default=None, metavar="PATH",
                   help="the control key (as `keygen` writes it, mode 0600): ALLOC, FREE, WRITE and CAS run only when signed "
                        "with it; required unless --listen is loopback")
    p.add_argument("--quota-mb", type=positive_float, default=None,
                   help="memory the regions of one client address may hold (default: the capacity)")
    p.add_argument("--quota-regions", type=positive_int, default=4096, help="regions one client address may hold (default 4096)")
    p.add_argument("--queue-mb", type=positive_float, default=16.0,
                   help="bound on the completions waiting out --latency-ns; requests beyond it are dropped and counted "
                        "(default 16)")
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
    p.add_argument("--max-in-flight", type=positive_int, default=1024,
                   help="lookups in flight per memory server; more naming that server are dropped (default 1024)")
    p.set_defaults(func=cmd_emac)

    p = sub.add_parser("keygen", help="write the control key the controller and the memory servers share",
                       description="Writes one new random key to every FILE (mode 0600), each whole or not at all; "
                                   "refuses a FILE that exists unless --keep.")
    p.add_argument("file", type=key_target, nargs="+", metavar="FILE[:UID]", help="where; owned by UID when given (needs CAP_CHOWN)")
    p.add_argument("--keep", action="store_true",
                   help="files that exist keep their key (they must hold the same one), the missing ones get it")
    p.set_defaults(func=cmd_keygen)


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
