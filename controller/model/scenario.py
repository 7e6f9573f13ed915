"""Scenario files: every parameter of the model (docs/model.md), validated for types, units and ranges.

A scenario is YAML. Keys carry their unit in their name (`_mb`, `_gbps`, `_ms`, ...); a `[low, high]`
pair is a range that the dataset generator draws from uniformly. Unknown keys are rejected by name.
Presets live in controller/scenarios/ (`paper`, `paper-shuffled`, `small`, `large`); `srem scenario show NAME` prints one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, NonNegativeFloat, PositiveFloat, PositiveInt

from controller.errors import ConfigError, clip
from controller.model.topology import Topology, load_topology
from controller.validation import (MAX_INSTANCES, MAX_REQUESTS_PER_WORKLOAD, MAX_VNF_TYPES, MAX_WORKLOADS_PER_SPLIT, names_a_file,
                                   read_yaml, validate)

PRESET_DIR = Path(__file__).resolve().parent.parent / "scenarios"


def _ordered(pair: tuple[float, float]) -> tuple[float, float]:
    if pair[0] > pair[1]:
        raise ValueError(f"range low {pair[0]} is above high {pair[1]}")
    return pair


Range = Annotated[tuple[NonNegativeFloat, NonNegativeFloat], AfterValidator(_ordered)]
"""[low, high], both >= 0, low <= high; drawn uniformly."""
PositiveRange = Annotated[tuple[PositiveFloat, PositiveFloat], AfterValidator(_ordered)]
IntRange = Annotated[tuple[PositiveInt, PositiveInt], AfterValidator(_ordered)]


class _Section(BaseModel):
    # Every physical quantity is finite: an infinite rate or deadline is no scenario, and NaN compares false with everything.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NetworkParams(_Section):
    topology: str = "paper"
    """A built-in topology name or a topology file path (relative to the scenario file)."""
    link_price_per_gb: Range = (0.001, 0.004)
    """p_uv: price per GB carried, proportional to the link's bandwidth across this range."""
    controller_link_gbps: PositiveFloat = 50.0
    controller_link_price_per_gb: NonNegativeFloat = 0.005


class ServerParams(_Section):
    storage_gb: PositiveRange = (8.0, 16.0)
    price_per_gb: Range = (0.01, 0.02)
    processing_delay_ms_per_mb: Range = (0.5, 1.0)


class SwitchParams(_Section):
    local_memory_mb: PositiveRange = (50.0, 80.0)
    external_memory_mb: PositiveRange = (100.0, 170.0)
    rdma_table_mb: PositiveRange | None = None
    """T_w; null means the same as the switch's local memory (the paper)."""
    rdma_index_fraction: Annotated[float, Field(gt=0.0, le=1.0)] = 0.01
    """Size of an EM-hosted instance's RDMA-table index entry, as a fraction of s_f."""
    lm_price_per_mb: Range = (0.001, 0.002)
    em_discount_per_mb: Range = (0.0002, 0.0005)
    """p^E_w = p^L_w minus this (EM is cheaper than LM); clipped at 0."""
    processing_delay_ms_per_mb: Range = (0.001, 0.005)
    rdma_access_delay_ns: Range = (1000.0, 2000.0)


class VnfTypeParams(_Section):
    name: str = Field(max_length=32, pattern=r"^[a-z][a-z0-9_]*$")
    storage_mb: PositiveRange
    instances: Annotated[int, Field(gt=0, le=MAX_INSTANCES)] = 6
    """A multiple of the number of service classes (6: two per class of the default three)."""
    server_capacity_mbps: PositiveRange = (200.0, 800.0)
    switch_capacity_gbps: PositiveFloat = 100.0
    rdma_accesses: IntRange = (1, 4)
    """n_f: RDMA reads per lookup of this type's table in external memory."""
    programming_factor: PositiveFloat = 1.0
    """pi_f = programming_factor * s_f: control traffic (MB) to program the type into a switch."""


class PeriodParams(_Section):
    rate_mbps: PositiveRange
    deadline_ms: PositiveRange


class ServiceClass(_Section):
    """Requests of one service (the paper's section VI: web service, VoIP, online gaming) are busy at
    their own hours: working-hours traffic then, evening traffic at every other step."""

    name: str = Field(max_length=32, pattern=r"^[a-z][a-z0-9_]*$")
    busy_hours: list[Annotated[int, Field(ge=0, le=23)]] = Field(min_length=1)
    """Start hours of the steps in which the class's requests draw from `working_hours`."""


