"""srem_formats/output_dir.py: a command writes only into what it creates, replaces only its own earlier
output, and an interrupt at any point leaves the old or the new output whole at the final path."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from srem_formats import output_dir as od
from srem_formats.output_dir import MARKER, OutputError, check_output, claim, output_dir

COMMAND = "experiment fig6"


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def write(out: Path, force: bool = False, **contents: str) -> None:
    with output_dir(out, COMMAND, force) as staging:
        for name, text in contents.items():
            (staging / name).write_text(text)


def leftovers(parent: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name not in keep)


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_a_new_output_is_marked_with_its_command_and_nothing_else_is_left(tmp_path: Path) -> None:
    out = tmp_path / "results" / "fig6"
    write(out, a="1")
    assert files(out) == {"a": b"1", MARKER: f"{COMMAND}\n".encode()}
    assert leftovers(out.parent, {"fig6"}) == []


def test_an_empty_directory_is_taken_without_force(tmp_path: Path) -> None:
    out = tmp_path / "fig6"
    out.mkdir()
    write(out, a="1")
    assert files(out)["a"] == b"1"


def test_refuses_a_directory_it_did_not_create_even_with_force(tmp_path: Path) -> None:
    out = tmp_path / "myproject"
    (out / ".git").mkdir(parents=True)
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (out / "notes.txt").write_text("mine\n")
    before = files(out)
    with pytest.raises(OutputError, match="srem did not write") as refused:
        write(out, force=True, a="1")
    assert refused.value.where == str(out) and "delete it by hand" in refused.value.message
    assert files(out) == before
    assert leftovers(tmp_path, {"myproject"}) == []


def test_dot_names_the_directory_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "notes.txt").write_text("mine\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError) as refused:
        check_output(Path("."), COMMAND, force=True)
    assert refused.value.where == str(tmp_path)


@pytest.mark.parametrize("kind", ["file", "symlink"])
def test_never_replaces_a_file_or_a_link(tmp_path: Path, kind: str) -> None:
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("mine\n")
    else:
        (tmp_path / "target").mkdir()
        out.symlink_to(tmp_path / "target")
    with pytest.raises(OutputError):
        write(out, force=True, a="1")
    assert out.is_symlink() if kind == "symlink" else out.read_text() == "mine\n"


def test_force_replaces_only_a_previous_output_of_the_same_command(tmp_path: Path) -> None:
    out = tmp_path / "fig6"
    write(out, a="old")
    with pytest.raises(OutputError, match="pass --force"):
        write(out, a="new")
    assert files(out)["a"] == b"old"
    with pytest.raises(OutputError, match="`srem experiment fig6`, not of `srem scenario generate`"):
        with output_dir(out, "scenario generate", force=True):
            pass
    assert files(out)["a"] == b"old"
    write(out, force=True, b="new")
    assert set(files(out)) == {"b", MARKER}, "replaced whole, not merged"
    assert leftovers(tmp_path, {"fig6"}) == []


def test_a_marker_is_read_briefly_and_shown_on_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / MARKER).write_text("x\ny " * 10_000)
    with pytest.raises(OutputError) as refused:
        check_output(out, COMMAND, force=True)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 300


def test_something_that_appears_at_the_path_during_the_run_is_not_replaced(tmp_path: Path) -> None:
    out = tmp_path / "fig6"
    with pytest.raises(OutputError, match="srem did not write"):
        with output_dir(out, COMMAND, force=True) as staging:
            (staging / "a").write_text("new")
            out.mkdir()
            (out / "mine").write_text("mine")
    assert files(out) == {"mine": b"mine"}
    assert leftovers(tmp_path, {"fig6"}) == []


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_exception_in_the_run_keeps_the_old_output_and_removes_staging(tmp_path: Path, error: type[BaseException]) -> None:
    out = tmp_path / "fig6"
    write(out, a="old")
    before = files(out)
    with pytest.raises(error):
        with output_dir(out, COMMAND, force=True) as staging:
            (staging / "a").write_text("new")
            raise error
    assert files(out) == before
    assert leftovers(tmp_path, {"fig6"}) == []


def interrupting_rename(call: int, when: str) -> Callable[[str | Path, str | Path], None]:
    """os.rename that raises KeyboardInterrupt before or after its `call`-th call (1: old aside, 2: new in)."""
    real = os.rename
    calls = 0

    def rename(src: str | Path, dst: str | Path) -> None:
        nonlocal calls
        calls += 1
        if calls == call and when == "before":
            raise KeyboardInterrupt
        real(src, dst)
        if calls == call and when == "after":
            raise KeyboardInterrupt

    return rename


@pytest.mark.parametrize(("call", "when", "survivor"), [
    (1, "before", "old"),  # about to rename the old output aside
    (1, "after", "old"),  # old aside, new not yet in: the old one is put back
    (2, "before", "old"),
    (2, "after", "new"),  # new in, old not yet removed
])
def test_replacement_is_atomic_when_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: int, when: str,
                                                survivor: str) -> None:
    out = tmp_path / "fig6"
    write(out, a="old", b="old")
    old = files(out)
    monkeypatch.setattr(od.os, "rename", interrupting_rename(call, when))
    with pytest.raises(KeyboardInterrupt):
        write(out, force=True, a="new", b="new")
    monkeypatch.undo()
    assert files(out) == (old if survivor == "old" else {"a": b"new", "b": b"new", MARKER: old[MARKER]})
    assert not [name for name in leftovers(tmp_path, {"fig6"}) if ".srem-staging-" in name], "no staging folder left"


def test_an_interrupt_while_removing_the_old_output_leaves_the_new_one_whole(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "fig6"
    write(out, a="old", b="old")
    real = shutil.rmtree

    def rmtree(path: str | Path, *args: object, **kwargs: object) -> None:
        if ".srem-old-" in Path(path).name:
            (Path(path) / "a").unlink()  # part of it removed, then the interrupt
            raise KeyboardInterrupt
        real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(od.shutil, "rmtree", rmtree)
    with pytest.raises(KeyboardInterrupt):
        write(out, force=True, a="new", b="new")
    monkeypatch.undo()
    assert files(out) == {"a": b"new", "b": b"new", MARKER: f"{COMMAND}\n".encode()}


def staging_name_of_this_run(tmp_path: Path) -> str:
    """The name a staging folder of this process gets, as output_dir names it."""
    with pytest.raises(KeyboardInterrupt):
        with output_dir(tmp_path / "probe", COMMAND, False) as staging:
            name = staging.name
            raise KeyboardInterrupt
    return name


def as_run(name: str, pid: int, kind: str = "staging", out: str = "fig6", host: str | None = None) -> str:
    """`name` (a staging folder's) for another run: its PID, the kind of folder, the output it belongs to and
    (if given) its machine."""
    _, _, here, _, token = name.rsplit("-", 4)
    return f".{out}.srem-{kind}-{host or here}-{pid}-{token}"


def test_staging_of_a_dead_run_is_removed_and_no_other(tmp_path: Path) -> None:
    name = staging_name_of_this_run(tmp_path)
    dead = tmp_path / as_run(name, dead_pid())
    alive = tmp_path / as_run(name, os.getpid(), out="other")
    elsewhere = tmp_path / as_run(name, dead_pid(), out="third", host="0" * 8)
    users = tmp_path / ".fig6.srem-staging-mine"
    for folder in (dead, alive, elsewhere, users):
        folder.mkdir()
        (folder / "part").write_text("x")
    write(tmp_path / "fig6", a="1")
    assert not dead.exists()
    assert alive.exists() and elsewhere.exists() and users.exists(), "a live run's, another machine's, a user's: kept"


def test_an_old_output_a_dead_run_had_renamed_aside_is_put_back(tmp_path: Path) -> None:
    name = staging_name_of_this_run(tmp_path)
    aside = tmp_path / as_run(name, dead_pid(), kind="old")
    aside.mkdir()
    (aside / MARKER).write_text(f"{COMMAND}\n")
    (aside / "a").write_text("old")
    with pytest.raises(OutputError, match="pass --force"):
        write(tmp_path / "fig6", a="new")
    assert files(tmp_path / "fig6") == {"a": b"old", MARKER: f"{COMMAND}\n".encode()}
    assert not aside.exists()


def test_an_old_output_aside_is_removed_once_the_new_one_is_in_place(tmp_path: Path) -> None:
    name = staging_name_of_this_run(tmp_path)
    write(tmp_path / "fig6", a="new")
    aside = tmp_path / as_run(name, dead_pid(), kind="old")
    aside.mkdir()
    (aside / "a").write_text("old")
    write(tmp_path / "other", a="1")
    assert not aside.exists() and files(tmp_path / "fig6")["a"] == b"new"


def test_claim_makes_an_empty_marked_directory_in_place_of_a_previous_one(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert claim(out, "testbed run", False) == out
    (out / "step-0.json").write_text("{}")
    with pytest.raises(OutputError, match="pass --replace"):
        claim(out, "testbed run", False, force_flag="--replace")
    claim(out, "testbed run", True)
    assert files(out) == {MARKER: b"testbed run\n"}
    assert leftovers(tmp_path, {"run"}) == []
