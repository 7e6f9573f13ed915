"""Health checks of the compose services that run the project's code (the emulator's: rdma_emulator/check.py).

    python -m controller.testbed.health network RUN_DIR    the network: every switch alive with its P4Runtime port
                                                           answering, every process of the testbed alive (state file)
    python -m controller.testbed.health loop HOST:PORT     the controller: its live loop has deployed a configuration
                                                           (srem_loop_deploys_total >= 1 at its /metrics)

Exit 0 when healthy, else 1 with one line saying why; kept light (no CLI import), since Docker runs them every
few seconds.
"""

from __future__ import annotations

import sys
from pathlib import Path

from controller.errors import SremError
from controller.testbed.scrape import metric

USAGE = "usage: python -m controller.testbed.health network RUN_DIR | loop HOST:PORT"


def network(run_dir: Path) -> str | None:
    """Why the testbed in `run_dir` is not healthy, or None."""
    from controller.testbed import inventory, state

    try:
        report = inventory.status(state.load(run_dir / state.STATE_FILE))
    except SremError as exc:
        return exc.one_line()
    if report.healthy:
        return None
    bad = [f"switch {s.name}" for s in report.switches if not (s.alive and s.grpc_answers)]
    bad += [p.key for p in report.processes if p.role != "process" and not p.alive]
    return f"{report.status}; not alive or not answering: {', '.join(bad) or '(starting)'}"


def loop(address: str) -> str | None:
    """Why the live loop at `address` is not healthy, or None."""
    deploys = metric(address, "srem_loop_deploys_total")
    if deploys is None:
        return f"the live loop's /metrics at {address} does not answer (yet)"
    return "the live loop has not deployed a configuration yet" if deploys < 1 else None


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("network", "loop"):
        print(USAGE, file=sys.stderr)
        return 2
    why = network(Path(argv[1])) if argv[0] == "network" else loop(argv[1])
    if why is not None:
        print(why, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
