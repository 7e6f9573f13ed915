"""Finding 7, P4Runtime without credentials: the deployment's certificates, the controller's client over
TLS with a client certificate (against the P4Runtime fake, and against BMv2 where it is installed),
plaintext only on loopback, a configurable election id and role, and mastership lost to a higher
election id reported in one line and regained when that client leaves."""

from __future__ import annotations

import importlib.util
import queue
import re
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from controller.dataplane import entries as E
from controller.dataplane import tls
from controller.dataplane.layout import CPU_PORT
from controller.dataplane.p4info import P4Schema
from controller.dataplane.p4runtime_client import MAX_ELECTION_ID, Pipeline, SwitchClient, SwitchError
from controller.errors import SremError
from p4runtime_fake import FakeP4RuntimeServer

SCHEMA = P4Schema.load()
PIPELINE = Pipeline.load()
TIMEOUT_S = 5.0
"""Bound on every wait of these tests that should succeed: a connect, a stream notice, a regain."""
UNREACHABLE_S = 0.5
"""The connect timeout of clients that are meant to fail: how long they wait for a handshake that never succeeds."""


def steer(spi: int) -> E.Update:
    entry = E.table_entry(E.STEER, {"spi": E.Exact(spi), "si": E.Exact(255), "config_version": E.Exact(1)},
                          "SremIngress.forward", {"port": 3, "dst_mac": 0x0253_0000_0002})
    return E.Update(E.Op.INSERT, entry)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> tls.Deployment:
    return tls.create(tmp_path_factory.mktemp("pki") / "certs", {"s1": ["127.0.0.1", "localhost"]})


@pytest.fixture(scope="module")
def stranger(tmp_path_factory: pytest.TempPathFactory) -> tls.Deployment:
    """Another deployment's CA and certificates: valid, but not ours."""
    return tls.create(tmp_path_factory.mktemp("pki") / "other", {"s1": ["127.0.0.1"]})


@pytest.fixture
def secure_fake(certs: tls.Deployment) -> Iterator[FakeP4RuntimeServer]:
    with FakeP4RuntimeServer(name="s1", tls=certs.switch("s1")) as fake:
        yield fake


@pytest.fixture
def fake() -> Iterator[FakeP4RuntimeServer]:
    with FakeP4RuntimeServer(name="s1") as server:
        yield server


@pytest.fixture
def clients() -> Iterator[list[SwitchClient]]:
    """Clients to close after the test, whatever happens."""
    opened: list[SwitchClient] = []
    yield opened
    for client in opened:
        client.close()


# The deployment's certificates


