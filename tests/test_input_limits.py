"""Limits at the edge (issue 20, findings 3 and 4): absurd sizes, YAML alias bombs, gzip bombs and infinite
numbers are refused at once in one line naming the key and the limit, and no error echoes more than an excerpt."""

from __future__ import annotations

import gzip
import json
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

import controller.model.dataset as dataset_module
from controller import cli
from controller.errors import EXCERPT_CHARS, ConfigError, DatasetError
from controller.model.dataset import Dataset, generate_dataset
from controller.model.scenario import load_scenario, scenario_from_dict
from controller.model.substrate import substrate_from_dict
from controller.model.topology import load_topology, topology_from_dict
from controller.validation import (MAX_INSTANCES, MAX_JSON_BYTES, MAX_NESTING, MAX_REQUESTS_PER_WORKLOAD, MAX_SWITCHES,
                                   MAX_VNF_TYPES, MAX_WORKLOADS_PER_SPLIT, MAX_YAML_ALIASES, MAX_YAML_BYTES, MAX_YAML_NODES,
                                   read_yaml)
from topologies import builtin_path
from topologies.fattree import paper_fat_tree


@contextmanager
def peak_memory() -> Iterator[list[int]]:
    """The peak of Python allocations inside the block, in bytes (tracemalloc: deterministic, unlike RSS)."""
    peak = [0]
    tracemalloc.start()
    try:
        yield peak
    finally:
        peak[0] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()


def paper_doc() -> dict[str, Any]:
    return yaml.safe_load(load_scenario("paper").to_yaml())


def write_yaml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return str(path)


def laughs(levels: int) -> str:
    """A 'billion laughs': each level a list of nine aliases of the one before; `name` refers to the last."""
    lines = ["a0: &a0 [x,x,x,x,x,x,x,x,x]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * 9) + "]")
    lines.append(f"name: *a{levels - 1}")
    return "\n".join(lines) + "\n"


# --- YAML: document size, aliases, nesting ------------------------------------------------------------------------

def test_yaml_alias_bomb_is_refused(tmp_path):
    """Finding 3: a scenario of about 300 bytes whose aliases expand to 5.3 million nodes; it ran past 120 s at 2.3 GB."""
    text = laughs(7)
    assert len(text) < 320
    path = write_yaml(tmp_path, text)
    with peak_memory() as peak, pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert err.value.where == path and err.value.key.startswith("line ")
    assert err.value.message == f"YAML aliases expand beyond the limit of {MAX_YAML_NODES} nodes"
    assert peak[0] < 10 * 2**20, f"{peak[0] / 2**20:.1f} MiB"


def test_validation_error_echoes_only_an_excerpt_of_an_expanded_alias(tmp_path):
    """Below the node limit `name` still expands to 66,430 nodes (today's error printed all 200 KB of them);
    the error names a short excerpt."""
    path = write_yaml(tmp_path, laughs(5))
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert err.value.key == "name" and err.value.message.startswith("Input should be a valid string (got [[[")
    assert len(err.value.message) == len("Input should be a valid string (got )") + EXCERPT_CHARS


def test_yaml_with_too_many_aliases_is_refused(tmp_path):
    doc = "x: &x 1\nlist: [" + ", ".join(["*x"] * (MAX_YAML_ALIASES + 1)) + "]\n"
    with pytest.raises(ConfigError, match=f"line 2: more than the limit of {MAX_YAML_ALIASES} YAML aliases"):
        load_scenario(write_yaml(tmp_path, doc))


def test_yaml_alias_inside_its_own_anchor_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="line 1: a YAML alias inside its own anchor"):
        load_scenario(write_yaml(tmp_path, "name: &loop [1, *loop]\n"))


def test_yaml_nested_too_deep_is_refused(tmp_path):
    """Composing recurses per level; 10,000 levels raised RecursionError, a traceback."""
    with pytest.raises(ConfigError, match=f"nested deeper than the limit of {MAX_NESTING} levels"):
        load_scenario(write_yaml(tmp_path, "name: " + "[" * 10_000 + "]" * 10_000 + "\n"))


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.sampled_from([*"&*!|>-?:,[]{}#%@`'\"\n\t ab019.<=", "2001-02-30", "!!python/object", "<<", "&a", "*a",
                                      "!!int ", "!!float ", "!!bool ", "!!timestamp ", "!!binary ", "!!omap ", "!!set "]),
                     max_size=40).map("".join))
