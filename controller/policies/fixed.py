"""`fixed:ARG`: one placement for every step of every workload - the same host for each instance, always.

The first step moves every instance from the workload's initial placement (cheapest servers) to its
fixed host; after that nothing moves, so no request ever waits for a reconfiguration again. ARG:

- `servers`: every instance on the cheapest server that holds it (the workloads' initial placement,
  so this equals `static`);
- `em:SWITCH`, `lm:SWITCH`: as many instances as fit in SWITCH's external (local) memory, smallest
  first (the most of them), the rest on the cheapest servers;
- `round-robin`: instance i in the EM of switch i mod W (switches in topology order) when it still
  fits there, else on the cheapest server;
- `FILE.json`: a placement file (format `srem-placement`, below), e.g. the best fixed placement that
  `srem train --agent best-fixed` found on the training workloads (`best`: the one shipped for the
  `paper` scenario, controller/policies/trained/paper-best-fixed.json).

A placement file is JSON: `{"format": "srem-placement", "version": 1, "scenario": NAME,
"substrate_hash": HASH, "placement": {"firewall#0": "em:c2", ...}}` with every instance named once;
other keys (what the search measured) are kept for the reader. Binding checks the file was made for
this substrate (`substrate_hash`, the same as a checkpoint's) and that the placement respects storage
and the RDMA tables (eq. 7), each in one line naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from controller.errors import SremError
from controller.model.constraints import storage_violations
from controller.model.substrate import Substrate, check_made_for, substrate_hash
from controller.model.workload import Placement, Workload, cheapest_server_placement
from controller.policies.base import Observation, Policy, register

FORMAT = "srem-placement"
VERSION = 1
SHIPPED = Path(__file__).resolve().parent / "trained" / "paper-best-fixed.json"
"""`fixed:best`: the best fixed placement found on the `paper` training workloads."""
FORMS = "servers, em:SWITCH, lm:SWITCH, round-robin, best or FILE.json"


def simple_placement(substrate: Substrate, form: str) -> Placement:
    """One of the simple fixed placements by its ARG (`servers`, `em:SWITCH`, `lm:SWITCH`, `round-robin`)."""
    servers = cheapest_server_placement(substrate)
    if form == "servers":
        return servers
    names = substrate.switch_names
    if form == "round-robin":
        wanted = {k: substrate.host_index[f"em:{names[k % len(names)]}"] for k in range(len(servers))}
        return _as_many_as_fit(substrate, servers, wanted, range(len(servers)))
    kind, _, switch = form.partition(":")
    if switch not in names:
        raise SremError(f"fixed:{form}: no switch {switch!r} (switches: {', '.join(names)})", where="--policy")
    host = substrate.host_index[f"{kind}:{switch}"]
    smallest_first = sorted(range(len(servers)), key=lambda k: (substrate.instances[k].type.storage_mb, k))
    return _as_many_as_fit(substrate, servers, dict.fromkeys(smallest_first, host), smallest_first)


def _as_many_as_fit(substrate: Substrate, servers: Placement, wanted: dict[int, int], order: Iterable[int]) -> Placement:
    """`servers`, with each instance in `order` moved to its wanted host when it still fits there
    (storage and RDMA table, eq. 7)."""
    placement = list(servers)
    for k in order:
        placement[k] = wanted[k]
        if storage_violations(substrate, tuple(placement)):
            placement[k] = servers[k]
    return tuple(placement)


def simple_forms(substrate: Substrate) -> list[str]:
    """Every simple fixed placement's ARG on this substrate."""
    return ["servers", *(f"{kind}:{s}" for kind in ("em", "lm") for s in substrate.switch_names), "round-robin"]


def placement_document(substrate: Substrate, scenario: str, placement: Placement, **measured: Any) -> dict[str, Any]:
    """A placement file's content."""
    return {"format": FORMAT, "version": VERSION, "scenario": scenario, "substrate_hash": substrate_hash(substrate),
            **measured, "placement": placement_names(substrate, placement)}


def placement_names(substrate: Substrate, placement: Placement) -> dict[str, str]:
    """A placement as files write it: instance name -> host name."""
    return {substrate.instances[k].name: substrate.hosts[h].name for k, h in enumerate(placement)}


def load_placement(path: Path, substrate: Substrate) -> Placement:
    """The placement a file holds, refused in one line unless it was made for `substrate` and respects storage."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise SremError("no such placement file", where=path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SremError(f"not a readable placement file ({exc})", where=path) from None
    except RecursionError:  # arrays or objects nested deeper than the parser's stack
        raise SremError("not a readable placement file (nested too deep)", where=path) from None
    check_made_for(doc, substrate, FORMAT, VERSION, "placement file", path)
    placement = placement_from_names(doc.get("placement"), substrate, path, "placement")
    check_fits(substrate, placement, path)
    return placement


def placement_from_names(hosts: Any, substrate: Substrate, where: Path, key: str) -> Placement:
    """A placement as files write it (the object at `key`), refused in one line unless it gives every
    instance of `substrate` one known host."""
    if not isinstance(hosts, dict):
        raise SremError("no placement object", where=where, key=key)
    missing = [i.name for i in substrate.instances if i.name not in hosts]
    unknown = [name for name in hosts if name not in substrate.instance_index]
    if missing or unknown:
        what = f"no host for {missing[0]!r}" if missing else f"unknown instance {unknown[0][:40]!r}"
        raise SremError(what, where=where, key=key)
    for name, host in hosts.items():
        if not isinstance(host, str):
            raise SremError(f"expected a host's name, got a {type(host).__name__}", where=where, key=f"{key}.{name}")
        if host not in substrate.host_index:
            raise SremError(f"unknown host {host[:40]!r}", where=where, key=f"{key}.{name}")
    return tuple(substrate.host_index[hosts[i.name]] for i in substrate.instances)


def check_fits(substrate: Substrate, placement: Placement, where: str | Path, key: str | None = None) -> None:
    """Eq. 7 for a fixed placement, once: a host over its storage or RDMA table is refused in one line."""
    violations = storage_violations(substrate, placement)
    if violations:
        raise SremError(f"placement does not fit: {next(iter(violations.values()))}", where=where, key=key)


@register("fixed")
class FixedPolicy(Policy):
    def __init__(self, arg: str | None = None) -> None:
        if not arg:
            raise SremError(f"policy fixed needs an argument: fixed:ARG, ARG one of {FORMS}", where="--policy")
        kind, _, rest = arg.partition(":")
        simple = arg in ("servers", "round-robin") or (kind in ("em", "lm") and rest)
        if not (simple or arg == "best" or arg.endswith(".json")):
            raise SremError(f"policy fixed: unknown placement {arg!r} (one of {FORMS})", where="--policy")
        self.arg = arg
        self.placement: Placement | None = None
        self.substrate: Substrate | None = None

    def bind(self, substrate: Substrate) -> None:
        if self.arg == "best" or self.arg.endswith(".json"):
            self.placement = load_placement(SHIPPED if self.arg == "best" else Path(self.arg), substrate)
        else:
            self.placement = simple_placement(substrate, self.arg)
            check_fits(substrate, self.placement, f"--policy fixed:{self.arg}")
        self.substrate = substrate

    def reset(self, substrate: Substrate, workload: Workload) -> None:
        if self.substrate is not substrate:
            self.bind(substrate)

    def decide(self, observation: Observation) -> Placement:
        assert self.placement is not None, "bind() the policy to a substrate first"
        return self.placement
