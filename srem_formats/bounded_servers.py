"""Servers a peer cannot grow without bound: a thread per connection up to a limit, and /metrics on it.

Every endpoint of the project that takes connections (the host processes' control sockets, the live
loop's /metrics, the memory servers' and the EMAC's /metrics) is reachable by whoever can open it, so
one peer must not make the process start threads, or hold memory for them, without bound.
prometheus_client's start_http_server takes a thread per connection and keeps a silent one forever.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import socketserver
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, make_wsgi_app

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 8
"""Connections served at once: the controller opens one per control call and calls one process at a
time; a Prometheus scraper holds one."""
IDLE_S = 30.0
"""A connection that sends nothing (or reads nothing) this long is closed: it holds one of the slots."""


class BoundedThreads(socketserver.ThreadingMixIn):
    """A socketserver mix-in: a daemon thread per connection, at most `max_connections` at once. The one
    over the bound gets `refuse` and is closed on the accepting thread, without a thread of its own."""

    daemon_threads = True

    def __init__(self, *args: Any, max_connections: int = MAX_CONNECTIONS, **kwargs: Any) -> None:
        self.max_connections = max_connections
        self._count_lock = threading.Lock()
        self._active = 0
        super().__init__(*args, **kwargs)

    @property
    def connections(self) -> int:
        """Connections being served now (each has its thread)."""
        return self._active

    def refuse(self, request: socket.socket) -> None:
        """What a connection over the bound is told before it is closed (in the server's own protocol)."""

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._count_lock:
            admitted = self._active < self.max_connections
            if admitted:
                self._active += 1
        if not admitted:
            # A few bytes into a fresh socket's empty send buffer: this never blocks the accepting thread.
            with contextlib.suppress(OSError):
                request.setblocking(False)
                self.refuse(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release()

    def _release(self) -> None:
        with self._count_lock:
            self._active -= 1


class MetricsServer(BoundedThreads, WSGIServer):
    """Prometheus /metrics with a bounded number of connections; one over the bound gets 503."""

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily, max_connections: int) -> None:
        self.address_family = family
        super().__init__(address, _QuietHandler, max_connections=max_connections)

    def refuse(self, request: socket.socket) -> None:
        request.send(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")

    def handle_error(self, request: object, client_address: object) -> None:
        log.debug("metrics: a connection from %s failed", client_address, exc_info=True)


class _QuietHandler(WSGIRequestHandler):
    """No access log line per scrape; a connection silent for IDLE_S is closed (it holds one of the slots)."""

    timeout = IDLE_S

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        pass


def serve_metrics(registry: CollectorRegistry, host: str, port: int, name: str = "metrics",
                  max_connections: int = MAX_CONNECTIONS) -> MetricsServer:
    """Serve `registry` on http://HOST:PORT/ (port 0: any; `server_address` says which) from a daemon
    thread until the returned server's `shutdown()`; OSError when the address cannot be bound."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
    server = MetricsServer((host, port), family, max_connections)
    server.set_app(make_wsgi_app(registry))
    threading.Thread(target=server.serve_forever, name=name, daemon=True).start()
    return server