def test_certificates_chain_to_the_deployment_ca_and_name_each_switch(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    made = tls.create(directory, {"s1": ["127.0.0.1", "network"], "s2": ["::1"]})
    ca = x509.load_pem_x509_certificate(made.ca_cert.read_bytes())
    switch, controller = (x509.load_pem_x509_certificate(files.cert.read_bytes())
                          for files in (made.switch("s1"), made.controller()))
    for cert in (switch, controller):
        cert.verify_directly_issued_by(ca)
    names = switch.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert names.get_values_for_type(x509.DNSName) == ["network"]
    assert list(switch.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert list(controller.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    modes = {path.name: path.stat().st_mode & 0o777 for path in directory.iterdir()}
    assert modes == {"ca.pem": 0o644, "controller.pem": 0o644, "controller.key": 0o600, "switch-s1.pem": 0o644,
                     "switch-s1.key": 0o600, "switch-s2.pem": 0o644, "switch-s2.key": 0o600}, "no CA key is written"
    assert directory.stat().st_mode & 0o777 == 0o700


def test_a_new_deployment_replaces_its_own_files_and_refuses_a_stranger_directory(tmp_path: Path) -> None:
    directory = tmp_path / "certs"
    first = tls.create(directory, {"s1": ["127.0.0.1"], "s2": ["127.0.0.1"]}).ca_cert.read_bytes()
    assert tls.create(directory, {"s1": ["127.0.0.1"]}).ca_cert.read_bytes() != first
    assert sorted(path.name for path in directory.iterdir()) == ["ca.pem", "controller.key", "controller.pem",
                                                                 "switch-s1.key", "switch-s1.pem"]
    (directory / "notes.txt").write_text("mine")
    with pytest.raises(SremError, match=r"holds files that are not certificates of a deployment \(notes.txt\)"):
        tls.create(directory, {"s1": ["127.0.0.1"]})
    assert (directory / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(("switches", "message"), [
    ({}, "no switch"),
    ({"s1": []}, "switch s1 has no host name or address"),
    ({"s1": ["bad host!"]}, "'bad host!' is neither an IP address nor a host name"),
    ({"../s1": ["127.0.0.1"]}, "switch name '../s1' is not a file name"),
])
def test_bad_switches_are_refused_in_one_line_before_writing(tmp_path: Path, switches: dict[str, list[str]],
                                                             message: str) -> None:
    with pytest.raises(SremError, match=message) as caught:
        tls.create(tmp_path / "certs", switches)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "certs").exists()


def test_certificates_valid_for_less_than_a_day_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SremError, match=r"valid for at least one day \(got 0\)"):
        tls.create(tmp_path / "certs", {"s1": ["127.0.0.1"]}, valid_days=0)


def test_tls_files_that_do_not_belong_together_are_named(certs: tls.Deployment, stranger: tls.Deployment,
                                                        tmp_path: Path) -> None:
    mine = certs.controller()
    with pytest.raises(SremError, match=r"controller.key: not the key of certificate"):
        tls.TlsFiles(mine.ca_cert, mine.cert, stranger.controller().key).read()
    with pytest.raises(SremError, match=r"missing.pem: cannot read it"):
        tls.TlsFiles(mine.ca_cert, tmp_path / "missing.pem", mine.key).read()
    garbled = tmp_path / "ca.pem"
    garbled.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(SremError, match=r"ca.pem: not a PEM certificate"):
        tls.TlsFiles(garbled, mine.cert, mine.key).read()


# TLS with client certificates, against the fake


def test_the_controller_connects_over_tls_with_its_client_certificate(
        certs: tls.Deployment, secure_fake: FakeP4RuntimeServer, clients: list[SwitchClient]) -> None:
    client = SwitchClient("s1", secure_fake.address, 1, SCHEMA, timeout_s=TIMEOUT_S, tls=certs.controller())
    clients.append(client)
    client.connect()
    assert client.set_pipeline(PIPELINE)
    client.write([steer(7)])
    assert len(secure_fake.entries(E.STEER)) == 1


def test_a_client_certificate_of_another_ca_is_refused(certs: tls.Deployment, stranger: tls.Deployment,
                                                       secure_fake: FakeP4RuntimeServer) -> None:
    theirs = stranger.controller()
    client = SwitchClient("s1", secure_fake.address, 1, SCHEMA, timeout_s=UNREACHABLE_S,
                          tls=tls.TlsFiles(certs.ca_cert, theirs.cert, theirs.key))
    with pytest.raises(SwitchError, match=r"^switch s1: unreachable at .*the switch closed the TLS connection: "
                                          r"it does not accept client certificate .*other/controller.pem$"):
        client.connect()
    assert secure_fake.primary_election_id is None


def test_a_switch_certificate_of_another_ca_is_refused(stranger: tls.Deployment,
                                                       secure_fake: FakeP4RuntimeServer) -> None:
    client = SwitchClient("s1", secure_fake.address, 1, SCHEMA, timeout_s=UNREACHABLE_S, tls=stranger.controller())
    with pytest.raises(SwitchError, match=r"CERTIFICATE_VERIFY_FAILED.*the switch's certificate is not signed by the CA of "):
        client.connect()
    assert secure_fake.primary_election_id is None


def test_plaintext_to_a_tls_switch_fails_in_one_line(secure_fake: FakeP4RuntimeServer) -> None:
    client = SwitchClient("s1", secure_fake.address, 1, SCHEMA, timeout_s=UNREACHABLE_S)
    with pytest.raises(SwitchError) as caught:
        client.connect()
    line = str(caught.value)
    assert line.startswith(f"switch s1: unreachable at {secure_fake.address} within 0.5 s")
    assert line.endswith("over plaintext: if the switch serves TLS, give the client TLS material")
    assert "\n" not in line
    assert secure_fake.primary_election_id is None


@pytest.mark.parametrize("address", ["10.0.0.1:50001", "network:50001", "[2001:db8::1]:50001", "0.0.0.0:50001"])
def test_plaintext_to_an_address_off_this_machine_is_refused(address: str) -> None:
    with pytest.raises(SwitchError, match=rf"^switch s1: refusing plaintext P4Runtime to {re.escape(address)}, which is "
                                          r"not a loopback address: give the client TLS material"):
        SwitchClient("s1", address, 1, SCHEMA)


@pytest.mark.parametrize("address", ["127.0.0.1:50001", "127.0.0.2:50001", "[::1]:50001", "localhost:50001",
                                     "unix:///tmp/s1.sock"])
def test_plaintext_on_loopback_is_allowed(address: str) -> None:
    assert SwitchClient("s1", address, 1, SCHEMA).tls is None


# Election id, role and mastership


@pytest.mark.parametrize("election_id", [0, -1, MAX_ELECTION_ID + 1])
def test_an_election_id_outside_the_p4runtime_range_is_refused(election_id: int) -> None:
    with pytest.raises(SwitchError, match=rf"election id {election_id} is outside 1..2\*\*128-1"):
        SwitchClient("s1", "127.0.0.1:50001", 1, SCHEMA, election_id=election_id)


def test_the_role_and_election_id_reach_the_switch(fake: FakeP4RuntimeServer, clients: list[SwitchClient]) -> None:
    """The default role's controller and one of role `sdn` are both primary; each writes as its role."""
    default = SwitchClient("s1", fake.address, 1, SCHEMA, election_id=3, timeout_s=TIMEOUT_S)
    sdn = SwitchClient("s1", fake.address, 1, SCHEMA, election_id=7, timeout_s=TIMEOUT_S, role="sdn")
    clients += [default, sdn]
    default.connect()
    sdn.connect()
    assert (fake.primary_of(""), fake.primary_of("sdn")) == (3, 7)
    default.set_pipeline(PIPELINE)
    sdn.write([steer(8)])
    default.write([steer(9)])
    assert len(fake.entries(E.STEER)) == 2


def test_a_higher_election_id_takes_mastership_and_the_controller_regains_it_when_that_client_leaves(
        fake: FakeP4RuntimeServer, clients: list[SwitchClient]) -> None:
    said: queue.Queue[str] = queue.Queue()
    controller = SwitchClient("s1", fake.address, 1, SCHEMA, timeout_s=TIMEOUT_S, regain_within_s=TIMEOUT_S,
                              on_mastership=said.put)
    usurper = SwitchClient("s1", fake.address, 1, SCHEMA, election_id=MAX_ELECTION_ID, timeout_s=TIMEOUT_S)
    clients += [controller, usurper]
    controller.connect()
    controller.set_pipeline(PIPELINE)
    controller.write([steer(1)])

    usurper.connect()
    assert said.get(timeout=TIMEOUT_S) == (f"switch s1: lost mastership to election id {MAX_ELECTION_ID} (ours is 1); "
                                           "primary again when that client leaves or lowers its id")
    assert not controller.primary
    writes = fake.write_count
    with pytest.raises(SwitchError, match=rf"^switch s1: write refused: lost mastership to election id {MAX_ELECTION_ID} "
                                          r"\(ours is 1\)$"):
        controller.write([steer(2)])
    assert fake.write_count == writes, "nothing is sent while another client is primary"

    usurper.close()
    assert controller.wait_primary()
    assert said.get(timeout=TIMEOUT_S).startswith("switch s1: primary again with election id 1 after ")
    controller.write([steer(2)])
    assert len(fake.entries(E.STEER)) == 2
    assert said.empty()


def test_mastership_not_given_back_within_the_bound_is_reported(fake: FakeP4RuntimeServer,
                                                                clients: list[SwitchClient]) -> None:
    said: queue.Queue[str] = queue.Queue()
    controller = SwitchClient("s1", fake.address, 1, SCHEMA, timeout_s=TIMEOUT_S, regain_within_s=0.2,
                              on_mastership=said.put)
    usurper = SwitchClient("s1", fake.address, 1, SCHEMA, election_id=2, timeout_s=TIMEOUT_S)
    clients += [controller, usurper]
    controller.connect()
    usurper.connect()
    said.get(timeout=TIMEOUT_S)
    assert not controller.wait_primary()
    assert controller.mastership_lost == "lost mastership to election id 2 (ours is 1)"


def test_a_controller_that_starts_as_a_backup_refuses_to_run(fake: FakeP4RuntimeServer,
                                                             clients: list[SwitchClient]) -> None:
    usurper = SwitchClient("s1", fake.address, 1, SCHEMA, election_id=5, timeout_s=TIMEOUT_S)
    clients.append(usurper)
    usurper.connect()
    with pytest.raises(SwitchError, match=r"^switch s1: refuses mastership for election id 1 \(status ALREADY_EXISTS"):
        SwitchClient("s1", fake.address, 1, SCHEMA, timeout_s=TIMEOUT_S).connect()


def test_a_stream_that_ends_is_said_at_once_in_one_line(fake: FakeP4RuntimeServer, clients: list[SwitchClient]) -> None:
    said: queue.Queue[str] = queue.Queue()
    client = SwitchClient("s1", fake.address, 1, SCHEMA, timeout_s=TIMEOUT_S, on_mastership=said.put)
    clients.append(client)
    client.connect()
    fake.stop()
    assert said.get(timeout=TIMEOUT_S).startswith("switch s1: P4Runtime stream ended (UNAVAILABLE")
    assert not client.wait_primary(0.0)
    with pytest.raises(SwitchError, match=r"^switch s1: write refused: P4Runtime stream ended"):
        client.write([steer(1)])


def test_closing_the_client_says_nothing(fake: FakeP4RuntimeServer) -> None:
    said: queue.Queue[str] = queue.Queue()
    client = SwitchClient("s1", fake.address, 1, SCHEMA, timeout_s=TIMEOUT_S, on_mastership=said.put)
    client.connect()
    client.close()
    assert said.empty()


# Against BMv2


def test_bmv2_gets_the_tls_flags_of_its_target_after_the_double_dash(certs: tls.Deployment, tmp_path: Path) -> None:
    if importlib.util.find_spec("mininet") is None:
        pytest.skip("needs Mininet (python3 mininet): controller.testbed.bmv2 builds on Mininet's Switch")
    from controller.testbed import bmv2

    files = certs.switch("s1")
    argv = bmv2.command(1, {1: "eth0"}, tmp_path / "switch-s1", "0.0.0.0:50001", tls=files)
    target = argv[argv.index("--") + 1:]
    assert target == ["--grpc-server-addr", "0.0.0.0:50001", "--grpc-server-ssl", "--grpc-server-cacert", str(files.ca_cert),
                      "--grpc-server-cert", str(files.cert), "--grpc-server-key", str(files.key),
                      "--grpc-server-with-client-auth", "--cpu-port", str(CPU_PORT)]
    assert "--grpc-server-ssl" not in bmv2.command(1, {1: "eth0"}, tmp_path / "switch-s1", "127.0.0.1:50001")


def _bmv2_missing() -> str:
    lacking = [] if shutil.which("simple_switch_grpc") else ["BMv2 simple_switch_grpc"]
    if importlib.util.find_spec("mininet") is None:  # controller.testbed.bmv2 builds on Mininet's Switch
        lacking.append("Mininet (python3 mininet)")
    return f"needs {' and '.join(lacking)}" if lacking else ""


@pytest.fixture
def bmv2_tls(certs: tls.Deployment, tmp_path: Path) -> Iterator[str]:
    """simple_switch_grpc with P4Runtime over TLS on a free loopback port, started as the testbed starts it."""
    if reason := _bmv2_missing():
        pytest.skip(reason)
    from controller.testbed import bmv2, processes

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    log_base, log, output = bmv2.log_paths(tmp_path, "s1")
    argv = bmv2.command(1, {}, log_base, address, tls=certs.switch("s1"))
    process = bmv2.launch("s1", argv, address, output)
    try:
        bmv2.wait_ready("s1", process, argv, address, output, log, time.monotonic() + 20)
        yield address
    finally:
        processes.stop(process)


def test_bmv2_serves_p4runtime_over_tls_to_the_controller_only(
        bmv2_tls: str, certs: tls.Deployment, stranger: tls.Deployment, clients: list[SwitchClient]) -> None:
    client = SwitchClient("s1", bmv2_tls, 1, SCHEMA, timeout_s=10.0, tls=certs.controller())
    clients.append(client)
    client.connect()
    client.set_pipeline(PIPELINE)
    client.write([steer(7)])
    assert len(client.read_state()) == 1
    # The words gRPC uses for the refused handshakes depend on BMv2's gRPC and TLS library; the fake's tests
    # check the hints.
    with pytest.raises(SwitchError, match=r"^switch s1: unreachable at "):
        SwitchClient("s1", bmv2_tls, 1, SCHEMA, election_id=2, timeout_s=UNREACHABLE_S).connect()
    theirs = stranger.controller()
    with pytest.raises(SwitchError, match=r"^switch s1: unreachable at "):
        SwitchClient("s1", bmv2_tls, 1, SCHEMA, election_id=2, timeout_s=UNREACHABLE_S,
                     tls=tls.TlsFiles(certs.ca_cert, theirs.cert, theirs.key)).connect()
    # Without a certificate at all, at the gRPC level: the switch closes the connection.
    channel = grpc.secure_channel(bmv2_tls, grpc.ssl_channel_credentials(certs.ca_cert.read_bytes()))
    with pytest.raises(grpc.FutureTimeoutError):
        grpc.channel_ready_future(channel).result(timeout=UNREACHABLE_S)
    channel.close()
