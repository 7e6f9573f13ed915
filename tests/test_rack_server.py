"""The rack servers' VNF service (issue 13, item 3): hosts/functions.py's VNF semantics, hosts/vnf_service.py's
generations, state and holding with a fake clock, and hosts/rack_server.py as a process on one end of a veth
pair in a namespace the test creates, the test playing the switch on the other end."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP, UDP

from bmv2_bed import in_netns, namespace
from controller.testbed.processes import stop
from hosts import vnf_service
from hosts.control import ControlError, call
from hosts.functions import IPV4_OFFSET, BadPacket, Color, ConfigError, Drop, InstanceSpec, MeterRates, RuleTable, ServicePath, \
    TokenBuckets, apply, parse_inner, read_nsh, returned, rule_from_json, rule_to_json
from hosts.rack_server_client import RackServerClient, command, move_state, wait_ready
from hosts.vnf_service import PathSpec, Service, install_request
from srem_formats.flows import Action, Flow, Rule, VnfKind
from srem_formats.wire import ETHERTYPE_NSH, Nsh

SERVER_MAC = bytes.fromhex("020000000a01")
SWITCH_MAC = bytes.fromhex("020000000b01")
UDP_PROTO, TCP_PROTO = 17, 6
SRC, DST, BACKEND = 0x0A000001, 0x0A000002, 0x0A000063
F_PERMIT = Flow(SRC, DST, UDP_PROTO, 10001)
F_DENY = Flow(SRC, DST, UDP_PROTO, 10002)
F_NAT = Flow(SRC, DST, UDP_PROTO, 10003)
F_METER = Flow(SRC, DST, UDP_PROTO, 10004)
F_DSCP = Flow(SRC, DST, UDP_PROTO, 10005)
NAT_PORT = 40003


def ip_text(n: int) -> str:
    return ".".join(str((n >> s) & 255) for s in (24, 16, 8, 0))


def inner_udp(flow: Flow, seq: int = 0, checksum: bool = True, tos: int = 0, size: int = 32) -> bytes:
    """An IPv4/UDP packet of `flow` whose payload starts with `seq` (the test's tag)."""
    udp = UDP(sport=5000, dport=flow.dst_port) if checksum else UDP(sport=5000, dport=flow.dst_port, chksum=0)
    return bytes(IP(src=ip_text(flow.src), dst=ip_text(flow.dst), tos=tos, id=seq & 0xFFFF) / udp
                 / (seq.to_bytes(8, "big") + bytes(size - 8)))


def nsh_frame(path: ServicePath, inner: bytes, dst: bytes = SERVER_MAC, src: bytes = SWITCH_MAC) -> bytes:
    return dst + src + ETHERTYPE_NSH.to_bytes(2, "big") + Nsh(path.spi, path.si, path.version).pack() + inner


def other_md_class(frame: bytes) -> bytes:
    return frame[:22] + b"\0\1" + frame[24:]


def tag_of(frame: bytes) -> int:
    """The seq inner_udp put at the start of the UDP payload."""
    return int.from_bytes(frame[IPV4_OFFSET + 28:IPV4_OFFSET + 36], "big")


def checksums_valid(packet: bytes) -> bool:
    """scapy's verdict: the IPv4 header's and the L4 checksum are what scapy computes (a zero UDP checksum is none)."""
    parsed = IP(packet)
    fresh = IP(packet)
    del fresh.chksum
    layer = TCP if parsed.haslayer(TCP) else UDP
    if not (layer is UDP and parsed[UDP].chksum == 0):
        del fresh[layer].chksum
    rebuilt = IP(bytes(fresh))
    return rebuilt.chksum == parsed.chksum and rebuilt[layer].chksum == parsed[layer].chksum


def serve(kind: VnfKind, rules: tuple[Rule, ...], frame: bytes, meters: dict[int, TokenBuckets] | None = None,
          now: float = 0.0) -> tuple[Drop | None, bytes]:
    verdict = apply(RuleTable.of(kind, rules), frame, parse_inner(frame), meters or {}, now)
    return verdict.drop, bytes(verdict.frame)


# Functions: what one instance does to one packet


def test_firewall_permits_denies_and_drops_what_no_rule_matches() -> None:
    rules = (Rule(F_PERMIT, Action.PERMIT), Rule(F_DENY, Action.DENY))
    path = ServicePath(1, 1, 1)
    permitted = nsh_frame(path, inner_udp(F_PERMIT))
    assert serve(VnfKind.FIREWALL, rules, permitted) == (None, permitted)
    assert serve(VnfKind.FIREWALL, rules, nsh_frame(path, inner_udp(F_DENY)))[0] is Drop.FIREWALL
    assert serve(VnfKind.FIREWALL, rules, nsh_frame(path, inner_udp(F_NAT)))[0] is Drop.FIREWALL
    other_source = Flow(SRC + 1, DST, UDP_PROTO, F_PERMIT.dst_port)
    assert serve(VnfKind.FIREWALL, rules, nsh_frame(path, inner_udp(other_source)))[0] is Drop.FIREWALL


@pytest.mark.parametrize("transport", ["udp", "udp-no-checksum", "tcp"])
def test_nat_rewrites_destination_address_and_port_with_checksums_valid(transport: str) -> None:
    rule = Rule(Flow(0, F_NAT.dst, F_NAT.protocol if transport != "tcp" else TCP_PROTO, F_NAT.dst_port), Action.REWRITE,
                addr=BACKEND, port=NAT_PORT)
    if transport == "tcp":
        inner = bytes(IP(src=ip_text(SRC), dst=ip_text(DST)) / TCP(sport=5000, dport=F_NAT.dst_port, seq=7) / b"payload!")
    else:
        inner = inner_udp(F_NAT, seq=3, checksum=transport == "udp")
    drop, out = serve(VnfKind.NAT, (rule,), nsh_frame(ServicePath(2, 1, 1), inner))
    assert drop is None
    packet = IP(out[IPV4_OFFSET:])
    layer = TCP if transport == "tcp" else UDP
    assert (packet.dst, packet[layer].dport) == (ip_text(BACKEND), NAT_PORT)
    assert (packet.src, packet[layer].sport) == (ip_text(SRC), 5000)
    assert checksums_valid(out[IPV4_OFFSET:])
    if transport == "udp-no-checksum":
        assert packet[UDP].chksum == 0, "a UDP packet without a checksum must stay without one"
    assert bytes(packet[layer].payload) == bytes(IP(inner)[layer].payload)


def test_nat_matches_destination_only_and_passes_a_miss_unchanged() -> None:
    rule = Rule(Flow(0, F_NAT.dst, F_NAT.protocol, F_NAT.dst_port), Action.REWRITE, addr=BACKEND, port=NAT_PORT)
    any_source = nsh_frame(ServicePath(2, 1, 1), inner_udp(Flow(0x0B000001, DST, UDP_PROTO, F_NAT.dst_port)))
    assert IP(serve(VnfKind.NAT, (rule,), any_source)[1][IPV4_OFFSET:]).dst == ip_text(BACKEND)
    miss = nsh_frame(ServicePath(2, 1, 1), inner_udp(F_PERMIT))
    assert serve(VnfKind.NAT, (rule,), miss) == (None, miss)


def test_l4_ports_are_read_only_where_the_switch_parser_reads_them() -> None:
    fragment = bytes(IP(src=ip_text(SRC), dst=ip_text(DST), frag=10, proto=UDP_PROTO) / bytes(16))
    options = bytes(IP(src=ip_text(SRC), dst=ip_text(DST), options=b"\x01\x01\x01\x00") / UDP(dport=10001))
    for packet in (fragment, options):
        inner = parse_inner(nsh_frame(ServicePath(1, 1, 1), packet))
        assert (inner.dst_port, inner.l4) == (0, None)
    # a port-0 rule is what a packet without parsed ports matches, as in the switch
    rules = (Rule(Flow(SRC, DST, UDP_PROTO, 0), Action.PERMIT),)
    assert serve(VnfKind.FIREWALL, rules, nsh_frame(ServicePath(1, 1, 1), fragment))[0] is None


def test_classifier_sets_dscp_keeps_ecn_and_fixes_the_header_checksum() -> None:
    rules = (Rule(F_DSCP, Action.SET_DSCP, dscp=26),)
    drop, out = serve(VnfKind.CLASSIFIER, rules, nsh_frame(ServicePath(4, 1, 1), inner_udp(F_DSCP, tos=0b01)))
    packet = IP(out[IPV4_OFFSET:])
    assert drop is None and (packet.tos >> 2, packet.tos & 3) == (26, 0b01)
    assert checksums_valid(out[IPV4_OFFSET:])
    miss = nsh_frame(ServicePath(4, 1, 1), inner_udp(F_PERMIT))
    assert serve(VnfKind.CLASSIFIER, rules, miss) == (None, miss)


def test_token_buckets_give_green_then_yellow_then_red_and_refill_at_their_rates() -> None:
    rates = MeterRates(cir=1000, cburst=300, pir=2000, pburst=500)
    cell = TokenBuckets.full(rates, now=10.0)
    colors = [cell.execute(100, 10.0) for _ in range(6)]
    assert colors == [Color.GREEN] * 3 + [Color.YELLOW] * 2 + [Color.RED]
    assert (cell.committed, cell.peak) == (0.0, 0.0), "red took no tokens"
    assert cell.execute(100, 10.04) is Color.RED, "40 ms: 80 peak tokens, not enough for 100 bytes"
    assert cell.execute(100, 10.05) is Color.YELLOW, "50 ms: 100 peak tokens, 50 committed"
    assert (cell.committed, cell.peak) == pytest.approx((50.0, 0.0), abs=1e-9)
    assert cell.execute(100, 20.0) is Color.GREEN and (cell.committed, cell.peak) == (200.0, 400.0), "refill stops at the bursts"


def test_rate_limiter_drops_red_when_asked_and_marks_yellow() -> None:
    frame = nsh_frame(ServicePath(3, 1, 1), inner_udp(F_METER))
    size = len(frame)
    rates = MeterRates(cir=1, cburst=2 * size, pir=1, pburst=3 * size)
    for drop_red, last in ((True, Drop.METER), (False, None)):
        rule = Rule(F_METER, Action.METER, meter_index=7, dscp=10, drop_red=drop_red)
        meters = {7: TokenBuckets.full(rates, 0.0)}
        results = [serve(VnfKind.RATE_LIMITER, (rule,), frame, meters) for _ in range(4)]
        dscps = [IP(out[IPV4_OFFSET:]).tos >> 2 for _, out in results]
        assert [d for d, _ in results] == [None, None, None, last]
        assert dscps[:3] == [0, 0, 10], "green unmarked, yellow marked with the rule's DSCP"
        if not drop_red:
            assert dscps[3] == 10, "red kept is marked too"
        assert checksums_valid(results[2][1][IPV4_OFFSET:])
    miss = nsh_frame(ServicePath(3, 1, 1), inner_udp(F_PERMIT))
    assert serve(VnfKind.RATE_LIMITER, (Rule(F_METER, Action.METER, meter_index=7),), miss, {7: TokenBuckets.full(rates, 0.0)}) \
        == (None, miss)


def test_the_returned_frame_goes_to_the_switch_with_one_function_fewer() -> None:
    frame = nsh_frame(ServicePath(5, 3, 9), inner_udp(F_PERMIT))
    back = returned(bytearray(frame), SWITCH_MAC, SERVER_MAC)
    assert (back[0:6], back[6:12]) == (SWITCH_MAC, SERVER_MAC)
    assert read_nsh(bytes(back)) == ServicePath(5, 2, 9)
    assert back[14 + 8:] == frame[14 + 8:] and back[14:21] == frame[14:21], "only the SI changed behind Ethernet"


@pytest.mark.parametrize(("cut", "reason"), [
    (lambda f: f[:20], "truncated"),
    (lambda f: f[:IPV4_OFFSET + 10], "truncated"),
    (lambda f: f[:IPV4_OFFSET + 24], "truncated"),
    (lambda f: f[:12] + b"\x08\x00" + f[14:], "not_nsh"),
    (lambda f: f[:14] + bytes([f[14] | 0x20]) + f[15:], "not_srem_nsh"),   # O bit
    (lambda f: f[:16] + b"\x01" + f[17:], "not_srem_nsh"),                  # MD type 1
    (lambda f: f[:17] + b"\x03" + f[18:], "not_srem_nsh"),                  # next protocol IPv6
    (lambda f: f[:22] + b"\x00\x01" + f[24:], "not_srem_nsh"),              # another metadata class
    (lambda f: f[:25] + b"\x08" + f[26:], "not_srem_nsh"),                  # TLV length
    (lambda f: f[:IPV4_OFFSET] + b"\x65" + f[IPV4_OFFSET + 1:], "not_ipv4"),
])
def test_bad_frames_are_named_by_reason(cut, reason: str) -> None:
    frame = cut(nsh_frame(ServicePath(1, 1, 1), inner_udp(F_PERMIT)))
    with pytest.raises(BadPacket) as caught:
        read_nsh(frame)
        parse_inner(frame)
    assert caught.value.reason == reason


# Rules and instances across the control channel


def test_rules_and_instances_round_trip_through_json() -> None:
    rules = (Rule(F_METER, Action.METER, meter_index=3, dscp=5, drop_red=True, rate_bps=12_500),
             Rule(Flow(SRC, DST, UDP_PROTO, 9), Action.METER, meter_index=4, rate_bps=1))
    meters = {3: MeterRates(12_500, 1500, 25_000, 3000), 4: MeterRates(1, 1500, 2, 3000)}
    spec = InstanceSpec.of(VnfKind.RATE_LIMITER, rules, 2.5, meters)
    assert [rule_from_json(json.loads(json.dumps(rule_to_json(r))), "r") for r in rules] == list(rules)
    k, back = InstanceSpec.from_json(json.loads(json.dumps(spec.to_json(12))), "i")
    assert (k, back.kind, back.rules, back.delay_ms, back.meters) == (12, spec.kind, spec.rules, spec.delay_ms, spec.meters)


GOOD_RULE = rule_to_json(Rule(F_PERMIT, Action.PERMIT))


@pytest.mark.parametrize(("instance", "names"), [
    ({"kind": "FIREWALL", "delay_ms": 1, "rules": [GOOD_RULE], "meters": []}, "missing keys ['instance']"),
    ({"instance": 1, "kind": "ROUTER", "delay_ms": 1, "rules": [], "meters": []}, "kind 'ROUTER'"),
    ({"instance": 1, "kind": "FIREWALL", "delay_ms": -1, "rules": [], "meters": []}, "delay_ms"),
    ({"instance": 1, "kind": "FIREWALL", "delay_ms": float("nan"), "rules": [], "meters": []}, "delay_ms"),
    ({"instance": 70000, "kind": "FIREWALL", "delay_ms": 1, "rules": [], "meters": []}, "instance must be"),
    ({"instance": 1, "kind": "FIREWALL", "delay_ms": 1, "rules": [{**GOOD_RULE, "colour": 1}], "meters": []},
     "unknown keys ['colour']"),
    ({"instance": 1, "kind": "FIREWALL", "delay_ms": 1, "rules": [{**GOOD_RULE, "action": "REWRITE"}], "meters": []},
     "takes PERMIT/DENY, not REWRITE"),
    ({"instance": 1, "kind": "FIREWALL", "delay_ms": 1, "rules": [GOOD_RULE, GOOD_RULE], "meters": []}, "already matches"),
    ({"instance": 1, "kind": "FIREWALL", "delay_ms": 1, "rules": [{**GOOD_RULE, "key": {**GOOD_RULE["key"], "dst_port": 70000}}],
      "meters": []}, "dst_port must be"),
    ({"instance": 1, "kind": "FIREWALL", "delay_ms": 1, "rules": [{**GOOD_RULE, "dscp": 64}], "meters": []}, "dscp must be"),
    ({"instance": 1, "kind": "RATE_LIMITER", "delay_ms": 1, "meters": [],
      "rules": [rule_to_json(Rule(F_METER, Action.METER, meter_index=2))]}, "no rates for cells [2]"),
    ({"instance": 1, "kind": "RATE_LIMITER", "delay_ms": 1,
      "rules": [rule_to_json(Rule(F_METER, Action.METER, meter_index=2))],
      "meters": [{"index": 2, "cir": 10, "cburst": 1, "pir": 5, "pburst": 1}]}, "peak rate 5 below committed rate 10"),
    ({"instance": 1, "kind": "FIREWALL", "delay_ms": 1, "rules": [],
      "meters": [{"index": 2, "cir": 1, "cburst": 1, "pir": 5, "pburst": 1}]}, "no rule uses cells [2]"),
])
def test_a_malformed_instance_is_refused_naming_what(instance: dict, names: str) -> None:
    with pytest.raises(ConfigError, match=names.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(")):
        InstanceSpec.from_json(instance, "instances[0]")


# The service: generations, state, holding (a fake clock)


def firewall(*flows: Flow, delay_ms: float = 0.0) -> InstanceSpec:
    return InstanceSpec.of(VnfKind.FIREWALL, tuple(Rule(f, Action.PERMIT) for f in flows), delay_ms, {})


def limiter(size: int, delay_ms: float = 0.0, committed: int = 2, peak: int = 3) -> InstanceSpec:
    """A rate limiter on F_METER that lets `committed` frames of `size` bytes through green, then `peak - committed`
    yellow, the rest red (dropped), and refills at 1 byte/s."""
    return InstanceSpec.of(VnfKind.RATE_LIMITER, (Rule(F_METER, Action.METER, meter_index=1, drop_red=True, dscp=8),),
                           delay_ms, {1: MeterRates(1, committed * size, 1, peak * size)})


def install(service: Service, generation: int, paths: dict[ServicePath, int], instances: dict[int, InstanceSpec],
            now: float = 0.0) -> dict:
    return service.handle({"op": "install", **json.loads(json.dumps(install_request(generation, paths, instances)))}, now)


def served(service: Service, path: ServicePath, flow: Flow, now: float, seq: int = 0) -> list[bytearray]:
    """What comes back of one frame once its hold is over."""
    service.receive(nsh_frame(path, inner_udp(flow, seq)), now)
    out = service.due(now + 100.0)
    service.sent([(k, True) for k, _ in out])
    return [frame for _, frame in out]


V1, V2 = ServicePath(1, 1, 1), ServicePath(1, 1, 2)


def test_an_old_version_is_served_by_its_own_generation_until_retired() -> None:
    service = Service(SERVER_MAC, SWITCH_MAC)
    install(service, 1, {V1: 5}, {5: firewall(F_PERMIT)})
    assert len(served(service, V1, F_PERMIT, 0.0)) == 1
    install(service, 2, {V2: 5}, {5: firewall(F_DENY)})
    assert len(served(service, V1, F_PERMIT, 1.0)) == 1, "the old version keeps its generation's rules"
    assert served(service, V2, F_PERMIT, 1.0) == [], "the new version has the new rules"
    assert len(served(service, V2, F_DENY, 1.0)) == 1
    assert [(p["version"], p["generation"]) for p in service.status()["paths"]] == [(1, 1), (2, 2)]
    assert service.handle({"op": "retire", "before": 2}, 2.0) == {"generations": [2]}
    assert service.status()["paths"] == [{"spi": 1, "si": 1, "version": 2, "instance": 5, "generation": 2, "delay_ms": 0.0}]
    assert served(service, V1, F_PERMIT, 2.0) == []
    assert service.bad["unknown_path"] == 1
    assert service.status()["instances"]["5"]["packets"] == 4, "the instance's counters span its generations"


def test_the_newest_generation_that_maps_a_path_serves_it() -> None:
    service = Service(SERVER_MAC, SWITCH_MAC)
    install(service, 1, {V1: 5}, {5: firewall(F_PERMIT)})
    install(service, 2, {V1: 5}, {5: firewall(F_DENY)})
    assert served(service, V1, F_PERMIT, 0.0) == [] and len(served(service, V1, F_DENY, 0.0)) == 1


@pytest.mark.parametrize(("change", "names"), [
    (lambda r: {**r, "generation": 0}, "older than the newest installed, 1"),
    (lambda r: {**r, "generation": -3}, "generation must be"),
    (lambda r: {**r, "paths": [{**r["paths"][0], "instance": 9}]}, "instance 9 is not among"),
    (lambda r: {**r, "paths": r["paths"] * 2}, "given twice"),
    (lambda r: {**r, "paths": [{**r["paths"][0], "si": 0}]}, "SI 0"),
    (lambda r: {**r, "paths": [{**r["paths"][0], "spi": 1 << 24}]}, "spi, si, version, instance must be"),
    (lambda r: {**r, "instances": r["instances"] * 2}, "instance 5 given twice"),
    (lambda r: {k: v for k, v in r.items() if k != "paths"}, "needs lists"),
    (lambda r: {**r, "instances": [{**r["instances"][0], "kind": 3}]}, "kind 3"),
    (lambda r: {**r, "generaton": 2}, r"install takes \['generation', 'instances', 'paths'\], not \['generaton'\]"),
])
def test_a_malformed_install_changes_nothing(change, names: str) -> None:
    service = Service(SERVER_MAC, SWITCH_MAC)
    install(service, 1, {V1: 5}, {5: firewall(F_PERMIT)})
    before = service.status()
    request = {"op": "install", **json.loads(json.dumps(install_request(2, {V2: 5}, {5: firewall(F_DENY)})))}
    with pytest.raises(ConfigError, match=names):
        service.handle(change(request), 0.0)
    assert service.status() == before
    assert len(served(service, V1, F_PERMIT, 0.0)) == 1


def test_retire_never_leaves_the_server_without_a_configuration() -> None:
    service = Service(SERVER_MAC, SWITCH_MAC)
    with pytest.raises(ConfigError, match="nothing installed"):
        service.handle({"op": "retire", "before": 1}, 0.0)
    install(service, 3, {V1: 5}, {5: firewall(F_PERMIT)})
    with pytest.raises(ConfigError, match="newest is 3"):
        service.handle({"op": "retire", "before": 4}, 0.0)
    install(service, 4, {}, {})
    assert service.handle({"op": "retire", "before": 4}, 0.0) == {"generations": [4]}
    assert service.states == {} and served(service, V1, F_PERMIT, 0.0) == []


def test_meters_carry_over_generations_restart_when_their_rates_change_and_go_with_their_instance() -> None:
    path = ServicePath(3, 1, 1)
    size = len(nsh_frame(path, inner_udp(F_METER)))
    service = Service(SERVER_MAC, SWITCH_MAC)
    install(service, 1, {path: 5}, {5: limiter(size)})
    assert sum(len(served(service, path, F_METER, 0.0)) for _ in range(4)) == 3
    install(service, 2, {path: 5}, {5: limiter(size)})
    assert served(service, path, F_METER, 0.0) == [], "the same rates: the bucket is still empty"
    install(service, 3, {path: 5}, {5: limiter(size, committed=1, peak=2)})
    assert sum(len(served(service, path, F_METER, 0.0)) for _ in range(3)) == 2, "new rates: a full bucket"
    install(service, 4, {}, {})
    service.handle({"op": "retire", "before": 4}, 0.0)
    assert service.status()["instances"] == {} and 5 not in service.states


def test_state_moves_between_services_with_tokens_and_counters() -> None:
    path = ServicePath(3, 1, 1)
    size = len(nsh_frame(path, inner_udp(F_METER)))
    old, new = Service(SERVER_MAC, SWITCH_MAC), Service(SERVER_MAC, SWITCH_MAC)
    for service in (old, new):
        install(service, 1, {path: 5}, {5: limiter(size, committed=2, peak=4)})
    assert sum(len(served(old, path, F_METER, 0.0)) for _ in range(3)) == 3  # 2 green, 1 yellow
    exported = json.loads(json.dumps(old.handle({"op": "export_state", "instance": 5}, 0.0)))
    new.handle({"op": "import_state", "instance": 5, "state": exported["state"]}, 0.0)
    outcomes = [served(new, path, F_METER, 0.0) for _ in range(3)]
    assert [len(o) for o in outcomes] == [1, 0, 0], "1 peak token left, no committed: one yellow, then red"
    assert IP(bytes(outcomes[0][0][IPV4_OFFSET:])).tos >> 2 == 8
    counters = new.status()["instances"]["5"]
    assert (counters["packets"], counters["sent"], counters["dropped"]) == (6, 4, {"meter": 2})
    with pytest.raises(ConfigError, match="instance 6 is not installed here"):
        new.handle({"op": "import_state", "instance": 6, "state": exported["state"]}, 0.0)
    bad_cell = {**exported["state"], "meters": [{"index": 9, "committed": 0, "peak": 0}]}
    with pytest.raises(ConfigError, match="no meter cell 9"):
        new.handle({"op": "import_state", "instance": 5, "state": bad_cell}, 0.0)
    assert new.status()["instances"]["5"]["packets"] == 6, "a refused import changes nothing"


def test_packets_are_held_for_their_delay_and_a_chain_is_never_reordered() -> None:
    service = Service(SERVER_MAC, SWITCH_MAC)
    slow, fast = ServicePath(1, 1, 1), ServicePath(2, 1, 1)
    install(service, 1, {slow: 5, fast: 6}, {5: firewall(F_PERMIT, delay_ms=30.0), 6: firewall(F_DENY, delay_ms=0.0)})
    service.receive(nsh_frame(slow, inner_udp(F_PERMIT, seq=1)), 10.0)
    service.receive(nsh_frame(fast, inner_udp(F_DENY, seq=2)), 10.001)
    assert service.next_due() == pytest.approx(10.001)
    assert [tag_of(f) for _, f in service.due(10.001)] == [2], "the fast chain is not held behind the slow one"
    assert service.due(10.0299) == []
    assert [tag_of(f) for _, f in service.due(10.030)] == [1]
    install(service, 2, {ServicePath(1, 1, 2): 5}, {5: firewall(F_PERMIT, delay_ms=1.0)})
    service.receive(nsh_frame(slow, inner_udp(F_PERMIT, seq=3)), 20.0)
    service.receive(nsh_frame(ServicePath(1, 1, 2), inner_udp(F_PERMIT, seq=4)), 20.0)
    assert [tag_of(f) for _, f in service.due(20.0299)] == []
    assert [tag_of(f) for _, f in service.due(20.030)] == [3, 4], "the new version's shorter delay waits for the old packet"


def test_a_path_may_hold_its_packets_for_its_own_delay() -> None:
    """The model's server delay is per chain (its rate times the server's delay per MB): two chains, one instance."""
    service = Service(SERVER_MAC, SWITCH_MAC)
    light, heavy = ServicePath(1, 1, 1), ServicePath(2, 1, 1)
    install(service, 1, {light: 5, heavy: PathSpec(5, delay_ms=7.5)}, {5: firewall(F_PERMIT, delay_ms=2.0)})
    assert [(p["spi"], p["delay_ms"]) for p in service.status()["paths"]] == [(1, 2.0), (2, 7.5)]
    service.receive(nsh_frame(heavy, inner_udp(F_PERMIT, 1)), 0.0)
    service.receive(nsh_frame(light, inner_udp(F_PERMIT, 2)), 0.0)
    assert service.next_due() == pytest.approx(0.002)
    assert [tag_of(f) for _, f in service.due(0.0074)] == [2]
    assert [tag_of(f) for _, f in service.due(0.0075)] == [1]
    with pytest.raises(ConfigError, match=r"paths\[0\]: delay_ms must be a number in \[0, 10000\]"):
        install(service, 2, {light: PathSpec(5, delay_ms=-1.0)}, {5: firewall(F_PERMIT)})


def test_a_full_queue_drops_and_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vnf_service, "MAX_QUEUE", 3)
    service = Service(SERVER_MAC, SWITCH_MAC)
    install(service, 1, {V1: 5}, {5: firewall(F_PERMIT, delay_ms=10.0)})
    for seq in range(5):
        service.receive(nsh_frame(V1, inner_udp(F_PERMIT, seq)), 0.0)
    assert [tag_of(f) for _, f in service.due(1.0)] == [0, 1, 2]
    assert service.states[5].counters.dropped == {"queue_full": 2}


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_frame_is_served_counted_or_ignored_never_raised(data: st.DataObject) -> None:
    service = Service(SERVER_MAC, SWITCH_MAC)
    paths = {ServicePath(1, 1, 1): 1, ServicePath(2, 1, 1): 2, ServicePath(3, 1, 1): 3, ServicePath(4, 1, 1): 4}
    size = len(nsh_frame(ServicePath(3, 1, 1), inner_udp(F_METER)))
    install(service, 1, paths, {1: firewall(F_PERMIT), 2: InstanceSpec.of(VnfKind.NAT, (
        Rule(Flow(0, DST, UDP_PROTO, F_NAT.dst_port), Action.REWRITE, addr=BACKEND, port=NAT_PORT),), 0.0, {}),
        3: limiter(size), 4: InstanceSpec.of(VnfKind.CLASSIFIER, (Rule(F_DSCP, Action.SET_DSCP, dscp=1),), 0.0, {})})
    base = nsh_frame(data.draw(st.sampled_from(list(paths))), inner_udp(data.draw(st.sampled_from(
        [F_PERMIT, F_NAT, F_METER, F_DSCP]))))
    frames = data.draw(st.lists(st.one_of(
        st.binary(max_size=120).map(lambda b: SERVER_MAC + b),
        st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255), st.integers(0, len(base))).map(
            lambda t: (base[:t[0]] + bytes([t[1]]) + base[t[0] + 1:])[:t[2]])), max_size=20))
    for frame in frames:
        service.receive(frame, 0.0)
    out = service.due(1.0)
    status = service.status()
    accounted = sum(status["bad"].values()) + status["ignored"] + sum(i["packets"] for i in status["instances"].values())
    assert accounted == len(frames)
    assert len(out) + sum(sum(i["dropped"].values()) for i in status["instances"].values()) \
        == sum(i["packets"] for i in status["instances"].values())
    assert all(read_nsh(bytes(f)).si == 0 and f[0:6] == SWITCH_MAC for _, f in out)


