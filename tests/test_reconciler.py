"""The controller's data-plane logic against P4Runtime server fakes: convergence, consistent moves, failures."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, replace

import pytest
from p4.v1 import p4runtime_pb2

from controller.dataplane import entries as E
from controller.dataplane.builder import Deployment
from controller.dataplane.deploy import Deployer, RegionStore, SteeringOnly
from controller.dataplane.external_memory import ExternalMemory
from controller.dataplane.layout import Layout
from controller.dataplane.p4info import P4Schema
from controller.dataplane.p4runtime_client import Pipeline, SwitchClient, SwitchError
from controller.dataplane.reconciler import DataPlane
from controller.dataplane.rules import chain_flow
from controller.errors import SremError
from controller.model.evaluator import StepEvaluator, StepResult
from controller.model.scenario import DataplaneParams
from controller.model.substrate import HostKind
from controller.model.workload import Workload
from dataplane_walk import walk
from p4runtime_fake import FakeP4RuntimeServer
from rdma_emulator import protocol as P
from rdma_emulator.client import RdmaClient
from rdma_emulator.processes import Proc

SCHEMA = P4Schema.load()
PIPELINE = Pipeline.load()


@dataclass
class Bed:
    fakes: dict[str, FakeP4RuntimeServer]
    plane: DataPlane
    layout: Layout
    evaluator: StepEvaluator
    workload: Workload

    def new_plane(self, election_id: int = 1) -> DataPlane:
        clients = {n: SwitchClient(n, f.address, 1, SCHEMA, election_id=election_id, timeout_s=2.0) for n, f in self.fakes.items()}
        return DataPlane(self.layout, self.evaluator.substrate, clients, PIPELINE, drain_s=0.0)

    def deployer(self, plane: DataPlane | None = None, regions: RegionStore | None = None,
                 params: DataplaneParams = DataplaneParams()) -> Deployer:
        return Deployer(plane or self.plane, regions or SteeringOnly(self.layout, self.evaluator.substrate), params)

    def apply(self, placement: tuple[int, ...], plane: DataPlane | None = None, resync: bool = False,
              regions: RegionStore | None = None) -> StepResult:
        w = self.workload
        result = self.evaluator.evaluate(w, 0, w.initial_placement, placement)
        self.deployer(plane, regions).deploy(w, result, resync=resync)
        return result

    def deployment(self, placement: tuple[int, ...]) -> Deployment:
        w = self.workload
        return self.deployer().deployment(w, self.evaluator.evaluate(w, 0, w.initial_placement, placement))

    def states(self) -> dict[str, E.SwitchState]:
        return self.plane.read()

    def deploy_initial(self) -> tuple[tuple[int, ...], dict[str, E.SwitchState]]:
        """Connect, apply the workload's initial placement; that placement and what the switches then hold."""
        self.plane.connect()
        start = self.workload.initial_placement
        self.apply(start)
        return start, self.states()


@pytest.fixture
def bed(small_dataset) -> Iterator[Bed]:  # type: ignore[no-untyped-def]
    sub = small_dataset.substrate
    layout = Layout(sub.spec.topology)
    workload = small_dataset.split("test", 1)[0]
    fakes = {name: FakeP4RuntimeServer(device_id=1, name=name) for name in layout.switches}
    try:
        for fake in fakes.values():
            fake.start()
        bed = Bed(fakes, None, layout, StepEvaluator(sub, small_dataset.objective_weights), workload)  # type: ignore[arg-type]
        bed.plane = bed.new_plane()
        yield bed
        bed.plane.close()
    finally:
        for fake in fakes.values():
            fake.stop()


def hosts_of(sub, kind: HostKind) -> list[int]:  # type: ignore[no-untyped-def]
    return [h.index for h in sub.hosts if h.kind is kind]


def test_converges_from_empty_switches_and_a_restarted_controller_changes_nothing(bed: Bed) -> None:
    assert sorted(bed.plane.connect()) == sorted(bed.fakes)
    bed.apply(bed.workload.initial_placement)
    assert all(len(f.entries()) > 0 for f in bed.fakes.values())
    bed.plane.close()
    writes = sum(f.write_count for f in bed.fakes.values())
    restarted = bed.new_plane(election_id=2)
    assert restarted.connect() == []  # same program already running: not pushed again
    bed.apply(bed.workload.initial_placement, plane=restarted)
    assert sum(f.write_count for f in bed.fakes.values()) == writes
    restarted.close()


