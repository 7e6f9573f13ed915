"""Tests of the P4Runtime fake through raw gRPC stubs: arbitration and roles, TLS, pipeline, validation, batches, reads, faults."""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import text_format
from google.rpc import status_pb2
from p4.config.v1 import p4info_pb2
from p4.v1 import p4runtime_pb2, p4runtime_pb2_grpc

from controller.dataplane import tls
from p4runtime_fake import STATUS_DETAILS_KEY, FakeP4RuntimeServer

P4INFO_PATH = Path(__file__).resolve().parents[1] / "p4src" / "build" / "srem.p4info.txtpb"
P4INFO = text_format.Parse(P4INFO_PATH.read_text(), p4info_pb2.P4Info())
DEVICE = 1
PRIMARY_ID = 10
TIMEOUT_S = 2.0

Code = grpc.StatusCode
Update = p4runtime_pb2.Update
Atomicity = p4runtime_pb2.WriteRequest.Atomicity
PipelineAction = p4runtime_pb2.SetForwardingPipelineConfigRequest.Action
ResponseType = p4runtime_pb2.GetForwardingPipelineConfigRequest.ResponseType

STEER = "SremIngress.nsh_steer"
FIREWALL = "SremIngress.vnfs.firewall"
LPM = "SremIngress.ipv4_lpm"
IDENTITY = "SremIngress.switch_identity"
RDMA = "SremIngress.rdma_index"
METER = "SremIngress.vnfs.flow_meter"
COUNTER = "SremIngress.chain_counter"
RANGES = "Test.ranges"


def table_info(name: str, p4info: p4info_pb2.P4Info = P4INFO) -> p4info_pb2.Table:
    return next(table for table in p4info.tables if table.preamble.name == name)


def table_id(name: str) -> int:
    return table_info(name).preamble.id


def field_id(table: str, field: str) -> int:
    return next(match.id for match in table_info(table).match_fields if match.name == field)


def action_id(name: str) -> int:
    return next(action.preamble.id for action in P4INFO.actions if action.preamble.name == name)


def meter_id(name: str) -> int:
    return next(meter.preamble.id for meter in P4INFO.meters if meter.preamble.name == name)


def counter_id(name: str) -> int:
    return next(counter.preamble.id for counter in P4INFO.counters if counter.preamble.name == name)