# The process, in a network namespace


MISSING = [tool for tool in ("ip",) if shutil.which(tool) is None]
SKIP_REASON = (f"needs {' and '.join(MISSING)} (iproute2)" if MISSING
               else "needs root for network namespaces and raw sockets" if os.geteuid() != 0 else "")
needs_netns = pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON or "-")
SO_TIMESTAMPING, SOF_TIMESTAMPING_RX_SOFTWARE, SOF_TIMESTAMPING_SOFTWARE = 37, 1 << 3, 1 << 4
PACKET_OUTGOING = 4
ETH_P_ALL = 0x0003
SWITCH_MAC_TEXT = SWITCH_MAC.hex(":")


@dataclass
class Running:
    """One rack server process and the test's end of its veth (the switch's side)."""

    process: subprocess.Popen[str]
    client: RackServerClient
    mac: bytes
    control: Path
    wire: socket.socket
    interface: str

    def send(self, *frames: bytes) -> None:
        for frame in frames:
            self.wire.send(frame)

    def receive(self, count: int, seconds: float = 3.0) -> list[bytes]:
        """Frames the server sent back, until `count` came or `seconds` passed."""
        got: list[bytes] = []
        deadline = time.monotonic() + seconds
        while len(got) < count and (left := deadline - time.monotonic()) > 0:
            if select.select([self.wire], [], [], left)[0]:
                frame, address = self.wire.recvfrom(65535)
                if address[2] != PACKET_OUTGOING and frame[6:12] == self.mac:
                    got.append(frame)
        return got

    def wait_until(self, done: Callable[[dict], bool], seconds: float = 3.0) -> dict:
        """The status once `done(status)` (or the time is up)."""
        deadline = time.monotonic() + seconds
        while True:
            status = self.client.status()
            if done(status) or time.monotonic() > deadline:
                return status
            time.sleep(0.01)

    def wait_served(self, instance: str, packets: int) -> dict:
        return self.wait_until(lambda status: status["instances"].get(instance, {}).get("packets", 0) >= packets)