def test_a_restarted_switch_is_refilled(bed: Bed) -> None:
    bed.plane.connect()
    placement = bed.workload.initial_placement
    bed.apply(placement)
    before = bed.states()
    bed.fakes["e1"].restart(clear_state=True)
    assert bed.plane.connect() == ["e1"]
    result = bed.apply(placement, resync=True)
    states = bed.states()
    assert len(states["e1"]) == len(before["e1"])
    sub = bed.evaluator.substrate
    for request, outcome in zip(bed.workload.requests, result.requests):
        walked = walk(bed.layout, states, sub.node_names[request.source], chain_flow(bed.layout, sub, request))
        assert walked.outcome == ("delivered" if outcome.carried else "rejected")  # docs/model.md, "Rejected traffic"
    writes = sum(f.write_count for f in bed.fakes.values())
    bed.apply(placement, resync=True)
    assert sum(f.write_count for f in bed.fakes.values()) == writes


def _order_recorder(bed: Bed) -> list[tuple[str, int, str, p4runtime_pb2.Update]]:
    log: list[tuple[str, int, str, p4runtime_pb2.Update]] = []
    for name, fake in bed.fakes.items():
        def record(update: p4runtime_pb2.Update, name: str = name) -> None:
            table = SCHEMA.table_by_id.get(update.entity.table_entry.table_id)
            log.append((name, update.type, table.name if table else "", update))
        fake.reject_entry = record  # type: ignore[assignment]
    return log


def test_moving_an_instance_from_a_server_into_em_and_back_is_consistent(bed: Bed) -> None:
    sub = bed.evaluator.substrate
    w = bed.workload
    bed.plane.connect()
    start = w.initial_placement
    k = w.assignment[0][0]
    assert sub.hosts[start[k]].kind is HostKind.SERVER
    bed.apply(start)
    em = hosts_of(sub, HostKind.EM)[0]
    em_switch = sub.node_names[sub.hosts[em].node]
    for target in [em, start[k]]:
        log = _order_recorder(bed)
        placement = tuple(target if i == k else h for i, h in enumerate(start))
        result = bed.apply(placement)
        states = bed.states()
        host = sub.hosts[target]
        rdma = [e for e in states[em_switch].values() if getattr(e, "table", "") == E.RDMA_INDEX]
        assert bool(rdma) == (host.kind is HostKind.EM)
        users = [(r, o) for r, a, o in zip(w.requests, w.assignment, result.requests) if k in a]
        assert any(o.accepted for _, o in users)
        for request, outcome in users:
            walked = walk(bed.layout, states, sub.node_names[request.source], chain_flow(bed.layout, sub, request))
            if outcome.accepted:
                assert walked.outcome == "delivered" and (sub.node_names[host.node], k) in walked.processed
        # Where the chains come back from the server: only while it runs the instance, only the version in force.
        spis = {request.id + 1 for request, outcome in users if outcome.accepted}
        returns = {(dict(e.match)["spi"].value, dict(e.match)["config_version"].value)  # type: ignore[union-attr]
                   for st in states.values() for e in st.values() if getattr(e, "table", "") == E.SERVER_RETURN}
        in_force = {dict(e.params)["spi"]: dict(e.params)["config_version"] for st in states.values() for e in st.values()
                    if getattr(e, "action", "") == "SremIngress.push_nsh"}
        assert all(in_force.get(spi) == version for spi, version in returns), "a return entry of a version not in force"
        on_servers = {spi for spi in spis if any(sub.hosts[result.placement[j]].kind is HostKind.SERVER
                                                 for j in w.assignment[spi - 1])}
        assert {spi for spi, _ in returns} & spis == on_servers
        # Order: every insert before the first classifier change, every delete after the last.
        kinds = [(t, table) for _, t, table, _ in log]
        flips = [i for i, (t, table) in enumerate(kinds) if table == E.CLASSIFIER]
        assert flips
        assert all(t != p4runtime_pb2.Update.INSERT or table == E.CLASSIFIER for t, table in kinds[flips[0]:])
        assert all(t != p4runtime_pb2.Update.DELETE for t, _ in kinds[:flips[-1]])
        assert any(t == p4runtime_pb2.Update.DELETE for t, _ in kinds[flips[-1]:])


