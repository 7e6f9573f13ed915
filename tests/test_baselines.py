"""The EM-aware baselines: greedy-slack, the fixed placements, placement files and the best-fixed search."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli_rough_edges import one_line_error, run

import factories as f
from controller.errors import SremError
from controller.evaluation import run_day
from controller.model.constraints import storage_violations
from controller.model.dataset import generate_dataset
from controller.model.evaluator import StepEvaluator
from controller.model.feasibility import capacities, place_one_by_one
from controller.model.scenario import PRESET_DIR, scenario_from_dict
from controller.model.substrate import HostKind, substrate_hash
from controller.model.workload import Request, Workload
from controller.policies import make_policy, observe, start_day
from controller.policies.fixed import load_placement, placement_document, simple_forms, simple_placement
from controller.policies.fixed_search import SearchSettings, search_fixed

# s1 - s2, server m1 under s1 (slow), m2 under s2.
LINKS = [("s1", "s2", 40.0, 0.1), ("s1", "m1", 40.0, 0.1), ("s2", "m2", 40.0, 0.1)]


def decide(policy, sub, wl, step, placement):  # type: ignore[no-untyped-def]
    start_day(policy, sub, wl)
    return policy.decide(observe(sub, wl, step, 10, True, placement, None))


# --- greedy-slack ----------------------------------------------------------------------------------------------


def test_greedy_slack_never_overfills_storage_or_rdma_tables_on_small(small_dataset) -> None:
    evaluator = StepEvaluator(small_dataset.substrate, small_dataset.objective_weights)
    policy = make_policy("greedy-slack")
    policy.bind(small_dataset.substrate)
    kinds = set()
    for wl in small_dataset.test:
        for result in run_day(evaluator, small_dataset, wl, policy):
            assert result.feasible, result.violations
            kinds |= {small_dataset.substrate.hosts[h].kind for h in result.placement}
    assert HostKind.EM in kinds and HostKind.SERVER in kinds  # EM in working hours, servers in the evening


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(em=st.lists(st.floats(40.0, 200.0), min_size=2, max_size=2), lm=st.lists(st.floats(5.0, 40.0), min_size=2, max_size=2),
       table=st.lists(st.floats(0.05, 1.5), min_size=2, max_size=2), data=st.data())
def test_greedy_slack_respects_storage_and_rdma_tables_where_they_bind(em, lm, table, data) -> None:  # type: ignore[no-untyped-def]
    """EM of 40-200 MB and RDMA tables of 0.05-1.5 MB against instances of 10-50 MB (index 0.1-0.5 MB):
    working-hours traffic wants every instance in a switch, and there is not room for all."""
    topo = f.topology_dict(["s1", "s2"], ["m1", "m2"], LINKS)
    sub = f.substrate(topo, [f.vnf("big", 50.0, instances=2, server_mbps=300.0), f.vnf("small", 10.0, instances=2, server_mbps=300.0)],
                      switches={s: f.switch(lm=lm[i], em=em[i], table=table[i]) for i, s in enumerate(("s1", "s2"))},
                      servers={"m1": f.server(delay=0.5), "m2": f.server(delay=0.5)})
    n = data.draw(st.integers(1, 8))
    requests = []
    for r in range(n):
        chain = data.draw(st.sampled_from([(0,), (1,), (0, 1), (1, 0)]))
        source = data.draw(st.sampled_from([0, 1]))
        requests.append(Request(r, tuple(chain), source, 1 - source, (data.draw(st.floats(50.0, 250.0)),),
                                (data.draw(st.floats(5.0, 30.0)),)))
    assignment = tuple(tuple(sub.instances_of_type[t][data.draw(st.integers(0, 1))] for t in req.chain) for req in requests)
    # From wherever a feasible step left them: a random placement through the dynamic filter (storage
    # holds), then instances of an EM whose RDMA table overflows back on a server, one at a time.
    # (Drawing hosts blindly and filtering the infeasible out rejected most draws.)
    tables = capacities(sub)
    scores = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).random((len(sub.instances), len(sub.hosts)))
    start = list(place_one_by_one(tables, scores, tables.can_ever_hold(), True))
    server = sub.host_index["m1"]
    while overloaded := storage_violations(sub, start):
        host = next(iter(overloaded))
        start[start.index(host)] = server
    start = tuple(start)
    wl = Workload(0, tuple(requests), start, assignment, f.one_class(len(requests), 1))
    placement = decide(make_policy("greedy-slack"), sub, wl, 0, start)
    assert storage_violations(sub, placement) == {}
    assert StepEvaluator(sub).evaluate(wl, 0, start, placement).feasible


def deadline_case(table_mb: float = 40.0):  # type: ignore[no-untyped-def]
    """One 10 MB firewall on slow server m1: 200 Mbps (25 MB/s) at 2 ms/MB takes 50 ms there, against a
    20 ms deadline; LM (5 MB) cannot hold it; a switch's EM takes 1.6 ms to program and ~0.1 ms to process."""
    topo = f.topology_dict(["s1", "s2"], ["m1", "m2"], LINKS)
    sub = f.substrate(topo, [f.vnf("fw", 10.0)], servers={"m1": f.server(delay=2.0, price_per_gb=0.001),
                                                          "m2": f.server(delay=2.0, price_per_gb=0.001)},
                      switches={"s1": f.switch(lm=5.0, table=table_mb), "s2": f.switch(lm=5.0)})
    wl = f.workload(sub, [(["fw"], "s1", "s2", [200.0, 0.2], [20.0, 80.0])], {"fw#0": "m1"})
    return sub, wl


