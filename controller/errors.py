"""The project's one error type for bad input: it prints as a single line naming where and what."""

from __future__ import annotations

from pathlib import Path


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
