"""The P4 program's sources and committed build: their structure, the P4Info names the controller relies
on, the codes shared with Python, and `srem p4 compile`'s compiler pinning and errors (with a fake p4c,
so no toolchain is needed)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from controller.dataplane import p4program
from controller.dataplane.p4info import P4Schema
from controller.dataplane.p4program import BUILD, COMPILER, P4C, P4SRC, compile_program, pinned_version, source_files, version_of
from controller.dataplane.entries import DropReason
from controller.dataplane.layout import CPU_PORT, PortRole
from controller.errors import SremError
from srem_formats import wire
from srem_formats.flows import Action, VnfKind

DATAPLANE = Path(p4program.__file__).parent


def p4_constants() -> dict[str, int]:
    text = (P4SRC / "include" / "define.p4").read_text()
    return {name: int(value, 0) for name, value in re.findall(r"const bit<\d+>\s+(\w+)\s*=\s*(\w+);", text)}


def test_the_p4info_has_every_name_the_controller_uses() -> None:
    schema = P4Schema.load()
    known = set(schema.tables) | set(schema.actions) | set(schema.counters) | set(schema.meters)
    used = {name for path in DATAPLANE.glob("*.py") for name in re.findall(r"\"(SremIngress\.[\w.]+)\"", path.read_text())}
    assert len(used) > 20
    assert sorted(used - known) == []


def test_the_codes_shared_with_python_agree() -> None:
    consts = p4_constants()
    assert {k.name: consts[f"VNF_{k.name}"] for k in VnfKind} == {k.name: k.value for k in VnfKind}
    assert {r.name: consts[f"PORT_ROLE_{r.name}"] for r in PortRole} == {r.name: r.value for r in PortRole}
    p4_drops = {name.removeprefix("DROP_"): value for name, value in consts.items() if name.startswith("DROP_") and name != "DROP_REASONS"}
    assert p4_drops == {r.name: r.value for r in DropReason}
    assert consts["DROP_REASONS"] == len(DropReason) == max(DropReason) + 1
    assert consts["CPU_PORT"] == CPU_PORT
    assert {a.name: consts[f"EMAC_ACTION_{a.name}"] for a in Action} == {a.name: a.value for a in Action}
    assert (consts["EMAC_STATUS_HIT"], consts["EMAC_STATUS_MISS"]) == (wire.STATUS_HIT, wire.STATUS_MISS)
    for name in ("ETHERTYPE_IPV4", "ETHERTYPE_NSH", "ETHERTYPE_EMAC_REQUEST", "ETHERTYPE_EMAC_RESPONSE",
                 "NSH_MD_CLASS_SREM", "NSH_TLV_CONFIG_VERSION", "NSH_LENGTH_WORDS"):
        assert consts[name] == getattr(wire, name), name


def test_the_p4info_sizes_the_drop_counter_by_reason_and_every_port_a_role() -> None:
    schema = P4Schema.load()
    p4info = schema.p4info
    [drops] = [c for c in p4info.counters if c.preamble.name == "SremIngress.drop_counter"]
    assert drops.size == len(DropReason)
    [roles] = [t for t in p4info.tables if t.preamble.name == "SremIngress.port_role"]
    assert roles.size >= 512 and [f.bitwidth for f in roles.match_fields] == [9]
    [pending] = [r for r in p4info.registers if r.preamble.name == "SremIngress.emac_pending_open"]
    assert pending.size & (pending.size - 1) == 0, "the EMAC's pending slots are indexed by the sequence number's low bits"


def test_sizes_live_in_size_p4_and_drop_with_is_defined_once() -> None:
    literal_size = re.compile(r"\bsize\s*=\s*\d|\b(?:counter|meter|register<[^>]*>)\(\s*\d")
    for path in source_files():
        if path.name != "size.p4":
            assert not literal_size.search(path.read_text()), f"{path}: a literal size outside include/size.p4"
    assert sum(path.read_text().count("action drop_with(") for path in source_files()) == 1


def test_the_pinned_compiler_is_recorded_beside_the_build() -> None:
    assert COMPILER.parent == BUILD
    assert version_of(COMPILER.read_text()) == pinned_version()
    assert version_of("p4c-bm2-ss Version 1.2.4.8 (SHA: 32893b7 BUILD: Release)") == "1.2.4.8"
    assert version_of("p4c-bm2-ss (SHA: 32893b7)") is None


def fake_p4c(bin_dir: Path, version: str, compile_script: str) -> None:
    """A p4c-bm2-ss that answers --version as p4c-bm2-ss does (two lines on stderr) and otherwise runs
    `compile_script` (sh, builtins only: PATH holds nothing else)."""
    script = bin_dir / P4C
    script.write_text(f'#!/bin/sh\nif [ "$1" = "--version" ]; then printf "%s\\n" {P4C} "Version {version} (SHA: 0000000 BUILD: Release)" >&2; exit 0; fi\n'
                      f"{compile_script}\n")
    script.chmod(0o755)


@pytest.fixture
def only_fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A PATH holding nothing but what the test puts there: no real p4c, no docker."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    return bin_dir


def test_another_p4c_version_is_refused_in_one_line_naming_both(only_fake_bin: Path, tmp_path: Path) -> None:
    fake_p4c(only_fake_bin, "1.2.3.0", "exit 0")
    with pytest.raises(SremError) as caught:
        compile_program(tmp_path / "out")
    message = str(caught.value)
    assert "\n" not in message
    assert "1.2.3.0" in message and pinned_version() in message and f"p4lang/p4c:{pinned_version()}" in message
    assert not (tmp_path / "out" / "SOURCES.sha256").exists()


def test_a_failing_compile_reports_every_line_of_the_compiler_error(only_fake_bin: Path, tmp_path: Path) -> None:
    error = ["include/control/steering.p4(61): [--Werror=type-error] error: 'nsh_stear': not found",
             "            nsh_stear.apply();",
             "            ^^^^^^^^^"]
    fake_p4c(only_fake_bin, pinned_version(), f"printf '%s\\n' {' '.join(map(shlex.quote, error))} >&2; exit 1")
    with pytest.raises(SremError) as caught:
        compile_program(tmp_path / "out")
    message = str(caught.value)
    assert message.startswith(f"{P4SRC / 'srem.p4'}: {P4C} failed (exit status 1")
    assert message.splitlines()[1:] == error
    assert not (tmp_path / "out" / "SOURCES.sha256").exists()


def test_a_successful_compile_records_the_hash_the_version_and_any_warnings(only_fake_bin: Path, tmp_path: Path) -> None:
    fake_p4c(only_fake_bin, pinned_version(), "echo 'srem.p4(3): [--Wwarn=unused] warning: x: unused' >&2")
    out = tmp_path / "out"
    result = compile_program(out)
    assert result.warnings == "srem.p4(3): [--Wwarn=unused] warning: x: unused"
    assert result.command[1:3] == ["--std", "p4-16"] and result.command[-1] == "srem.p4"
    assert (out / "COMPILER").read_text() == f"{P4C} Version {pinned_version()} (SHA: 0000000 BUILD: Release)\n"
    assert (out / "SOURCES.sha256").read_text().split()[0] == p4program.sources_hash()


def test_without_p4c_or_docker_the_error_names_the_pinned_image(only_fake_bin: Path, tmp_path: Path) -> None:
    with pytest.raises(SremError, match=f"no {P4C} on PATH and no docker to run p4lang/p4c:{re.escape(pinned_version())}"):
        compile_program(tmp_path / "out")


def test_the_docker_fallback_runs_the_image_of_the_pinned_version(only_fake_bin: Path, tmp_path: Path) -> None:
    docker = only_fake_bin / "docker"
    docker.write_text(f'#!/bin/sh\nlast=""; for a in "$@"; do last="$a"; done\n'
                      f'if [ "$last" = "--version" ]; then echo "{P4C} Version {pinned_version()} (SHA: 1111111 BUILD: Release)"; fi\n'
                      f'echo "$@" >> "{tmp_path}/docker.log"\n')
    docker.chmod(0o755)
    result = compile_program(tmp_path / "out")
    assert f"p4lang/p4c:{pinned_version()} {P4C} --std p4-16" in (tmp_path / "docker.log").read_text()
    assert result.command[0] == "docker" and "/out/srem.json" in result.command