def raw_socket(netns: str, interface: str, protocol: int) -> socket.socket:
    def open_() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(protocol))
        sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: a burst read afterwards is not cut
        sock.bind((interface, protocol))
        return sock
    return in_netns(netns, open_)  # type: ignore[return-value]


@contextlib.contextmanager
def rack_servers(workdir: Path, count: int = 1) -> Iterator[tuple[str, list[Running]]]:
    """`count` rack server processes in a fresh namespace, each on a veth whose other end is the test's;
    processes, sockets and the namespace gone however the block ends."""
    pairs = [(f"srv{i}", f"sw{i}") for i in range(count)]
    started: list[Running] = []
    with namespace(f"srem-rack{os.getpid()}", pairs) as netns:
        try:
            for i, (server_end, switch_end) in enumerate(pairs):
                control = workdir / f"m{i}.sock"
                argv = command(f"m{i}", server_end, SWITCH_MAC_TEXT, control, workdir / f"m{i}.log")
                process = subprocess.Popen(["ip", "netns", "exec", netns, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                           text=True, cwd=Path(__file__).parents[1])
                wire = raw_socket(netns, switch_end, ETHERTYPE_NSH)
                running = Running(process, RackServerClient(control), b"", control, wire, server_end)
                started.append(running)
                running.mac = bytes.fromhex(wait_ready(process)["mac"].replace(":", ""))
            yield netns, started
        finally:
            for running in started:
                running.wire.close()
                stop(running.process)


def four_kinds(frame_size: int) -> tuple[dict[ServicePath, int], dict[int, InstanceSpec]]:
    paths = {ServicePath(1, 2, 1): 1, ServicePath(2, 1, 1): 2, ServicePath(3, 1, 1): 3, ServicePath(4, 1, 1): 4}
    return paths, {
        1: InstanceSpec.of(VnfKind.FIREWALL, (Rule(F_PERMIT, Action.PERMIT), Rule(F_DENY, Action.DENY)), 0.0, {}),
        2: InstanceSpec.of(VnfKind.NAT, (Rule(Flow(0, DST, UDP_PROTO, F_NAT.dst_port), Action.REWRITE, addr=BACKEND,
                                              port=NAT_PORT),), 0.0, {}),
        3: limiter(frame_size, committed=5, peak=10),
        4: InstanceSpec.of(VnfKind.CLASSIFIER, (Rule(F_DSCP, Action.SET_DSCP, dscp=26),), 0.0, {})}


@needs_netns
def test_the_process_serves_every_kind_and_counts_what_it_drops(tmp_path: Path) -> None:
    with rack_servers(tmp_path) as (_, [server]):
        to = server.mac
        size = len(nsh_frame(ServicePath(3, 1, 1), inner_udp(F_METER), dst=to))
        paths, instances = four_kinds(size)
        assert server.client.install(1, paths, instances) == [1]
        fw, nat, rl, dscp = (ServicePath(1, 2, 1), ServicePath(2, 1, 1), ServicePath(3, 1, 1), ServicePath(4, 1, 1))
        server.send(nsh_frame(fw, inner_udp(F_PERMIT, 1), dst=to), nsh_frame(fw, inner_udp(F_DENY, 2), dst=to),
                    nsh_frame(fw, inner_udp(F_METER, 3), dst=to), nsh_frame(nat, inner_udp(F_NAT, 4), dst=to),
                    nsh_frame(dscp, inner_udp(F_DSCP, 5), dst=to),
                    *(nsh_frame(rl, inner_udp(F_METER, 100 + n), dst=to) for n in range(20)))
        bad = [nsh_frame(fw, inner_udp(F_PERMIT), dst=to)[:40],                    # truncated
               nsh_frame(ServicePath(9, 1, 1), inner_udp(F_PERMIT), dst=to),      # unknown chain
               nsh_frame(ServicePath(1, 2, 7), inner_udp(F_PERMIT), dst=to),      # unknown version
               other_md_class(nsh_frame(fw, inner_udp(F_PERMIT), dst=to))]
        server.send(*bad, nsh_frame(fw, inner_udp(F_PERMIT, 6), dst=bytes.fromhex("020000000fff")))  # not for this server
        back = {tag_of(f): f for f in server.receive(1 + 1 + 1 + 10)}
        status = server.wait_until(lambda status: status["ignored"] == 1)  # the last frame sent
        assert sorted(back) == [1, 4, 5, *range(100, 110)], "permitted, translated, classified, and 10 of 20 metered"
        for frame in back.values():
            assert (frame[0:6], frame[6:12]) == (SWITCH_MAC, to)
        assert read_nsh(back[1]) == ServicePath(1, 1, 1) and read_nsh(back[4]) == ServicePath(2, 0, 1)
        translated = IP(back[4][IPV4_OFFSET:])
        assert (translated.dst, translated[UDP].dport) == (ip_text(BACKEND), NAT_PORT) and checksums_valid(back[4][IPV4_OFFSET:])
        assert IP(back[5][IPV4_OFFSET:]).tos >> 2 == 26
        assert [IP(back[100 + n][IPV4_OFFSET:]).tos >> 2 for n in range(10)] == [0] * 5 + [8] * 5
        assert status["instances"]["1"]["dropped"] == {"firewall": 2}
        assert status["instances"]["3"]["dropped"] == {"meter": 10}
        assert status["bad"] == {"truncated": 1, "unknown_path": 2, "not_srem_nsh": 1}
        assert status["ignored"] == 1 and status["queue"] == 0 and status["socket_drops"] == 0
        assert status["instances"]["3"]["packets"] == 20 and status["instances"]["3"]["sent"] == 10
        assert server.process.poll() is None
        assert "no instance here serves SPI 9, SI 1, version 1" in (tmp_path / "m0.log").read_text()


class Capture:
    """Every frame on the server's interface, in and out, with the kernel's software timestamp of each.

    The kernel stamps frames only while some socket wants stamps, and turns that on through deferred work
    (net_enable_timestamp), which on a loaded machine can leave the first hundreds of frames unstamped.
    SO_TIMESTAMPING reports such a frame without a stamp (SO_TIMESTAMPNS would stamp it when read, silently
    wrong), so unstamped frames are counted and left out, and `ready` waits until stamps flow."""

    def __init__(self, netns: str, interface: str) -> None:
        self.sock = raw_socket(netns, interface, ETH_P_ALL)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE)
        self.unstamped = 0

    def read(self, seconds: float) -> list[tuple[bool, int, bytes]]:
        """(outgoing, kernel time in ns, frame) of what passed within `seconds`."""
        got = []
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([self.sock], [], [], left)[0]:
                continue
            frame, ancillary, _, address = self.sock.recvmsg(65535, socket.CMSG_SPACE(48))
            stamps = [struct.unpack("qq", data[:16]) for level, kind, data in ancillary
                      if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING]
            if not stamps or stamps[0] == (0, 0):
                self.unstamped += 1
                continue
            got.append((address[2] == PACKET_OUTGOING, stamps[0][0] * 1_000_000_000 + stamps[0][1], frame))
        return got

    def ready(self, server: Running, path: ServicePath) -> None:
        """Send frames of `path` (served without delay) through the server until the kernel stamps them both ways."""
        for n in range(200):
            server.send(nsh_frame(path, inner_udp(F_PERMIT, 900_000 + n), dst=server.mac))
            server.receive(1)
            if 900_000 + n in self.holds(0.02):
                return
            time.sleep(0.02)
        raise AssertionError("the kernel never stamped frames on the server's interface")

    def holds(self, seconds: float) -> dict[int, int]:
        """Per tag: ns from the frame's arrival at the server's interface to its leaving it."""
        arrived, left = {}, {}
        for outgoing, stamp, frame in self.read(seconds):
            if int.from_bytes(frame[12:14], "big") == ETHERTYPE_NSH and len(frame) >= IPV4_OFFSET + 36:
                (left if outgoing else arrived)[tag_of(frame)] = stamp
        return {tag: left[tag] - arrived[tag] for tag in left if tag in arrived}

    def close(self) -> None:
        self.sock.close()


