"""Datasets on disk: a scenario's substrate and its train and test workloads, in a documented, versioned format.

Layout of a dataset directory (docs/formats.md, "Dataset"):
  manifest.json     format, version, scenario name and hash, seed, split sizes, step hours
  scenario.yaml     the validated scenario it was generated from
  substrate.json    the drawn network, resources and VNF catalogue (format srem-substrate)
  train.jsonl.gz    one workload per line; test.jsonl.gz likewise

Generation is seeded per item (the substrate, and every workload of every split has its own
generator), so the same seed gives byte-identical files; gzip headers carry no name or time.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import sys
from collections.abc import Iterator
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from controller.errors import ConfigError, DatasetError, SremError, clip, excerpt
from controller.model.cost import ObjectiveWeights
from controller.model.reward import RewardWeights
from controller.model.scenario import ObjectiveParams, RewardParams, Scenario
from controller.model.substrate import HostKind, Substrate, draw_substrate, substrate_from_dict
from controller.model.workload import Request, Schedule, Workload, cheapest_server_placement, generate_workload
from controller.validation import MAX_WORKLOAD_LINE_BYTES, MAX_WORKLOADS_PER_SPLIT, read_json, validate
from srem_formats.output_dir import output_dir
from srem_formats.progress import progress as progress_of

FORMAT = "srem-dataset"
VERSION = 2
"""2: every workload carries its public schedule (request classes, busy steps per class)."""
SPLITS = {"train": 1, "test": 2}
"""Split name -> the stream id its workloads draw from."""
SUBSTRATE_STREAM = 0


def workload_rng(seed: int, split: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLITS[split], index])


def workload_to_dict(workload: Workload, substrate: Substrate) -> dict[str, Any]:
    types, instances, nodes, hosts = substrate.vnf_types, substrate.instances, substrate.node_names, substrate.hosts
    schedule = workload.schedule
    return {
        "id": workload.id,
        "initial_placement": {instances[k].name: hosts[h].name for k, h in enumerate(workload.initial_placement)},
        "busy_steps": {name: sorted(steps) for name, steps in zip(schedule.classes, schedule.busy_steps)},
        "requests": [
            {
                "id": r.id,
                "class": schedule.classes[c],
                "chain": [types[t].name for t in r.chain],
                "instances": [instances[k].name for k in assigned],
                "source": nodes[r.source],
                "target": nodes[r.target],
                "rate_mbps": list(r.rate_mbps),
                "deadline_ms": list(r.deadline_ms),
            }
            for r, assigned, c in zip(workload.requests, workload.assignment, schedule.request_class)
        ],
    }


class _Reader:
    """Resolves names in one workload line, raising DatasetError naming the file, line and key."""

    def __init__(self, substrate: Substrate, where: str, line: int) -> None:
        self.sub = substrate
        self.where = where
        self.line = line

    def fail(self, key: str, message: str) -> DatasetError:
        return DatasetError(message, where=self.where, key=f"line {self.line}: {key}")

    def lookup(self, table: dict[str, int], name: Any, key: str, what: str) -> int:
        if not isinstance(name, str) or name not in table:
            raise self.fail(key, f"unknown {what} {excerpt(name)}")
        return table[name]

    def numbers(self, values: Any, key: str, steps: int) -> tuple[float, ...]:
        """Rates or deadlines: finite and positive (JSON's 1e999 reads as infinity)."""
        if not isinstance(values, list) or len(values) != steps:
            raise self.fail(key, f"expected a list of {steps} numbers")
        for i, v in enumerate(values):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < math.inf:
                raise self.fail(f"{key}[{i}]", f"expected a finite positive number, got {excerpt(v)}")
        return tuple(float(v) for v in values)

    def busy_steps(self, data: Any, steps: int) -> dict[str, frozenset[int]]:
        """Class name -> the steps it is busy at, each a step of the day."""
        if not isinstance(data, dict) or not data:
            raise self.fail("busy_steps", "expected an object: service class -> list of steps")
        busy = {}
        for name, values in data.items():
            if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < steps
                                                       for v in values):
                raise self.fail(f"busy_steps.{clip(name)}", f"expected a list of steps 0..{steps - 1}")
            busy[name] = frozenset(values)
        return busy

    def workload(self, data: Any, steps: int) -> Workload:
        sub = self.sub
        if not isinstance(data, dict):
            raise self.fail("", "a workload line is a JSON object")
        for key in ("id", "initial_placement", "busy_steps", "requests"):
            if key not in data:
                raise self.fail(key, "missing key")
        workload_id = data["id"]
        if isinstance(workload_id, bool) or not isinstance(workload_id, int) or not 0 <= workload_id < MAX_WORKLOADS_PER_SPLIT:
            raise self.fail("id", f"expected a whole number 0..{MAX_WORKLOADS_PER_SPLIT - 1}, got {excerpt(workload_id)}")
        placement_names = data["initial_placement"]
        if not isinstance(placement_names, dict) or set(placement_names) != set(sub.instance_index):
            raise self.fail("initial_placement", f"expected a host for each of {', '.join(sub.instance_index)}")
        placement = [0] * len(sub.instances)
        for inst, host in placement_names.items():
            placement[sub.instance_index[inst]] = self.lookup(sub.host_index, host, f"initial_placement.{inst}", "host")
        busy = self.busy_steps(data["busy_steps"], steps)
        class_index = {name: c for c, name in enumerate(busy)}
        requests, assignment, classes = [], [], []
        if not isinstance(data["requests"], list):
            raise self.fail("requests", "expected a list")
        for i, r in enumerate(data["requests"]):
            key = f"requests[{i}]"
            if not isinstance(r, dict):
                raise self.fail(key, "expected an object")
            unknown = set(r) - {"id", "class", "chain", "instances", "source", "target", "rate_mbps", "deadline_ms"}
            if unknown:
                raise self.fail(f"{key}.{sorted(unknown)[0]}", "unknown key")
            chain_names, inst_names = r.get("chain"), r.get("instances")
            if not isinstance(chain_names, list) or not chain_names or len(set(map(str, chain_names))) != len(chain_names):
                raise self.fail(f"{key}.chain", "expected a non-empty list of distinct VNF types")
            chain = tuple(self.lookup(sub.type_index, t, f"{key}.chain[{j}]", "VNF type") for j, t in enumerate(chain_names))
            if not isinstance(inst_names, list) or len(inst_names) != len(chain):
                raise self.fail(f"{key}.instances", "expected one instance per VNF of the chain")
            instances = tuple(self.lookup(sub.instance_index, n, f"{key}.instances[{j}]", "VNF instance") for j, n in enumerate(inst_names))
            for j, (t, k) in enumerate(zip(chain, instances)):
                if sub.instances[k].type.index != t:
                    raise self.fail(f"{key}.instances[{j}]", f"{inst_names[j]} is not an instance of {chain_names[j]}")
            source = self.lookup(sub.node_index, r.get("source"), f"{key}.source", "node")
            target = self.lookup(sub.node_index, r.get("target"), f"{key}.target", "node")
            if source >= sub.num_switches or target >= sub.num_switches:
                raise self.fail(f"{key}.source", "a request starts and ends at switches")
            requests.append(
                Request(
                    id=i,
                    chain=chain,
                    source=source,
                    target=target,
                    rate_mbps=self.numbers(r.get("rate_mbps"), f"{key}.rate_mbps", steps),
                    deadline_ms=self.numbers(r.get("deadline_ms"), f"{key}.deadline_ms", steps),
                )
            )
            assignment.append(instances)
            classes.append(self.lookup(class_index, r.get("class"), f"{key}.class", "service class (not in busy_steps)"))
        schedule = Schedule(tuple(busy), tuple(busy.values()), tuple(classes), steps)
        return Workload(workload_id, tuple(requests), tuple(placement), tuple(assignment), schedule)