def test_any_text_reads_as_yaml_or_is_one_config_error(tmp_path_factory, text):
    """The YAML reader's only failure is ConfigError, whatever the text (fuzzed)."""
    path = tmp_path_factory.mktemp("fuzz") / "s.yaml"
    path.write_text(text)
    try:
        read_yaml(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("text", ["name: !!float ''\n", "name: !!bool maybe\n", "name: !!timestamp noon\n", "seed: 2001-02-30\n"])
def test_a_value_pyyaml_cannot_convert_is_one_config_error(tmp_path, text):
    """PyYAML's constructors fail on these with IndexError, KeyError, AttributeError and ValueError: tracebacks."""
    with pytest.raises(ConfigError, match="malformed YAML: "):
        load_scenario(write_yaml(tmp_path, text))


def test_scenario_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = tmp_path / "huge.yaml"
    path.write_text("# " + "x" * MAX_YAML_BYTES + "\n")
    with pytest.raises(ConfigError) as err:
        load_scenario(str(path))
    assert err.value.message == f"larger than the limit of {MAX_YAML_BYTES} bytes"


def test_topology_file_over_the_size_limit_is_refused_unread(tmp_path):
    path = tmp_path / "huge.json"
    with path.open("wb") as f:  # sparse: no disk space, reads as zeros
        f.truncate(MAX_JSON_BYTES + 1)
    with pytest.raises(ConfigError) as err:
        load_topology(str(path))
    assert err.value.message == f"larger than the limit of {MAX_JSON_BYTES} bytes"


def test_an_integer_of_5000_digits_is_refused_in_one_line(tmp_path):
    """Python refuses to read integers of more than 4,300 digits with a ValueError, not a parse error."""
    doc = paper_doc()
    text = yaml.safe_dump(doc).replace("seed: 1", "seed: " + "9" * 5000)
    with pytest.raises(ConfigError, match="malformed YAML: Exceeds the limit"):
        load_scenario(write_yaml(tmp_path, text))
    topology = tmp_path / "net.json"
    topology.write_text(builtin_path("paper").read_text().replace('"version": 1', '"version": ' + "9" * 5000))
    with pytest.raises(ConfigError, match="malformed JSON: an integer of more than 4300 digits"):
        load_topology(str(topology))


# --- Sizes --------------------------------------------------------------------------------------------------------

def _many_types(d: dict[str, Any]) -> None:
    d["vnfs"] = [{**d["vnfs"][0], "name": f"t{i}"} for i in range(100_000)]


def _many_instances(d: dict[str, Any]) -> None:
    d["vnfs"] = [{**d["vnfs"][0], "name": f"t{i}", "instances": 99} for i in range(30)]


@pytest.mark.parametrize(("mutate", "key", "words"), [
    (lambda d: d["vnfs"][0].update(instances=999_999_999), "vnfs[0].instances", f"less than or equal to {MAX_INSTANCES}"),
    (lambda d: d["requests"].update(per_workload=10**9), "requests.per_workload", f"less than or equal to {MAX_REQUESTS_PER_WORKLOAD}"),
    (lambda d: d["dataset"].update(train=10**9), "dataset.train", f"less than or equal to {MAX_WORKLOADS_PER_SPLIT}"),
    (lambda d: d["dataset"].update(test=10**9), "dataset.test", f"less than or equal to {MAX_WORKLOADS_PER_SPLIT}"),
    (_many_types, "vnfs", f"at most {MAX_VNF_TYPES} items"),
    (_many_instances, "vnfs", f"2970 VNF instances in all, more than the limit of {MAX_INSTANCES}"),
])
def test_absurd_scenario_sizes_are_refused(mutate, key, words):
    """Finding 4: each ran until memory or patience ended."""
    doc = paper_doc()
    mutate(doc)
    with pytest.raises(ConfigError) as err:
        scenario_from_dict(doc, "s.yaml")
    assert err.value.key == key and words in err.value.message, str(err.value)
    assert len(str(err.value)) < 200


def test_topology_beyond_the_switch_limit_is_refused():
    switches = [{"name": f"s{i}"} for i in range(MAX_SWITCHES + 1)]
    topo = {"format": "srem-topology", "version": 1, "name": "big", "switches": switches, "servers": [], "links": []}
    with pytest.raises(ConfigError) as err:
        topology_from_dict(topo, "big.json")
    assert err.value.key == "switches" and f"at most {MAX_SWITCHES} items" in err.value.message


# --- Finite numbers -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("mutate", "key"), [
    (lambda d: d["requests"]["working_hours"].update(rate_mbps=[100.0, float("inf")]), "requests.working_hours.rate_mbps[1]"),
    (lambda d: d["requests"]["evening"].update(deadline_ms=[50.0, float("inf")]), "requests.evening.deadline_ms[1]"),
    (lambda d: d["network"].update(controller_link_gbps=float("inf")), "network.controller_link_gbps"),
    (lambda d: d["objective"].update(it=float("nan")), "objective.it"),
])
def test_infinite_rate_is_refused(tmp_path, mutate, key):
    """YAML's .inf and .nan are floats; no physical quantity of the model is infinite."""
    doc = paper_doc()
    mutate(doc)
    with pytest.raises(ConfigError) as err:
        load_scenario(write_yaml(tmp_path, yaml.safe_dump(doc)))
    assert err.value.key == key and err.value.message.startswith("Input should be a finite number")


