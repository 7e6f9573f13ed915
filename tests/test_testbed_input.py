"""Bad input to a live run is refused in one line before anything starts (no network, no process):
a workload index out of range, a checkpoint of another network, a running network that is not the
scenario's topology; and what a restarted controller reads back to resume a run (its step records and
probe answers): corruption refused in one line, a probe line cut short by a crash dropped with a note.
None of these needs BMv2."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from controller.errors import SremError
from controller.model.dataset import Dataset
from controller.model.scenario import load_scenario
from controller.model.topology import load_topology
from controller.policies import make_policy
from controller.rl.agent import TrainConfig
from controller.rl.training import train
from controller.testbed import state as testbed_state
from controller.testbed.loop import LiveLoop, LoopSettings, StepRecord, check_recorded, recorded_probes
from controller.testbed.run import _recorded, run_testbed


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


# What a restarted controller reads back (`srem testbed run --attach --resume`): step-N.json and probes.jsonl


def collect_answer(name: str, n: int) -> dict[str, object]:
    """A traffic agent's `collect` answer (hosts/traffic.py) with one probe sent and received."""
    return {"name": name, "address": "10.0.0.1", "now_ns": 1000 + n,
            "probes_sent": {"chain": [1], "seq": [n], "sent_ns": [10 * n]},
            "probes_received": {"chain": [1], "seq": [n], "sent_ns": [10 * n], "received_ns": [10 * n + 5]},
            "baseline_sent": {"dst": [], "seq": [], "sent_ns": []},
            "baseline_received": {"src": [], "seq": [], "sent_ns": [], "received_ns": []},
            "data": {"chain": [1], "sent": [n], "received": [n]}}


def probes_file(out: Path, *lines: bytes) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "probes.jsonl"
    path.write_bytes(b"".join(lines))
    return path


def line(answer: dict[str, object]) -> bytes:
    return json.dumps(answer).encode() + b"\n"


def step_record(small_dataset: Dataset, step: int, **changes: object) -> StepRecord:
    sub = small_dataset.substrate
    placement = {i.name: sub.hosts[h].name for i, h in zip(sub.instances, small_dataset.split("test")[0].initial_placement)}
    record = StepRecord(step=step, hour=small_dataset.hours[step], working_hours=True, placement=placement, moved=[],
                        accepted=1, carried=1, requests=1, predicted_delay_ms={1: 1.5}, seconds={"decide": 0.01},
                        started_ns=10 + step, reconfigured_ns=20 + step, counters={1: 7})
    return dataclasses.replace(record, **changes)  # type: ignore[arg-type]


