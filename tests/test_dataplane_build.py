"""The data plane's pure parts: layout, rules, entries, the builder and consistent-update planning."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from controller.dataplane import entries as E
from controller.dataplane.builder import all_steering, deployment_of_step, desired_state, plan_em_regions
from controller.dataplane.consistency import choose_versions, plan_update
from controller.dataplane.entries import Exact, Op, TableEntry, Ternary, describe, table_entry
from controller.dataplane.layout import CPU_PORT, EMAC_PORT, HOST_PORT, Layout, PortRole
from controller.dataplane.p4info import EntryError, P4Schema
from controller.dataplane.p4program import (BMV2_JSON, COMPILER, P4INFO, compile_program, local_version, pinned_version,
                                            recorded_hash, sources_hash, version_of)
from controller.dataplane.rules import chain_flow, instance_rules, kind_of
from srem_formats.flows import VnfKind
from controller.evaluation import run_day
from controller.model.evaluator import StepEvaluator
from controller.model.substrate import HostKind
from controller.policies.base import make_policy
from dataplane_walk import port_role, walk


@pytest.fixture(scope="module")
def paper_day(paper_dataset):  # type: ignore[no-untyped-def]
    """A test workload's day under random placements (servers, LM and EM all used) and its layout."""
    ds = paper_dataset
    workload = ds.split("test", 1)[0]
    evaluator = StepEvaluator(ds.substrate, ds.objective_weights)
    policy = make_policy("random:3")
    policy.bind(ds.substrate)
    results = run_day(evaluator, ds, workload, policy)
    layout = Layout(ds.substrate.spec.topology)
    rules = instance_rules(layout, ds.substrate, workload.requests, workload.assignment, 1.0)
    return ds.substrate, workload, results, layout, rules


def deploy(paper_day, result, current=None):  # type: ignore[no-untyped-def]
    sub, workload, _, layout, _ = paper_day
    deployment = deployment_of_step(layout, sub, workload, result, 1.0)
    versions = choose_versions(current or {}, all_steering(layout, sub, deployment))
    return desired_state(layout, sub, deployment, versions, plan_em_regions(layout, sub, result.placement))


def test_committed_p4_build_matches_the_sources() -> None:
    assert recorded_hash() == sources_hash(), "p4src changed: run `srem p4 compile` and commit p4src/build/"


def differing_outputs(built: Path) -> list[str]:
    """The committed outputs a compile into `built` did not reproduce: the P4Info and the BMv2 JSON byte for byte,
    COMPILER by the release it names, not its whole `--version` line: the same p4c built from a release tarball
    says no build SHA, or another build type."""
    differing = [c.name for c in (P4INFO, BMV2_JSON) if (built / c.name).read_bytes() != c.read_bytes()]
    if version_of((built / COMPILER.name).read_text()) != version_of(COMPILER.read_text()):
        differing.append(COMPILER.name)
    return differing


@pytest.mark.skipif(shutil.which("p4c-bm2-ss") is None or local_version() != pinned_version(),
                    reason="needs p4c-bm2-ss of the pinned version (p4src/build/COMPILER) on PATH")
def test_program_compiles_without_warnings_to_the_committed_outputs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = compile_program(tmp_path)
    assert result.warnings == ""
    assert differing_outputs(tmp_path) == [], "run `srem p4 compile`"


def test_the_compiler_check_compares_the_release_not_the_build(tmp_path: Path) -> None:
    release = pinned_version()
    *major, last = release.split(".")
    other = ".".join([*major, str(int(last) + 1)])
    for output in (P4INFO, BMV2_JSON):
        shutil.copyfile(output, tmp_path / output.name)
    for line, differing in [
        (f"p4c-bm2-ss Version {release} (SHA: 32893b7 BUILD: Release)", []),  # built from git
        (f"p4c-bm2-ss Version {release} (SHA:  BUILD: Release)", []),  # built from a release tarball
        (f"p4c-bm2-ss Version {release} (SHA: 0123abc BUILD: Debug)", []),
        (f"p4c-bm2-ss Version {other} (SHA: 32893b7 BUILD: Release)", ["COMPILER"]),
        (f"p4c-bm2-ss Version {other} (SHA:  BUILD: Release)", ["COMPILER"]),
    ]:
        (tmp_path / COMPILER.name).write_text(line + "\n")
        assert differing_outputs(tmp_path) == differing, line
    (tmp_path / P4INFO.name).write_text("changed")
    assert differing_outputs(tmp_path) == [P4INFO.name, COMPILER.name]