@pytest.mark.parametrize(("infinite", "key", "message"), [
    ("Infinity", None, "Infinity is not a JSON number"),  # Python's json reads it; JSON has no such number
    ("1e999", "links[0].bandwidth_gbps", "Input should be a finite number (got inf)"),  # a JSON number that reads as infinity
])
def test_infinite_bandwidth_in_a_topology_file_is_refused(tmp_path, infinite, key, message):
    path = tmp_path / "net.json"
    text = builtin_path("paper").read_text()
    first_bandwidth = json.loads(text)["links"][0]["bandwidth_gbps"]
    path.write_text(text.replace(f'"bandwidth_gbps": {first_bandwidth}', f'"bandwidth_gbps": {infinite}', 1))
    with pytest.raises(ConfigError) as err:
        load_topology(str(path))
    assert (err.value.where, err.value.key, err.value.message) == (str(path), key, message)


def test_infinite_resource_in_a_substrate_file_is_refused(small_dataset):
    doc = json.loads((small_dataset.path / "substrate.json").read_text())
    doc["vnf_types"][0]["server_capacity_mbps"] = float("inf")
    with pytest.raises(ConfigError) as err:
        substrate_from_dict(doc, "substrate.json")
    assert err.value.key == "vnf_types[0].server_capacity_mbps"


# --- Error messages echo excerpts ---------------------------------------------------------------------------------

def test_a_long_unknown_key_is_echoed_as_an_excerpt(tmp_path):
    doc = paper_doc()
    doc["servers"]["x" * 100_000] = 1
    with pytest.raises(ConfigError) as err:
        load_scenario(write_yaml(tmp_path, yaml.safe_dump(doc)))
    assert err.value.message == "unknown key" and len(err.value.key) <= len("servers.") + EXCERPT_CHARS


def test_a_long_unknown_node_is_echoed_as_an_excerpt():
    topo = paper_fat_tree()
    topo["links"][0]["b"] = "n" * 1_000_000
    with pytest.raises(ConfigError) as err:
        topology_from_dict(topo, "net.json")
    assert err.value.key == "links[0].b" and len(err.value.message) < 100


def test_a_name_too_long_for_the_system_is_no_file_in_one_line():
    """Path.exists() raised OSError (file name too long) for a scenario or topology name over 255 bytes."""
    with pytest.raises(ConfigError) as err:
        load_scenario("x" * 300)
    assert err.value.where == "x" * (EXCERPT_CHARS - 3) + "..." and err.value.message.startswith("no preset or file")
    doc = paper_doc()
    doc["network"]["topology"] = "y" * 300
    with pytest.raises(ConfigError) as err:
        scenario_from_dict(doc, "s.yaml")
    assert (err.value.where, err.value.key) == ("s.yaml", "network.topology")
    assert err.value.message.startswith("no built-in topology or file")


# --- Dataset split files: line length and count before the body -----------------------------------------------------