def test_greedy_slack_keeps_the_deadline_where_only_em_can() -> None:
    sub, wl = deadline_case()
    evaluator = StepEvaluator(sub)
    policy = make_policy("greedy-slack")
    working = decide(policy, sub, wl, 0, wl.initial_placement)
    assert sub.hosts[working[0]].kind is HostKind.EM
    assert evaluator.evaluate(wl, 0, wl.initial_placement, working).accepted == 1
    assert evaluator.evaluate(wl, 0, wl.initial_placement, wl.initial_placement).accepted == 0
    # In the evening (0.2 Mbps, 80 ms) every host keeps the deadline: the cheapest, a server, and moving there is free.
    evening = policy.decide(observe(sub, wl, 1, 16, False, working, None))
    assert sub.hosts[evening[0]].kind is HostKind.SERVER


def test_greedy_slack_skips_an_em_whose_rdma_table_is_full() -> None:
    """s1's EM has storage but its RDMA table (0.05 MB) cannot index a 10 MB instance (0.1 MB): s2's EM."""
    sub, wl = deadline_case(table_mb=0.05)
    placement = decide(make_policy("greedy-slack"), sub, wl, 0, wl.initial_placement)
    assert sub.hosts[placement[0]].name == "em:s2"


def test_greedy_slack_decides_a_paper_step_well_under_100_ms(paper_dataset) -> None:
    policy = make_policy("greedy-slack")
    policy.bind(paper_dataset.substrate)
    took = []
    for wl in paper_dataset.test[:2]:
        start_day(policy, paper_dataset.substrate, wl)
        placement = wl.initial_placement
        for step, hour in enumerate(paper_dataset.hours):
            began = time.perf_counter()
            placement = policy.decide(observe(paper_dataset.substrate, wl, step, hour, paper_dataset.is_working_hour(hour),
                                                  placement, None))
            took.append(time.perf_counter() - began)
    assert statistics.median(took) < 0.1


def test_greedy_slack_takes_no_argument() -> None:
    with pytest.raises(SremError, match="takes no argument") as err:
        make_policy("greedy-slack:x")
    assert err.value.where == "--policy"


# --- fixed placements ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "message"), [
    ("fixed", "needs an argument"),
    ("fixed:foo", "unknown placement 'foo'"),
    ("fixed:em:", "unknown placement 'em:'"),
    ("fixed:xm:c2", "unknown placement 'xm:c2'"),
])
def test_fixed_arguments_are_checked_in_one_line(spec: str, message: str) -> None:
    with pytest.raises(SremError, match=message) as err:
        make_policy(spec)
    assert err.value.where == "--policy" and "\n" not in str(err.value)


def test_an_unknown_switch_is_refused_when_bound(small_dataset) -> None:
    policy = make_policy("fixed:em:zz")
    with pytest.raises(SremError, match=r"no switch 'zz' \(switches: c1, c2") as err:
        policy.bind(small_dataset.substrate)
    assert err.value.where == "--policy"