def test_layout_numbers_ports_and_picks_shortest_next_hops(paper_day) -> None:  # type: ignore[no-untyped-def]
    layout = paper_day[3]
    for switch in layout.switches.values():
        ports = list(switch.ports.values())
        assert len(set(ports)) == len(ports) and 1 not in ports and 100 not in ports
    assert layout.next_hop("e1", "m1") == "m1"
    assert layout.next_hop("e1", "e3") in ("a1", "a2")
    assert layout.next_hop("a1", "e3") in ("c1", "c2")
    assert layout.memory_server("e3").switch == "e3"


def test_every_port_has_its_role_and_a_host_port_its_hosts_address(paper_day) -> None:  # type: ignore[no-untyped-def]
    sub, _, results, layout, _ = paper_day
    states = deploy(paper_day, results[0])
    for name, switch in layout.switches.items():
        roles = {port: port_role(states[name], port) for port in (HOST_PORT, EMAC_PORT, CPU_PORT, *switch.ports.values())}
        assert roles[HOST_PORT] is PortRole.HOST and roles[EMAC_PORT] is PortRole.EMAC and roles[CPU_PORT] is PortRole.CPU
        for neighbour, port in switch.ports.items():
            assert roles[port] is (PortRole.SERVER if neighbour in layout.servers else PortRole.LINK), (name, neighbour)
        [host] = [e for e in states[name].values() if isinstance(e, TableEntry) and e.action == "SremIngress.host_port"]
        assert dict(host.params) == {"host_addr": int(switch.host_ip)}
        assert sum(isinstance(e, TableEntry) and e.table == E.PORT_ROLE for e in states[name].values()) == len(roles)


def test_every_hop_is_addressed_to_the_next_switch_or_server(paper_day) -> None:  # type: ignore[no-untyped-def]
    sub, _, results, layout, _ = paper_day
    states = deploy(paper_day, results[0])
    macs = {int(s.mac.replace(":", ""), 16): n for n, s in [*layout.switches.items(), *layout.servers.items()]}
    hosts = {int(s.host_mac.replace(":", ""), 16): n for n, s in layout.switches.items()}
    by_port = {n: {p: m for m, p in s.ports.items()} for n, s in layout.switches.items()}
    checked = 0
    for name, state in states.items():
        for e in state.values():
            if not isinstance(e, TableEntry) or e.action not in ("SremIngress.forward", "SremIngress.route", "SremIngress.to_server"):
                continue
            p = dict(e.params)
            mac = p.get("dst_mac", p.get("server_mac"))
            if p["port"] == HOST_PORT:
                assert hosts[mac] == name
            else:
                assert macs[mac] == by_port[name][p["port"]], describe(e)
            checked += 1
    assert checked > 100


def test_em_instances_carry_their_meter_cells(paper_day) -> None:  # type: ignore[no-untyped-def]
    sub, _, results, _, rules = paper_day
    seen = set()
    for result in results:
        for state in deploy(paper_day, result).values():
            for e in state.values():
                if isinstance(e, TableEntry) and e.table == E.RDMA_INDEX:
                    k = dict(e.match)["instance"].value  # type: ignore[union-attr]
                    p = dict(e.params)
                    if kind_of(sub, k) is VnfKind.RATE_LIMITER:
                        cells = sorted(r.meter_index for r in rules[k])
                        assert (p["meter_base"], p["meter_count"]) == (cells[0], len(cells))
                    else:
                        assert (p["meter_base"], p["meter_count"]) == (0, 0)
                    seen.add(kind_of(sub, k))
    assert VnfKind.RATE_LIMITER in seen and len(seen) > 1


def test_the_walk_stops_where_a_port_may_not_send_what_it_got(paper_day) -> None:  # type: ignore[no-untyped-def]
    sub, workload, results, layout, _ = paper_day
    result = results[0]
    states = deploy(paper_day, result)
    request, instances = next((r, a) for r, a, o in zip(workload.requests, workload.assignment, result.requests)
                              if o.accepted and any(sub.hosts[result.placement[k]].kind is HostKind.SERVER for k in a)
                              and r.source != r.target)
    source = sub.node_names[request.source]
    flow = chain_flow(layout, sub, request)
    assert walk(layout, states, source, flow).outcome == "delivered"
    # Without the server's return entries the chain stops at the server's switch.
    no_returns = {n: {k: e for k, e in st.items() if getattr(e, "table", "") != E.SERVER_RETURN} for n, st in states.items()}
    assert walk(layout, no_returns, source, flow).outcome.startswith("server return refused at ")
    # The first switch-to-switch hop arrives on a port that is not a link port: NSH is refused there.
    first, mac = walk(layout, states, source, flow).hops[0]
    nxt = next(n for n, s in layout.switches.items() if int(s.mac.replace(":", ""), 16) == mac)
    port = layout.port(nxt, first)
    demoted = {n: dict(st) for n, st in states.items()}
    demoted[nxt][("table", E.PORT_ROLE, (("port", Exact(port)),), 0)] = table_entry(
        E.PORT_ROLE, {"port": Exact(port)}, "SremIngress.host_port", {"host_addr": 1})
    assert walk(layout, demoted, source, flow).outcome == f"untrusted port at {nxt}"