class RequestParams(_Section):
    per_workload: Annotated[int, Field(gt=0, le=MAX_REQUESTS_PER_WORKLOAD)] = 90
    """SFC requests in every workload (one day of traffic)."""
    chain_length: IntRange = (1, 4)
    endpoints: Literal["any-switch", "edge"] = "any-switch"
    working_hours: PeriodParams = PeriodParams(rate_mbps=(100.0, 500.0), deadline_ms=(10.0, 30.0))
    evening: PeriodParams = PeriodParams(rate_mbps=(0.1, 0.5), deadline_ms=(50.0, 100.0))
    classes: list[ServiceClass] = [ServiceClass(name="web", busy_hours=[10]), ServiceClass(name="voip", busy_hours=[12]),
                                   ServiceClass(name="gaming", busy_hours=[14])]
    """Default: the paper's three, busy at 10, 12 and 14 h. Empty: every request draws from `working_hours`
    before `time.working_until_hour` and from `evening` after. Otherwise each request belongs to a random
    class, busy at the class's hours, and its VNFs use the class's own instances: instance j of every type
    serves class j mod len(classes)."""
    busy_order: Literal["fixed", "random"] = "fixed"
    """random: every workload hands the classes' busy hours to the classes in a random order."""


class TimeParams(_Section):
    start_hour: Annotated[int, Field(ge=0, le=23)] = 10
    end_hour: Annotated[int, Field(ge=1, le=24)] = 22
    step_hours: PositiveInt = 2
    working_until_hour: Annotated[int, Field(ge=0, le=24)] = 16


class DatasetParams(_Section):
    train: Annotated[int, Field(ge=0, le=MAX_WORKLOADS_PER_SPLIT)] = 1200
    test: Annotated[int, Field(ge=0, le=MAX_WORKLOADS_PER_SPLIT)] = 300
    seed: Annotated[int, Field(ge=0)] = 1


class ObjectiveParams(_Section):
    """a1, a2, a3 of eq. 1, and what a request that is not accepted costs."""

    it: NonNegativeFloat = 1.0
    bandwidth: NonNegativeFloat = 1.0
    reconfiguration: NonNegativeFloat = 1.0
    rejected_traffic: Literal["dropped", "carried"] = "carried"
    """dropped: a rejected request carries no traffic and costs nothing; carried: one that misses
    its deadline or an instance's capacity still crosses the network and pays for it."""


class RewardParams(_Section):
    """w1, w2 of eq. 20."""

    acceptance: NonNegativeFloat = 1.0
    cost: NonNegativeFloat = 0.1


class DataplaneParams(_Section):
    """The P4 testbed's parameters; the model does not see them (not in the scenario's hash)."""

    rules_per_mb: Annotated[float, Field(gt=0.0, le=1000.0)] = 1.0
    """Rules a VNF instance holds per MB of its storage s_f (BMv2 cannot hold hundreds of MB of entries)."""


