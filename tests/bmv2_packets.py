"""Packet driver run inside a test's network namespace: sends packets, records what arrives, and plays
the server VNF on its ports.

Usage: python bmv2_packets.py SPEC.json  (prints one JSON document). SPEC:
  {"ifaces": [...], "send": [[iface, hex], ...], "servers": [iface, ...], "seconds": float}
A server stub returns every NSH packet with SI - 1.
"""

from __future__ import annotations

import json
import select
import socket
import sys
import time

from srem_formats.wire import ETHERTYPE_NSH, Nsh

PACKET_OUTGOING = 4


def server_reply(frame: bytes) -> bytes | None:
    if int.from_bytes(frame[12:14], "big") != ETHERTYPE_NSH:
        return None
    nsh = Nsh.unpack(frame[14:])
    return frame[:14] + Nsh(nsh.spi, nsh.si - 1, nsh.version, nsh.ttl).pack() + frame[14 + Nsh.SIZE:]


def main() -> None:
    spec = json.loads(open(sys.argv[1]).read())
    socks = {}
    for name in spec["ifaces"]:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        s.bind((name, 0))
        socks[name] = s
    seen: dict[str, list[str]] = {name: [] for name in socks}
    time.sleep(0.2)
    for iface, frame in spec["send"]:
        socks[iface].send(bytes.fromhex(frame))
        time.sleep(0.05)
    deadline = time.monotonic() + spec["seconds"]
    by_fd = {s.fileno(): (name, s) for name, s in socks.items()}
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select(list(by_fd), [], [], left)
        for fd in ready:
            name, s = by_fd[fd]
            frame, address = s.recvfrom(65535)
            if address[2] == PACKET_OUTGOING:
                continue
            seen[name].append(frame.hex())
            if name in spec["servers"] and (reply := server_reply(frame)) is not None:
                s.send(reply)
    print(json.dumps({"seen": seen}))


if __name__ == "__main__":
    main()
