"""The dataset generator and its on-disk format."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from controller.errors import DatasetError
from controller.model.dataset import Dataset, generate_dataset
from controller.model.scenario import load_scenario
from controller.model.substrate import HostKind


def _files(path):
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def test_same_seed_gives_byte_identical_files(tmp_path):
    small = load_scenario("small")
    a = generate_dataset(small, tmp_path / "a", seed=7, progress=False)
    b = generate_dataset(small, tmp_path / "b", seed=7, progress=False)
    c = generate_dataset(small, tmp_path / "c", seed=8, progress=False)
    assert _files(a.path) == _files(b.path)
    assert _files(a.path)["test.jsonl.gz"] != _files(c.path)["test.jsonl.gz"]
    assert set(_files(a.path)) == {"manifest.json", "scenario.yaml", "substrate.json", "train.jsonl.gz", "test.jsonl.gz", ".srem-output"}


def test_a_workload_seed_keeps_the_network_and_draws_fresh_traffic(small_dataset, tmp_path):
    small = load_scenario("small")
    fresh = generate_dataset(small, tmp_path / "fresh", progress=False, workload_seed=99)
    again = generate_dataset(small, tmp_path / "again", progress=False, workload_seed=99)
    assert _files(fresh.path) == _files(again.path)
    assert _files(fresh.path)["substrate.json"] == _files(small_dataset.path)["substrate.json"]
    assert _files(fresh.path)["test.jsonl.gz"] != _files(small_dataset.path)["test.jsonl.gz"]
    assert fresh.manifest.seed == small_dataset.manifest.seed and fresh.manifest.traffic_seed == 99
    assert "workload_seed" not in json.loads((small_dataset.path / "manifest.json").read_text())
    # A policy trained on the scenario's own dataset binds to the fresh one: same substrate.
    from controller.rl.checkpoint import substrate_hash

    assert substrate_hash(fresh.substrate) == substrate_hash(small_dataset.substrate)


def test_paper_dataset_shape(paper_dataset):
    scenario = load_scenario("paper")
    m = paper_dataset.manifest
    assert m.splits == {"train": 1200, "test": 300}
    assert paper_dataset.hours == [10, 12, 14, 16, 18, 20]
    assert m.scenario_hash == scenario.content_hash()
    sub = paper_dataset.substrate
    assert [len(sub.instances_of_type[t]) for t in range(len(sub.vnf_types))] == [6, 6, 12, 12]
    assert len(sub.instances) == 36 and len(sub.hosts) == 12 + 2 * 10
    assert sum(1 for _ in paper_dataset.workloads("train")) == 1200
    spec = scenario.spec.requests
    busy_hours = [c.busy_hours for c in spec.classes]  # busy_order: fixed
    assert busy_hours == [[10], [12], [14]]
    for wl in paper_dataset.test:
        assert len(wl.requests) == 90
        for r, instances in zip(wl.requests, wl.assignment):
            assert 1 <= len(r.chain) <= 4 and len(set(r.chain)) == len(r.chain)
            assert r.source != r.target and max(r.source, r.target) < sub.num_switches
            assert [sub.instances[k].type.index for k in instances] == list(r.chain)
            (cls,) = {sub.instances[k].ordinal % len(busy_hours) for k in instances}  # the class's own instances
            for step, hour in enumerate(paper_dataset.hours):
                period = spec.working_hours if hour in busy_hours[cls] else spec.evening
                assert period.rate_mbps[0] <= r.rate_mbps[step] <= period.rate_mbps[1]
                assert period.deadline_ms[0] <= r.deadline_ms[step] <= period.deadline_ms[1]


def test_initial_placement_is_the_cheapest_server_with_room(paper_dataset):
    sub = paper_dataset.substrate
    wl = paper_dataset.test[0]
    servers = [h for h in sub.hosts if h.kind is HostKind.SERVER]
    cheapest = min(servers, key=lambda h: h.price)
    assert all(sub.hosts[h].kind is HostKind.SERVER for h in wl.initial_placement)
    assert set(wl.initial_placement) == {cheapest.index}  # 36 instances of < 3.4 GB fit on any server (8 GB or more)


def test_initial_assignment_respects_capacity_where_it_can(small_dataset):
    """Each VNF goes to an instance of its request's class pool with room for the request's peak rate
    whenever the pool has one (docs/model.md, "Service classes")."""
    sub = small_dataset.substrate
    spec = load_scenario("small").spec.requests
    assert spec.busy_order == "fixed"
    classes = len(spec.classes)
    for wl in small_dataset.test:
        load = [0.0] * len(sub.instances)
        for r, instances in zip(wl.requests, wl.assignment):
            busy_hour = small_dataset.hours[max(range(len(r.rate_mbps)), key=lambda s: r.rate_mbps[s])]
            (cls,) = [c for c, sc in enumerate(spec.classes) if busy_hour in sc.busy_hours]  # known from the traffic alone
            peak = max(r.rate_mbps)
            for k in instances:
                pool = [c for c in sub.instances_of_type[sub.instances[k].type.index] if sub.instances[c].ordinal % classes == cls]
                fitting = [c for c in pool if load[c] + peak <= sub.instance_capacity_mbps(c, wl.initial_placement[c])]
                assert k in pool and (not fitting or k in fitting)
                load[k] += peak


def _copy(small_dataset, tmp_path):
    target = tmp_path / "ds"
    shutil.copytree(small_dataset.path, target)
    return target


def test_dataset_of_another_format_version_is_refused(small_dataset, tmp_path):
    path = _copy(small_dataset, tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["version"] = 99
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetError) as err:
        Dataset(path)
    assert err.value.where == str(path / "manifest.json") and err.value.key == "version"
    assert "99" in err.value.message


def test_request_naming_an_unknown_vnf_type_is_refused(small_dataset, tmp_path):
    path = _copy(small_dataset, tmp_path)
    with gzip.open(path / "test.jsonl.gz", "rt") as f:
        lines = f.read().splitlines()
    first = json.loads(lines[1])
    first["requests"][3]["chain"][0] = "teleporter"
    lines[1] = json.dumps(first)
    with gzip.open(path / "test.jsonl.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    with pytest.raises(DatasetError) as err:
        Dataset(path).split("test")
    assert err.value.where == str(path / "test.jsonl.gz")
    assert err.value.key == "line 2: requests[3].chain[0]"
    assert "unknown VNF type 'teleporter'" in err.value.message


def test_generation_failure_leaves_the_old_dataset(small_dataset, tmp_path, monkeypatch):
    path = _copy(small_dataset, tmp_path)
    before = _files(path)
    import controller.model.dataset as ds

    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(ds, "generate_workload", boom)
    with pytest.raises(RuntimeError):
        generate_dataset(load_scenario("small"), path, progress=False)
    assert _files(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def _rewrite_test_split(path, keep):
    with gzip.open(path / "test.jsonl.gz", "rt") as f:
        lines = f.read().splitlines()
    with gzip.open(path / "test.jsonl.gz", "wt") as f:
        f.write("\n".join(keep(lines)) + "\n")


@pytest.mark.parametrize(("keep", "message"), [(lambda lines: lines[:3], "holds 3 workloads, but manifest.json announces 10"),
                                               (lambda lines: lines + lines[:2], "holds more than the 10 workloads manifest.json announces")])
@pytest.mark.parametrize("limit", [None, 2])
def test_split_with_another_count_than_its_manifest_is_refused(small_dataset, tmp_path, keep, message, limit):
    """A split cut short (or grown) is refused whatever the limit, naming the file and the counts."""
    path = _copy(small_dataset, tmp_path)
    _rewrite_test_split(path, keep)
    with pytest.raises(DatasetError) as err:
        Dataset(path).split("test", limit)
    assert err.value.where == str(path / "test.jsonl.gz")
    assert err.value.message == message


def test_a_limit_reads_only_the_first_workloads(small_dataset):
    assert [w.id for w in small_dataset.split("test", 2)] == [w.id for w in small_dataset.test[:2]]


def small_with_classes(**requests):  # type: ignore[no-untyped-def]
    from controller.model.scenario import scenario_from_dict

    doc = load_scenario("small").spec.model_dump(mode="json")
    doc["vnfs"] = [{**v, "instances": 3} for v in doc["vnfs"]]
    doc["requests"].update({"classes": [{"name": "web", "busy_hours": [10]}, {"name": "voip", "busy_hours": [12]},
                                        {"name": "gaming", "busy_hours": [14]}], **requests})
    doc["dataset"].update({"train": 2, "test": 4})
    return scenario_from_dict(doc, "<test>")


@pytest.mark.parametrize("order", ["fixed", "random"])
def test_service_classes_are_busy_at_their_hours_on_their_own_instances(tmp_path, order):
    scenario = small_with_classes(busy_order=order)
    ds = generate_dataset(scenario, tmp_path / "d", progress=False)
    work, evening = scenario.spec.requests.working_hours, scenario.spec.requests.evening
    orders = set()
    for wl in ds.test:
        busy_of_class: dict[int, int] = {}
        for req, instances in zip(wl.requests, wl.assignment):
            busy = [s for s, rate in enumerate(req.rate_mbps) if work.rate_mbps[0] <= rate <= work.rate_mbps[1]]
            assert len(busy) == 1 and busy[0] < 3, req.rate_mbps  # one busy working-hours step, evening traffic elsewhere
            assert all(evening.rate_mbps[0] <= r <= evening.rate_mbps[1] for s, r in enumerate(req.rate_mbps) if s != busy[0])
            assert work.deadline_ms[0] <= req.deadline_ms[busy[0]] <= work.deadline_ms[1]
            pools = {ds.substrate.instances[k].ordinal % 3 for k in instances}
            assert len(pools) == 1, "a request's VNFs all use its class's instances"
            cls = pools.pop()
            assert busy_of_class.setdefault(cls, busy[0]) == busy[0], "a class is busy at one step for all its requests"
        if order == "fixed":
            assert all(busy_of_class[c] == c for c in busy_of_class)
        orders.add(tuple(sorted(busy_of_class.items())))
    assert order == "fixed" or len(orders) > 1, "a random busy order differs between workloads"


def test_service_classes_are_validated(tmp_path):
    from controller.errors import ConfigError

    with pytest.raises(ConfigError, match=r"requests.classes\[1\].busy_hours.*11 is not the start hour of a step"):
        small_with_classes(classes=[{"name": "a", "busy_hours": [10]}, {"name": "b", "busy_hours": [11]}, {"name": "c", "busy_hours": [14]}])
    with pytest.raises(ConfigError, match=r"vnfs\[0\].instances.*3 instances cannot be shared out among 2 service classes"):
        small_with_classes(classes=[{"name": "a", "busy_hours": [10]}, {"name": "b", "busy_hours": [12]}])
    with pytest.raises(ConfigError, match="duplicate service class 'a'"):
        small_with_classes(classes=[{"name": "a", "busy_hours": [10]}, {"name": "a", "busy_hours": [12]}, {"name": "c", "busy_hours": [14]}])


# --- Refused in one line (issue 20, findings 9 and 10) ------------------------------------------------------------

def _edit_first_workload(path, edit) -> None:
    with gzip.open(path / "test.jsonl.gz", "rt") as f:
        lines = f.read().splitlines()
    lines[0] = edit(lines[0])
    with gzip.open(path / "test.jsonl.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")


def _with_id(value: str):
    return lambda line: line.replace('{"id":0,', '{"id":' + value + ",", 1)


@pytest.mark.parametrize(("edit", "key", "message"), [
    (_with_id('"abc"'), "line 1: id", "expected a whole number 0..19999, got 'abc'"),
    (_with_id("1.5"), "line 1: id", "expected a whole number 0..19999, got 1.5"),
    (_with_id("9" * 5000), "line 1", "an integer of more than 4300 digits"),
    (lambda line: line.replace('"rate_mbps":[', '"rate_mbps":[' + "9" * 5000 + ",", 1), "line 1",
     "an integer of more than 4300 digits"),
])
def test_bad_workload_id_is_refused_in_one_line(small_dataset, tmp_path, edit, key, message):
    """`int("abc")` raised ValueError; a 5,000-digit integer exceeds what Python reads from a string."""
    path = _copy(small_dataset, tmp_path)
    _edit_first_workload(path, edit)
    with pytest.raises(DatasetError) as err:
        Dataset(path).split("test")
    assert (err.value.where, err.value.key, err.value.message) == (str(path / "test.jsonl.gz"), key, message)


def _edit_manifest(path, edit) -> None:
    manifest = json.loads((path / "manifest.json").read_text())
    edit(manifest)
    (path / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(("edit", "key", "words"), [
    (lambda m: m["objective"].update(colour=1.0), "objective.colour", "unknown key"),
    (lambda m: m["reward"].update(cost=-1.0), "reward.cost", "greater than or equal to 0"),
    (lambda m: m["hours"].__setitem__(0, "10"), "hours[0]", "Input should be a valid integer (got '10')"),
    (lambda m: m.update(working_until_hour="16"), "working_until_hour", "Input should be a valid integer"),
    (lambda m: m["splits"].update(test=10**9), "splits.test", "less than or equal to 20000"),
    (lambda m: m["splits"].update(validation=3), "splits.validation", "Input should be 'train' or 'test'"),
    (lambda m: m.update(extra=1), "extra", "unknown key"),
])
def test_bad_manifest_is_refused_when_the_dataset_opens(small_dataset, tmp_path, edit, key, words):
    """An unknown objective key raised TypeError only when the weights were first used; a string hour
    failed on its first comparison. Both are refused as the dataset opens."""
    path = _copy(small_dataset, tmp_path)
    _edit_manifest(path, edit)
    with pytest.raises(DatasetError) as err:
        Dataset(path)
    assert err.value.where == str(path / "manifest.json") and err.value.key == key
    assert words in err.value.message, err.value.message


def test_a_split_of_no_workloads_is_refused_when_asked_for(tmp_path, capsys, monkeypatch):
    """Finding 10: 0 test workloads evaluated to acceptance 1.000 at every hour, exit 0."""
    from controller import cli
    from controller.model.scenario import scenario_from_dict

    doc = load_scenario("small").spec.model_dump(mode="json")
    doc["dataset"].update(train=2, test=0)
    dataset = generate_dataset(scenario_from_dict(doc, "<test>"), tmp_path / "d", progress=False)
    assert len(dataset.split("train")) == 2
    with pytest.raises(DatasetError) as err:
        dataset.split("test")
    assert err.value.one_line() == f"{tmp_path / 'd' / 'manifest.json'}: splits.test: the test split holds no workloads"
    monkeypatch.chdir(tmp_path)
    status = cli.main(["evaluate", "--data", str(tmp_path / "d"), "--policy", "random", "--quiet"])
    assert status == 2 and capsys.readouterr().err == f"srem: error: {err.value.one_line()}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"], "nothing written"