class ScenarioSpec(_Section):
    name: str = Field(max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    network: NetworkParams = NetworkParams()
    servers: ServerParams = ServerParams()
    switches: SwitchParams = SwitchParams()
    vnfs: list[VnfTypeParams] = Field(min_length=1, max_length=MAX_VNF_TYPES)
    requests: RequestParams = RequestParams()
    time: TimeParams = TimeParams()
    dataset: DatasetParams = DatasetParams()
    objective: ObjectiveParams = ObjectiveParams()
    reward: RewardParams = RewardParams()
    dataplane: DataplaneParams = DataplaneParams()


@dataclass(frozen=True)
class Scenario:
    """A validated scenario with its topology loaded."""

    spec: ScenarioSpec
    topology: Topology
    source: str

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def hours(self) -> list[int]:
        """Start hour of every step, e.g. [10, 12, 14, 16, 18, 20]."""
        t = self.spec.time
        return list(range(t.start_hour, t.end_hour, t.step_hours))

    @property
    def step_seconds(self) -> float:
        return self.spec.time.step_hours * 3600.0

    def is_working_hour(self, hour: int) -> bool:
        return hour < self.spec.time.working_until_hour

    def content_hash(self) -> str:
        """SHA-256 over the validated model parameters and the topology's content: equal hashes, equal model.

        The data plane's parameters are left out: they change the testbed, not the model, so
        datasets and trained policies stay valid."""
        doc = {"scenario": self.spec.model_dump(mode="json", exclude={"dataplane"}), "topology": self.topology.to_dict()}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def to_yaml(self) -> str:
        import yaml

        return yaml.safe_dump(self.spec.model_dump(mode="json"), sort_keys=False)


def check_consistency(spec: ScenarioSpec, where: str) -> None:
    """Rules across keys that a single field's type cannot express."""
    names = [v.name for v in spec.vnfs]
    for i, name in enumerate(names):
        if names.index(name) != i:
            raise ConfigError(f"duplicate VNF type {name!r}", where=where, key=f"vnfs[{i}].name")
    if spec.requests.chain_length[1] > len(names):
        raise ConfigError(
            f"chains of up to {spec.requests.chain_length[1]} distinct types, but only {len(names)} VNF types",
            where=where,
            key="requests.chain_length",
        )
    t = spec.time  # first: the classes' busy hours are checked against these steps
    if t.start_hour >= t.end_hour:
        raise ConfigError(f"start hour {t.start_hour} is not before end hour {t.end_hour}", where=where, key="time.end_hour")
    if (t.end_hour - t.start_hour) % t.step_hours:
        raise ConfigError(f"{t.start_hour}:00-{t.end_hour}:00 is not a whole number of {t.step_hours} h steps", where=where, key="time.step_hours")
    classes = spec.requests.classes
    class_names = [c.name for c in classes]
    for i, c in enumerate(classes):
        if class_names.index(c.name) != i:
            raise ConfigError(f"duplicate service class {c.name!r}", where=where, key=f"requests.classes[{i}].name")
        steps = range(spec.time.start_hour, spec.time.end_hour, spec.time.step_hours)
        for hour in c.busy_hours:
            if hour not in steps:
                raise ConfigError(f"{hour} is not the start hour of a step ({', '.join(map(str, steps))})",
                                  where=where, key=f"requests.classes[{i}].busy_hours")
    instances = sum(v.instances for v in spec.vnfs)
    if instances > MAX_INSTANCES:
        raise ConfigError(f"{instances} VNF instances in all, more than the limit of {MAX_INSTANCES}", where=where, key="vnfs")
    for i, v in enumerate(spec.vnfs):
        if classes and v.instances % len(classes):
            raise ConfigError(f"{v.instances} instances cannot be shared out among {len(classes)} service classes "
                              "(instance j serves class j mod the number of classes)", where=where, key=f"vnfs[{i}].instances")


RENAMED_KEYS = {("requests", "per_instance"): "requests.per_workload"}
"""Keys of older scenario files -> their new name; refused by name so an old file is easy to fix."""


def check_renamed(data: dict[str, Any], where: str) -> None:
    for (section, key), new in RENAMED_KEYS.items():
        if isinstance(data.get(section), dict) and key in data[section]:
            raise ConfigError(f"renamed to {new}", where=where, key=f"{section}.{key}")


def scenario_from_dict(data: Any, where: str, base_dir: Path | None = None) -> Scenario:
    if not isinstance(data, dict):
        raise ConfigError("a scenario is a YAML mapping", where=where)
    check_renamed(data, where)
    spec = validate(ScenarioSpec, data, where)
    check_consistency(spec, where)
    try:
        topology = load_topology(spec.network.topology, base_dir)
    except ConfigError as exc:
        if exc.where == clip(spec.network.topology):
            raise ConfigError(exc.message, where=where, key="network.topology") from None
        raise
    switches = {s.name for s in topology.spec.switches if s.role == "edge"}
    if spec.requests.endpoints == "edge" and len(switches) < 2:
        raise ConfigError("endpoints: edge needs at least two edge switches in the topology", where=where, key="requests.endpoints")
    return Scenario(spec=spec, topology=topology, source=where)


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A preset name (`paper`, `paper-shuffled`, `small`, `large`) or a YAML file path."""
    if name_or_path in preset_names():
        path = PRESET_DIR / f"{name_or_path}.yaml"
    else:
        path = Path(name_or_path)
        if not names_a_file(path):
            raise ConfigError(f"no preset or file of that name (presets: {', '.join(preset_names())})", where=clip(name_or_path))
    return scenario_from_dict(read_yaml(path), str(path), path.parent)
