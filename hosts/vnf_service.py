"""A rack server's VNF service as pure state: the configurations installed, each instance's meters and
counters, and the packets being held; every operation takes the time as an argument.

Configuration. The controller installs generations (a number that only grows, e.g. the step). A
generation maps service paths (SPI, SI, NSH version) to the instance that serves them and gives every
instance's kind, rules, meters and processing delay. Versions are per chain (the switches' steering
keys on them), so a chain whose steering did not change keeps its version in the next generation and
is served by that generation's rules; a chain that moved has a new version, and its packets of the
old version keep being served by the old generation until the controller retires it (make before
break). An install is checked whole before anything changes: a malformed one leaves the last good
configuration and is answered with one line naming what is wrong.

State. Meters and counters belong to the instance, not to a generation: they carry over from one
generation to the next and move with the instance between servers (export_state / import_state). A
meter cell whose rates a new generation changes starts full, as a switch's cell does when the
controller rewrites its configuration. An instance no live generation serves loses its state.

Packets. A frame for this server is served at arrival by the instance its path maps to, then held
for the path's delay (the model's is per chain: its rate times the server's delay per MB, eq. 18), or
the instance's where the path gives none, and returned to the switch with SI - 1. Holding never reorders a chain: a
packet leaves no earlier than the chain's previous one (the delay can change between generations).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hosts.functions import MAX_DELAY_MS, BadPacket, ConfigError, InstanceSpec, ServicePath, TokenBuckets, apply, \
    bounded_number, parse_inner, read_nsh, returned

MAX_QUEUE = 100_000
"""Packets held at once; beyond, a packet is dropped (queue_full) rather than the process growing without bound."""
QUEUE_FULL, SEND_FAILED = "queue_full", "send_failed"


@dataclass(frozen=True)
class PathSpec:
    """Which instance serves a path, and how long its packets are held (None: the instance's delay)."""

    instance: int
    delay_ms: float | None = None


@dataclass(frozen=True)
class Generation:
    number: int
    paths: dict[ServicePath, PathSpec]
    instances: dict[int, InstanceSpec]


@dataclass
class Counters:
    """One instance's packets on this server: served, their bytes, sent back, and dropped by reason."""

    packets: int = 0
    bytes: int = 0
    sent: int = 0
    dropped: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {"packets": self.packets, "bytes": self.bytes, "sent": self.sent, "dropped": dict(sorted(self.dropped.items()))}

    @classmethod
    def from_json(cls, obj: object, where: str) -> Counters:
        if not isinstance(obj, dict) or set(obj) != {"packets", "bytes", "sent", "dropped"}:
            raise ConfigError(f"{where}: counters are an object with exactly packets, bytes, sent, dropped")
        values = [obj[name] for name in ("packets", "bytes", "sent")]
        dropped = obj["dropped"]
        if not isinstance(dropped, dict) or not all(isinstance(k, str) for k in dropped):
            raise ConfigError(f"{where}: dropped must map reasons to counts")
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in [*values, *dropped.values()]):
            raise ConfigError(f"{where}: counts must be non-negative integers")
        return cls(*values, Counter(dropped))


@dataclass
class InstanceState:
    meters: dict[int, TokenBuckets]
    counters: Counters


@dataclass(frozen=True)
class Route:
    """Where a path's packets go: the instance and its spec in the newest generation that maps the path, and the hold."""

    instance: int
    spec: InstanceSpec
    generation: int
    delay_ms: float


def install_request(generation: int, paths: Mapping[ServicePath, int | PathSpec],
                    instances: Mapping[int, InstanceSpec]) -> dict[str, Any]:
    """The install request's body (what Service.install reads); a path given an instance alone takes its delay."""
    entries = []
    for p, served in paths.items():
        served = served if isinstance(served, PathSpec) else PathSpec(served)
        entry = {"spi": p.spi, "si": p.si, "version": p.version, "instance": served.instance}
        entries.append(entry if served.delay_ms is None else {**entry, "delay_ms": served.delay_ms})
    return {"generation": generation, "paths": entries, "instances": [spec.to_json(k) for k, spec in sorted(instances.items())]}


