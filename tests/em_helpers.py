"""What the external-memory tests share: a firewall table, EMAC frames, programming a region, a control key."""

from __future__ import annotations

import socket
from pathlib import Path

from rdma_emulator.auth import load_key, write_key_files
from rdma_emulator.client import RdmaClient
from srem_formats.flows import Action, Flow, Rule, VnfKind
from srem_formats.wire import ETHERTYPE_EMAC_REQUEST, ETHERTYPE_EMAC_RESPONSE, EmacRequest, EmacResponse

INSTANCE = 5
SERVER_ID = 1


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def client(address: tuple[str, int], timeout_s: float = 1.0, key: bytes | None = None) -> RdmaClient:
    return await RdmaClient(*address, timeout_s=timeout_s, retries=0, key=key).open()


def key_file(directory: Path, name: str = "control.key") -> tuple[Path, bytes]:
    """A new control key in `directory`: its file (mode 0600) and the key."""
    path = directory / name
    write_key_files([(path, None)])
    return path, load_key(path)


FIREWALL_RULES = [Rule(Flow(0x0A010000 + i, 0x0A010100, 17, 10000 + i), Action.PERMIT if i % 3 else Action.DENY) for i in range(40)]


def emac_frame(region: int, rkey: int, flow: Flow, seq: int, instance: int = INSTANCE, server: int = SERVER_ID,
               vnf_type: int = VnfKind.FIREWALL) -> bytes:
    req = EmacRequest(3, instance, vnf_type, server, region, rkey, seq, flow.src, flow.dst, flow.protocol, 4242, flow.dst_port)
    return b"\x02" * 6 + b"\x04" * 6 + ETHERTYPE_EMAC_REQUEST.to_bytes(2, "big") + req.pack() + b"rest of the packet"


def parse_response(frame: bytes) -> EmacResponse:
    assert int.from_bytes(frame[12:14], "big") == ETHERTYPE_EMAC_RESPONSE
    assert frame.endswith(b"rest of the packet"), "the EMAC returns the packet it was given"
    return EmacResponse.unpack(frame[14:])