Seed = Annotated[int, Field(ge=0)]


class Manifest(BaseModel):
    """manifest.json: strict, so a string hour or an unknown objective key is refused when the dataset is opened."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    scenario: str
    scenario_hash: str
    seed: Seed
    hours: list[Annotated[int, Field(ge=0, le=23)]] = Field(min_length=1, max_length=24)
    working_until_hour: Annotated[int, Field(ge=0, le=24)]
    splits: dict[Literal["train", "test"], Annotated[int, Field(ge=0, le=MAX_WORKLOADS_PER_SPLIT)]]
    objective: ObjectiveParams
    """a1, a2, a3 of eq. 1 and rejected_traffic."""
    reward: RewardParams
    """w1, w2 of eq. 20."""
    workload_seed: Seed | None = None
    """Seed the workloads were drawn with, when not `seed` (the substrate's): the same network with fresh traffic."""

    @property
    def traffic_seed(self) -> int:
        return self.seed if self.workload_seed is None else self.workload_seed

    def to_dict(self) -> dict[str, Any]:
        fields = self.model_dump(mode="json", exclude={"workload_seed"} if self.workload_seed is None else None)
        return {"format": FORMAT, "version": VERSION, **fields}


class Dataset:
    """A dataset directory, read lazily: the substrate at once, each split when first asked for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        manifest_path = path / "manifest.json"
        if not manifest_path.exists():
            raise DatasetError("not a dataset directory (no manifest.json)", where=path)
        data = read_json(manifest_path)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise DatasetError(f"not a {FORMAT} manifest", where=manifest_path, key="format")
        if data.get("version") != VERSION:
            raise DatasetError(
                f"dataset format version {data.get('version')!r}, this srem reads version {VERSION}; regenerate it with `srem scenario generate`",
                where=manifest_path,
                key="version",
            )
        self.manifest = validate(Manifest, {k: v for k, v in data.items() if k not in ("format", "version")}, manifest_path,
                                 error=DatasetError)
        substrate_path = path / "substrate.json"
        self.substrate = substrate_from_dict(read_json(substrate_path), str(substrate_path))

    @property
    def hours(self) -> list[int]:
        return self.manifest.hours

    def is_working_hour(self, hour: int) -> bool:
        return hour < self.manifest.working_until_hour

    @property
    def objective_weights(self) -> ObjectiveWeights:
        return ObjectiveWeights(**self.manifest.objective.model_dump())

    @property
    def reward_weights(self) -> RewardWeights:
        return RewardWeights(**self.manifest.reward.model_dump())

    def split_path(self, split: str) -> Path:
        return self.path / f"{split}.jsonl.gz"

    def workloads(self, split: str, limit: int | None = None) -> Iterator[Workload]:
        """The split's first `limit` workloads (all without a limit).

        The whole file is read even under a limit (lines past it are counted, not parsed: 0.1 s for
        `paper`'s 1200), so that a file holding fewer or more workloads than the manifest announces
        - cut short by a copy, or edited - is refused whatever the limit. Reading stops at the first
        line past the announced count, and a line is read no further than MAX_WORKLOAD_LINE_BYTES:
        a small gzip can hold a gigabyte line, or a billion empty ones."""
        if split not in self.manifest.splits:
            raise DatasetError(f"no split {split!r} (has {', '.join(self.manifest.splits)})", where=self.path)
        path = self.split_path(split)
        announced = self.manifest.splits[split]
        if announced == 0:  # every summary of an empty split would read as a perfect score
            raise DatasetError(f"the {split} split holds no workloads", where=self.path / "manifest.json", key=f"splits.{split}")
        steps = len(self.hours)
        line_no = 0
        try:
            with gzip.open(path, "rb") as f:
                while line := f.readline(MAX_WORKLOAD_LINE_BYTES + 1):
                    line_no += 1
                    if line_no > announced:
                        raise DatasetError(f"holds more than the {announced} workloads manifest.json announces", where=path)
                    if len(line) > MAX_WORKLOAD_LINE_BYTES and not line.endswith(b"\n"):
                        raise DatasetError(f"longer than the limit of {MAX_WORKLOAD_LINE_BYTES} bytes", where=path, key=f"line {line_no}")
                    if limit is not None and line_no > limit:
                        continue
                    yield _Reader(self.substrate, str(path), line_no).workload(self._parse(line, path, line_no), steps)
        except FileNotFoundError:
            raise DatasetError("missing split file", where=path) from None
        except (OSError, EOFError) as exc:
            raise DatasetError(f"cannot read: {exc}", where=path) from None
        if line_no != announced:
            raise DatasetError(f"holds {line_no} workloads, but manifest.json announces {announced}", where=path)

    @staticmethod
    def _parse(line: bytes, path: Path, line_no: int) -> Any:
        try:
            return json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"malformed JSON: {exc.msg}", where=path, key=f"line {line_no}") from None
        except UnicodeDecodeError:
            raise DatasetError("not UTF-8 text", where=path, key=f"line {line_no}") from None
        except ValueError:  # json reads integers of at most sys.get_int_max_str_digits() digits
            raise DatasetError(f"an integer of more than {sys.get_int_max_str_digits()} digits", where=path,
                               key=f"line {line_no}") from None
        except RecursionError:
            raise DatasetError("malformed JSON: nested too deeply", where=path, key=f"line {line_no}") from None

    @cached_property
    def train(self) -> list[Workload]:
        return list(self.workloads("train"))

    @cached_property
    def test(self) -> list[Workload]:
        return list(self.workloads("test"))

    def split(self, name: str, limit: int | None = None) -> list[Workload]:
        return list(self.workloads(name, limit))


def _write_gzip_lines(path: Path, lines: Iterator[str]) -> None:
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        text = io.TextIOWrapper(gz, encoding="utf-8", newline="\n")
        for line in lines:
            text.write(line)
            text.write("\n")
        text.flush()
        text.detach()


GENERATED_BY = "scenario generate"
"""The command a dataset directory is marked as the output of (srem_formats/output_dir.py): only such a directory is replaced."""


def generate_dataset(scenario: Scenario, out: Path, seed: int | None = None, progress: bool = True,
                     workload_seed: int | None = None) -> Dataset:
    """Draw the substrate and every workload, and write them to `out` (replaced whole, never left half-written).

    `seed` draws the substrate (and the workloads, unless `workload_seed` is given): a dataset with
    the scenario's seed and another workload seed has the same network, hosts and VNF instances, so
    a policy trained on one is tested on traffic it never saw."""
    seed = scenario.spec.dataset.seed if seed is None else seed
    substrate_file = draw_substrate(scenario, np.random.default_rng([seed, SUBSTRATE_STREAM]))
    substrate = Substrate(substrate_file)
    check_initial_placement(scenario, substrate)
    splits = {"train": scenario.spec.dataset.train, "test": scenario.spec.dataset.test}
    manifest = Manifest(
        scenario=scenario.name,
        scenario_hash=scenario.content_hash(),
        seed=seed,
        hours=scenario.hours,
        working_until_hour=scenario.spec.time.working_until_hour,
        splits=splits,
        objective=scenario.spec.objective,
        reward=scenario.spec.reward,
        workload_seed=workload_seed,
    )
    out = out.resolve()
    # Replaces only an earlier dataset (the CLI asked the user's --force before any work was done).
    with output_dir(out, GENERATED_BY, force=True) as staging:
        (staging / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=1) + "\n")
        (staging / "scenario.yaml").write_text(scenario.to_yaml())
        (staging / "substrate.json").write_text(json.dumps(substrate.to_dict(), indent=1) + "\n")
        total = sum(splits.values())
        with progress_of(total=total, desc=f"generating {scenario.name}", unit="workload", show=progress) as bar:
            for split, count in splits.items():

                def lines(split: str = split, count: int = count) -> Iterator[str]:
                    for i in range(count):
                        workload = generate_workload(scenario, substrate, i, workload_rng(manifest.traffic_seed, split, i))
                        bar.update()
                        yield json.dumps(workload_to_dict(workload, substrate), separators=(",", ":"))

                _write_gzip_lines(staging / f"{split}.jsonl.gz", lines())
    return Dataset(out)


def check_initial_placement(scenario: Scenario, substrate: Substrate) -> None:
    """Every workload starts with each instance on the cheapest server with room; refuse, before anything
    is written, a drawn substrate whose servers cannot hold them."""
    try:
        cheapest_server_placement(substrate)
    except ValueError as exc:
        largest = max((h.storage_mb for h in substrate.hosts if h.kind is HostKind.SERVER), default=0.0)
        total = sum(h.storage_mb for h in substrate.hosts if h.kind is HostKind.SERVER)
        raise ConfigError(f"{exc}; the initial placement puts every instance on a server, and the largest server holds "
                          f"{largest:.2f} MB, all {substrate.num_servers} together {total:.2f} MB (servers.storage_gb)",
                          where=scenario.source, key="vnfs") from None


def cache_root() -> Path:
    return Path(os.environ.get("SREM_CACHE", Path.home() / ".cache" / "srem"))


def default_dataset(scenario: Scenario, progress: bool = True) -> Dataset:
    """The scenario's default dataset, generated on first use and cached under $SREM_CACHE (~/.cache/srem)."""
    path = cache_root() / "datasets" / f"{scenario.name}-{scenario.content_hash()[:12]}-seed{scenario.spec.dataset.seed}"
    if (path / "manifest.json").exists():
        try:
            return Dataset(path)
        except SremError:
            pass
    return generate_dataset(scenario, path, progress=progress)