def test_the_simple_fixed_placements(small_dataset) -> None:
    sub = small_dataset.substrate
    wl = small_dataset.test[0]

    def hosts(form: str) -> list[str]:
        policy = make_policy(f"fixed:{form}")
        policy.bind(sub)
        return [sub.hosts[h].name for h in decide(policy, sub, wl, 3, wl.initial_placement)]

    assert hosts("servers") == [sub.hosts[h].name for h in wl.initial_placement]
    for form in ("em:c2", "lm:c2"):
        placed = hosts(form)
        inside = [k for k, h in enumerate(placed) if h == form]
        rest = [k for k, h in enumerate(placed) if h != form]
        assert inside and all(placed[k] == sub.hosts[wl.initial_placement[k]].name for k in rest)
        # the most instances that fit: none left outside is smaller than the smallest one inside could make room for
        room = sub.hosts[sub.host_index[form]].storage_mb - sum(sub.instances[k].type.storage_mb for k in inside)
        assert all(sub.instances[k].type.storage_mb > room for k in rest)
    robin = hosts("round-robin")
    for k, h in enumerate(robin):
        assert h in (f"em:{sub.switch_names[k % len(sub.switch_names)]}", sub.hosts[wl.initial_placement[k]].name)
    assert any(h.startswith("em:") for h in robin)
    assert simple_forms(sub)[:2] == ["servers", "em:c1"] and len(simple_forms(sub)) == 2 + 2 * len(sub.switch_names)
    for form in simple_forms(sub):
        assert storage_violations(sub, simple_placement(sub, form)) == {}


def test_a_fixed_placement_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    topo = f.topology_dict(["s1", "s2"], ["m1", "m2"], LINKS)
    sub = f.substrate(topo, [f.vnf("fw", 100.0, instances=2)], switches={"s1": f.switch(em=150.0), "s2": f.switch()})
    policy = make_policy("fixed:em:s1")
    policy.bind(sub)
    assert [sub.hosts[h].name for h in policy.placement].count("em:s1") == 1, "one fits, the other stays on a server"
    path = tmp_path / "p.json"
    path.write_text(json.dumps(placement_document(sub, "t", (sub.host_index["em:s1"],) * 2)))
    with pytest.raises(SremError, match="placement does not fit: storage of em:s1: 200.0 MB placed, 150.0 MB available") as err:
        make_policy(f"fixed:{path}").bind(sub)
    assert err.value.where == str(path)


def test_a_placement_file_round_trips_and_is_refused_on_another_network(tmp_path: Path, small_dataset, paper_dataset) -> None:
    sub = small_dataset.substrate
    placement = simple_placement(sub, "round-robin")
    path = tmp_path / "p.json"
    path.write_text(json.dumps(placement_document(sub, "small", placement, acceptance_working_hours=0.5)))
    policy = make_policy(f"fixed:{path}")
    policy.bind(sub)
    assert decide(policy, sub, small_dataset.test[0], 0, small_dataset.test[0].initial_placement) == placement
    with pytest.raises(SremError) as err:
        make_policy(f"fixed:{path}").bind(paper_dataset.substrate)
    text = str(err.value)
    assert err.value.where == str(path) and "\n" not in text and "another network: scenario small" in text
    assert substrate_hash(sub)[:12] in text and substrate_hash(paper_dataset.substrate)[:12] in text


