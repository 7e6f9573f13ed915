"""Scenario files: presets, round trips and validation of types, units, ranges and unknown keys."""

from __future__ import annotations

import pytest
import yaml

from controller.errors import ConfigError
from controller.model.scenario import PRESET_DIR, ScenarioSpec, load_scenario, preset_names
from topologies import builtin_path


def test_presets():
    assert preset_names() == ["large", "paper", "paper-shuffled", "small"]
    paper = load_scenario("paper")
    assert paper.hours == [10, 12, 14, 16, 18, 20]
    assert [paper.is_working_hour(h) for h in paper.hours] == [True] * 3 + [False] * 3
    assert paper.spec.requests.per_workload == 90 and paper.spec.dataset.train == 1200 and paper.spec.dataset.test == 300
    assert len(paper.topology.switch_names) == 10 and len(paper.topology.server_names) == 12
    large = load_scenario("large")
    assert len(large.topology.switch_names) == 80 and large.spec.requests.per_workload == 1000


def test_pydantic_defaults_are_the_paper_preset():
    """A scenario that names only itself and its VNF types gets the paper's values for everything else."""
    paper = load_scenario("paper").spec.model_dump()
    minimal = ScenarioSpec(name="paper", description=paper["description"], vnfs=paper["vnfs"]).model_dump()
    assert minimal == paper


def test_show_round_trips(tmp_path):
    paper = load_scenario("paper")
    path = tmp_path / "mine.yaml"
    path.write_text(paper.to_yaml())
    again = load_scenario(str(path))
    assert again.spec == paper.spec and again.content_hash() == paper.content_hash()


def _write(tmp_path, mutate) -> str:
    data = yaml.safe_load(load_scenario("paper").to_yaml())
    mutate(data)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize(
    "mutate,key,words",
    [
        (lambda d: d["servers"].update(storage_gbb=[1, 2]), "servers.storage_gbb", "unknown key"),
        (lambda d: d.update(colour="red"), "colour", "unknown key"),
        (lambda d: d["servers"].update(storage_gb=[-8, 16]), "servers.storage_gb[0]", "greater than 0"),
        (lambda d: d["switches"].update(local_memory_mb=[40, 20]), "switches.local_memory_mb", "above high"),
        (lambda d: d["vnfs"][0].update(instances=0), "vnfs[0].instances", "greater than 0"),
        (lambda d: d["vnfs"][1].update(storage_mb="big"), "vnfs[1].storage_mb", "valid"),
        (lambda d: d["requests"].update(chain_length=[1, 5]), "requests.chain_length", "only 4 VNF types"),
        (lambda d: d["network"].update(topology="atlantis.json"), "network.topology", "no built-in topology"),
        (lambda d: d["time"].update(step_hours=5), "time.step_hours", "whole number"),
        (lambda d: d["vnfs"][1].update(name="firewall"), "vnfs[1].name", "duplicate"),
    ],
)
def test_bad_scenario_is_one_clear_error(tmp_path, mutate, key, words):
    path = _write(tmp_path, mutate)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert err.value.where == path and err.value.key == key, str(err.value)
    assert words in err.value.message
    assert "\n" not in str(err.value)


def test_the_old_per_instance_key_is_refused_naming_the_new_one(tmp_path):
    """`requests.per_instance` counted SFCs per workload, not per VNF instance; it was renamed."""
    def rename(d):
        d["requests"]["per_instance"] = d["requests"].pop("per_workload")

    path = _write(tmp_path, rename)
    with pytest.raises(ConfigError) as err:
        load_scenario(path)
    assert err.value.where == path and err.value.key == "requests.per_instance"
    assert err.value.message == "renamed to requests.per_workload"


def test_no_preset_calls_a_workload_an_instance():
    for name in preset_names():
        text = (PRESET_DIR / f"{name}.yaml").read_text()
        assert "SFCs per instance" not in text and "per_instance" not in text and "test instances" not in text, name


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("name: x\nservers: [1, 2\n")
    with pytest.raises(ConfigError) as err:
        load_scenario(str(path))
    assert err.value.where == str(path) and err.value.key.startswith("line")


def test_relative_topology_path_resolves_against_the_scenario_file(tmp_path):
    (tmp_path / "net.json").write_text(builtin_path("paper").read_text())
    path = _write(tmp_path, lambda d: d["network"].update(topology="net.json"))
    assert load_scenario(path).topology.name == "paper"
