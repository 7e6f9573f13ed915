"""The bytes of the testbed's traffic: one UDP payload format for chain data, chain probes and baseline probes.

Every packet a traffic host sends carries the same 28-byte header at the start of its UDP payload,
so the receiver recognises it whatever the NAT did to its address and port on the way:

    magic "SRpb" | kind (1 byte) | 3 zero bytes | chain id (u32) | sequence number (u64) | send time (u64, ns)

A probe's send time is CLOCK_REALTIME (time.time_ns) taken just before the frame is handed to the
kernel; all Mininet hosts share one kernel, hence one clock, so the receiver's kernel timestamp minus
it is the one-way latency. Data packets carry the chain id only (the receiver counts them).

A frame is built once per stream with scapy (Ethernet, IPv4 with DF, UDP with checksum 0 - allowed
over IPv4 and what srem.p4 writes after a NAT) and then only the sequence number and send time are
patched per packet: nothing in the IPv4 header changes, so neither does its checksum.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

MAGIC = b"SRpb"
HEADER = struct.Struct("!4sB3xIQQ")
_SEQ_TIME = struct.Struct("!QQ")
_SEQ_OFFSET = 12
"""Where the sequence number starts inside the header."""
ETHERNET_LEN, UDP_LEN, MAX_IPV4_HEADER_LEN = 14, 8, 60
SNAP_LEN = ETHERNET_LEN + MAX_IPV4_HEADER_LEN + UDP_LEN + HEADER.size
"""Bytes of a received frame the receiver needs: the kernel copies no more to it."""
IP_PROTO_UDP = 17
BASELINE_PORT = 9
"""The discard port: baseline probes' destination, outside every chain's ports, so no classifier matches them."""


class Kind(IntEnum):
    PROBE = 1
    DATA = 2
    BASELINE = 3


_KINDS = frozenset(int(k) for k in Kind)


@dataclass(frozen=True)
class Endpoints:
    src_mac: str
    dst_mac: str
    src: str
    dst: str
    src_port: int
    dst_port: int


class Template:
    """One stream's frame, built once; `stamp` writes a sequence number and a send time into it in place."""

    def __init__(self, ends: Endpoints, kind: Kind, chain: int, payload_size: int) -> None:
        if payload_size < HEADER.size:
            raise ValueError(f"payload of {payload_size} bytes: at least {HEADER.size} (the probe header)")
        payload = HEADER.pack(MAGIC, kind, chain, 0, 0) + bytes(payload_size - HEADER.size)
        frame = (Ether(src=ends.src_mac, dst=ends.dst_mac) / IP(src=ends.src, dst=ends.dst, ttl=64, id=0, flags="DF")
                 / UDP(sport=ends.src_port, dport=ends.dst_port, chksum=0) / payload)
        self.frame = bytearray(bytes(frame))
        self._at = len(self.frame) - payload_size + _SEQ_OFFSET

    def stamp(self, seq: int, sent_ns: int) -> bytearray:
        _SEQ_TIME.pack_into(self.frame, self._at, seq, sent_ns)
        return self.frame


def parse(frame: bytes) -> tuple[int, int, int, int, int] | None:
    """(kind, chain, seq, sent_ns, IPv4 source as int) of a frame carrying the header; None for any other frame."""
    if len(frame) < ETHERNET_LEN + 20 or frame[12:14] != b"\x08\x00" or frame[14] >> 4 != 4 or frame[23] != IP_PROTO_UDP \
            or int.from_bytes(frame[20:22], "big") & 0x1FFF:
        return None
    start = ETHERNET_LEN + (frame[14] & 0x0F) * 4 + UDP_LEN
    if len(frame) < start + HEADER.size:
        return None
    magic, kind, chain, seq, sent_ns = HEADER.unpack_from(frame, start)
    if magic != MAGIC or kind not in _KINDS:
        return None
    return kind, chain, seq, sent_ns, int.from_bytes(frame[26:30], "big")


# Classic BPF (linux/filter.h): the receiver's socket filter. Its socket is bound to IPv4 frames only, which
# the kernel never copies to it from the host's own sends (those go to ETH_P_ALL taps only); of these the
# filter keeps UDP first fragments whose payload starts with MAGIC, cut to SNAP_LEN.
_LD, _LDX, _JMP, _RET = 0x00, 0x01, 0x05, 0x06
_W, _H, _B = 0x00, 0x08, 0x10
_ABS, _IND, _MSH = 0x20, 0x40, 0xA0
_JEQ, _JSET = 0x10, 0x40


def socket_filter() -> list[tuple[int, int, int, int]]:
    """The program as (code, jt, jf, k) instructions; a jump's offsets count the instructions it skips."""
    return [
        (_LD | _B | _ABS, 0, 0, ETHERNET_LEN + 9),
        (_JMP | _JEQ, 0, 6, IP_PROTO_UDP),
        (_LD | _H | _ABS, 0, 0, ETHERNET_LEN + 6),
        (_JMP | _JSET, 4, 0, 0x1FFF),                           # a later fragment has no UDP header
        (_LDX | _B | _MSH, 0, 0, ETHERNET_LEN),                 # X = IPv4 header length
        (_LD | _W | _IND, 0, 0, ETHERNET_LEN + UDP_LEN),
        (_JMP | _JEQ, 0, 1, int.from_bytes(MAGIC, "big")),
        (_RET, 0, 0, SNAP_LEN),
        (_RET, 0, 0, 0),
    ]