def test_an_entry_a_switch_rejects_leaves_the_old_configuration_in_force(bed: Bed) -> None:
    sub = bed.evaluator.substrate
    w = bed.workload
    start, before = bed.deploy_initial()
    k = w.assignment[0][0]
    lm = hosts_of(sub, HostKind.LM)[0]
    victim = sub.node_names[sub.hosts[lm].node]

    def reject(update: p4runtime_pb2.Update) -> str | None:
        if update.entity.table_entry.table_id == SCHEMA.tables[E.STEER].id:
            return "no room for this entry"
        return None

    bed.fakes[victim].reject_entry = reject
    placement = tuple(lm if i == k else h for i, h in enumerate(start))
    with pytest.raises(SwitchError) as caught:
        bed.apply(placement)
    assert f"switch {victim}" in caught.value.one_line() and E.STEER in caught.value.one_line()
    assert "previous configuration kept" in caught.value.one_line()
    bed.fakes[victim].reject_entry = None
    assert bed.states() == before
    bed.apply(placement)  # and the next attempt converges
    assert bed.states() != before


def test_a_failed_commit_reverts_the_classifiers(bed: Bed) -> None:
    sub = bed.evaluator.substrate
    w = bed.workload
    start, before = bed.deploy_initial()
    # An instance whose chains start at two or more switches, so that the commit spans switches.
    k = next(k for k in range(len(sub.instances))
             if len({r.source for r, a in zip(w.requests, w.assignment) if k in a}) >= 2)
    placement = tuple(hosts_of(sub, HostKind.EM)[1] if i == k else h for i, h in enumerate(start))
    flipped: list[str] = []

    def fail_the_second_switch_once(name: str):  # type: ignore[no-untyped-def]
        def hook(update: p4runtime_pb2.Update) -> str | None:
            if update.entity.table_entry.table_id == SCHEMA.tables[E.CLASSIFIER].id and update.type == p4runtime_pb2.Update.MODIFY:
                first_time = name not in flipped
                flipped.append(name)
                if first_time and len(set(flipped)) == 2:
                    return "refused"
            return None
        return hook

    for name, fake in bed.fakes.items():
        fake.reject_entry = fail_the_second_switch_once(name)
    with pytest.raises(SwitchError, match="commit failed, previous configuration kept"):
        bed.apply(placement)
    for fake in bed.fakes.values():
        fake.reject_entry = None
    assert bed.states() == before


def test_bad_placements_unreachable_and_refusing_switches_fail_in_one_line(bed: Bed) -> None:
    sub = bed.evaluator.substrate
    bed.plane.connect()
    writes = sum(f.write_count for f in bed.fakes.values())
    good = bed.deployment(bed.workload.initial_placement)
    bad = replace(good, placement=(len(sub.hosts) + 3, *good.placement[1:]))
    with pytest.raises(SremError, match=r"placement of .*: unknown host"):
        bed.plane.apply(bad, {})
    assert sum(f.write_count for f in bed.fakes.values()) == writes
    bed.fakes["c1"].stop()
    client = SwitchClient("c1", bed.fakes["c1"].address, 1, SCHEMA, timeout_s=0.5)
    with pytest.raises(SwitchError, match=r"^switch c1: unreachable"):
        client.connect()
    bed.fakes["c1"].start()
    bed.fakes["c1"].refuse_mastership = True
    with pytest.raises(SwitchError, match=r"^switch c1: refuses mastership"):
        SwitchClient("c1", bed.fakes["c1"].address, 1, SCHEMA, timeout_s=2.0).connect()


def test_packet_io_and_counters_through_the_client(bed: Bed) -> None:
    bed.plane.connect()
    client = bed.plane.clients["e1"]
    client.packet_out(b"\x00" * 60, egress_port=3)
    fake = bed.fakes["e1"]
    for _ in range(100):
        if fake.packets_out:
            break
        import time
        time.sleep(0.01)
    assert fake.packets_out[0][0] == b"\x00" * 60 and 3 in fake.packets_out[0][1].values()
    fake.send_packet_in(b"\x01" * 60, {1: 7})
    assert client.packet_in(timeout_s=2.0) == (b"\x01" * 60, 7)
    assert client.read_counter(E.CHAIN_COUNTER, 5) == {5: (0, 0)}


