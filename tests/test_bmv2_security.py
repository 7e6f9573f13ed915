"""The data plane trusts no host (issue 12): each attack the black-box check of the previous build found -
from a host, a server, another switch's or a misbehaving EMAC port - as packets into BMv2, each dropped
and counted under its reason, and valid traffic flowing after it.

The bed (tests/bmv2_bed.py) is one BMv2 switch s1 whose host, link, server and EMAC ports all end in
the test, so the test plays each neighbour, honest or not.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from bmv2_bed import EMAC, FW_DSCP, FW_EM, FW_IN, FW_LM, FW_SRV, HOST, LINK, RL_EM, RL_LM, SERVER, SKIP_REASON, Bed, \
    answer_frame, answer_to, bed, ether, ethertype, inner_ipv4, ipv4_udp, nsh_frame, nsh_of, plain
from controller.dataplane.entries import DropReason as D
from controller.dataplane.rules import CHAIN_DSCP
from srem_formats.flows import Action, Flow, VnfKind
from srem_formats.wire import ETHERTYPE_EMAC_REQUEST, ETHERTYPE_IPV4, STATUS_HIT, STATUS_MISS, EmacRequest, EmacResponse, \
    Nsh

pytestmark = pytest.mark.skipif(bool(SKIP_REASON), reason=SKIP_REASON)
S1 = 1
"""s1's switch id."""


