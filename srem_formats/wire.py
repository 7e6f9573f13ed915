"""Byte layouts srem.p4 puts on the wire: NSH with the version TLV, and the EMAC request and response.

Mirrors p4src/include/header.p4 and the constants of define.p4 (tests check the sizes against the
compiled program and the constants against the source). The EMAC and the testbed's server agents
encode and decode packets with these, never with ad-hoc offsets.

The EMAC answers with the request's switch, instance, type and sequence number and returns the
packet behind the header unchanged: the switch applies an answer only if all of these match a
request it sent and has not had answered (p4src/include/control/emac.p4).
"""

from __future__ import annotations

import struct
from dataclasses import astuple, dataclass

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_NSH = 0x894F
ETHERTYPE_EMAC_REQUEST = 0x88B5
ETHERTYPE_EMAC_RESPONSE = 0x88B6
NSH_MD_CLASS_SREM = 0xFFFE
NSH_TLV_CONFIG_VERSION = 0x01
NSH_LENGTH_WORDS = 4
STATUS_HIT, STATUS_MISS = 0, 1

_NSH = struct.Struct("!BBBBIHBBI")
_REQUEST = struct.Struct("!HHBHIIIIIBHH")
_RESPONSE = struct.Struct("!HHBIBBIHBHB")


@dataclass(frozen=True)
class Nsh:
    spi: int
    si: int
    version: int
    ttl: int = 63

    SIZE = _NSH.size

    def pack(self) -> bytes:
        return _NSH.pack(self.ttl >> 2, ((self.ttl & 3) << 6) | NSH_LENGTH_WORDS, 0x2, 0x1, (self.spi << 8) | self.si,
                         NSH_MD_CLASS_SREM, NSH_TLV_CONFIG_VERSION, 4, self.version)

    @classmethod
    def unpack(cls, data: bytes) -> Nsh:
        b0, b1, _, _, path, md_class, tlv_type, _, version = _NSH.unpack_from(data)
        if (b0 >> 6) != 0 or (b1 & 0x3F) != NSH_LENGTH_WORDS or md_class != NSH_MD_CLASS_SREM or tlv_type != NSH_TLV_CONFIG_VERSION:
            raise ValueError("not an SR-EM NSH header")
        return cls(path >> 8, path & 0xFF, version, ((b0 & 0xF) << 2) | (b1 >> 6))


@dataclass(frozen=True)
class EmacRequest:
    switch_id: int
    instance: int
    vnf_type: int
    server: int
    region: int
    rkey: int
    seq: int
    src_addr: int
    dst_addr: int
    protocol: int
    src_port: int
    dst_port: int

    SIZE = _REQUEST.size

    def pack(self) -> bytes:
        return _REQUEST.pack(*astuple(self))

    @classmethod
    def unpack(cls, data: bytes) -> EmacRequest:
        return cls(*_REQUEST.unpack_from(data))


@dataclass(frozen=True)
class EmacResponse:
    switch_id: int
    instance: int
    vnf_type: int
    seq: int
    status: int
    action: int
    addr: int = 0
    port: int = 0
    dscp: int = 0
    meter_index: int = 0
    flags: int = 0

    SIZE = _RESPONSE.size

    def pack(self) -> bytes:
        return _RESPONSE.pack(*astuple(self))

    @classmethod
    def unpack(cls, data: bytes) -> EmacResponse:
        return cls(*_RESPONSE.unpack_from(data))
