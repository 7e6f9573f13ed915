"""The project's one error type for bad input: it prints as a single line naming where and what, echoing at most an excerpt of the input."""

from __future__ import annotations

import reprlib
from pathlib import Path

EXCERPT_CHARS = 80
"""The most of an input an error message echoes: enough to recognise it, never a whole expanded file."""

_short = reprlib.Repr()
_short.maxlevel = 2
_short.maxtuple = _short.maxlist = _short.maxdict = _short.maxset = 4
_short.maxstring = _short.maxother = EXCERPT_CHARS


def clip(text: str) -> str:
    """`text` cut to EXCERPT_CHARS, marked with '...' where cut."""
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS - 3] + "..."


def excerpt(value: object) -> str:
    """The repr of a value read from input, at most EXCERPT_CHARS long.

    reprlib looks at a few items of each container only, so a large (or alias-expanded) value costs
    no more to describe than a small one."""
    return clip(_short.repr(value))


class SremError(Exception):
    """Bad input or an impossible request; the CLI prints it as one line and exits non-zero.

    `where` names the file (or other source), `key` the offending key or item inside it.
    """

    def __init__(self, message: str, *, where: str | Path | None = None, key: str | None = None) -> None:
        self.message = message
        self.where = str(where) if where is not None else None
        self.key = key
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = [p for p in (self.where, self.key) if p]
        return ": ".join([*parts, self.message])


class ConfigError(SremError):
    """A scenario, topology or substrate file that does not validate."""


class DatasetError(SremError):
    """A dataset directory that is missing, of another format version, or inconsistent."""