def test_rules_scale_with_storage_and_cover_every_chain(paper_day) -> None:  # type: ignore[no-untyped-def]
    sub, workload, _, layout, rules = paper_day
    for k, inst in enumerate(sub.instances):
        served = sum(k in a for a in workload.assignment)
        assert len(rules[k]) == max(round(inst.type.storage_mb), served)
    meters = [r.meter_index for k in range(len(rules)) if kind_of(sub, k) is VnfKind.RATE_LIMITER for r in rules[k]]
    assert len(meters) == len(set(meters))
    doubled = instance_rules(layout, sub, workload.requests, workload.assignment, 2.0)
    assert len(doubled[0]) == max(round(2 * sub.instances[0].type.storage_mb), sum(0 in a for a in workload.assignment))


@pytest.mark.parametrize("reading", ["carried", "dropped"])
def test_every_carried_chain_walks_its_instances_in_order(paper_day, paper_dataset, reading) -> None:  # type: ignore[no-untyped-def]
    """docs/model.md, "Rejected traffic": the chains the evaluator carries are steered through their
    instances (under `carried` also the late and over-capacity ones), the others are dropped at their source."""
    sub, workload, results, layout, _ = paper_day
    if reading != paper_dataset.objective_weights.rejected_traffic:
        weights = dataclasses.replace(paper_dataset.objective_weights, rejected_traffic=reading)
        policy = make_policy("random:3")
        policy.bind(sub)
        results = run_day(StepEvaluator(sub, weights), paper_dataset, workload, policy)
    kinds_seen, outcomes_seen = set(), set()
    for result in results:
        states = deploy(paper_day, result)
        for request, instances, outcome in zip(workload.requests, workload.assignment, result.requests):
            source, target = sub.node_names[request.source], sub.node_names[request.target]
            w = walk(layout, states, source, chain_flow(layout, sub, request))
            outcomes_seen.add((outcome.accepted, outcome.carried))
            if not outcome.carried:
                assert w.outcome == "rejected"
                continue
            assert w.outcome == "delivered" and w.end == target
            assert [k for _, k in w.processed] == list(instances)
            for (where, k) in w.processed:
                host = sub.hosts[result.placement[k]]
                assert where == sub.node_names[host.node]
                kinds_seen.add(host.kind)
    assert kinds_seen == {HostKind.SERVER, HostKind.LM, HostKind.EM}
    # (accepted, carried): an accepted chain is always carried; rejected ones occur, walked under
    # `carried` (and dropped only without a path), all dropped under `dropped`.
    rejected_carried = reading == "carried"
    assert {(True, True), (False, rejected_carried)} <= outcomes_seen and (True, False) not in outcomes_seen
    assert rejected_carried or (False, True) not in outcomes_seen


def test_entries_survive_the_p4info_both_ways(paper_day) -> None:  # type: ignore[no-untyped-def]
    schema = P4Schema.load()
    for state in deploy(paper_day, paper_day[2][0]).values():
        for entity in state.values():
            assert schema.from_proto(schema.to_proto(entity)) == entity
            assert schema.to_proto(entity).SerializeToString() == schema.encode(entity)


def test_the_p4info_rejects_bad_entries_naming_them() -> None:
    schema = P4Schema.load()
    bad = [
        table_entry(E.STEER, {"spi": Exact(1), "si": Exact(256), "config_version": Exact(1)}, "SremIngress.forward", {"port": 2}),
        table_entry(E.STEER, {"spi": Exact(1), "si": Exact(1)}, "SremIngress.forward", {"port": 2}),
        table_entry(E.STEER, {"spi": Exact(1), "si": Exact(1), "config_version": Exact(1)}, "SremIngress.route", {"port": 2}),
        table_entry(E.STEER, {"spi": Exact(1), "si": Exact(1), "config_version": Exact(1)}, "SremIngress.forward", {}),
        table_entry(E.FIREWALL, {"instance": Exact(1), "src_addr": Ternary(3, 1)}, "SremIngress.vnfs.fw_deny", priority=1),
        table_entry(E.FIREWALL, {"instance": Exact(1)}, "SremIngress.vnfs.fw_deny"),
    ]
    for entry in bad:
        with pytest.raises(EntryError, match=entry.table):
            schema.to_proto(entry)


