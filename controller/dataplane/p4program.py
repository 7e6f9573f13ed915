"""The P4 program: where its sources and committed compile outputs live, their hash, and recompiling them.

`p4src/build/` holds what the controller pushes to a switch (BMv2 JSON, P4Info text) and
`SOURCES.sha256`, the hash of the sources those outputs were compiled from, so a stale build is
caught by a test instead of by a switch. `compile_program` runs a local p4c, or the p4lang/p4c
Docker image when there is none.
"""

from __future__ import annotations

import hashlib
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
P4C_IMAGE = "p4lang/p4c:latest"


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


@dataclass(frozen=True)
class CompileResult:
    command: list[str]
    warnings: str
    """What p4c printed on stderr: empty for a clean compile."""


def _p4c_args(out: Path) -> list[str]:
    return ["p4c-bm2-ss", "--std", "p4-16", "-o", str(out / BMV2_JSON.name), "--p4runtime-files", str(out / P4INFO.name), MAIN]


def p4c_command(out: Path) -> list[str]:
    """p4c-bm2-ss from PATH, else the p4lang/p4c image with p4src/ and the output directory mounted."""
    if shutil.which("p4c-bm2-ss"):
        return _p4c_args(out)
    if shutil.which("docker"):
        mounts = ["-v", f"{P4SRC}:/p4src:ro", "-v", f"{out}:/out", "-w", "/p4src"]
        return ["docker", "run", "--rm", *mounts, P4C_IMAGE, *_p4c_args(Path("/out"))]
    raise SremError("no p4c-bm2-ss on PATH and no docker to run the p4lang/p4c image (README: 'The P4 toolchain')", where="p4c")


def compile_program(out: Path = BUILD) -> CompileResult:
    """Compile p4src/srem.p4 into `out` and record the sources' hash beside the outputs."""
    out.mkdir(parents=True, exist_ok=True)
    command = p4c_command(out.resolve())
    done = subprocess.run(command, cwd=P4SRC, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        first = next((l for l in done.stderr.splitlines() if l.strip()), f"exit status {done.returncode}")
        raise SremError(f"p4c failed: {first}", where=str(P4SRC / MAIN))
    (out / SOURCES_HASH.name).write_text(f"{sources_hash()}  {MAIN} and include/*.p4\n")
    return CompileResult(command, done.stderr.strip())