@needs_netns
def test_packets_are_held_for_the_delay_in_order_without_blocking_other_chains(tmp_path: Path) -> None:
    """Holds are measured between the kernel's timestamps of a frame entering and leaving the server's
    interface. Delay 0 gives the process's own overhead; with a delay, each hold must be at least the delay,
    and its excess over it within what the overhead and the machine's timer wake-ups spread over."""
    delay_ms = 20.0
    with rack_servers(tmp_path) as (netns, [server]):
        to = server.mac
        quick, held = ServicePath(1, 1, 1), ServicePath(2, 1, 1)
        server.client.install(1, {quick: 1, held: 2}, {1: firewall(F_PERMIT), 2: firewall(F_PERMIT, delay_ms=delay_ms)})
        capture = Capture(netns, server.interface)
        try:
            capture.ready(server, quick)
            for n in range(100):
                server.send(nsh_frame(quick, inner_udp(F_PERMIT, n), dst=to))
                assert len(server.receive(1)) == 1
            overhead = sorted(capture.holds(0.2).values())
            wakeups = []
            for _ in range(100):
                started = time.monotonic()
                select.select([], [], [], delay_ms / 1000)
                wakeups.append(time.monotonic() - started - delay_ms / 1000)
            # interleaved: 50 frames of the held chain, each followed by one of the quick chain
            for n in range(50):
                server.send(nsh_frame(held, inner_udp(F_PERMIT, 1000 + n), dst=to),
                            nsh_frame(quick, inner_udp(F_PERMIT, 2000 + n), dst=to))
                time.sleep(0.0005)
            order = [tag_of(f) for f in server.receive(100, seconds=5.0)]
            holds = capture.holds(0.2)
        finally:
            capture.close()
    assert len(overhead) >= 90 and len(holds) >= 90, f"{capture.unstamped} frames the kernel left unstamped"
    assert sorted(order) == [*range(1000, 1050), *range(2000, 2050)], "nothing lost"
    assert [t for t in order if t < 2000] == list(range(1000, 1050)), "the held chain in order"
    assert [t for t in order if t >= 2000] == list(range(2000, 2050)), "the quick chain in order"
    assert all(order.index(2000 + n) < order.index(1000 + n) for n in range(50)), \
        "a quick packet sent after a held one leaves before it: holding blocks no other chain"
    delay_ns = delay_ms * 1e6
    held_holds = [holds[1000 + n] for n in range(50) if 1000 + n in holds]
    # The process times holds on CLOCK_MONOTONIC from after it read the frame, the kernel stamps CLOCK_REALTIME; NTP
    # slews both alike, so only a step of the wall clock could make a hold look shorter than it was.
    assert min(held_holds) >= delay_ns, f"a packet left {delay_ns - min(held_holds):.0f} ns early"
    # The excess is the process's overhead plus one timer wake-up: allow the worst of each as measured just now, twice.
    tolerance_ns = 2 * (overhead[-1] + max(wakeups) * 1e9)
    excess = sorted(h - delay_ns for h in held_holds)
    assert statistics.median(excess) <= tolerance_ns, f"median excess {statistics.median(excess) / 1e3:.0f} us, " \
        f"overhead p50/max {statistics.median(overhead) / 1e3:.0f}/{overhead[-1] / 1e3:.0f} us, " \
        f"wake-up max {max(wakeups) * 1e6:.0f} us"


