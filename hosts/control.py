"""The control channel of the testbed's host processes: one JSON object per line over a Unix socket.

A host process (a rack server's VNF service, a traffic host's sender and receiver) runs inside its
Mininet host's network namespace; a Unix socket is a file, so the controller in the root namespace
reaches it without any network between them. Each request is `{"op": NAME, ...}` and gets one
answer: the handler's result, or `{"error": "..."}` when the request was malformed or refused
(the process keeps its last good configuration).
"""

from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Handler = Callable[[dict[str, Any]], dict[str, Any]]
MAX_LINE = 64 << 20
"""Bytes of one request or answer: a rack server's rules for a whole step fit."""


class ControlError(Exception):
    """A request the host process refused, or a process that did not answer."""


class ControlServer:
    """Serves `handler` on the Unix socket `path`, one thread per connection, until `close()`."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        path.unlink(missing_ok=True)
        lock = threading.Lock()

        class _Connection(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                for line in self.rfile:
                    with lock:
                        answer = _answer(handler, line)
                    self.wfile.write(json.dumps(answer).encode() + b"\n")

        self._server = socketserver.ThreadingUnixStreamServer(str(path), _Connection)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"control {path.name}", daemon=True)

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
    except (KeyError, TypeError, ValueError) as exc:
        return {"error": f"bad request: {exc}"}


def call(path: Path, op: str, timeout: float = 5.0, **args: Any) -> dict[str, Any]:
    """Send one request and return its answer; ControlError when refused or when nobody answers."""
    if not os.path.exists(path):
        raise ControlError(f"{path}: no control socket (is the process running?)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps({"op": op, **args}).encode() + b"\n")
            answer = _read_line(sock)
        except OSError as exc:
            raise ControlError(f"{path}: {op}: {exc}") from None
    result = json.loads(answer)
    if "error" in result:
        raise ControlError(f"{path}: {op}: {result['error']}")
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
