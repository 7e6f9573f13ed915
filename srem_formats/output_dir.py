"""Output directories that a command writes only into what it creates, and replaces without ever
leaving a damaged one.

Every directory a command writes is marked with a small file, `.srem-output`, holding the command's
name (`scenario generate`, `experiment fig6`, ...). A command writes to a path only if nothing is
there, an empty directory is there, or - with its force flag - a directory marked as its own output;
anything else (a user's directory, a file, a symbolic link, another command's output) is refused in
one line before any work is done. Directories written by srem before the marker existed carry none:
they are refused like any other, with a hint to delete them by hand, because telling them from a
user's directory by their contents would be a guess.

A run writes into a hidden staging folder beside the output, named `.NAME.srem-staging-HOST-PID-RANDOM`
(HOST: this machine and PID namespace, so a container sharing the folder never mistakes another's live
run for a dead one). When the run completes, the previous output is renamed aside
(`.NAME.srem-old-HOST-PID-RANDOM`), the new one renamed in, and the old one removed. An exception or
an interrupt (KeyboardInterrupt; the CLI turns SIGTERM into one) at any point leaves the previous or
the new output whole at NAME, and removes the staging folder. A process killed outright leaves its
folders behind; the next run beside them removes a dead run's staging folder, and puts back an old
output its run had renamed aside but not replaced.

Imports nothing of the project's: the ground floor, so the dataset writer and the CLI share it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MARKER = ".srem-output"
"""The file naming the command whose output a directory is."""

_MARKER_READ_LIMIT = 200
"""Bytes of a marker read: a command name is short, and a marker is not trusted to be small."""

_SHOWN = 60
"""Characters of a foreign marker's content an error message shows."""

_SIBLING = re.compile(r"^\.(?P<name>.+)\.srem-(?P<kind>staging|old)-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{8}$")


class OutputError(Exception):
    """An output path that may not be written: prints as one line, `WHERE: WHAT`, as the CLI's errors do."""

    def __init__(self, message: str, *, where: Path) -> None:
        self.message = message
        self.where = str(where)
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.where}: {self.message}"


def owner(out: Path) -> str | None:
    """The command whose output `out` is, from its marker; None for a directory without one."""
    marker = out / MARKER
    if not marker.is_file():  # not a directory, nor a pipe that would block the read
        return None
    try:
        with marker.open("rb") as f:
            text = f.read(_MARKER_READ_LIMIT).decode("utf-8", "replace")
    except OSError:  # unreadable: not provably ours
        return None
    return " ".join(text.split())


def check_output(out: Path, command: str, force: bool, force_flag: str | None = "--force", hint: str = "") -> None:
    """Refuse `out` unless `command` may write it: nothing there, an empty directory, or (with `force`) a
    directory marked as `command`'s output. `force_flag` names the flag that sets `force` (None: the command has
    none); `hint` ends the message refusing an output of `command` without it."""
    out = _absolute(out)
    if out.parent == out:
        raise OutputError("is the root directory; give a directory of its own", where=out)
    if out.is_symlink():
        raise OutputError("is a symbolic link; give the path of a directory for srem to create", where=out)
    if not out.exists():
        return
    if not out.is_dir():
        raise OutputError("exists and is not a directory; srem writes a directory here and never replaces a file", where=out)
    found = owner(out)
    if found is None:
        try:
            empty = not any(out.iterdir())
        except OSError as exc:
            raise OutputError(f"cannot be read ({exc.strerror})", where=out) from None
        if empty:
            return
        raise OutputError(f"is a directory srem did not write (no {MARKER} in it) and srem replaces only its own outputs: "
                          "choose another path, or delete it by hand if an earlier srem wrote it", where=out)
    if found != command:
        raise OutputError(f"holds the output of `srem {found[:_SHOWN]}`, not of `srem {command}`; choose another path",
                          where=out)
    if not force:
        raise OutputError(f"exists{f'; pass {force_flag} to replace it' if force_flag else ''}{hint}", where=out)


@contextmanager
def output_dir(out: Path, command: str, force: bool, force_flag: str | None = "--force") -> Iterator[Path]:
    """A fresh staging directory to write `command`'s output into; when the block completes, it replaces
    `out` atomically, marked as `command`'s. Refused (OutputError) as `check_output` says, at the start and
    again at the end (something may have appeared at `out` meanwhile). On any exception the staging
    directory is removed and `out` keeps what it held."""
    out = _absolute(out)
    sweep(out.parent)  # first: it may put back an earlier output at `out`
    check_output(out, command, force, force_flag)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create its parent directory ({exc.strerror})", where=out) from None
    staging = _sibling(out, "staging")
    try:
        staging.mkdir()
    except OSError as exc:
        raise OutputError(f"cannot create a staging directory beside it ({exc.strerror})", where=out) from None
    aside: Path | None = None
    try:
        yield staging
        check_output(out, command, force, force_flag)
        (staging / MARKER).write_text(command + "\n")
        if out.exists():
            aside = _sibling(out, "old")
            os.rename(out, aside)
        os.rename(staging, out)
    except BaseException:
        # Interrupted between the two renames: the previous output goes back before anything else.
        if aside is not None and aside.exists() and not out.exists():
            os.rename(aside, out)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        # The replaced output, once the new one is at `out` (what an interrupt here leaves, `sweep` removes).
        if aside is not None and out.exists():
            shutil.rmtree(aside, ignore_errors=True)


def claim(out: Path, command: str, force: bool, force_flag: str | None = "--force") -> Path:
    """An empty directory at `out`, marked as `command`'s output, for a command that writes in place as it
    goes (a live run that can be resumed, a testbed's state): the previous output, if any, replaced as
    `output_dir` replaces it. The absolute path."""
    with output_dir(out, command, force, force_flag):
        pass
    return _absolute(out)


def sweep(parent: Path) -> None:
    """Remove the staging folders in `parent` of runs on this machine that are no longer alive, and put back
    an old output such a run had renamed aside without renaming its new one in (else remove it)."""
    here = _host()
    try:
        entries = list(os.scandir(parent))
    except OSError:  # a folder we cannot list holds nothing we could remove
        return
    for entry in entries:
        match = _SIBLING.match(entry.name)
        if match is None or match["host"] != here or _alive(int(match["pid"])) or not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        final = parent / match["name"]
        try:
            if match["kind"] == "old" and not final.exists() and not final.is_symlink():
                os.rename(path, final)
            else:
                shutil.rmtree(path)
        except OSError:  # another run sweeping at the same time, or not ours to remove: left as it is
            continue


def _absolute(out: Path) -> Path:
    """`out` made absolute with `.` and `..` folded, so that `--out .` names the directory itself."""
    return Path(os.path.abspath(out))


def _host() -> str:
    """This machine and PID namespace, hashed: a PID means a process only within both."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:  # no /proc (not Linux): the machine alone
        namespace = 0
    return hashlib.sha256(f"{socket.gethostname()}\0{namespace}".encode()).hexdigest()[:8]


def _sibling(out: Path, kind: str) -> Path:
    return out.parent / f".{out.name}.srem-{kind}-{_host()}-{os.getpid()}-{secrets.token_hex(4)}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True