def test_external_memory_is_written_before_a_switch_points_at_it_and_freed_after(bed: Bed, memserver: Proc) -> None:
    sub = bed.evaluator.substrate
    start, _ = bed.deploy_initial()
    em = hosts_of(sub, HostKind.EM)[0]
    switch = sub.node_names[sub.hosts[em].node]
    address = memserver.address("memserver")
    memory = ExternalMemory(bed.layout, sub, {s.server_id: address for s in bed.layout.servers.values()})
    tables = memory.tables(bed.deployment(tuple(em for _ in start)))
    seen: list[bool] = []

    def region_holds_the_table(update: p4runtime_pb2.Update) -> str | None:
        entry = SCHEMA.from_proto(update.entity)
        if update.type == p4runtime_pb2.Update.INSERT and isinstance(entry, E.TableEntry) and entry.table == E.RDMA_INDEX:
            params = dict(entry.params)
            instance = dict(entry.match)["instance"].value
            data = tables[instance][1]
            seen.append(asyncio.run(_read(address, params["region"], params["rkey"], len(data))) == data)
        return None

    def apply(placement: tuple[int, ...]) -> None:
        bed.apply(placement, regions=memory)

    regions = memserver.metrics()["srem_memserver_regions"]
    k = 0
    moved = tuple(em if i == k else h for i, h in enumerate(start))
    bed.fakes[switch].reject_entry = region_holds_the_table
    apply(moved)
    bed.fakes[switch].reject_entry = None
    assert seen == [True], "the RDMA-table entry arrives after its region holds the whole table"
    assert memserver.metrics()["srem_memserver_regions"] == regions + 1

    # A failed switch write keeps the old configuration and frees the region written for the new one.
    both = tuple(em if i in (k, 1) else h for i, h in enumerate(start))
    for fake in bed.fakes.values():
        fake.fail_next_writes = 1
    with pytest.raises(SwitchError):
        apply(both)
    for fake in bed.fakes.values():
        fake.fail_next_writes = 0
    assert memserver.metrics()["srem_memserver_regions"] == regions + 1 and set(memory.active) == {k}

    apply(start)
    assert memserver.metrics()["srem_memserver_regions"] == regions, "leaving EM frees its region"
    assert memory.active == {}


async def _read(address: tuple[str, int], region: int, rkey: int, length: int) -> bytes:
    client = await RdmaClient(*address).open()
    try:
        chunks = [await client.read(region, rkey, at, min(P.MAX_IO, length - at)) for at in range(0, length, P.MAX_IO)]
        return b"".join(chunks)
    finally:
        client.close()


def test_rules_per_mb_sets_how_many_rule_entries_the_deploy_path_writes(bed: Bed) -> None:
    """The scenario's dataplane.rules_per_mb reaches the switches: an LM-hosted instance's table grows with it."""
    sub = bed.evaluator.substrate
    bed.plane.connect()
    # The first LM with room for an instance (switch memory is scarce: not every LM holds one).
    lm, k = next((lm, k) for lm in hosts_of(sub, HostKind.LM) for k in range(len(sub.instances))
                 if sub.instances[k].type.storage_mb <= sub.hosts[lm].storage_mb)
    placement = tuple(lm if i == k else h for i, h in enumerate(bed.workload.initial_placement))
    result = bed.evaluator.evaluate(bed.workload, 0, bed.workload.initial_placement, placement)
    switch = bed.fakes[sub.node_names[sub.hosts[lm].node]]
    counts = {}
    for per_mb in (1.0, 3.0):
        bed.deployer(params=DataplaneParams(rules_per_mb=per_mb)).deploy(bed.workload, result)
        counts[per_mb] = len(switch.entries())
    served = sum(k in a for a in bed.workload.assignment)
    size = sub.instances[k].type.storage_mb
    assert counts[3.0] - counts[1.0] == max(round(3 * size), served) - max(round(size), served) > 0
