"""What one peer of a control socket (hosts/control.py) or of the live loop's /metrics endpoint can cost the
process serving it: a bounded number of connections and threads, a bounded request line, no uncaught
error for JSON nested past the parser's limit, short error answers; the server keeps serving the next
client after each. Real Unix and TCP sockets, the servers in this process; no testbed needed."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from controller.testbed import scrape
from controller.testbed.loop import Metrics
from hosts.control import MAX_ERROR, ControlError, ControlServer, call
from rdma_emulator.processes import running
from srem_formats.bounded_servers import MAX_CONNECTIONS

WAIT_S = 10.0
"""Upper bound on waiting for the server to reach a state (the servers' own threads, on a busy machine)."""


def echo(request: dict[str, Any]) -> dict[str, Any]:
    if request["op"] == "ping":
        return {"pong": True}
    raise ValueError(f"unknown op {request['op']!r} (ping)")


@contextmanager
def serving(tmp_path: Path, handler: Callable[[dict[str, Any]], dict[str, Any]] = echo, **limits: Any) -> Iterator[tuple[ControlServer, Path]]:
    path = tmp_path / "ctl.sock"
    server = ControlServer(path, handler, **limits).start()
    try:
        yield server, path
    finally:
        server.close()


def connect(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(WAIT_S)
    sock.connect(str(path))
    return sock


def answers(sock: socket.socket) -> list[bytes]:
    """Every line the server sends until it closes the connection."""
    return sock.makefile("rb").readlines()


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, "the server did not get there"
        time.sleep(0.01)


def test_a_line_over_the_limit_gets_an_error_line_and_the_server_serves_the_next_client(tmp_path: Path) -> None:
    with serving(tmp_path, max_line=1024) as (_, path), connect(path) as sock:
        sock.sendall(b'{"op": "ping", "pad": "' + b"x" * 4096 + b'"}\n' + b'{"op": "ping"}\n')
        lines = answers(sock)
        assert [json.loads(line) for line in lines] == [{"error": "request longer than 1024 bytes; connection closed"}], \
            "one error line, then closed: the rest of the line and what follows are never read"
        assert call(path, "ping") == {"pong": True}
        assert call(path, "ping", pad="x" * 900) == {"pong": True}, "a line within the limit is served"


def test_json_nested_100000_deep_gets_an_error_answer_and_the_server_keeps_serving(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    with serving(tmp_path) as (_, path):
        for request in (deep, '{"op": "ping", "deep": ' + deep + "}"):
            with connect(path) as sock:
                sock.sendall(request.encode() + b"\n")
                assert json.loads(sock.makefile("rb").readline()) == {"error": "nested too deeply"}
        assert call(path, "ping") == {"pong": True}


def test_idle_connections_beyond_the_bound_are_refused_without_a_thread_each(tmp_path: Path) -> None:
    with serving(tmp_path, max_connections=4) as (server, path), ExitStack() as held:
        idle = [held.enter_context(connect(path)) for _ in range(4)]
        until(lambda: server.connections == 4)
        threads = threading.active_count()
        for _ in range(10):
            with connect(path) as extra:
                assert [json.loads(line) for line in answers(extra)] == [{"error": "busy: 4 connections open already; try again"}]
        assert threading.active_count() == threads and server.connections == 4
        with pytest.raises(ControlError, match="busy: 4 connections"):
            call(path, "ping")
        for sock in idle:
            sock.close()
        until(lambda: server.connections == 0)
        assert call(path, "ping") == {"pong": True}


def test_a_silent_connection_is_closed_and_frees_its_slot(tmp_path: Path) -> None:
    with serving(tmp_path, max_connections=1, idle_s=0.2) as (server, path), connect(path) as silent:
        assert answers(silent) == [], "closed by the server, no answer"
        until(lambda: server.connections == 0)
        assert call(path, "ping") == {"pong": True}


def test_a_refusal_quoting_a_huge_request_is_answered_short(tmp_path: Path) -> None:
    with serving(tmp_path) as (_, path), connect(path) as sock:
        sock.sendall(json.dumps({"op": "x" * 1_000_000}).encode() + b"\n")
        line = sock.makefile("rb").readline()
        assert json.loads(line)["error"].startswith("bad request: unknown op 'xxx")
        assert len(line) < MAX_ERROR + 50


def test_an_answer_that_is_not_json_is_a_control_error(tmp_path: Path) -> None:
    path = tmp_path / "liar.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(1)

        def lie() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.makefile("rb").readline()
                conn.sendall(b"[" * 100_000 + b"\n")

        liar = threading.Thread(target=lie, daemon=True)
        liar.start()
        with pytest.raises(ControlError, match="the answer is not JSON"):
            call(path, "ping")
        liar.join(WAIT_S)


def test_the_loop_metrics_endpoint_bounds_its_connections_and_serves_after(tmp_path: Path) -> None:
    server = Metrics().serve("127.0.0.1", 0)
    address = f"127.0.0.1:{server.server_address[1]}"
    try:
        assert scrape.metric(address, "srem_loop_step") == 0.0
        limit = server.max_connections
        with ExitStack() as held:
            for _ in range(limit):
                held.enter_context(socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=WAIT_S))
            until(lambda: server.connections == limit)
            threads = threading.active_count()
            with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=WAIT_S) as extra:
                assert extra.makefile("rb").readline().startswith(b"HTTP/1.0 503")
            assert threading.active_count() == threads
            assert scrape.metric(address, "srem_loop_step") is None, "busy: refused, not queued"
        until(lambda: server.connections == 0)
        assert scrape.metric(address, "srem_loop_step") == 0.0
    finally:
        server.shutdown()
        server.server_close()


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no thread count for {pid}")


def test_the_memory_servers_metrics_endpoint_bounds_its_connections_too() -> None:
    """prometheus_client's start_http_server, which the emulator used, took a thread for every connection."""
    with running("memserver", "--listen", "127.0.0.1:0") as proc:
        host, port = proc.address("metrics")
        assert "srem_memserver_regions" in str(proc.metrics())
        threads = threads_of(proc.popen.pid)
        with ExitStack() as held:
            for _ in range(MAX_CONNECTIONS):
                held.enter_context(socket.create_connection((host, port), timeout=WAIT_S))
            until(lambda: threads_of(proc.popen.pid) == threads + MAX_CONNECTIONS)
            for _ in range(3 * MAX_CONNECTIONS):
                with socket.create_connection((host, port), timeout=WAIT_S) as extra:
                    assert extra.makefile("rb").readline().startswith(b"HTTP/1.0 503")
            assert threads_of(proc.popen.pid) == threads + MAX_CONNECTIONS
        until(lambda: threads_of(proc.popen.pid) == threads)
        assert "srem_memserver_regions" in str(proc.metrics())


def test_a_metrics_answer_over_the_bound_is_not_read_whole() -> None:
    class Flood(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"# TYPE wanted gauge\nwanted 1.0\n")
            chunk = b"# " + b"x" * 65_000 + b"\n"
            for _ in range(scrape.MAX_BYTES // len(chunk) + 2):
                self.wfile.write(chunk)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
            pass

    flood = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Flood)
    threading.Thread(target=flood.serve_forever, daemon=True).start()
    try:
        assert scrape.metric(f"127.0.0.1:{flood.server_address[1]}", "wanted", timeout_s=WAIT_S) is None
    finally:
        flood.shutdown()
        flood.server_close()
