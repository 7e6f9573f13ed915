"""The P4 program: where its sources and committed compile outputs live, their hash, and recompiling them.

`p4src/build/` holds what the controller pushes to a switch (BMv2 JSON, P4Info text), `SOURCES.sha256`,
the hash of the sources those outputs were compiled from, so a stale build is caught by a test instead
of by a switch, and `COMPILER`, the `--version` line of the p4c that compiled them. That version is
pinned, so that a recompile reproduces the committed outputs instead of whatever another p4c makes of
the same sources: `compile_program` runs the p4c-bm2-ss on PATH and refuses it unless it is that
version; without one, it runs the p4lang/p4c Docker image tagged with it. To move to another p4c, put
its `--version` line in `COMPILER`, recompile and commit p4src/build/.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from controller.errors import SremError

P4SRC = Path(__file__).resolve().parents[2] / "p4src"
MAIN = "srem.p4"
BUILD = P4SRC / "build"
BMV2_JSON = BUILD / "srem.json"
P4INFO = BUILD / "srem.p4info.txtpb"
SOURCES_HASH = BUILD / "SOURCES.sha256"
COMPILER = BUILD / "COMPILER"
P4C = "p4c-bm2-ss"
P4C_IMAGE = "p4lang/p4c"
"""Tagged with p4c's version on every release (p4c's .github/workflows/ci-release.yml)."""

_VERSION = re.compile(r"\b\d+(?:\.\d+){2,3}\b")
_TIMEOUT_S = 600


def source_files(root: Path = P4SRC) -> list[Path]:
    return sorted(p for p in root.rglob("*.p4") if BUILD not in p.parents)


def sources_hash(root: Path = P4SRC) -> str:
    """SHA-256 over every source's path (relative to p4src/) and content."""
    digest = hashlib.sha256()
    for path in source_files(root):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def recorded_hash() -> str | None:
    return SOURCES_HASH.read_text().split()[0] if SOURCES_HASH.exists() else None


def version_of(line: str) -> str | None:
    """The release number in a `--version` line: "p4c-bm2-ss Version 1.2.4.8 (SHA: 32893b7 BUILD: Release)" -> "1.2.4.8"."""
    found = _VERSION.search(line)
    return found.group() if found else None


def pinned_version(compiler_file: Path = COMPILER) -> str:
    """The p4c version the committed outputs came from."""
    try:
        line = compiler_file.read_text().strip()
    except OSError as exc:
        raise SremError(f"cannot read the pinned p4c version: {exc.strerror}", where=compiler_file) from None
    version = version_of(line)
    if version is None:
        raise SremError(f"no p4c version (like 1.2.4.8) in {line!r}", where=compiler_file)
    return version


@dataclass(frozen=True)
class CompileResult:
    command: list[str]
    version_line: str
    """The compiler's `--version` line, as recorded in COMPILER."""
    warnings: str
    """What p4c printed on stderr: empty for a clean compile."""


def _p4c_args(out: Path) -> list[str]:
    """Sources by paths relative to p4src/, so that the JSON's source locations do not depend on the checkout."""
    return ["--std", "p4-16", "-o", str(out / BMV2_JSON.name), "--p4runtime-files", str(out / P4INFO.name), MAIN]


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(command, cwd=P4SRC, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except OSError as exc:
        raise SremError(f"cannot run {command[0]}: {exc.strerror}", where=command[0]) from None
    except subprocess.TimeoutExpired:
        raise SremError(f"no answer within {_TIMEOUT_S} s: {' '.join(command)}", where=command[0]) from None


def _compiler_output(done: subprocess.CompletedProcess[str]) -> str:
    """Every line the compiler printed, stderr first: its errors name the file and line."""
    return "\n".join(line.rstrip() for line in (done.stderr + "\n" + done.stdout).splitlines() if line.strip())


def _version_line(compiler: list[str]) -> str:
    """What `--version` printed, on one line: p4c-bm2-ss 1.2.4.8 prints its name and "Version 1.2.4.8 (SHA: ...)"
    on two lines of stderr."""
    done = _run([*compiler, "--version"])
    line = " ".join(l.strip() for l in (done.stdout + "\n" + done.stderr).splitlines() if l.strip())
    if done.returncode != 0 or version_of(line) is None:
        raise SremError(f"`{P4C} --version` printed no version (exit status {done.returncode}): {line or 'nothing'}",
                        where=shutil.which(compiler[0]) or compiler[0])
    return line


def local_version() -> str | None:
    """The version of the p4c-bm2-ss on PATH, None without one."""
    local = shutil.which(P4C)
    return version_of(_version_line([local])) if local else None


def _compiler(out: Path, pinned: str) -> list[str]:
    """p4c-bm2-ss from PATH, else the p4lang/p4c image of the pinned version with p4src/ and `out` mounted."""
    if shutil.which(P4C):
        return [P4C]
    if shutil.which("docker"):
        mounts = ["-v", f"{P4SRC}:/p4src:ro", "-v", f"{out}:/out", "-w", "/p4src", "-u", f"{os.getuid()}:{os.getgid()}"]
        return ["docker", "run", "--rm", *mounts, f"{P4C_IMAGE}:{pinned}", P4C]
    raise SremError(f"no {P4C} on PATH and no docker to run {P4C_IMAGE}:{pinned} (README: 'The P4 toolchain')", where="p4c")


def p4c_command(out: Path) -> tuple[list[str], str]:
    """The compile command and the compiler's `--version` line, which must name the pinned version."""
    pinned = pinned_version()
    compiler = _compiler(out, pinned)
    line = _version_line(compiler)
    if version_of(line) != pinned:
        raise SremError(f"{P4C} is p4c {version_of(line)} but the committed build comes from p4c {pinned} "
                        f"({COMPILER.relative_to(P4SRC.parent)}): install p4c {pinned}, or take {P4C} off PATH "
                        f"to use the {P4C_IMAGE}:{pinned} image", where=shutil.which(compiler[0]) or compiler[0])
    target = Path("/out") if compiler[0] == "docker" else out
    return [*compiler, *_p4c_args(target)], line


def compile_program(out: Path = BUILD) -> CompileResult:
    """Compile p4src/srem.p4 into `out` and record the sources' hash and the compiler's version beside the outputs."""
    out.mkdir(parents=True, exist_ok=True)
    command, version_line = p4c_command(out.resolve())
    done = _run(command)
    if done.returncode != 0:
        raise SremError(f"{P4C} failed (exit status {done.returncode}; paths relative to {P4SRC}):\n{_compiler_output(done)}",
                        where=P4SRC / MAIN)
    (out / SOURCES_HASH.name).write_text(f"{sources_hash()}  {MAIN} and include/**/*.p4\n")
    (out / COMPILER.name).write_text(version_line + "\n")
    return CompileResult(command, version_line, done.stderr.strip())