def enc(value: int, width: int = 0) -> bytes:
    return value.to_bytes(max(width, 1, (value.bit_length() + 7) // 8), "big")


def exact(table: str, field: str, value: int) -> p4runtime_pb2.FieldMatch:
    return p4runtime_pb2.FieldMatch(field_id=field_id(table, field),
                                    exact=p4runtime_pb2.FieldMatch.Exact(value=enc(value)))


def ternary(table: str, field: str, value: int, mask: int) -> p4runtime_pb2.FieldMatch:
    return p4runtime_pb2.FieldMatch(field_id=field_id(table, field),
                                    ternary=p4runtime_pb2.FieldMatch.Ternary(value=enc(value), mask=enc(mask)))


def lpm(table: str, field: str, value: int, prefix_len: int) -> p4runtime_pb2.FieldMatch:
    return p4runtime_pb2.FieldMatch(field_id=field_id(table, field),
                                    lpm=p4runtime_pb2.FieldMatch.LPM(value=enc(value), prefix_len=prefix_len))


def action(name: str, *params: int) -> p4runtime_pb2.TableAction:
    call = p4runtime_pb2.Action(action_id=action_id(name))
    for param_id, value in enumerate(params, start=1):
        call.params.add(param_id=param_id, value=enc(value))
    return p4runtime_pb2.TableAction(action=call)


def steer(spi: int = 7, si: int = 255, version: int = 1, port: int = 3,
          dst_mac: int = 0x0253_0000_0002) -> p4runtime_pb2.TableEntry:
    return p4runtime_pb2.TableEntry(
        table_id=table_id(STEER),
        match=[exact(STEER, "spi", spi), exact(STEER, "si", si), exact(STEER, "config_version", version)],
        action=action("SremIngress.forward", port, dst_mac))


def firewall(src: int = 0x0A000000, mask: int = 0xFF000000, priority: int = 10) -> p4runtime_pb2.TableEntry:
    return p4runtime_pb2.TableEntry(
        table_id=table_id(FIREWALL), priority=priority,
        match=[exact(FIREWALL, "instance", 1), ternary(FIREWALL, "src_addr", src, mask)],
        action=action("SremIngress.vnfs.fw_deny"))


def route(addr: int = 0x0A010000, prefix_len: int = 16) -> p4runtime_pb2.TableEntry:
    return p4runtime_pb2.TableEntry(table_id=table_id(LPM), match=[lpm(LPM, "dst_addr", addr, prefix_len)],
                                    action=action("SremIngress.route", 2, 0x0200_0000_0001))


def identity_default(switch_id: int = 42) -> p4runtime_pb2.TableEntry:
    return p4runtime_pb2.TableEntry(table_id=table_id(IDENTITY), is_default_action=True,
                                    action=action("SremIngress.set_switch_id", switch_id))


def update(kind: int, entry: p4runtime_pb2.TableEntry) -> p4runtime_pb2.Update:
    return Update(type=kind, entity=p4runtime_pb2.Entity(table_entry=entry))


def insert(entry: p4runtime_pb2.TableEntry) -> p4runtime_pb2.Update:
    return update(Update.INSERT, entry)


def meter_update(index: int, config: p4runtime_pb2.MeterConfig | None,
                 kind: int = Update.MODIFY) -> p4runtime_pb2.Update:
    entry = p4runtime_pb2.MeterEntry(meter_id=meter_id(METER), index=p4runtime_pb2.Index(index=index))
    if config is not None:
        entry.config.CopyFrom(config)
    return Update(type=kind, entity=p4runtime_pb2.Entity(meter_entry=entry))


def extended_p4info() -> p4info_pb2.P4Info:
    """The real P4Info plus the features it lacks: action scopes, a const default, a tiny table, range/optional."""
    p4info = p4info_pb2.P4Info()
    p4info.CopyFrom(P4INFO)
    table_info(STEER, p4info).size = 2
    next(ref for ref in table_info(FIREWALL, p4info).action_refs
         if ref.id == action_id("SremIngress.vnfs.fw_deny")).scope = p4info_pb2.ActionRef.DEFAULT_ONLY
    next(ref for ref in table_info(LPM, p4info).action_refs
         if ref.id == action_id("SremIngress.punt")).scope = p4info_pb2.ActionRef.TABLE_ONLY
    table_info(RDMA, p4info).const_default_action_id = action_id("SremIngress.rdma_index_miss")
    ranges = p4info.tables.add(size=8)
    ranges.preamble.id, ranges.preamble.name = 40000001, RANGES
    ranges.match_fields.add(id=1, name="port", bitwidth=16, match_type=p4info_pb2.MatchField.RANGE)
    ranges.match_fields.add(id=2, name="vlan", bitwidth=12, match_type=p4info_pb2.MatchField.OPTIONAL)
    ranges.action_refs.add(id=action_id("NoAction"))
    ranges.initial_default_action.action_id = action_id("NoAction")
    return p4info


class Controller:
    """One StreamChannel whose responses are collected by a thread, so every receive has a timeout."""

    def __init__(self, stub: p4runtime_pb2_grpc.P4RuntimeStub) -> None:
        self._requests: queue.Queue[p4runtime_pb2.StreamMessageRequest | None] = queue.Queue()
        self._responses: queue.Queue[p4runtime_pb2.StreamMessageResponse | grpc.RpcError | None] = queue.Queue()
        self._call = stub.StreamChannel(iter(self._requests.get, None))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.election_id = 0

    def _read(self) -> None:
        try:
            for response in self._call:
                self._responses.put(response)
        except grpc.RpcError as error:
            self._responses.put(error)
            return
        self._responses.put(None)

    def send(self, request: p4runtime_pb2.StreamMessageRequest) -> None:
        self._requests.put(request)

    def receive(self) -> p4runtime_pb2.StreamMessageResponse:
        item = self._responses.get(timeout=TIMEOUT_S)
        if isinstance(item, grpc.RpcError):
            raise item
        assert item is not None, "the stream ended"
        return item

    def assert_silent(self) -> None:
        with pytest.raises(queue.Empty):
            self._responses.get(timeout=0.1)

    def arbitrate(self, election_id: int, device_id: int = DEVICE) -> p4runtime_pb2.MasterArbitrationUpdate:
        self.election_id = election_id
        self.send(p4runtime_pb2.StreamMessageRequest(arbitration=p4runtime_pb2.MasterArbitrationUpdate(
            device_id=device_id, election_id=p4runtime_pb2.Uint128(low=election_id))))
        return self.receive().arbitration

    def sync(self) -> None:
        """Wait until the server has handled everything sent so far: it reads a stream in order."""
        self.arbitrate(self.election_id)

    def ended_with(self) -> grpc.StatusCode:
        item = self._responses.get(timeout=TIMEOUT_S)
        assert isinstance(item, grpc.RpcError), f"expected the stream to fail, got {item}"
        return item.code()

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()
        self._reader.join(TIMEOUT_S)


@dataclasses.dataclass
class Switch:
    """Unary RPCs as the controller with ``election_id`` sends them."""

    stub: p4runtime_pb2_grpc.P4RuntimeStub
    election_id: int = PRIMARY_ID

    def push(self, p4info: p4info_pb2.P4Info = P4INFO, action: int = PipelineAction.VERIFY_AND_COMMIT,
             device_config: bytes = b"{bmv2 json}") -> None:
        self.stub.SetForwardingPipelineConfig(p4runtime_pb2.SetForwardingPipelineConfigRequest(
            device_id=DEVICE, election_id=p4runtime_pb2.Uint128(low=self.election_id), action=action,
            config=p4runtime_pb2.ForwardingPipelineConfig(
                p4info=p4info, p4_device_config=device_config,
                cookie=p4runtime_pb2.ForwardingPipelineConfig.Cookie(cookie=99))), timeout=TIMEOUT_S)

    def write(self, *updates: p4runtime_pb2.Update, atomicity: int = Atomicity.CONTINUE_ON_ERROR) -> None:
        self.stub.Write(p4runtime_pb2.WriteRequest(
            device_id=DEVICE, election_id=p4runtime_pb2.Uint128(low=self.election_id), updates=updates,
            atomicity=atomicity), timeout=TIMEOUT_S)

    def write_fails(self, *updates: p4runtime_pb2.Update, atomicity: int = Atomicity.CONTINUE_ON_ERROR,
                    code: grpc.StatusCode = Code.UNKNOWN) -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as caught:
            self.write(*updates, atomicity=atomicity)
        assert caught.value.code() == code, caught.value.details()
        return caught.value

    def update_errors(self, *updates: p4runtime_pb2.Update,
                      atomicity: int = Atomicity.CONTINUE_ON_ERROR) -> list[p4runtime_pb2.Error]:
        return update_errors(self.write_fails(*updates, atomicity=atomicity))

    def read(self, *entities: p4runtime_pb2.Entity) -> list[p4runtime_pb2.Entity]:
        responses = self.stub.Read(p4runtime_pb2.ReadRequest(device_id=DEVICE, entities=entities), timeout=TIMEOUT_S)
        return [entity for response in responses for entity in response.entities]

    def read_tables(self, entry: p4runtime_pb2.TableEntry) -> list[p4runtime_pb2.TableEntry]:
        return [entity.table_entry for entity in self.read(p4runtime_pb2.Entity(table_entry=entry))]


def update_errors(error: grpc.RpcError) -> list[p4runtime_pb2.Error]:
    status = status_pb2.Status.FromString(dict(error.trailing_metadata())[STATUS_DETAILS_KEY])
    assert status.code == Code.UNKNOWN.value[0]
    errors = []
    for detail in status.details:
        unpacked = p4runtime_pb2.Error()
        assert detail.Unpack(unpacked)
        errors.append(unpacked)
    return errors


def codes(errors: list[p4runtime_pb2.Error]) -> list[int]:
    return [error.canonical_code for error in errors]


@pytest.fixture
def fake() -> Iterator[FakeP4RuntimeServer]:
    server = FakeP4RuntimeServer(device_id=DEVICE, name="test")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stub(fake: FakeP4RuntimeServer) -> Iterator[p4runtime_pb2_grpc.P4RuntimeStub]:
    channel = grpc.insecure_channel(fake.address)
    try:
        yield p4runtime_pb2_grpc.P4RuntimeStub(channel)
    finally:
        channel.close()


@pytest.fixture
def controller(stub: p4runtime_pb2_grpc.P4RuntimeStub) -> Iterator[Callable[[], Controller]]:
    opened: list[Controller] = []

    def open_controller() -> Controller:
        opened.append(Controller(stub))
        return opened[-1]

    try:
        yield open_controller
    finally:
        for stream in opened:
            stream.close()


@pytest.fixture
def primary(controller: Callable[[], Controller]) -> Controller:
    stream = controller()
    assert stream.arbitrate(PRIMARY_ID).status.code == Code.OK.value[0]
    return stream


@pytest.fixture
def switch(stub: p4runtime_pb2_grpc.P4RuntimeStub, primary: Controller) -> Switch:
    switch = Switch(stub)
    switch.push()
    return switch


def test_highest_election_id_is_primary_and_a_lower_one_is_backup(
        fake: FakeP4RuntimeServer, controller: Callable[[], Controller]) -> None:
    first, second = controller(), controller()
    assert first.arbitrate(10).status.code == Code.OK.value[0]
    backup = second.arbitrate(5)
    assert backup.status.code == Code.ALREADY_EXISTS.value[0]
    assert backup.election_id.low == 10
    assert fake.primary_election_id == 10
    first.assert_silent()


def test_a_higher_election_id_takes_over_and_every_controller_is_told(
        fake: FakeP4RuntimeServer, controller: Callable[[], Controller]) -> None:
    first, second = controller(), controller()
    first.arbitrate(10)
    assert second.arbitrate(20).status.code == Code.OK.value[0]
    demoted = first.receive().arbitration
    assert demoted.status.code == Code.ALREADY_EXISTS.value[0]
    assert demoted.election_id.low == 20
    assert fake.primary_election_id == 20


def test_the_next_highest_becomes_primary_when_the_primary_stream_ends(
        fake: FakeP4RuntimeServer, controller: Callable[[], Controller]) -> None:
    first, second, third = controller(), controller(), controller()
    first.arbitrate(30)
    second.arbitrate(20)
    third.arbitrate(10)
    first.close()
    promoted = second.receive().arbitration
    assert promoted.status.code == Code.OK.value[0]
    assert promoted.election_id.low == 20
    assert third.receive().arbitration.status.code == Code.ALREADY_EXISTS.value[0]
    assert fake.primary_election_id == 20


def test_arbitration_for_another_device_ends_the_stream_with_not_found(controller: Callable[[], Controller]) -> None:
    stream = controller()
    stream.send(p4runtime_pb2.StreamMessageRequest(arbitration=p4runtime_pb2.MasterArbitrationUpdate(
        device_id=DEVICE + 1, election_id=p4runtime_pb2.Uint128(low=1))))
    assert stream.ended_with() == Code.NOT_FOUND


def test_an_election_id_in_use_ends_the_stream_with_invalid_argument(controller: Callable[[], Controller]) -> None:
    controller().arbitrate(10)
    duplicate = controller()
    duplicate.send(p4runtime_pb2.StreamMessageRequest(arbitration=p4runtime_pb2.MasterArbitrationUpdate(
        device_id=DEVICE, election_id=p4runtime_pb2.Uint128(low=10))))
    assert duplicate.ended_with() == Code.INVALID_ARGUMENT


def test_refused_mastership_answers_permission_denied_and_nobody_may_write(
        fake: FakeP4RuntimeServer, stub: p4runtime_pb2_grpc.P4RuntimeStub,
        controller: Callable[[], Controller]) -> None:
    fake.refuse_mastership = True
    assert controller().arbitrate(10).status.code == Code.PERMISSION_DENIED.value[0]
    assert fake.primary_election_id is None
    Switch(stub).write_fails(insert(steer()), code=Code.PERMISSION_DENIED)


def test_packet_out_from_the_primary_is_recorded_and_from_a_backup_dropped(
        fake: FakeP4RuntimeServer, primary: Controller, controller: Callable[[], Controller]) -> None:
    backup = controller()
    backup.arbitrate(PRIMARY_ID - 1)
    for stream, payload in ((backup, b"ignored"), (primary, b"frame")):
        stream.send(p4runtime_pb2.StreamMessageRequest(packet=p4runtime_pb2.PacketOut(
            payload=payload, metadata=[p4runtime_pb2.PacketMetadata(metadata_id=1, value=enc(5, 2))])))
    backup.sync()
    primary.sync()
    assert fake.packets_out == [(b"frame", {1: 5})]


def test_packet_in_goes_to_the_primary_only(
        fake: FakeP4RuntimeServer, primary: Controller, controller: Callable[[], Controller]) -> None:
    backup = controller()
    backup.arbitrate(PRIMARY_ID - 1)
    fake.send_packet_in(b"\x01\x02", {1: 300, 2: 0})
    packet = primary.receive().packet
    assert packet.payload == b"\x01\x02"
    assert {meta.metadata_id: meta.value for meta in packet.metadata} == {1: b"\x01\x2c", 2: b"\x00"}
    backup.assert_silent()


def test_get_pipeline_before_one_is_set_fails_with_failed_precondition(
        stub: p4runtime_pb2_grpc.P4RuntimeStub) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetForwardingPipelineConfig(p4runtime_pb2.GetForwardingPipelineConfigRequest(device_id=DEVICE),
                                         timeout=TIMEOUT_S)
    assert caught.value.code() == Code.FAILED_PRECONDITION


@pytest.mark.parametrize(("response_type", "has_p4info", "has_device_config"), [
    (ResponseType.ALL, True, True),
    (ResponseType.P4INFO_AND_COOKIE, True, False),
    (ResponseType.DEVICE_CONFIG_AND_COOKIE, False, True),
    (ResponseType.COOKIE_ONLY, False, False),
])
def test_get_pipeline_returns_what_was_set(switch: Switch, response_type: int, has_p4info: bool,
                                           has_device_config: bool) -> None:
    config = switch.stub.GetForwardingPipelineConfig(p4runtime_pb2.GetForwardingPipelineConfigRequest(
        device_id=DEVICE, response_type=response_type), timeout=TIMEOUT_S).config
    assert config.cookie.cookie == 99
    assert (config.p4info == P4INFO) if has_p4info else not config.HasField("p4info")
    assert config.p4_device_config == (b"{bmv2 json}" if has_device_config else b"")


def test_verify_checks_without_committing(stub: p4runtime_pb2_grpc.P4RuntimeStub, primary: Controller) -> None:
    Switch(stub).push(action=PipelineAction.VERIFY)
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetForwardingPipelineConfig(p4runtime_pb2.GetForwardingPipelineConfigRequest(device_id=DEVICE),
                                         timeout=TIMEOUT_S)
    assert caught.value.code() == Code.FAILED_PRECONDITION


def test_an_empty_p4info_is_invalid(stub: p4runtime_pb2_grpc.P4RuntimeStub, primary: Controller) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        Switch(stub).push(p4info_pb2.P4Info())
    assert caught.value.code() == Code.INVALID_ARGUMENT


def test_only_the_primary_may_set_the_pipeline(stub: p4runtime_pb2_grpc.P4RuntimeStub, primary: Controller,
                                               controller: Callable[[], Controller]) -> None:
    controller().arbitrate(PRIMARY_ID - 1)
    with pytest.raises(grpc.RpcError) as caught:
        Switch(stub, election_id=PRIMARY_ID - 1).push()
    assert caught.value.code() == Code.PERMISSION_DENIED


def test_a_new_pipeline_clears_the_tables_but_reconciling_onto_the_same_one_keeps_them(
        fake: FakeP4RuntimeServer, switch: Switch) -> None:
    switch.write(insert(steer()))
    switch.push(action=PipelineAction.RECONCILE_AND_COMMIT)
    assert len(fake.entries(STEER)) == 1
    switch.push()
    assert fake.entries() == []


def test_capabilities_report_the_api_version(stub: p4runtime_pb2_grpc.P4RuntimeStub) -> None:
    response = stub.Capabilities(p4runtime_pb2.CapabilitiesRequest(), timeout=TIMEOUT_S)
    assert response.p4runtime_api_version == "1.4.1"


def test_an_inserted_entry_reads_back_with_its_key_in_canonical_form(fake: FakeP4RuntimeServer,
                                                                     switch: Switch) -> None:
    entry = steer(spi=7)
    entry.match[0].exact.value = enc(7, 3)  # leading zero bytes are accepted on input
    switch.write(insert(entry))
    read = switch.read_tables(p4runtime_pb2.TableEntry(table_id=table_id(STEER)))
    assert read == [steer(spi=7)]
    assert fake.entries(STEER) == [steer(spi=7)]
    assert (fake.write_count, fake.updates_applied) == (1, 1)


def test_ternary_and_lpm_entries_are_accepted(fake: FakeP4RuntimeServer, switch: Switch) -> None:
    switch.write(insert(firewall()), insert(route()))
    assert [entry.table_id for entry in fake.entries()] == [table_id(FIREWALL), table_id(LPM)]


def test_read_filters_by_all_tables_by_table_and_by_key(switch: Switch) -> None:
    switch.write(insert(steer(si=1)), insert(steer(si=2)), insert(route()))
    assert len(switch.read_tables(p4runtime_pb2.TableEntry())) == 3
    assert len(switch.read_tables(p4runtime_pb2.TableEntry(table_id=table_id(STEER)))) == 2
    by_key = steer(si=2)
    by_key.ClearField("action")
    assert switch.read_tables(by_key) == [steer(si=2)]


def test_reading_an_unknown_table_fails_with_not_found(switch: Switch) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        switch.read_tables(p4runtime_pb2.TableEntry(table_id=1))
    assert caught.value.code() == Code.NOT_FOUND


def test_modify_replaces_the_action_and_delete_removes_the_entry(fake: FakeP4RuntimeServer, switch: Switch) -> None:
    switch.write(insert(steer(port=3)))
    switch.write(update(Update.MODIFY, steer(port=4)))
    assert fake.entries(STEER) == [steer(port=4)]
    switch.write(update(Update.DELETE, steer(port=0)))
    assert fake.entries(STEER) == []


def test_inserting_an_existing_key_fails_with_already_exists(switch: Switch) -> None:
    switch.write(insert(steer()))
    [error] = switch.update_errors(insert(steer(port=9)))
    assert error.canonical_code == Code.ALREADY_EXISTS.value[0]
    assert STEER in error.message


@pytest.mark.parametrize("kind", [Update.MODIFY, Update.DELETE])
def test_changing_a_missing_entry_fails_with_not_found(switch: Switch, kind: int) -> None:
    [error] = switch.update_errors(update(kind, steer()))
    assert error.canonical_code == Code.NOT_FOUND.value[0]
    assert STEER in error.message


def with_match(entry: p4runtime_pb2.TableEntry, index: int, match: p4runtime_pb2.FieldMatch) -> p4runtime_pb2.TableEntry:
    entry.match[index].CopyFrom(match)
    return entry


def without_match(entry: p4runtime_pb2.TableEntry, index: int) -> p4runtime_pb2.TableEntry:
    del entry.match[index]
    return entry


def with_params(entry: p4runtime_pb2.TableEntry, *params: tuple[int, bytes]) -> p4runtime_pb2.TableEntry:
    del entry.action.action.params[:]
    for param_id, value in params:
        entry.action.action.params.add(param_id=param_id, value=value)
    return entry


def with_fields(entry: p4runtime_pb2.TableEntry, **fields: object) -> p4runtime_pb2.TableEntry:
    for name, value in fields.items():
        if isinstance(value, p4runtime_pb2.TableAction):
            getattr(entry, name).CopyFrom(value)
        else:
            setattr(entry, name, value)
    return entry


INVALID_ENTRIES: dict[str, tuple[Callable[[], p4runtime_pb2.TableEntry], list[str]]] = {
    "value too wide": (lambda: with_match(steer(), 1, exact(STEER, "si", 0x1FF)),
                       [f"table {STEER}: match field 'si' (id 2): value 0x1ff does not fit 8 bits"]),
    "empty value": (lambda: with_match(steer(), 0, p4runtime_pb2.FieldMatch(
        field_id=1, exact=p4runtime_pb2.FieldMatch.Exact(value=b""))), [STEER, "'spi'", "empty"]),
    "unknown table": (lambda: with_fields(steer(), table_id=1), ["unknown table id 1"]),
    "unknown match field": (lambda: with_match(steer(), 2, p4runtime_pb2.FieldMatch(
        field_id=9, exact=p4runtime_pb2.FieldMatch.Exact(value=b"\x01"))), [STEER, "unknown match field id 9"]),
    "duplicate match field": (lambda: with_match(steer(), 2, exact(STEER, "si", 1)),
                              [STEER, "'si'", "more than once"]),
    "missing exact field": (lambda: without_match(steer(), 2), [STEER, "'config_version'", "missing"]),
    "wrong match kind": (lambda: with_match(steer(), 1, p4runtime_pb2.FieldMatch(
        field_id=2, ternary=p4runtime_pb2.FieldMatch.Ternary(value=b"\x01", mask=b"\xff"))),
                         [STEER, "'si'", "exact", "ternary"]),
    "ternary all-zero mask": (lambda: with_match(firewall(), 1, ternary(FIREWALL, "src_addr", 0, 0)),
                              [FIREWALL, "'src_addr'", "all zeros"]),
    "ternary value outside mask": (lambda: firewall(src=0x0A000001, mask=0xFF000000),
                                   [FIREWALL, "'src_addr'", "outside mask"]),
    "ternary mask too wide": (lambda: firewall(src=1, mask=0x1_FFFF_FFFF),
                              [FIREWALL, "'src_addr'", "mask 0x1ffffffff does not fit 32 bits"]),
    "lpm prefix too long": (lambda: route(prefix_len=33), [LPM, "'dst_addr'", "prefix length 33"]),
    "lpm prefix zero": (lambda: route(addr=0, prefix_len=0), [LPM, "'dst_addr'", "omit the field"]),
    "lpm bits beyond prefix": (lambda: route(addr=0x0A010100, prefix_len=16), [LPM, "'dst_addr'", "/16"]),
    "zero priority with ternary fields": (lambda: firewall(priority=0), [FIREWALL, "priority must be > 0"]),
    "priority without ternary fields": (lambda: with_fields(steer(), priority=5), [STEER, "priority must be 0"]),
    "no action": (lambda: with_fields(steer(), action=p4runtime_pb2.TableAction()), [STEER, "no action"]),
    "unknown action": (lambda: with_fields(steer(), action=p4runtime_pb2.TableAction(
        action=p4runtime_pb2.Action(action_id=1))), [STEER, "unknown action id 1"]),
    "action not in table": (lambda: with_fields(steer(), action=action("SremIngress.vnfs.fw_permit")),
                            [STEER, "SremIngress.vnfs.fw_permit", "not one of the table's actions"]),
    "unknown param": (lambda: with_params(steer(), (1, b"\x01"), (7, b"\x01")),
                      [STEER, "SremIngress.forward", "unknown param id 7"]),
    "duplicate param": (lambda: with_params(steer(), (1, b"\x01"), (1, b"\x02")),
                        [STEER, "'port'", "more than once"]),
    "missing param": (lambda: with_params(steer()), [STEER, "SremIngress.forward", "missing params 'port'"]),
    "param too wide": (lambda: steer(port=0x200),
                       [f"table {STEER}: action SremIngress.forward: param 'port' (id 1): value 0x200 does not fit "
                        f"9 bits"]),
    "entry in a keyless table": (lambda: p4runtime_pb2.TableEntry(
        table_id=table_id(IDENTITY), action=action("SremIngress.set_switch_id", 1)), [IDENTITY, "default action"]),
    "default entry inserted": (lambda: identity_default(), [IDENTITY, "only be modified"]),
}


@pytest.mark.parametrize("case", INVALID_ENTRIES)
def test_an_invalid_entry_is_rejected_naming_table_and_field(fake: FakeP4RuntimeServer, switch: Switch,
                                                             case: str) -> None:
    build, expected = INVALID_ENTRIES[case]
    [error] = switch.update_errors(insert(build()))
    assert error.canonical_code == Code.INVALID_ARGUMENT.value[0]
    for text in expected:
        assert text in error.message
    assert fake.entries() == []


def test_a_meter_or_counter_insert_is_invalid(switch: Switch) -> None:
    errors = switch.update_errors(
        meter_update(0, None, kind=Update.INSERT),
        Update(type=Update.DELETE, entity=p4runtime_pb2.Entity(counter_entry=p4runtime_pb2.CounterEntry(
            counter_id=counter_id(COUNTER), index=p4runtime_pb2.Index(index=0)))))
    assert codes(errors) == [Code.INVALID_ARGUMENT.value[0]] * 2
    assert METER in errors[0].message and COUNTER in errors[1].message


@pytest.mark.parametrize(("build", "code", "expected"), [
    (lambda: with_fields(firewall(), action=action("SremIngress.vnfs.fw_deny")), Code.INVALID_ARGUMENT,
     "DEFAULT_ONLY"),
    (lambda: p4runtime_pb2.TableEntry(table_id=table_id(LPM), is_default_action=True,
                                      action=action("SremIngress.punt")), Code.INVALID_ARGUMENT, "TABLE_ONLY"),
    (lambda: p4runtime_pb2.TableEntry(table_id=table_id(RDMA), is_default_action=True,
                                      action=action("SremIngress.rdma_index_miss")), Code.PERMISSION_DENIED, "const"),
])
def test_action_scopes_and_const_defaults_are_enforced(
        switch: Switch, build: Callable[[], p4runtime_pb2.TableEntry], code: grpc.StatusCode, expected: str) -> None:
    switch.push(extended_p4info())
    [error] = switch.update_errors(update(Update.MODIFY, build()))
    assert error.canonical_code == code.value[0]
    assert expected in error.message


def range_entry(low: int, high: int, priority: int = 1) -> p4runtime_pb2.TableEntry:
    entry = p4runtime_pb2.TableEntry(table_id=40000001, priority=priority, action=action("NoAction"))
    entry.match.add(field_id=1, range=p4runtime_pb2.FieldMatch.Range(low=enc(low), high=enc(high)))
    entry.match.add(field_id=2, optional=p4runtime_pb2.FieldMatch.Optional(value=enc(100)))
    return entry


def test_range_and_optional_fields_are_validated(fake: FakeP4RuntimeServer, switch: Switch) -> None:
    switch.push(extended_p4info())
    errors = switch.update_errors(insert(range_entry(10, 20)), insert(range_entry(20, 10)),
                                  insert(range_entry(0, 0xFFFF)), insert(range_entry(1, 2, priority=0)))
    assert codes(errors) == [0] + [Code.INVALID_ARGUMENT.value[0]] * 3
    assert "above high" in errors[1].message and "omit the field" in errors[2].message
    assert fake.entries(RANGES) == [range_entry(10, 20)]


def test_a_full_table_fails_with_resource_exhausted(switch: Switch) -> None:
    switch.push(extended_p4info())
    switch.write(insert(steer(si=1)), insert(steer(si=2)))
    [error] = switch.update_errors(insert(steer(si=3)))
    assert error.canonical_code == Code.RESOURCE_EXHAUSTED.value[0]
    assert STEER in error.message


def test_continue_on_error_applies_the_valid_updates_and_reports_each_one(
        fake: FakeP4RuntimeServer, switch: Switch) -> None:
    error = switch.write_fails(insert(steer(si=1)), insert(steer(si=0x1FF)), insert(steer(si=3)))
    assert "1 of 3 updates failed" in error.details()
    errors = update_errors(error)
    assert codes(errors) == [0, Code.INVALID_ARGUMENT.value[0], 0]
    assert "'si'" in errors[1].message
    assert fake.entries(STEER) == [steer(si=1), steer(si=3)]
    assert fake.updates_applied == 2


@pytest.mark.parametrize("atomicity", [Atomicity.ROLLBACK_ON_ERROR, Atomicity.DATAPLANE_ATOMIC])
def test_an_invalid_update_in_an_atomic_batch_applies_none(
        fake: FakeP4RuntimeServer, switch: Switch, atomicity: int) -> None:
    errors = switch.update_errors(insert(steer(si=1)), insert(steer(si=0x1FF)), atomicity=atomicity)
    assert codes(errors) == [Code.ABORTED.value[0], Code.INVALID_ARGUMENT.value[0]]
    assert fake.entries() == []
    assert fake.updates_applied == 0


def test_a_state_conflict_in_an_atomic_batch_rolls_back_the_earlier_updates(
        fake: FakeP4RuntimeServer, switch: Switch) -> None:
    switch.write(insert(steer(si=1)))
    errors = switch.update_errors(insert(steer(si=2)), insert(steer(si=1)), atomicity=Atomicity.ROLLBACK_ON_ERROR)
    assert codes(errors) == [Code.ABORTED.value[0], Code.ALREADY_EXISTS.value[0]]
    assert fake.entries(STEER) == [steer(si=1)]


def test_an_atomic_batch_without_errors_is_applied(fake: FakeP4RuntimeServer, switch: Switch) -> None:
    switch.write(insert(steer(si=1)), insert(steer(si=2)), atomicity=Atomicity.ROLLBACK_ON_ERROR)
    assert len(fake.entries(STEER)) == 2


def test_reject_entry_fails_the_chosen_update_only(fake: FakeP4RuntimeServer, switch: Switch) -> None:
    def reject_si_2(change: p4runtime_pb2.Update) -> str | None:
        return "no room for si 2" if change.entity.table_entry.match[1].exact.value == b"\x02" else None

    fake.reject_entry = reject_si_2
    errors = switch.update_errors(insert(steer(si=1)), insert(steer(si=2)))
    assert codes(errors) == [0, Code.INVALID_ARGUMENT.value[0]]
    assert errors[1].message == "no room for si 2"
    assert fake.entries(STEER) == [steer(si=1)]


def test_the_default_entry_starts_as_the_p4info_says_and_can_be_modified(
        fake: FakeP4RuntimeServer, switch: Switch) -> None:
    wanted = p4runtime_pb2.TableEntry(table_id=table_id(IDENTITY), is_default_action=True)
    assert switch.read_tables(wanted) == [wanted]
    switch.write(update(Update.MODIFY, identity_default(42)))
    assert switch.read_tables(wanted) == [identity_default(42)]
    assert fake.default_entry(IDENTITY) == identity_default(42)
    assert fake.entries() == []


def test_the_initial_default_action_comes_from_the_p4info(fake: FakeP4RuntimeServer, switch: Switch) -> None:
    switch.push(extended_p4info())
    assert fake.default_entry(RANGES).action.action.action_id == action_id("NoAction")


def test_a_default_entry_with_a_match_is_invalid(switch: Switch) -> None:
    entry = with_fields(route(), is_default_action=True, action=action("SremIngress.no_route"))
    [error] = switch.update_errors(update(Update.MODIFY, entry))
    assert error.canonical_code == Code.INVALID_ARGUMENT.value[0]
    assert "no match fields" in error.message


def test_a_meter_config_is_stored_read_back_and_reset(fake: FakeP4RuntimeServer, switch: Switch) -> None:
    config = p4runtime_pb2.MeterConfig(cir=1000, cburst=100, pir=2000, pburst=200)
    switch.write(meter_update(3, config))
    wanted = p4runtime_pb2.MeterEntry(meter_id=meter_id(METER), index=p4runtime_pb2.Index(index=3))
    [read] = switch.read(p4runtime_pb2.Entity(meter_entry=wanted))
    assert read.meter_entry.config == config
    assert fake.meter_config(METER, 3) == config
    switch.write(meter_update(3, None))
    assert fake.meter_config(METER, 3) is None


def test_a_wildcard_meter_read_returns_every_cell(switch: Switch) -> None:
    cells = switch.read(p4runtime_pb2.Entity(meter_entry=p4runtime_pb2.MeterEntry(meter_id=meter_id(METER))))
    assert len(cells) == next(m.size for m in P4INFO.meters if m.preamble.name == METER)


@pytest.mark.parametrize(("index", "config", "expected"), [
    (4096, p4runtime_pb2.MeterConfig(cir=1, pir=1), "index 4096 is out of range"),
    (0, p4runtime_pb2.MeterConfig(cir=2000, pir=1000), "pir 1000 is below cir 2000"),
])
def test_an_invalid_meter_update_is_rejected(switch: Switch, index: int, config: p4runtime_pb2.MeterConfig,
                                             expected: str) -> None:
    [error] = switch.update_errors(meter_update(index, config))
    assert error.canonical_code == Code.INVALID_ARGUMENT.value[0]
    assert METER in error.message and expected in error.message


def test_counters_start_at_zero_and_keep_what_is_written(switch: Switch) -> None:
    index = p4runtime_pb2.Index(index=5)
    wanted = p4runtime_pb2.Entity(counter_entry=p4runtime_pb2.CounterEntry(counter_id=counter_id(COUNTER),
                                                                           index=index))
    [before] = switch.read(wanted)
    assert before.counter_entry.data == p4runtime_pb2.CounterData()
    data = p4runtime_pb2.CounterData(byte_count=1500, packet_count=1)
    switch.write(Update(type=Update.MODIFY, entity=p4runtime_pb2.Entity(counter_entry=p4runtime_pb2.CounterEntry(
        counter_id=counter_id(COUNTER), index=index, data=data))))
    [after] = switch.read(wanted)
    assert after.counter_entry.data == data


def test_a_write_from_a_backup_fails_with_permission_denied(
        fake: FakeP4RuntimeServer, switch: Switch, controller: Callable[[], Controller]) -> None:
    controller().arbitrate(PRIMARY_ID - 1)
    Switch(switch.stub, election_id=PRIMARY_ID - 1).write_fails(insert(steer()), code=Code.PERMISSION_DENIED)
    assert fake.entries() == []


def test_a_write_without_a_pipeline_fails_with_failed_precondition(
        stub: p4runtime_pb2_grpc.P4RuntimeStub, primary: Controller) -> None:
    Switch(stub).write_fails(insert(steer()), code=Code.FAILED_PRECONDITION)


def test_fail_next_writes_makes_that_many_writes_unavailable(fake: FakeP4RuntimeServer, switch: Switch) -> None:
    fake.fail_next_writes = 2
    switch.write_fails(insert(steer()), code=Code.UNAVAILABLE)
    switch.write_fails(insert(steer()), code=Code.UNAVAILABLE)
    assert fake.entries() == []
    switch.write(insert(steer()))
    assert (fake.write_count, fake.updates_applied, len(fake.entries())) == (3, 1, 1)


def test_restart_drops_streams_and_clears_the_switch_on_the_same_port(
        fake: FakeP4RuntimeServer, switch: Switch, primary: Controller) -> None:
    switch.write(insert(steer()))
    address = fake.address
    assert fake.restart() == address
    assert primary.ended_with() == Code.UNAVAILABLE
    assert fake.primary_election_id is None
    with pytest.raises(grpc.RpcError) as caught:
        switch.stub.GetForwardingPipelineConfig(p4runtime_pb2.GetForwardingPipelineConfigRequest(device_id=DEVICE),
                                                timeout=TIMEOUT_S)
    assert caught.value.code() == Code.FAILED_PRECONDITION
    assert fake.entries() == []


def test_restart_can_keep_the_switch_state(fake: FakeP4RuntimeServer, switch: Switch,
                                           controller: Callable[[], Controller]) -> None:
    switch.write(insert(steer()))
    fake.restart(clear_state=False)
    assert controller().arbitrate(PRIMARY_ID).status.code == Code.OK.value[0]
    assert switch.read_tables(p4runtime_pb2.TableEntry(table_id=table_id(STEER))) == [steer()]


def test_a_tls_fake_serves_only_clients_with_a_certificate_of_its_ca(tmp_path: Path) -> None:
    certs = tls.create(tmp_path / "certs", {"s1": ["127.0.0.1"]})
    ca, cert, key = certs.controller().read()
    with FakeP4RuntimeServer(device_id=DEVICE, name="s1", tls=certs.switch("s1")) as fake:
        with grpc.secure_channel(fake.address, grpc.ssl_channel_credentials(ca, key, cert)) as channel:
            reply = p4runtime_pb2_grpc.P4RuntimeStub(channel).Capabilities(p4runtime_pb2.CapabilitiesRequest(),
                                                                           timeout=TIMEOUT_S)
            assert reply.p4runtime_api_version
        with grpc.secure_channel(fake.address, grpc.ssl_channel_credentials(ca)) as channel:
            with pytest.raises(grpc.RpcError) as caught:
                p4runtime_pb2_grpc.P4RuntimeStub(channel).Capabilities(p4runtime_pb2.CapabilitiesRequest(),
                                                                       timeout=TIMEOUT_S)
            assert caught.value.code() == Code.UNAVAILABLE


def test_each_role_has_its_own_primary(fake: FakeP4RuntimeServer, stub: p4runtime_pb2_grpc.P4RuntimeStub,
                                       primary: Controller, controller: Callable[[], Controller]) -> None:
    sdn = controller()
    sdn.send(p4runtime_pb2.StreamMessageRequest(arbitration=p4runtime_pb2.MasterArbitrationUpdate(
        device_id=DEVICE, role=p4runtime_pb2.Role(name="sdn"), election_id=p4runtime_pb2.Uint128(low=3))))
    reply = sdn.receive().arbitration
    assert (reply.status.code, reply.role.name, reply.election_id.low) == (Code.OK.value[0], "sdn", 3)
    assert (fake.primary_of(""), fake.primary_of("sdn")) == (PRIMARY_ID, 3)
    primary.assert_silent()
    Switch(stub).push()
    with pytest.raises(grpc.RpcError) as caught:
        stub.Write(p4runtime_pb2.WriteRequest(device_id=DEVICE, election_id=p4runtime_pb2.Uint128(low=3),
                                              updates=[insert(steer())]), timeout=TIMEOUT_S)
    assert caught.value.code() == Code.PERMISSION_DENIED, "election id 3 is primary of role sdn only"
    stub.Write(p4runtime_pb2.WriteRequest(device_id=DEVICE, role="sdn", election_id=p4runtime_pb2.Uint128(low=3),
                                          updates=[insert(steer())]), timeout=TIMEOUT_S)
    assert len(fake.entries()) == 1


@pytest.mark.parametrize("change", ["role", "device"])
def test_a_live_stream_that_changes_its_role_or_device_fails_with_failed_precondition(
        primary: Controller, change: str) -> None:
    update = p4runtime_pb2.MasterArbitrationUpdate(device_id=DEVICE, election_id=p4runtime_pb2.Uint128(low=PRIMARY_ID))
    if change == "role":
        update.role.name = "sdn"
    else:
        update.device_id = DEVICE + 1
    primary.send(p4runtime_pb2.StreamMessageRequest(arbitration=update))
    assert primary.ended_with() == Code.FAILED_PRECONDITION