OPS = {"install": {"generation", "paths", "instances"}, "retire": {"before"}, "export_state": {"instance"},
       "import_state": {"instance", "state"}, "status": set()}
"""Each control operation and the keys its request takes besides 'op'."""


def check_keys(request: dict[str, Any]) -> None:
    """ConfigError for an unknown op or a key the op does not take (a misspelt key is refused, not ignored)."""
    op = request["op"]
    if op not in OPS:
        raise ConfigError(f"unknown op {op!r} ({', '.join(OPS)})")
    unknown = set(request) - OPS[op] - {"op"}
    if unknown:
        raise ConfigError(f"{op} takes {sorted(OPS[op])}, not {sorted(unknown)}")


PATH_KEYS = {"spi", "si", "version", "instance"}


def generation_from_request(request: dict[str, Any]) -> Generation:
    """The generation an install request describes; ConfigError naming the first thing wrong."""
    check_keys(request)
    number = request.get("generation")
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise ConfigError(f"generation must be a non-negative integer, got {number!r}")
    raw_instances, raw_paths = request.get("instances"), request.get("paths")
    if not isinstance(raw_instances, list) or not isinstance(raw_paths, list):
        raise ConfigError("install needs lists 'paths' and 'instances'")
    instances: dict[int, InstanceSpec] = {}
    for n, obj in enumerate(raw_instances):
        k, spec = InstanceSpec.from_json(obj, f"instances[{n}]")
        if k in instances:
            raise ConfigError(f"instances[{n}]: instance {k} given twice")
        instances[k] = spec
    paths: dict[ServicePath, PathSpec] = {}
    for n, obj in enumerate(raw_paths):
        where = f"paths[{n}]"
        if not isinstance(obj, dict) or not PATH_KEYS <= set(obj) <= PATH_KEYS | {"delay_ms"}:
            raise ConfigError(f"{where}: a path is an object with spi, si, version, instance and optionally delay_ms")
        widths = {"spi": 24, "si": 8, "version": 32, "instance": 16}
        if not all(isinstance(obj[name], int) and not isinstance(obj[name], bool) and 0 <= obj[name] < 1 << bits
                   for name, bits in widths.items()):
            raise ConfigError(f"{where}: spi, si, version, instance must be integers of {widths} bits, got {obj}")
        if obj["si"] < 1:
            raise ConfigError(f"{where}: SI 0 has no function left to serve")
        path = ServicePath(obj["spi"], obj["si"], obj["version"])
        if path in paths:
            raise ConfigError(f"{where}: path {path} given twice")
        if obj["instance"] not in instances:
            raise ConfigError(f"{where}: instance {obj['instance']} is not among this install's instances")
        delay = bounded_number(obj, "delay_ms", where, 0.0, MAX_DELAY_MS) if "delay_ms" in obj else None
        paths[path] = PathSpec(obj["instance"], delay)
    return Generation(number, paths, instances)


Warn = Callable[[str, str], None]


def _no_warning(reason: str, message: str) -> None:
    """The default of Service's warn: a caller that wants no log."""