@needs_netns
def test_a_new_generation_while_old_packets_are_held_loses_none(tmp_path: Path) -> None:
    with rack_servers(tmp_path) as (_, [server]):
        to = server.mac
        old, new = ServicePath(1, 1, 1), ServicePath(1, 1, 2)
        server.client.install(1, {old: 1}, {1: firewall(F_PERMIT, delay_ms=300.0)})
        server.send(*(nsh_frame(old, inner_udp(F_PERMIT, n), dst=to) for n in range(10)))
        assert server.client.install(2, {new: 1}, {1: firewall(F_PERMIT, delay_ms=300.0)}) == [1, 2]
        server.send(*(nsh_frame(old, inner_udp(F_PERMIT, 10 + n), dst=to) for n in range(10)))
        server.send(*(nsh_frame(new, inner_udp(F_PERMIT, 20 + n), dst=to) for n in range(10)))
        status = server.wait_served("1", 30)
        assert status["queue"] == 30, "all thirty still held when the old generation is retired"
        assert server.client.retire(2) == [2]
        server.send(*(nsh_frame(old, inner_udp(F_PERMIT, 30 + n), dst=to) for n in range(5)))
        back = server.receive(30)
        assert [tag_of(f) for f in back] == list(range(30)), "every packet of both versions, in the chain's order"
        assert [read_nsh(f).version for f in back] == [1] * 20 + [2] * 10
        assert server.receive(1, seconds=0.5) == []
        status = server.client.status()
        assert status["bad"] == {"unknown_path": 5} and status["instances"]["1"]["sent"] == 30


