"""Runs a memory server or an EMAC as a long-lived process: event loop, metrics endpoint, signals.

On start the process prints one JSON line on stdout with the addresses it bound (ports given as 0
are chosen by the system), so scripts and tests know where it listens; it runs until SIGINT or
SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from rdma_emulator.emac import Attachment, Emac, EmacConfig
from rdma_emulator.net import new_event_loop
from rdma_emulator.server import MemoryServer, ServerConfig
from srem_formats.bounded_servers import serve_metrics


class BindError(Exception):
    """An address the process could not bind; `option` names the command-line option that gave it."""

    def __init__(self, option: str, address: str, exc: OSError) -> None:
        self.option = option
        super().__init__(f"cannot bind {address}: {exc.strerror or exc}")


def _serve(registry: CollectorRegistry, metrics: tuple[str, int] | None, ready: dict[str, object],
           loop: asyncio.AbstractEventLoop, close: Callable[[], None]) -> None:
    if metrics is not None:
        try:
            http = serve_metrics(registry, metrics[0], metrics[1])
        except OSError as exc:
            close()
            raise BindError("--metrics", "%s:%d" % metrics, exc) from None
        ready["metrics"] = "%s:%d" % http.server_address[:2]
    print(json.dumps(ready), flush=True)
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, loop.stop)
    try:
        loop.run_forever()
    finally:
        close()
        loop.close()


def run_memserver(config: ServerConfig, metrics: tuple[str, int] | None) -> None:
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    server = MemoryServer(config)
    try:
        host, port = loop.run_until_complete(server.start())
    except OSError as exc:
        raise BindError("--listen", f"{config.host}:{config.port}", exc) from None
    _serve(server.registry, metrics, {"memserver": f"{host}:{port}"}, loop, server.close)


def run_emac(config: EmacConfig, attachments: list[Attachment], metrics: tuple[str, int] | None) -> None:
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    emac = Emac(config)
    loop.run_until_complete(emac.start(attachments))
    ready = {"emac": [a.name for a in attachments], "memory_servers": {str(k): "%s:%d" % v for k, v in config.memory_servers.items()}}
    _serve(emac.registry, metrics, ready, loop, emac.close)
