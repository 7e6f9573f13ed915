"""Progress of long loops on stderr: tqdm's bar on a terminal, one plain line now and then elsewhere.

tqdm redraws one line with carriage returns, which a log or a CI console shows as nothing until the
end (or as one unreadable line); a user watching there still wants to know the run is alive and
when it ends. So off a terminal a loop prints `srem: DESC: DONE/TOTAL UNIT, RATE UNIT/s, about T
left` every `interval` seconds, and one closing line with the count and the time taken.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO, TypeVar

from tqdm import tqdm

T = TypeVar("T")

INTERVAL_S = 30.0
"""Seconds between two lines off a terminal: often enough to see a run is alive, rare enough for a log."""


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class LineProgress:
    """A progress report in whole lines; the subset of tqdm's interface the project uses."""

    def __init__(self, iterable: Iterable[Any] | None = None, *, total: int | None = None, desc: str, unit: str,
                 initial: int = 0, stream: TextIO | None = None, interval: float = INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._iterable = iterable
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)  # type: ignore[arg-type]
        self.desc = desc
        self.unit = unit
        self.n = initial
        self._initial = initial  # done before this run (a resumed training): not part of the rate
        self._stream = stream if stream is not None else sys.stderr
        self._interval = interval
        self._clock = clock
        self._start = clock()
        self._last = self._start
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        assert self._iterable is not None, "LineProgress made without an iterable"
        try:
            for item in self._iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self._last >= self._interval:
            self._last = now
            self._print(self._status(now))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        total = f"/{self.total}" if self.total is not None else ""
        self._print(f"{self.n}{total} {self.unit} in {_duration(self._clock() - self._start)}")

    def _status(self, now: float) -> str:
        elapsed = now - self._start
        rate = (self.n - self._initial) / elapsed if elapsed > 0 else 0.0
        line = f"{self.n}" + (f"/{self.total}" if self.total is not None else "") + f" {self.unit}, {rate:.3g} {self.unit}/s"
        if self.total is not None and rate > 0:
            line += f", about {_duration((self.total - self.n) / rate)} left"
        return line

    def _print(self, text: str) -> None:
        print(f"srem: {self.desc}: {text}", file=self._stream, flush=True)


def progress(iterable: Iterable[T] | None = None, *, desc: str, unit: str, show: bool, total: int | None = None,
             initial: int = 0) -> Any:
    """A progress wrapper for `iterable` (or, without one, a context whose `update(n)` counts):
    tqdm on a terminal, LineProgress off one, nothing at all when `show` is False."""
    if show and not sys.stderr.isatty():
        return LineProgress(iterable, total=total, desc=desc, unit=unit, initial=initial)
    return tqdm(iterable, total=total, desc=desc, unit=unit, initial=initial, disable=not show)