@needs_netns
def test_state_moves_between_two_processes(tmp_path: Path) -> None:
    with rack_servers(tmp_path, count=2) as (_, [a, b]):
        path = ServicePath(3, 1, 1)
        size = len(nsh_frame(path, inner_udp(F_METER), dst=a.mac))
        for server in (a, b):
            server.client.install(1, {path: 3}, {3: limiter(size, committed=5, peak=8)})
        a.send(*(nsh_frame(path, inner_udp(F_METER, n), dst=a.mac) for n in range(7)))
        assert len(a.receive(7)) == 7  # 5 green, 2 yellow: 1 peak token left
        move_state(a.client, b.client, 3)
        b.send(*(nsh_frame(path, inner_udp(F_METER, 10 + n), dst=b.mac) for n in range(5)))
        back = b.receive(5, seconds=1.0)
        assert [(tag_of(f), IP(f[IPV4_OFFSET:]).tos >> 2) for f in back] == [(10, 8)], \
            "the moved meter goes on where it was: one yellow, then red (a fresh one would pass 5 green)"
        counters = b.client.status()["instances"]["3"]
        assert (counters["packets"], counters["sent"], counters["dropped"]) == (12, 8, {"meter": 4})


@needs_netns
def test_a_malformed_install_is_refused_and_the_old_configuration_still_served(tmp_path: Path) -> None:
    with rack_servers(tmp_path) as (_, [server]):
        path = ServicePath(1, 1, 1)
        server.client.install(5, {path: 1}, {1: firewall(F_PERMIT)})
        good = install_request(6, {ServicePath(1, 1, 2): 1}, {1: firewall(F_PERMIT)})
        refusals = {
            "older": {**good, "generation": 4},
            "kind": {**good, "instances": [{**good["instances"][0], "kind": "ROUTER"}]},
            "rule": {**good, "instances": [{**good["instances"][0], "rules": [{"key": {}, "action": "PERMIT"}]}]},
            "path": {**good, "paths": [{"spi": 1, "si": 1, "version": 2, "instance": 9}]},
        }
        for what, request in refusals.items():
            with pytest.raises(ControlError, match="install: bad request: ") as refused:
                call(server.control, "install", **request)
            assert "\n" not in str(refused.value), what
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(server.control))
            raw.sendall(b"{not json\n")
            assert json.loads(raw.makefile().readline())["error"].startswith("not JSON")
        with pytest.raises(ControlError, match="unknown op 'reboot' \\(install, retire, export_state, import_state, status\\)"):
            call(server.control, "reboot")
        assert server.client.status()["generations"] == [5]
        server.send(nsh_frame(path, inner_udp(F_PERMIT, 1), dst=server.mac))
        assert [tag_of(f) for f in server.receive(1)] == [1]


