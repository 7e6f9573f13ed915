"""The house's shape: imports go one way, every scenario key feeds something, and light commands stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel

from controller.model.scenario import ScenarioSpec

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("controller", "hosts", "rdma_emulator", "srem_formats", "topologies")


def modules() -> Iterator[tuple[str, Path]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            yield ".".join(parts[:-1] if parts[-1] == "__init__" else parts), path


def imported(path: Path, module: str) -> set[str]:
    """Project modules `path` imports, at module level or inside functions alike."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module if node.level == 0 else ".".join(module.split(".")[:-node.level] + [node.module])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {n for n in names if n.split(".")[0] in PACKAGES}


def unit(module: str) -> str:
    """The node of the dependency graph: a top-level package, or a subpackage or module of controller."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "controller" and len(parts) > 1 else parts[0]


def graph() -> dict[str, set[str]]:
    known = {name for name, _ in modules()}
    edges: dict[str, set[str]] = {}
    for name, path in modules():
        targets = {unit(t) for t in imported(path, name) if t in known or t.rsplit(".", 1)[0] in known}
        edges.setdefault(unit(name), set()).update(targets - {unit(name)})
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycle_between_packages_or_controller_subpackages() -> None:
    assert cycles(graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_floors_emulator_and_formats_import_no_controller() -> None:
    edges = graph()
    assert edges["srem_formats"] == set(), "the ground floor imports nothing of the project's"
    assert edges["rdma_emulator"] <= {"srem_formats"}, "the emulated hardware imports only the shared formats"
    assert edges.get("hosts", set()) <= {"srem_formats", "rdma_emulator"}, \
        "the testbed's host processes are emulated hardware too: they import only the shared formats and the emulator"
    assert edges["controller.model"] <= {"controller.errors", "controller.validation", "topologies", "srem_formats"}, \
        "the model imports neither policies nor the data plane"
    assert "controller.rl" not in edges["controller.dataplane"] and "controller.policies" not in edges["controller.dataplane"]


def leaf_keys(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, field name) of every leaf of the scenario schema."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        inner = getattr(annotation, "__args__", (annotation,))
        section = next((a for a in inner if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if section is not None:
            yield from leaf_keys(section, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", name


def attributes_read(paths: list[Path]) -> set[str]:
    names: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
                names.add(node.attr)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                    and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant):
                names.add(str(node.args[1].value))
    return names


PROSE = {"description"}
"""Keys for people, not programs: shown with the scenario (`srem scenario show`), read by nothing."""


def test_every_scenario_key_is_read_by_product_code() -> None:
    """A key the scenario file accepts but nothing reads would be a setting that does nothing."""
    product = [path for _, path in modules()]
    read = attributes_read(product)
    unread = [key for key, name in leaf_keys(ScenarioSpec) if name not in read and key not in PROSE]
    assert unread == []


def test_the_unread_key_check_sees_a_key_only_tests_read(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f(spec):\n    return spec.dataplane\n")
    assert "rules_per_mb" not in attributes_read([module])
    assert ("dataplane.rules_per_mb", "rules_per_mb") in set(leaf_keys(ScenarioSpec))


def heavy_modules_after(code: str) -> list[str]:
    probe = (f"import sys\n{code}\n"
             "print('heavy:', *(m for m in ('torch', 'highspy', 'gymnasium', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()[-1].split()[1:]


def test_help_and_a_plain_policy_import_no_torch() -> None:
    run = "from controller.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass"
    assert heavy_modules_after(run.format(argv=["--help"])) == []
    assert heavy_modules_after(run.format(argv=["evaluate", "--policy", "static", "--help"])) == []
    assert heavy_modules_after("from controller.policies import make_policy, policy_names\n"
                               "policy_names()\nmake_policy('static')\nmake_policy('lag')\nmake_policy('random:1')") == []