@pytest.mark.parametrize(("content", "message"), [
    ("{", "not a readable placement file"),
    ('{"format": "srem-policy"}', "not a srem-placement file"),
    ('{"format": "srem-placement", "version": 2}', "placement file version 2, this srem reads 1"),
])
def test_broken_placement_files_are_refused_in_one_line(tmp_path: Path, small_dataset, content: str, message: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(SremError, match=message) as err:
        load_placement(path, small_dataset.substrate)
    assert err.value.where == str(path)
    with pytest.raises(SremError, match="no such placement file"):
        load_placement(tmp_path / "missing.json", small_dataset.substrate)


@pytest.mark.parametrize(("edit", "key", "message"), [
    (lambda p: p.pop("nat#0"), "placement", "no host for 'nat#0'"),
    (lambda p: p.update({"dpi#0": "m1"}), "placement", "unknown instance 'dpi#0'"),
    (lambda p: p.update({"nat#0": "em:zz"}), "placement.nat#0", "unknown host 'em:zz'"),
    (lambda p: p.update({"nat#0": "lm:c1", "firewall#0": "lm:c1"}), None, "does not fit: storage of lm:c1"),
])
def test_a_placement_file_names_what_is_wrong(tmp_path: Path, small_dataset, edit, key, message: str) -> None:  # type: ignore[no-untyped-def]
    sub = small_dataset.substrate
    doc = placement_document(sub, "small", simple_placement(sub, "servers"))
    edit(doc["placement"])
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(SremError, match=message) as err:
        load_placement(path, sub)
    assert err.value.where == str(path) and err.value.key == key


# --- the best fixed placement ----------------------------------------------------------------------------------


def test_the_search_improves_on_its_starting_points(small_dataset) -> None:
    result = search_fixed(small_dataset, SearchSettings(budget=60, sample=10, seed=0))
    sub = small_dataset.substrate
    assert set(result.starts) >= {"servers", "em:c2", "lm:c2", "round-robin", "greedy-slack"}
    assert result.workloads == 10 and result.evaluations <= 60
    assert all(result.score.better_than(s) for s in result.starts.values())
    assert storage_violations(sub, result.placement) == {}


def test_the_search_is_reproducible_and_stops_at_a_local_optimum(tmp_path: Path) -> None:
    # `small` with one instance per class and type (12), so that a local optimum is reached within the budget.
    data = yaml.safe_load((PRESET_DIR / "small.yaml").read_text())
    for vnf in data["vnfs"]:
        vnf["instances"] = 3
    data["dataset"] = {"train": 4, "test": 1, "seed": 1}
    dataset = generate_dataset(scenario_from_dict(data, "tiny"), tmp_path / "tiny", progress=False)
    one = search_fixed(dataset, SearchSettings(budget=1500, sample=3, seed=1))
    assert one.converged and one.evaluations < 1500
    assert search_fixed(dataset, SearchSettings(budget=1500, sample=3, seed=1)).placement == one.placement


def test_train_best_fixed_writes_a_file_that_fixed_evaluates(capsys, tmp_path: Path, monkeypatch, small_dataset) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    args = ["train", "--scenario", "small", "--agent", "best-fixed", "--budget", "25", "--sample", "4", "--quiet"]
    status, out, err = run(capsys, *args, "--json")
    assert status == 0, err
    doc = json.loads(out)
    path = tmp_path / "results" / "small-best-fixed.json"
    assert doc["placement_file"] == "results/small-best-fixed.json" and path.exists()
    saved = json.loads(path.read_text())
    assert saved["format"] == "srem-placement" and saved["placement"] == doc["placement"]
    assert saved["search"]["evaluations"] <= 25 and saved["search"]["sample"] == 4
    assert 0.0 <= saved["acceptance_working_hours"] <= 1.0
    before = path.read_bytes()
    one_line_error(run(capsys, *args), "results/small-best-fixed.json", "--force")
    assert path.read_bytes() == before
    status, out, err = run(capsys, "evaluate", "--scenario", "small", "--policy", f"fixed:{path}", "--limit", "2", "--json", "--quiet")
    assert status == 0, err
    report = json.loads(out)
    assert report["policy"] == "fixed" and len(report["per_hour"]) == 6 and report["workloads"] == 2


@pytest.mark.parametrize(("flags", "where"), [
    (["--agent", "best-fixed", "--episodes", "3"], "--episodes"),
    (["--agent", "best-fixed", "--variant", "static"], "--variant"),
    (["--agent", "best-fixed", "--resume"], "--resume"),
    (["--budget", "3"], "--budget"),
    (["--agent", "ddqn-cm", "--sample", "3"], "--sample"),
    (["--agent", "best-fixed", "--out", "best.txt"], "--out"),
])
def test_train_refuses_flags_its_agent_does_not_use(capsys, tmp_path: Path, monkeypatch, flags: list[str], where: str) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    one_line_error(run(capsys, "train", "--scenario", "small", *flags), where)
    assert not any(tmp_path.iterdir())