def test_resume_drops_a_torn_last_probe_line_says_so_and_appends_after_the_last_whole_one(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    answers = [collect_answer("h-e1", 1), collect_answer("h-e2", 2)]
    whole = line(answers[0]) + line(answers[1])
    path = probes_file(tmp_path, whole, line(collect_answer("h-e1", 3))[:40])  # a controller killed mid-write
    with caplog.at_level(logging.WARNING):
        assert _recorded(tmp_path) == ([], answers)
    assert "line 3, the last, is cut short (not JSON): dropped" in caplog.text
    assert path.read_bytes() == whole, "cut off the file: the next answer starts on a line of its own"
    with open(path, "a") as f:  # what the resumed loop's collect does
        f.write(json.dumps(collect_answer("h-e1", 4)) + "\n")
    caplog.clear()
    assert _recorded(tmp_path)[1] == [*answers, collect_answer("h-e1", 4)] and caplog.text == ""
    assert len(recorded_probes(_recorded(tmp_path)[1], tmp_path).sent.rows()) == 3


def test_resume_keeps_a_last_probe_line_missing_only_its_newline(tmp_path: Path) -> None:
    path = probes_file(tmp_path, line(collect_answer("h-e1", 1)), line(collect_answer("h-e2", 2))[:-1])
    assert _recorded(tmp_path)[1] == [collect_answer("h-e1", 1), collect_answer("h-e2", 2)]
    assert path.read_bytes().endswith(b"}\n")


@pytest.mark.parametrize(("bad", "why"), [
    (b'{"name": "h-e1", "addr\n', "line 2: not JSON"),
    (b"\n", "line 2: not JSON"),
    (b"[1, 2]\n", "line 2: not a JSON object"),
    (b"[" * 100_000 + b"\n", "line 2: not JSON"),
])
def test_resume_refuses_a_corrupt_probe_line_before_the_last_in_one_line(tmp_path: Path, bad: bytes, why: str) -> None:
    probes_file(tmp_path, line(collect_answer("h-e1", 1)), bad, line(collect_answer("h-e2", 2)))
    with pytest.raises(SremError) as refused:
        _recorded(tmp_path)
    assert str(refused.value) == f"{tmp_path / 'probes.jsonl'}: {why}"


def test_resume_refuses_a_probe_answer_the_analysis_cannot_take_naming_its_line(tmp_path: Path) -> None:
    broken = {**collect_answer("h-e2", 2), "probes_sent": {"chain": [1], "seq": [1, 2], "sent_ns": [1]}}
    probes_file(tmp_path, line(collect_answer("h-e1", 1)), line(broken))
    with pytest.raises(SremError) as refused:
        recorded_probes(_recorded(tmp_path)[1], tmp_path)
    assert str(refused.value) == (f"{tmp_path / 'probes.jsonl'}: line 2: traffic agent h-e2: probes_sent: "
                                  "columns are lists of one length")


def test_resume_refuses_a_step_record_that_is_not_one_in_one_line(tmp_path: Path, small_dataset: Dataset) -> None:
    (tmp_path / "step-0.json").write_text(json.dumps(dataclasses.asdict(step_record(small_dataset, 0))))
    for content, why in [("{", "not a step record (Invalid JSON: EOF while parsing an object"),
                         (json.dumps({**dataclasses.asdict(step_record(small_dataset, 1)), "extra": 1}),
                          "not a step record (extra: Unexpected keyword argument)"),
                         (json.dumps({**dataclasses.asdict(step_record(small_dataset, 1)), "counters": {"one": 1}}),
                          "not a step record (counters.one.[key]: Input should be a valid integer"),
                         (json.dumps(dataclasses.asdict(step_record(small_dataset, 2))), "records step 2, not 1")]:
        (tmp_path / "step-1.json").write_text(content)
        with pytest.raises(SremError) as refused:
            _recorded(tmp_path)
        assert str(refused.value).startswith(f"{tmp_path / 'step-1.json'}: {why}"), str(refused.value)
        assert "\n" not in str(refused.value)


def test_resume_refuses_step_records_not_of_this_scenarios_day(tmp_path: Path, small_dataset: Dataset) -> None:
    good = [step_record(small_dataset, i) for i in range(2)]
    check_recorded(good, small_dataset, tmp_path)
    placement = good[1].placement
    instance = next(iter(placement))
    for bad, why in [
        (dataclasses.replace(good[1], hour=good[1].hour + 1), f"records hour {good[1].hour + 1} for step 1"),
        (dataclasses.replace(good[1], placement={**placement, "nat#99": "e1"}), "does not name this scenario's instances (nat#99)"),
        (dataclasses.replace(good[1], placement={**placement, instance: "nowhere"}), "its placement names nowhere, not a host"),
    ]:
        with pytest.raises(SremError) as refused:
            check_recorded([good[0], bad], small_dataset, tmp_path)
        assert str(refused.value).startswith(f"{tmp_path / 'step-1.json'}: ") and why in str(refused.value), str(refused.value)
    too_many = [step_record(small_dataset, i % len(small_dataset.hours)) for i in range(len(small_dataset.hours) + 1)]
    with pytest.raises(SremError, match=f"but the day has {len(small_dataset.hours)} steps"):
        check_recorded(too_many, small_dataset, tmp_path)