def _copy(small_dataset: Dataset, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "ds"
    shutil.copytree(small_dataset.path, target)
    return target


def _bomb(path: Path, chunk: bytes, chunks: int) -> None:
    """A gzip of `chunks` members, each `chunk` compressed: gzip readers join members into one stream."""
    member = gzip.compress(chunk, mtime=0)
    with path.open("wb") as f:
        for _ in range(chunks):
            f.write(member)


@contextmanager
def counted_gzip_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Decompressed bytes the dataset reader took from its gzip files."""
    taken = [0]
    real_open = gzip.open

    class Counting:
        def __init__(self, f: Any) -> None:
            self.f = f

        def readline(self, size: int = -1) -> bytes:
            line = self.f.readline(size)
            taken[0] += len(line)
            return line

        def __enter__(self) -> Counting:
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

    monkeypatch.setattr(dataset_module.gzip, "open", lambda *a, **k: Counting(real_open(*a, **k)))
    yield taken


def test_dataset_line_over_limit_is_refused_before_reading_it(small_dataset, tmp_path, monkeypatch):
    """Finding 4: a small gzip holding one gigantic line took 2.2 GB before its error. Here a 256 KB file holds a
    256 MiB line and the limit is lowered to 1 MiB, so reading it whole would show in the peak."""
    path = _copy(small_dataset, tmp_path)
    _bomb(path / "test.jsonl.gz", b"a" * 2**20, 256)
    assert (path / "test.jsonl.gz").stat().st_size < 300_000
    monkeypatch.setattr(dataset_module, "MAX_WORKLOAD_LINE_BYTES", 2**20)
    dataset = Dataset(path)
    with counted_gzip_reads(monkeypatch) as taken, peak_memory() as peak, pytest.raises(DatasetError) as err:
        dataset.split("test")
    assert err.value.key == "line 1" and err.value.message == f"longer than the limit of {2**20} bytes"
    assert taken[0] == 2**20 + 1
    assert peak[0] < 8 * 2**20, f"{peak[0] / 2**20:.1f} MiB"


def test_dataset_line_at_the_limit_is_read(small_dataset, tmp_path, monkeypatch):
    path = _copy(small_dataset, tmp_path)
    with gzip.open(path / "test.jsonl.gz", "rb") as f:
        longest = max(len(line.rstrip(b"\n")) for line in f)
    monkeypatch.setattr(dataset_module, "MAX_WORKLOAD_LINE_BYTES", longest)
    assert len(Dataset(path).split("test")) == 10
    monkeypatch.setattr(dataset_module, "MAX_WORKLOAD_LINE_BYTES", longest - 1)
    with pytest.raises(DatasetError, match="longer than the limit"):
        Dataset(path).split("test")


@pytest.mark.parametrize("limit", [None, 1])
def test_billion_empty_lines_stop_at_the_announced_count(small_dataset, tmp_path, monkeypatch, limit):
    """Finding 4: 10^9 empty lines were counted for 105 s before the refusal. The manifest announces 10
    workloads, so the 11th line ends the reading, whatever --limit."""
    path = _copy(small_dataset, tmp_path)
    with gzip.open(path / "test.jsonl.gz", "rb") as f:
        workloads = f.read()
    with (path / "test.jsonl.gz").open("wb") as f:
        f.write(gzip.compress(workloads, mtime=0))
        member = gzip.compress(b"\n" * 2**20, mtime=0)
        for _ in range(1000):
            f.write(member)
    dataset = Dataset(path)
    with counted_gzip_reads(monkeypatch) as taken, pytest.raises(DatasetError) as err:
        dataset.split("test", limit)
    assert err.value.message == "holds more than the 10 workloads manifest.json announces"
    assert taken[0] == len(workloads) + 1


@pytest.mark.parametrize("infinite", ["Infinity", "1e999"])
def test_infinite_rate_in_a_workload_line_is_refused(small_dataset, tmp_path, infinite):
    path = _copy(small_dataset, tmp_path)
    with gzip.open(path / "test.jsonl.gz", "rt") as f:
        lines = f.read().splitlines()
    first = json.loads(lines[0])
    first["requests"][0]["rate_mbps"][0] = float("inf")
    lines[0] = json.dumps(first).replace("Infinity", infinite)
    with gzip.open(path / "test.jsonl.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as err:
        Dataset(path).split("test")
    assert err.value.key == "line 1: requests[0].rate_mbps[0]"
    assert err.value.message == "expected a finite positive number, got inf"


# --- The command line: one line, exit 2, nothing written ----------------------------------------------------------

def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    status = cli.main(list(args))
    return status, capsys.readouterr().err


def test_alias_bomb_is_one_line_from_the_command_line(tmp_path, capsys):
    path = write_yaml(tmp_path, laughs(7))
    status, err = _run(capsys, "scenario", "show", path)
    assert status == 2 and err == f"srem: error: {path}: line 7: YAML aliases expand beyond the limit of {MAX_YAML_NODES} nodes\n"


def test_scenario_where_no_server_holds_an_instance_is_one_line(tmp_path, capsys):
    """Finding 9: `ValueError: no server has room for firewall#0`, a traceback. Refused before anything is written."""
    doc = yaml.safe_load(load_scenario("small").to_yaml())
    doc["vnfs"][0]["storage_mb"] = [100_000.0, 200_000.0]
    path = write_yaml(tmp_path, yaml.safe_dump(doc))
    out = tmp_path / "out"
    status, err = _run(capsys, "scenario", "generate", "--scenario", path, "--out", str(out), "--quiet")
    assert status == 2 and err.count("\n") == 1, err
    assert err.startswith(f"srem: error: {path}: vnfs: no server has room for firewall#0 (")
    assert "the largest server holds" in err and "(servers.storage_gb)" in err
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["scenario.yaml"]
    with pytest.raises(ConfigError, match="no server has room for firewall#0"):
        generate_dataset(load_scenario(path), tmp_path / "direct", progress=False)
    assert not (tmp_path / "direct").exists()
