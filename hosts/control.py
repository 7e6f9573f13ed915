"""The control channel of the testbed's host processes: one JSON object per line over a Unix socket.

A host process (a rack server's VNF service, a traffic host's sender and receiver) runs inside its
Mininet host's network namespace; a Unix socket is a file, so the controller in the root namespace
reaches it without any network between them. Each request is `{"op": NAME, ...}` and gets one
answer: the handler's result, or `{"error": "..."}` when the request was malformed or refused
(the process keeps its last good configuration).

Whoever can open the socket can send anything, so the server bounds what one peer costs: at most
MAX_CONNECTIONS connections at once (one more gets `{"error": ...}` and is closed, no thread), a
request line of at most MAX_LINE bytes (a longer one gets `{"error": ...}` and its connection is
closed, the rest never read), JSON nested deeper than the parser's recursion limit refused, and a
connection silent for IDLE_S closed (srem_formats/bounded_servers.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from srem_formats.bounded_servers import IDLE_S, MAX_CONNECTIONS, BoundedThreads

Handler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_LINE = 64 << 20
"""Bytes of one request or answer: a rack server's rules for a whole step fit."""
MAX_ERROR = 300
"""Characters of an error answer: a refused request's reason may quote the request, which may be huge."""


class ControlError(Exception):
    """A request the host process refused, or a process that did not answer."""


def _error_line(message: str) -> bytes:
    return json.dumps({"error": message}).encode() + b"\n"


class _UnixServer(BoundedThreads, socketserver.UnixStreamServer):
    def refuse(self, request: socket.socket) -> None:
        request.send(_error_line(f"busy: {self.max_connections} connections open already; try again"))


class ControlServer:
    """Serves `handler` on the Unix socket `path`, a thread per connection up to `max_connections`, until `close()`."""

    def __init__(self, path: Path, handler: Handler, max_line: int = MAX_LINE, max_connections: int = MAX_CONNECTIONS,
                 idle_s: float = IDLE_S) -> None:
        self.path = path
        path.unlink(missing_ok=True)
        lock = threading.Lock()

        class _Connection(socketserver.StreamRequestHandler):
            timeout = idle_s

            def handle(self) -> None:
                try:
                    while line := self.rfile.readline(max_line + 1):
                        if len(line) > max_line:
                            # The rest of the line is never read: closing is the only way not to buffer it.
                            self.wfile.write(_error_line(f"request longer than {max_line} bytes; connection closed"))
                            return
                        with lock:
                            answer = _answer(handler, line)
                        self.wfile.write(json.dumps(answer).encode() + b"\n")
                except OSError:
                    pass  # the peer went away or stayed silent past idle_s: nothing to answer, nobody to tell

        self._server = _UnixServer(str(path), _Connection, max_connections=max_connections)
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"control {path.name}", daemon=True)

    @property
    def connections(self) -> int:
        """Connections being served now (each has its thread)."""
        return self._server.connections

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self.path.unlink(missing_ok=True)


def _answer(handler: Handler, line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line)
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            return {"error": "a request is a JSON object with a string 'op'"}
        return handler(request)
    except json.JSONDecodeError as exc:
        return {"error": f"not JSON: {exc}"}
    except RecursionError:
        return {"error": "nested too deeply"}
    except (KeyError, TypeError, ValueError) as exc:
        return {"error": _short(f"bad request: {exc}")}


def _short(message: str) -> str:
    return message if len(message) <= MAX_ERROR else message[:MAX_ERROR] + "..."


def call(path: Path, op: str, timeout: float = 5.0, **args: Any) -> dict[str, Any]:
    """Send one request and return its answer; ControlError when refused or when nobody answers."""
    if not os.path.exists(path):
        raise ControlError(f"{path}: no control socket (is the process running?)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                # Closed on us: a server that refused the connection or the request (busy, too long) said why first.
                sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
            answer = _read_line(sock)
        except OSError as exc:
            raise ControlError(f"{path}: {op}: {exc}") from None
    try:
        result = json.loads(answer)
    except (ValueError, RecursionError):
        raise ControlError(f"{path}: {op}: the answer is not JSON") from None
    if not isinstance(result, dict):
        raise ControlError(f"{path}: {op}: the answer is not a JSON object")
    if "error" in result:
        raise ControlError(f"{path}: {op}: {_short(str(result['error']))}")
    return result


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("closed before answering")
        chunks.append(chunk)
        size += len(chunk)
        if chunk.endswith(b"\n"):
            return b"".join(chunks)
        if size > MAX_LINE:
            raise ConnectionError(f"answer longer than {MAX_LINE} bytes")
