"""Whether a memory server executes requests: a health check for its container.

    python -m rdma_emulator.check HOST:PORT    exit 0 when it answered, 1 with one line saying why not

It posts one READ of HEALTH_REGION, which no ALLOC ever returns: any completion, here ACCESS_ERROR, shows
that the server received, executed and answered a request.
"""

from __future__ import annotations

import asyncio
import sys

from rdma_emulator import protocol as P
from rdma_emulator.client import RdmaClient, RdmaTimeout
from rdma_emulator.protocol import HEALTH_REGION
from srem_formats.arguments import parse_address


async def answers(host: str, port: int, timeout_s: float) -> bool:
    client = await RdmaClient(host, port, timeout_s, retries=1).open()
    try:
        await client.post(P.read(0, HEALTH_REGION, 0, 0, 1))
    except RdmaTimeout:
        return False
    finally:
        client.close()
    return True


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m rdma_emulator.check HOST:PORT", file=sys.stderr)
        return 2
    try:
        host, port = parse_address(argv[0])
        ok = asyncio.run(answers(host, port, timeout_s=1.0))
    except (ValueError, OSError) as exc:
        print(f"memory server {argv[0]}: {exc}", file=sys.stderr)
        return 1
    if not ok:
        print(f"memory server {argv[0]}: no completion within 2 x 1 s", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
