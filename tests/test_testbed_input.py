"""Bad input to a live run is refused in one line before anything starts (no network, no process):
a workload index out of range, a checkpoint of another network, a running network that is not the
scenario's topology. None of these needs BMv2."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from controller.errors import SremError
from controller.model.scenario import load_scenario
from controller.model.topology import load_topology
from controller.policies import make_policy
from controller.rl.agent import TrainConfig
from controller.rl.training import train
from controller.testbed import state as testbed_state
from controller.testbed.loop import LiveLoop, LoopSettings
from controller.testbed.run import run_testbed


def refused(call) -> SremError:  # type: ignore[no-untyped-def]
    before = testbed_state.pointed()
    with pytest.raises(SremError) as err:
        call()
    assert "\n" not in str(err.value)
    assert testbed_state.pointed() == before, "nothing was brought up"
    return err.value


def test_a_workload_out_of_range_is_refused_before_anything_starts(small_dataset, tmp_path: Path) -> None:
    error = refused(lambda: run_testbed(load_scenario("small"), small_dataset, 10, make_policy("static"), LoopSettings(),
                                        tmp_path / "run"))
    assert error.where == "--workload" and "out of range: the test split has 10 (0..9)" in str(error)
    assert not (tmp_path / "run").exists()


def test_a_checkpoint_of_another_network_is_refused_before_anything_starts(small_dataset, paper_dataset, tmp_path: Path) -> None:
    checkpoint = tmp_path / "small.pt"
    train(small_dataset, TrainConfig(episodes=2, hidden=8), checkpoint=checkpoint, progress=False)
    error = refused(lambda: run_testbed(load_scenario("paper"), paper_dataset, 0, make_policy(f"srem:{checkpoint}"),
                                        LoopSettings(), tmp_path / "run"))
    assert "scenario small" in str(error) and error.where == str(checkpoint)


def test_a_running_network_of_another_topology_is_refused(small_dataset, tmp_path: Path) -> None:
    other = load_topology("fat-tree-k4")
    running = SimpleNamespace(topology=other, run_dir=tmp_path / "net", layout=SimpleNamespace(node_names=other.spec.switches))
    error = refused(lambda: LiveLoop(running, small_dataset, load_scenario("small").spec.dataplane, 0,  # type: ignore[arg-type]
                                     make_policy("static"), LoopSettings(), tmp_path / "run"))
    assert "not the scenario's topology" in str(error) and error.where == str(tmp_path / "net")
