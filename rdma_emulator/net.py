"""What the emulated hardware's processes share on the socket side (the memory server and the EMAC;
the testbed's rack servers and traffic agents, hosts/): addresses, the event loop, sending at a
precise time, and logging that a flood of bad packets cannot drown, to a size-capped file."""

from __future__ import annotations

import asyncio
import heapq
import logging
import logging.handlers
import os
import time
from collections.abc import Callable


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where it is installed, asyncio's otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class Delayer:
    """Calls `send(item)` at each item's due time, to within tens of microseconds.

    Due times are on `clock` (time.monotonic(); tests may drive their own), not the loop's clock,
    which uvloop keeps in milliseconds.
    Event-loop timers wake on millisecond ticks, so a timer only brings the loop to SPIN_S before the
    next due time; from there the loop is polled with call_soon, which keeps serving sockets between
    polls, so many delayed items are in flight at once, as completions are on an RDMA NIC.
    """

    SPIN_S = 0.002

    def __init__(self, loop: asyncio.AbstractEventLoop, send: Callable[[object], None],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.loop = loop
        self.send = send
        self.clock = clock
        self._heap: list[tuple[float, int, object]] = []
        self._count = 0
        self._timer: asyncio.TimerHandle | None = None
        self._spinning = False

    def at(self, due: float, item: object) -> None:
        heapq.heappush(self._heap, (due, self._count, item))
        self._count += 1
        if not self._spinning and self._heap[0][1] == self._count - 1:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._heap:
            self._spinning = False
            return
        wait = self._heap[0][0] - self.clock()
        if wait <= self.SPIN_S:
            self._spinning = True
            self.loop.call_soon(self._tick)
        else:
            self._spinning = False
            self._timer = self.loop.call_later(wait - self.SPIN_S, self._arm)

    def _tick(self) -> None:
        now = self.clock()
        while self._heap and self._heap[0][0] <= now:
            self.send(heapq.heappop(self._heap)[2])
        self._arm()


class Throttled:
    """A logger for per-packet problems: at most one line per reason per interval, with the count of
    the lines it held back."""

    def __init__(self, log: logging.Logger, interval_s: float = 1.0) -> None:
        self.log = log
        self.interval = interval_s
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def warning(self, reason: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last.get(reason, -self.interval) < self.interval:
            self._held[reason] = self._held.get(reason, 0) + 1
            return
        held = self._held.pop(reason, 0)
        self._last[reason] = now
        self.log.warning("%s%s", message, f" ({held} more like it not logged)" if held else "")


def log_to_capped_file(logger: logging.Logger, path: str | os.PathLike[str], max_bytes: int, prefix: str = "") -> None:
    """Warnings and worse of `logger` into `path`, rotated once at `max_bytes` (one old file kept);
    OSError when the file cannot be opened."""
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=max_bytes, backupCount=1)
    handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)s {prefix}%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
