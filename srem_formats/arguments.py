"""Command-line input shared by the project's programs (`srem`, and `python -m rdma_emulator` in the
emulator's own containers): addresses, checked numbers, and an argparse parser whose errors are one
line naming the flag, so that every program reports bad arguments the same way."""

from __future__ import annotations

import argparse
import ipaddress
import math
import re
import textwrap
from collections.abc import Callable, Sequence
from typing import NoReturn, TypeVar

T = TypeVar("T")


def parse_address(text: str) -> tuple[str, int]:
    """HOST:PORT; raises ValueError naming the text."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


class _UnbrokenNames(argparse.HelpFormatter):
    """Help wrapped between words only: a name such as `schedule-foresight` is never split at its hyphen."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False, break_long_words=False)


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors (`PROGRAM: error: --FLAG: WHAT`), unknown flags refused by the
    command they were given to, and help that never splits a hyphenated name."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _UnbrokenNames)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> NoReturn:
        where, what = self.prog, message
        if m := re.fullmatch(r"argument ([^\s/:]+)(?:/\S+)?: (.*)", message, re.S):
            where, what = m.groups()
        elif m := re.fullmatch(r"the following arguments are required: (.*)", message, re.S):
            where, what = m[1], "required"
        self.exit(2, f"{self.prog.split()[0]}: error: {where}: {what} (see {self.prog} --help)\n")

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        namespace, extras = super().parse_known_args(args, namespace)
        # A command without subcommands refuses what it does not know itself, so the message names it
        # (`srem experiment fig5: unrecognized arguments: --policy lag`) instead of the top-level program.
        if extras and self._subparsers is None:
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras


# Argument types: the parser reports their errors as `PROGRAM: error: --FLAG: WHAT`.

def _excerpt(text: str, limit: int = 40) -> str:
    """An argument as an error quotes it: a 5,000-digit one is not worth 5,000 characters of one line."""
    return text if len(text) <= limit else text[:limit] + "..."


def checked(convert: Callable[[str], T], ok: Callable[[T], bool], want: str) -> Callable[[str], T]:
    def parse(text: str) -> T:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{_excerpt(text)!r} is not {want}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{_excerpt(text)} is out of range: want {want}")
        return value

    return parse


positive_int = checked(int, lambda v: v >= 1, "an integer >= 1")
non_negative_int = checked(int, lambda v: v >= 0, "an integer >= 0")
positive_float = checked(float, lambda v: math.isfinite(v) and v > 0, "a number > 0")
non_negative_float = checked(float, lambda v: math.isfinite(v) and v >= 0, "a number >= 0")
fraction = checked(float, lambda v: 0 <= v < 1, "a fraction, 0 <= P < 1")
unit_interval = checked(float, lambda v: 0 <= v <= 1, "a number in [0, 1]")


def host_port(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def is_local(address: str) -> bool:
    """Whether a gRPC address stays on this machine: a unix socket, `localhost` or a loopback IP address."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
