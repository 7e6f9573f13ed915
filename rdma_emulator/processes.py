"""The memory server and the EMAC (`python -m rdma_emulator memserver|emac`) as child processes: start, wait for the ready line, scrape
/metrics, stop. For tests, benchmarks and the testbed, which run them as separate processes."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from srem_formats.arguments import parse_address


@dataclass
class Proc:
    popen: subprocess.Popen[str]
    ready: dict[str, object]

    def address(self, key: str) -> tuple[str, int]:
        return parse_address(str(self.ready[key]))

    def udp_attachment(self) -> tuple[str, int]:
        """An EMAC's first attachment, a UDP socket."""
        return parse_address(str(self.ready["emac"][0]).removeprefix("udp:"))

    def metrics(self) -> dict[str, float]:
        """Every sample as 'name{label=value,...}' -> value."""
        text = urllib.request.urlopen(f"http://{self.ready['metrics']}/metrics", timeout=5).read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
                samples[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return samples

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> str:
        """SIGTERM, then SIGKILL after 5 s; the process's stderr."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        return self.popen.stderr.read() if self.popen.stderr else ""

    def kill(self) -> None:
        self.popen.kill()
        self.popen.wait(5)


def start(*args: str, prefix: tuple[str, ...] = (), metrics: str = "127.0.0.1:0") -> Proc:
    """Run `python -m rdma_emulator ARGS --metrics METRICS`, behind `prefix` (e.g. `ip netns exec NS`)."""
    popen = subprocess.Popen([*prefix, sys.executable, "-m", "rdma_emulator", *args, "--metrics", metrics],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ready, _, _ = select.select([popen.stdout], [], [], 15)
    line = popen.stdout.readline() if ready else ""
    if not line:
        popen.kill()
        popen.wait(5)
        raise RuntimeError(f"python -m rdma_emulator {args[0]} did not start: {popen.stderr.read()}")
    return Proc(popen, json.loads(line))


@contextmanager
def running(*args: str, prefix: tuple[str, ...] = ()) -> Iterator[Proc]:
    """start(), and stop() however the block ends."""
    proc = start(*args, prefix=prefix)
    try:
        yield proc
    finally:
        proc.stop()