@pytest.fixture(scope="module")
def s1(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    with bed("sec", tmp_path_factory.mktemp("bmv2-security")) as b:
        yield b


@pytest.fixture
def drops(s1: Bed) -> Iterator[dict[D, int]]:
    """Drop counts at the start of the test; the test checks what it added."""
    yield s1.drops()


def added(s1: Bed, before: dict[D, int]) -> dict[D, int]:
    """What the drop counter gained since `before`, by reason (reasons that did not move left out)."""
    now = s1.drops()
    return {reason: now[reason] - before.get(reason, 0) for reason in D if now.get(reason, 0) != before.get(reason, 0)}


def flow_of(frame: bytes) -> Flow | None:
    ip = inner_ipv4(frame)
    if ip is None or ip[9] not in (6, 17):
        return None
    l4 = (ip[0] & 0xF) * 4
    return Flow(int.from_bytes(ip[12:16], "big"), int.from_bytes(ip[16:20], "big"), ip[9], int.from_bytes(ip[l4 + 2:l4 + 4], "big"))


def carrying(got: list[tuple[str, bytes]], flow: Flow, iface: str | None = None) -> list[bytes]:
    return [f for name, f in got if flow_of(f) == flow and (iface is None or name == iface)]


def test_nsh_from_a_host_never_skips_a_chain_function(s1: Bed, drops: dict[D, int]) -> None:
    """A host sends what a packet past each firewall of s1 looks like - LM, EM, server - for a packet
    the firewalls deny."""
    denied = s1.denied(FW_LM)
    forged = [nsh_frame(s1.spi(c), 0, s1.version(c), ipv4_udp(denied)) for c in (FW_LM, FW_EM, FW_SRV)]
    got = s1.through(HOST, *forged)
    assert carrying(got, denied) == [], "a packet the firewall denies crossed it"
    assert added(s1, drops) == {D.NSH_UNTRUSTED: 3}
    # The chain's own traffic from the same host is classified and goes through the firewall.
    got = s1.through(HOST, plain(s1.flow(FW_LM)))
    [out] = carrying(got, s1.flow(FW_LM), LINK)
    assert (nsh_of(out).spi, nsh_of(out).si) == (s1.spi(FW_LM), 0)


def test_nsh_from_a_host_is_not_popped_at_a_chain_end(s1: Bed, drops: dict[D, int]) -> None:
    """FW_IN ends at s1, its firewall at s2: a host claims a packet has been through it."""
    inner = Flow(s1.host_ip("s2"), s1.host_ip("s1"), 17, 9999)
    got = s1.through(HOST, nsh_frame(s1.spi(FW_IN), 0, s1.version(FW_IN), ipv4_udp(inner)))
    assert carrying(got, inner) == [], "NSH from a host was popped and its packet delivered"
    assert added(s1, drops) == {D.NSH_UNTRUSTED: 1}
    # The same chain's packet from the link (s2 ran the firewall) is popped and delivered to the host.
    got = s1.through(LINK, nsh_frame(s1.spi(FW_IN), 0, s1.version(FW_IN), ipv4_udp(s1.flow(FW_IN))))
    [out] = carrying(got, s1.flow(FW_IN), HOST)
    assert ethertype(out) == ETHERTYPE_IPV4


def test_a_server_sends_back_only_the_chains_it_serves(s1: Bed, drops: dict[D, int]) -> None:
    denied = s1.denied(FW_LM)
    forged = [nsh_frame(s1.spi(FW_LM), 0, s1.version(FW_LM), ipv4_udp(denied)),      # another chain's firewall, skipped
              nsh_frame(s1.spi(FW_SRV), 0, s1.version(FW_SRV) + 1, ipv4_udp(denied)),  # its chain, another version
              nsh_frame(s1.spi(FW_SRV), 1, s1.version(FW_SRV), ipv4_udp(denied))]      # its chain, not what it returns
    got = s1.through(SERVER, *forged)
    assert carrying(got, denied) == []
    assert added(s1, drops) == {D.SERVER_RETURN: 3}
    # The firewall's own round trip: to m1 with SI 1, back with SI 0, on to s2.
    got = s1.through(HOST, plain(s1.flow(FW_SRV)))
    [at_server] = carrying(got, s1.flow(FW_SRV), SERVER)
    nsh = nsh_of(at_server)
    assert (nsh.spi, nsh.si) == (s1.spi(FW_SRV), 1)
    back = at_server[:14] + Nsh(nsh.spi, 0, nsh.version, nsh.ttl).pack() + at_server[14 + Nsh.SIZE:]
    got = s1.through(SERVER, back)
    [out] = carrying(got, s1.flow(FW_SRV), LINK)
    assert nsh_of(out).si == 0


def outstanding(s1: Bed, flow: Flow, chain: int = FW_EM) -> bytes:
    """A request of s1 waiting for its answer: the chain's packet from the link, at its EM function."""
    return s1.request(LINK, nsh_frame(s1.spi(chain), 1, s1.version(chain), ipv4_udp(flow)))


def test_emac_answers_are_taken_from_the_emac_port_only(s1: Bed, drops: dict[D, int]) -> None:
    denied = s1.denied(FW_EM)
    request = outstanding(s1, denied)
    permit = answer_to(request)  # a PERMIT that matches the request in every field
    got = []
    for port in (HOST, LINK, SERVER):
        got += s1.through(port, permit)
    assert carrying(got, denied) == [], "a forged answer skipped the EM firewall"
    assert added(s1, drops) == {D.EMAC_UNTRUSTED: 3}
    # The request is still open: the EMAC's real answer (the table's: a miss) is applied.
    got = s1.through(EMAC, answer_to(request, status=STATUS_MISS))
    assert carrying(got, denied) == []
    assert added(s1, drops) == {D.EMAC_UNTRUSTED: 3, D.FIREWALL: 1}


def test_unsolicited_emac_answers_are_dropped(s1: Bed, drops: dict[D, int]) -> None:
    denied = s1.denied(FW_EM)
    request = outstanding(s1, denied)
    seq = EmacRequest.unpack(request[14:]).seq
    lm_firewall = s1.instance("firewall#0")
    unknown_chain = nsh_frame(4000, 1, 1, ipv4_udp(denied))[14:]
    forged = [answer_to(request, seq=seq + 1000),                      # a sequence number never issued
              answer_to(request, switch_id=2),                         # another switch's
              answer_to(request, instance=lm_firewall),                # an instance without an RDMA-index entry
              answer_to(request, status=STATUS_MISS, vnf_type=VnfKind.NAT),  # a miss of another function type
              answer_frame(EmacResponse(S1, s1.instance("firewall#1"), VnfKind.FIREWALL, seq + 1, STATUS_HIT, Action.PERMIT),
                           unknown_chain)]                             # made up: a chain that does not exist
    got = s1.through(EMAC, *forged)
    assert carrying(got, denied) == [], "an unsolicited answer was applied"
    assert added(s1, drops) == {D.EMAC_UNSOLICITED: 5}
    # None of them closed the request: the EMAC's answer still counts.
    got = s1.through(EMAC, answer_to(request, action=Action.DENY))
    assert carrying(got, denied) == []
    assert added(s1, drops) == {D.EMAC_UNSOLICITED: 5, D.FIREWALL: 1}


def test_an_answer_the_function_cannot_take_is_dropped(s1: Bed, drops: dict[D, int]) -> None:
    """A REWRITE (NAT) or SET_DSCP answered to a firewall's request, or a status that does not exist."""
    denied = s1.denied(FW_EM)
    got = []
    for answer in ({"action": Action.REWRITE, "addr": s1.host_ip("s2"), "port": 80}, {"action": Action.SET_DSCP},
                   {"action": Action.METER}, {"status": 7}):
        got += s1.through(EMAC, answer_to(outstanding(s1, denied), **answer))
    assert carrying(got, denied) == [] and [f for _, f in got if flow_of(f) and flow_of(f).dst_port == 80] == []
    assert added(s1, drops) == {D.EMAC_RESPONSE: 4}
    # An honest PERMIT for the chain's own traffic passes the EM firewall.
    request = s1.request(HOST, plain(s1.flow(FW_EM)))
    got = s1.through(EMAC, answer_to(request))
    [out] = carrying(got, s1.flow(FW_EM), LINK)
    assert (nsh_of(out).spi, nsh_of(out).si) == (s1.spi(FW_EM), 0)


def test_duplicate_and_late_answers_are_dropped(s1: Bed, drops: dict[D, int]) -> None:
    request = s1.request(HOST, plain(s1.flow(FW_EM)))
    got = s1.through(EMAC, answer_to(request))
    assert len(carrying(got, s1.flow(FW_EM), LINK)) == 1
    got = s1.through(EMAC, answer_to(request))
    assert carrying(got, s1.flow(FW_EM)) == [], "the same answer was applied twice"
    assert added(s1, drops) == {D.EMAC_DUPLICATE: 1}
    late = s1.request(HOST, plain(s1.flow(FW_EM)))
    time.sleep(0.6)  # beyond EMAC_ANSWER_TIMEOUT_US
    got = s1.through(EMAC, answer_to(late))
    assert carrying(got, s1.flow(FW_EM)) == []
    assert added(s1, drops) == {D.EMAC_DUPLICATE: 1, D.EMAC_LATE: 1}
    got = s1.through(EMAC, answer_to(s1.request(HOST, plain(s1.flow(FW_EM)))))
    assert len(carrying(got, s1.flow(FW_EM), LINK)) == 1


def test_forged_meter_answers_cannot_turn_another_chains_meter_red(s1: Bed, drops: dict[D, int]) -> None:
    """RL_LM's meter is a cell of the one meter array EM rate limiters use too."""
    victim = s1.rules[s1.instance("rate_limiter#0")][0].meter_index
    meter = EmacResponse(S1, s1.instance("rate_limiter#1"), VnfKind.RATE_LIMITER, 0, STATUS_HIT, Action.METER,
                         meter_index=victim, flags=1)
    big = ipv4_udp(s1.denied(RL_LM), payload=bytes(1200))
    forged = [answer_frame(EmacResponse(**{**meter.__dict__, "seq": 10_000 + i}), nsh_frame(4000, 1, 1, big)[14:])
              for i in range(150)]
    # An EM rate limiter's real request answered with the victim's cell: not one of its own.
    got = s1.through(EMAC, answer_to(outstanding(s1, s1.flow(RL_EM), RL_EM), action=Action.METER, meter_index=victim, flags=1))
    # Forged answers from the EMAC port and from the host, the victim's packet right behind them.
    # (A forged packet the meter marks red takes no tokens: the bucket refills to just under a forged
    # packet's size, so the victim's packet is larger than that.)
    got += s1.through(HOST, *forged[:10], plain(s1.flow(RL_LM), payload=bytes(1400)), first=((EMAC, forged),))
    assert carrying(got, s1.denied(RL_LM)) == []
    # The victim's packet is green: delivered, unmarked.
    assert len(carrying(got, s1.flow(RL_LM), LINK)) == 1, "the forged answers ran another chain's meter"
    assert inner_ipv4(carrying(got, s1.flow(RL_LM), LINK)[0])[1] >> 2 == 0
    assert added(s1, drops) == {D.EMAC_UNSOLICITED: 150, D.EMAC_UNTRUSTED: 10, D.INDEX_RANGE: 1}


def test_indices_from_a_packet_never_reach_a_counter_or_meter_out_of_range(s1: Bed, drops: dict[D, int]) -> None:
    flow = s1.flow(RL_EM)
    inner = nsh_frame(s1.spi(RL_EM), 1, s1.version(RL_EM), ipv4_udp(flow))[14:]
    forged = [answer_frame(EmacResponse(S1, 0xFFFF, VnfKind.FIREWALL, 20_000, STATUS_HIT, Action.PERMIT), inner),
              answer_frame(EmacResponse(S1, s1.instance("rate_limiter#1"), VnfKind.RATE_LIMITER, 20_001, STATUS_HIT,
                                        Action.METER, meter_index=0xFFFF), inner)]
    got = s1.through(EMAC, *forged)
    got += s1.through(EMAC, answer_to(outstanding(s1, flow, RL_EM), action=Action.METER, meter_index=0xFFFF))
    assert s1.out_of_bounds_log() == [], "an index from a packet reached an array out of its bounds"
    assert carrying(got, flow) == []
    assert added(s1, drops) == {D.EMAC_UNSOLICITED: 2, D.INDEX_RANGE: 1}
    # The EM rate limiter's own cell is taken.
    own = s1.rules[s1.instance("rate_limiter#1")][0]
    request = s1.request(HOST, plain(flow))
    got = s1.through(EMAC, answer_to(request, action=Action.METER, meter_index=own.meter_index, flags=1))
    assert len(carrying(got, flow, LINK)) == 1
    assert s1.out_of_bounds_log() == []


def test_nsh_ttl_is_decremented_before_the_lookup_and_discarded_at_zero(s1: Bed, drops: dict[D, int]) -> None:
    """RFC 8300, 2.2: FW_LM's packet past its firewall, from the link, is forwarded back to s2."""
    def sent(ttl: int) -> list[Nsh]:
        frame = nsh_frame(s1.spi(FW_LM), 0, s1.version(FW_LM), ipv4_udp(s1.flow(FW_LM)), ttl=ttl)
        return [nsh_of(f) for f in carrying(s1.through(LINK, frame), s1.flow(FW_LM), LINK)]

    assert sent(1) == []
    assert added(s1, drops) == {D.NSH_TTL: 1}
    assert [n.ttl for n in sent(2)] == [1]
    assert [n.ttl for n in sent(0)] == [63], "0 decrements to 63"
    assert added(s1, drops) == {D.NSH_TTL: 1}


@pytest.mark.parametrize("tlv_length", [0, 8, 127])
def test_a_context_tlv_of_another_length_is_dropped(s1: Bed, drops: dict[D, int], tlv_length: int) -> None:
    frame = nsh_frame(s1.spi(FW_LM), 0, s1.version(FW_LM), ipv4_udp(s1.flow(FW_LM)), tlv_length=tlv_length)
    assert carrying(s1.through(LINK, frame), s1.flow(FW_LM)) == []
    assert added(s1, drops) == {D.PARSER: 1}


def test_plain_ipv4_ttl_is_decremented_and_dropped_at_zero(s1: Bed, drops: dict[D, int]) -> None:
    flow = Flow(s1.host_ip("s1"), s1.host_ip("s2"), 17, 7777)
    got = s1.through(HOST, plain(flow, ttl=0), plain(flow, ttl=1))
    assert carrying(got, flow) == []
    assert added(s1, drops) == {D.IPV4_TTL: 2}
    [out] = carrying(s1.through(HOST, plain(flow, ttl=2)), flow, LINK)
    assert inner_ipv4(out)[8] == 1


def test_frames_the_program_does_not_handle_are_dropped_and_counted(s1: Bed, drops: dict[D, int]) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import ARP, Dot1Q, Ether

    src = "02:00:00:00:00:01"
    frames = [bytes(Ether(src=src, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.1.0.1", pdst="10.1.0.2")),
              bytes(Ether(src=src) / IPv6(dst="fe80::1") / UDP(dport=7)),
              bytes(Ether(src=src) / Dot1Q(vlan=5) / IP(src="10.1.0.1", dst="10.1.0.2") / UDP(dport=7)),
              ether(0x1234) + bytes(46),
              ether(ETHERTYPE_EMAC_REQUEST) + bytes(EmacRequest.SIZE + 40)]
    got = s1.through(HOST, *frames) + s1.through(LINK, *frames)
    assert got == []
    assert added(s1, drops) == {D.UNHANDLED: 10}


def test_a_host_sends_from_its_own_address_only(s1: Bed, drops: dict[D, int]) -> None:
    spoofed = Flow(s1.host_ip("s2"), s1.host_ip("s1"), 17, 7)
    assert carrying(s1.through(HOST, plain(spoofed)), spoofed) == []
    assert added(s1, drops) == {D.SPOOFED_SOURCE: 1}


def test_a_server_cannot_send_plain_ipv4_past_the_chains(s1: Bed, drops: dict[D, int]) -> None:
    """Issue 20: a rack server sent a host's denied 5-tuple as plain IPv4 with the host's source, and it left on the
    link port, past the firewall. A server returns chain packets in NSH; plain IPv4 from it is dropped, whatever
    its source."""
    denied = Flow(s1.host_ip("s1"), s1.host_ip("s2"), 17, 10001)
    own = Flow(int(s1.layout.servers["m1"].ip), s1.host_ip("s2"), 17, 7)
    got = s1.through(SERVER, plain(denied), plain(own))
    assert carrying(got, denied) == [] and carrying(got, own) == []
    assert added(s1, drops) == {D.SERVER_IPV4: 2}


def test_valid_traffic_of_every_kind_flows_with_the_next_hops_address(s1: Bed, drops: dict[D, int]) -> None:
    s2_mac = s1.layout.switches["s2"].mac
    # Firewall then DSCP classifier, both in s1's LM: two passes (the second a recirculation), then to s2.
    got = s1.through(HOST, plain(s1.flow(FW_DSCP)))
    [out] = carrying(got, s1.flow(FW_DSCP), LINK)
    assert (nsh_of(out).spi, nsh_of(out).si) == (s1.spi(FW_DSCP), 0)
    assert inner_ipv4(out)[1] >> 2 == CHAIN_DSCP
    # Every frame s1 sends to s2 is addressed to s2, whatever the sender had put there.
    got = s1.through(HOST, plain(s1.flow(FW_LM)), plain(Flow(s1.host_ip("s1"), s1.host_ip("s2"), 17, 80)))
    assert len(got) == 2 and all(name == LINK and f[:6].hex(":") == s2_mac for name, f in got)
    # To the server: addressed to the server.
    [at_server] = carrying(s1.through(HOST, plain(s1.flow(FW_SRV))), s1.flow(FW_SRV), SERVER)
    assert at_server[:6].hex(":") == s1.layout.servers["m1"].mac
    assert added(s1, drops) == {}