def test_a_move_installs_a_new_version_before_the_switch_over_and_removes_the_old_after(paper_day) -> None:  # type: ignore[no-untyped-def]
    sub, workload, results, layout, _ = paper_day
    first = results[0]
    before = deploy(paper_day, first)
    k = workload.assignment[0][0]
    em_host = next(h.index for h in sub.hosts if h.kind is HostKind.EM and h.index != first.placement[k])
    placement = tuple(em_host if i == k else h for i, h in enumerate(first.placement))
    moved = StepEvaluator(sub).evaluate(workload, 0, first.placement, placement)
    after = deploy(paper_day, moved, current=before)
    plan = plan_update(before, after)
    users = [r for r, a in zip(workload.requests, workload.assignment) if k in a]
    # prepare touches nothing the old configuration uses; commit flips only classifiers; cleanup only
    # deletes entries and resets meter cells no rule uses any more.
    for switch, updates in plan.prepare.items():
        for u in updates:
            assert u.op is Op.INSERT or u.entity.key not in before[switch] or not isinstance(u.entity, TableEntry)
    assert all(u.entity.table == E.CLASSIFIER for ups in plan.commit.values() for u in ups)
    assert all(u.op is Op.DELETE or u.entity == getattr(u.entity, "reset", lambda: None)() for ups in plan.cleanup.values() for u in ups)
    # Between prepare and commit, every packet still walks the old configuration; after commit, the new one.
    prepared = {s: dict(before[s]) for s in before}
    for switch, updates in plan.prepare.items():
        for u in updates:
            prepared[switch][u.entity.key] = u.entity
    committed = {s: dict(after[s]) | {k2: v for k2, v in prepared[s].items() if k2 not in after[s]} for s in after}
    delivered_new = 0
    for request in users:
        source = sub.node_names[request.source]
        flow = chain_flow(layout, sub, request)
        old, mid, new = (walk(layout, st, source, flow) for st in (before, prepared, committed))
        assert mid.processed == old.processed and mid.version == old.version
        if new.outcome == "delivered":
            assert new.version != old.version
            assert (sub.node_names[sub.hosts[em_host].node], k) in new.processed
            delivered_new += 1
    assert delivered_new > 0
    # Chains that do not use the moved instance keep their version and entries.
    untouched = [r for r, a in zip(workload.requests, workload.assignment) if k not in a]
    assert any(walk(layout, before, sub.node_names[r.source], chain_flow(layout, sub, r)).version ==
               walk(layout, after, sub.node_names[r.source], chain_flow(layout, sub, r)).version for r in untouched)


def test_unchanged_deployment_plans_nothing(paper_day) -> None:  # type: ignore[no-untyped-def]
    state = deploy(paper_day, paper_day[2][1])
    again = deploy(paper_day, paper_day[2][1], current=state)
    assert plan_update(state, again).empty


def test_wire_formats_match_the_compiled_headers() -> None:
    import json

    from controller.dataplane.p4program import BMV2_JSON
    from srem_formats.wire import EmacRequest, EmacResponse, Nsh

    types = {t["name"]: sum(f[1] for f in t["fields"]) // 8 for t in json.loads(BMV2_JSON.read_text())["header_types"]}
    assert types["emac_request_t"] == EmacRequest.SIZE
    assert types["emac_response_t"] == EmacResponse.SIZE
    assert types["nsh_t"] + types["nsh_version_t"] == Nsh.SIZE
    assert Nsh.unpack(Nsh(0xABCDE, 7, 3, 60).pack()) == Nsh(0xABCDE, 7, 3, 60)


def test_the_rule_scale_factor_is_a_validated_testbed_parameter_outside_the_model_hash() -> None:
    from controller.errors import ConfigError
    from controller.model.scenario import ScenarioSpec, load_scenario
    from controller.validation import validate

    paper = load_scenario("paper")
    doc = paper.spec.model_dump(mode="json")
    scaled = type(paper)(**{**paper.__dict__, "spec": validate(ScenarioSpec, {**doc, "dataplane": {"rules_per_mb": 4.0}}, "<test>")})
    assert scaled.spec.dataplane.rules_per_mb == 4.0 and scaled.content_hash() == paper.content_hash()
    with pytest.raises(ConfigError, match="rules_per_mb"):
        validate(ScenarioSpec, {**doc, "dataplane": {"rules_per_mb": 0}}, "<test>")