@needs_netns
def test_sigterm_ends_the_process_cleanly_and_nothing_is_left(tmp_path: Path) -> None:
    with rack_servers(tmp_path) as (netns, [server]):
        server.client.install(1, {V1: 1}, {1: firewall(F_PERMIT, delay_ms=1000.0)})
        server.send(nsh_frame(V1, inner_udp(F_PERMIT), dst=server.mac))
        server.wait_served("1", 1)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(5) == 0
        assert server.process.stderr is not None and server.process.stderr.read() == ""
        assert not server.control.exists(), "the control socket is removed"
        with pytest.raises(ControlError, match="no control socket"):
            server.client.status()
    assert netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not Path(f"/proc/{server.process.pid}").exists(), "the process is gone (ip netns exec runs it in place)"


@needs_netns
@pytest.mark.parametrize(("args", "names"), [
    (["--switch-mac", "02:00:00"], "--switch-mac: '02:00:00' is not a MAC address"),
    (["--interface", "nosuchif0"], "--interface nosuchif0: No such device"),
    (["--log", "/nonexistent/m1.log"], "--log /nonexistent/m1.log: No such file or directory"),
    (["--control", "/nonexistent/m1.sock"], "--control /nonexistent/m1.sock: No such file or directory"),
])
def test_bad_arguments_are_refused_in_one_line(tmp_path: Path, args: list[str], names: str) -> None:
    good = command("m1", "lo", SWITCH_MAC_TEXT, tmp_path / "m1.sock", tmp_path / "m1.log")
    done = subprocess.run([*good, *args], capture_output=True, text=True, timeout=30, cwd=Path(__file__).parents[1])
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and names in done.stderr
    assert not (tmp_path / "m1.sock").exists()