class Service:
    """Everything a rack server's VNF process knows; `own_mac` and `switch_mac` are 6-byte addresses."""

    def __init__(self, own_mac: bytes, switch_mac: bytes, warn: Warn = _no_warning) -> None:
        self.own_mac = own_mac
        self.switch_mac = switch_mac
        self.warn = warn
        self.generations: list[Generation] = []
        self.routes: dict[ServicePath, Route] = {}
        self.states: dict[int, InstanceState] = {}
        self.bad: Counter[str] = Counter()
        self.ignored = 0
        self._held: list[tuple[float, int, int, bytearray]] = []
        self._sequence = 0
        self._chain_due: dict[int, float] = {}

    # Control

    def handle(self, request: dict[str, Any], now: float) -> dict[str, Any]:
        """One control request (hosts/control.py); ValueError (ConfigError) when refused, nothing changed."""
        check_keys(request)
        op = request["op"]
        if op == "install":
            return self.install(generation_from_request(request), now)
        if op == "retire":
            return self.retire(request.get("before"))
        if op == "export_state":
            return self.export_state(request.get("instance"), now)
        if op == "import_state":
            return self.import_state(request.get("instance"), request.get("state"), now)
        return self.status()

    def install(self, generation: Generation, now: float) -> dict[str, Any]:
        """Add `generation` (or replace the newest one, same number: a retried install)."""
        newest = self.generations[-1].number if self.generations else None
        if newest is not None and generation.number < newest:
            raise ConfigError(f"generation {generation.number} is older than the newest installed, {newest}")
        if newest == generation.number:
            self.generations[-1] = generation
        else:
            self.generations.append(generation)
        for k, spec in generation.instances.items():
            state = self.states.setdefault(k, InstanceState({}, Counters()))
            for index, rates in spec.meters.items():
                cell = state.meters.get(index)
                if cell is None or cell.rates != rates:
                    state.meters[index] = TokenBuckets.full(rates, now)
        self._reindex()
        return {"generations": [g.number for g in self.generations]}

    def retire(self, before: object) -> dict[str, Any]:
        """Drop the generations numbered below `before`; the newest always stays."""
        if not isinstance(before, int) or isinstance(before, bool):
            raise ConfigError(f"retire needs an integer 'before', got {before!r}")
        if not self.generations:
            raise ConfigError("nothing installed to retire")
        if before > self.generations[-1].number:
            raise ConfigError(f"retiring before {before} would leave no configuration: the newest is "
                              f"{self.generations[-1].number} (install an empty one to serve nothing)")
        self.generations = [g for g in self.generations if g.number >= before]
        self._reindex()
        return {"generations": [g.number for g in self.generations]}

    def _reindex(self) -> None:
        """Routes from the live generations (the newest mapping of a path wins), and state of live instances only."""
        routes: dict[ServicePath, Route] = {}
        cells: dict[int, set[int]] = {}
        for g in self.generations:
            routes.update((path, Route(served.instance, g.instances[served.instance], g.number,
                                       g.instances[served.instance].delay_ms if served.delay_ms is None else served.delay_ms))
                          for path, served in g.paths.items())
            for k, spec in g.instances.items():
                cells.setdefault(k, set()).update(spec.meters)
        self.routes = routes
        spis = {path.spi for path in routes}
        self._chain_due = {spi: due for spi, due in self._chain_due.items() if spi in spis}
        self.states = {k: state for k, state in self.states.items() if k in cells}
        for k, state in self.states.items():
            state.meters = {i: cell for i, cell in state.meters.items() if i in cells[k]}

    def export_state(self, instance: object, now: float) -> dict[str, Any]:
        """An instance's meters (tokens as of `now`) and counters, for import_state on the server it moves to."""
        state = self._state(instance)
        for cell in state.meters.values():
            cell.refill(now)
        return {"instance": instance, "state": {
            "meters": [{"index": i, "committed": c.committed, "peak": c.peak} for i, c in sorted(state.meters.items())],
            "counters": state.counters.to_json()}}

    def import_state(self, instance: object, exported: object, now: float) -> dict[str, Any]:
        """Take over an exported state: its counters, and its tokens (capped by this server's bursts) from `now` on.
        The instance must be installed here and every exported cell be one of its cells here."""
        state = self._state(instance)
        if not isinstance(exported, dict) or set(exported) != {"meters", "counters"}:
            raise ConfigError("state must be an object with exactly meters and counters (what export_state gave)")
        counters = Counters.from_json(exported["counters"], "state.counters")
        if not isinstance(exported["meters"], list):
            raise ConfigError("state.meters must be a list")
        tokens: dict[int, tuple[float, float]] = {}
        for n, m in enumerate(exported["meters"]):
            where = f"state.meters[{n}]"
            if not isinstance(m, dict) or set(m) != {"index", "committed", "peak"}:
                raise ConfigError(f"{where}: a meter is an object with exactly index, committed, peak")
            if not isinstance(m["index"], int) or m["index"] not in state.meters:
                raise ConfigError(f"{where}: instance {instance} has no meter cell {m['index']!r} here")
            if not all(isinstance(m[t], (int, float)) and not isinstance(m[t], bool) and m[t] >= 0
                       for t in ("committed", "peak")):
                raise ConfigError(f"{where}: tokens must be non-negative numbers")
            tokens[m["index"]] = (float(m["committed"]), float(m["peak"]))
        for index, (committed, peak) in tokens.items():
            cell = state.meters[index]
            cell.committed, cell.peak, cell.last = min(committed, cell.rates.cburst), min(peak, cell.rates.pburst), now
        state.counters = counters
        return {"instance": instance, "meters": len(tokens)}

    def _state(self, instance: object) -> InstanceState:
        if not isinstance(instance, int) or isinstance(instance, bool) or instance not in self.states:
            raise ConfigError(f"instance {instance!r} is not installed here (installed: {sorted(self.states)})")
        return self.states[instance]

    def status(self) -> dict[str, Any]:
        instances: dict[str, Any] = {}
        for g in self.generations:
            for k, spec in g.instances.items():
                entry = instances.setdefault(str(k), {"generations": []})
                entry.update(kind=spec.kind.name, delay_ms=spec.delay_ms, rules=len(spec.rules))
                entry["generations"].append(g.number)
        for k, entry in instances.items():
            entry.update(self.states[int(k)].counters.to_json())
        paths = [{"spi": p.spi, "si": p.si, "version": p.version, "instance": r.instance, "generation": r.generation,
                  "delay_ms": r.delay_ms}
                 for p, r in sorted(self.routes.items(), key=lambda item: (item[0].spi, item[0].si, item[0].version))]
        return {"generations": [g.number for g in self.generations], "paths": paths, "instances": instances,
                "queue": len(self._held), "bad": dict(sorted(self.bad.items())), "ignored": self.ignored}

    # Packets

    def receive(self, frame: bytes, now: float) -> None:
        """Serve one frame that arrived at `now`: held for sending, dropped and counted, or ignored."""
        if len(frame) < 14 or frame[0:6] != self.own_mac:
            self.ignored += 1
            return
        try:
            path = read_nsh(frame)
            route = self.routes.get(path)
            if route is None:
                raise BadPacket("unknown_path", f"no instance here serves SPI {path.spi}, SI {path.si}, version {path.version}")
            inner = parse_inner(frame)
        except BadPacket as exc:
            self.bad[exc.reason] += 1
            self.warn(exc.reason, f"dropped a frame from {frame[6:12].hex(':')}: {exc}")
            return
        state = self.states[route.instance]
        state.counters.packets += 1
        state.counters.bytes += len(frame)
        verdict = apply(route.spec.table, frame, inner, state.meters, now)
        if verdict.drop is not None:
            state.counters.dropped[verdict.drop.value] += 1
            return
        if len(self._held) >= MAX_QUEUE:
            state.counters.dropped[QUEUE_FULL] += 1
            self.warn(QUEUE_FULL, f"{MAX_QUEUE} packets held: dropped one of instance {route.instance}")
            return
        due = max(now + route.delay_ms / 1000.0, self._chain_due.get(path.spi, 0.0))
        self._chain_due[path.spi] = due
        heapq.heappush(self._held, (due, self._sequence, route.instance, returned(verdict.frame, self.switch_mac, self.own_mac)))
        self._sequence += 1

    def next_due(self) -> float | None:
        return self._held[0][0] if self._held else None

    def due(self, now: float) -> list[tuple[int, bytearray]]:
        """(instance, frame) of every held packet due by `now`, in the order to send them."""
        out = []
        while self._held and self._held[0][0] <= now:
            _, _, k, frame = heapq.heappop(self._held)
            out.append((k, frame))
        return out

    def sent(self, outcomes: list[tuple[int, bool]]) -> None:
        """Count what due() gave once sent: (instance, whether the interface took it)."""
        for k, ok in outcomes:
            state = self.states.get(k)
            if state is None:  # retired while its packets were held
                continue
            if ok:
                state.counters.sent += 1
            else:
                state.counters.dropped[SEND_FAILED] += 1

