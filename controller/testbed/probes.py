"""What the probes say about each chain: one-way latency p50/p99, loss, duplicates and reordering, per step
and in a window around each reconfiguration, the span of a chain's losses (an outage: from its first
lost probe to its delivering again), and the idle baseline between hosts; with their table.

Pure: the records come in as the traffic agents' `collect` answers (hosts/traffic.py), accumulated in
a ProbeLog; nothing here reads a socket or a file.

A probe belongs to the window its send time falls in (windows are half-open, [start, end): a probe
sent exactly at a step boundary is the next step's). Probes sent in the last GRACE_NS before the
horizon (the earliest of the agents' latest collects) are left out: they may still be on the way,
and counting them lost would be wrong. Sent = the sender's records, together with any received probe
the sender's records lack (so loss is never negative); lost = sent - received. A probe that arrived
without a kernel timestamp (an agent's `probes_unstamped`) is received, not lost, and counted as
unstamped; it has no latency and no place in the arrival order. Latency and reordering count each
probe's first stamped arrival; reordered = those, in arrival order, that come after a probe of the
same chain with a higher sequence number.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from controller.errors import SremError

GRACE_NS = 1_000_000_000
"""Longer than any chain's path takes on the testbed (BMv2 delays are milliseconds); later means lost."""
PROBE_SENT = ("chain", "seq", "sent_ns")
PROBE_RECEIVED = ("chain", "seq", "sent_ns", "received_ns")
BASELINE_SENT = ("dst", "seq", "sent_ns")
BASELINE_RECEIVED = ("src", "seq", "sent_ns", "received_ns")
PROBE_UNSTAMPED = ("chain", "seq", "sent_ns")
BASELINE_UNSTAMPED = ("src", "seq", "sent_ns")


@dataclass(frozen=True)
class Stats:
    """One chain's (or one host pair's) probes in one window. Latencies in microseconds; NaN without arrivals."""

    sent: int
    received: int
    lost: int
    duplicates: int
    reordered: int
    unstamped: int
    """Received probes the kernel did not timestamp: in `received`, not in the latencies."""
    p50_us: float
    p99_us: float
    std_us: float

    @property
    def loss_ratio(self) -> float:
        return self.lost / self.sent if self.sent else 0.0


@dataclass
class _Columns:
    names: tuple[str, ...]
    chunks: list[np.ndarray] = field(default_factory=list)

    def add(self, rows: np.ndarray) -> None:
        if len(rows):
            self.chunks.append(rows)

    def rows(self) -> np.ndarray:
        """Every record as a row (int64), in the order added."""
        if not self.chunks:
            return np.zeros((0, len(self.names)), dtype=np.int64)
        if len(self.chunks) > 1:
            self.chunks = [np.concatenate(self.chunks)]
        return self.chunks[0]


def _columns(answer: Mapping[str, Any], key: str, names: tuple[str, ...], agent: str,
             encode: Mapping[str, Any] | None = None, optional: bool = False) -> np.ndarray:
    """The answer's columns `key` as rows; SremError naming the agent and the key when malformed (or missing,
    unless `optional`: then no rows)."""
    if optional and key not in answer:
        return np.zeros((0, len(names)), dtype=np.int64)
    doc = answer.get(key)
    if not isinstance(doc, Mapping) or set(doc) != set(names):
        raise SremError(f"expected columns {', '.join(names)}", where=f"traffic agent {agent}", key=key)
    lengths = {len(doc[n]) if isinstance(doc[n], list) else -1 for n in names}
    if len(lengths) != 1 or -1 in lengths:
        raise SremError("columns are lists of one length", where=f"traffic agent {agent}", key=key)
    try:
        cols = [[encode[n](v) for v in doc[n]] if encode and n in encode else doc[n] for n in names]
        return np.array(cols, dtype=np.int64).T.reshape(-1, len(names))
    except (TypeError, ValueError, OverflowError) as exc:
        raise SremError(f"not integers: {exc}", where=f"traffic agent {agent}", key=key) from None


def _ipv4(text: str) -> int:
    parts = text.split(".")
    if len(parts) != 4 or not all(p.isdigit() and int(p) < 256 for p in parts):
        raise ValueError(f"{text!r} is not an IPv4 address")
    return int.from_bytes(bytes(int(p) for p in parts), "big")


def ipv4_text(address: int) -> str:
    return ".".join(str(b) for b in address.to_bytes(4, "big"))


class ProbeLog:
    """Every agent's records so far, from their `collect` answers in the order they came."""

    def __init__(self) -> None:
        self.sent = _Columns(PROBE_SENT)
        self.received = _Columns(PROBE_RECEIVED)
        self.baseline_sent = _Columns(("src", "dst", "seq", "sent_ns"))
        self.baseline_received = _Columns(("src", "dst", "seq", "sent_ns", "received_ns"))
        self.unstamped = _Columns(PROBE_UNSTAMPED)
        self.baseline_unstamped = _Columns(("src", "dst", "seq", "sent_ns"))
        self.last_collect: dict[str, int] = {}
        """Agent name -> now_ns of its latest answer."""
        self.data: dict[str, dict[int, tuple[int, int]]] = {}
        """Agent name -> chain -> (data packets sent, received): the agent's totals since it started."""

    def add(self, answer: Mapping[str, Any]) -> None:
        """One agent's `collect` answer; SremError (nothing added) when it is malformed. Its unstamped records
        (probes_unstamped, baseline_unstamped) may be absent: none."""
        agent = answer.get("name")
        address, now = answer.get("address"), answer.get("now_ns")
        if not isinstance(agent, str) or not isinstance(address, str) or not isinstance(now, int):
            raise SremError("a collect answer has a name, an address and now_ns", where="traffic agent")
        try:
            own = _ipv4(address)
        except ValueError as exc:
            raise SremError(str(exc), where=f"traffic agent {agent}", key="address") from None
        ip = {"dst": _ipv4, "src": _ipv4}
        sent = _columns(answer, "probes_sent", PROBE_SENT, agent)
        received = _columns(answer, "probes_received", PROBE_RECEIVED, agent)
        bsent = _columns(answer, "baseline_sent", BASELINE_SENT, agent, ip)
        breceived = _columns(answer, "baseline_received", BASELINE_RECEIVED, agent, ip)
        unstamped = _columns(answer, "probes_unstamped", PROBE_UNSTAMPED, agent, optional=True)
        bunstamped = _columns(answer, "baseline_unstamped", BASELINE_UNSTAMPED, agent, ip, optional=True)
        data = _columns(answer, "data", ("chain", "sent", "received"), agent)
        self.sent.add(sent)
        self.received.add(received)
        self.baseline_sent.add(np.column_stack([np.full(len(bsent), own, dtype=np.int64), bsent]))
        self.unstamped.add(unstamped)
        for rows, into in ((breceived, self.baseline_received), (bunstamped, self.baseline_unstamped)):
            into.add(np.column_stack([rows[:, :1], np.full(len(rows), own, dtype=np.int64), rows[:, 1:]]))
        self.data[agent] = {int(c): (int(s), int(r)) for c, s, r in data}
        self.last_collect[agent] = now

    @property
    def horizon_ns(self) -> int:
        """The earliest of the agents' latest collects: every probe sent before it (and GRACE_NS) has been reported."""
        return min(self.last_collect.values(), default=0)

    def data_counts(self) -> dict[int, tuple[int, int]]:
        """Chain -> (data packets sent, received) over all agents, totals since they started."""
        totals: dict[int, tuple[int, int]] = {}
        for counts in self.data.values():
            for chain, (s, r) in counts.items():
                a, b = totals.get(chain, (0, 0))
                totals[chain] = (a + s, b + r)
        return totals


def _stats(seq_sent: np.ndarray, seq: np.ndarray, sent_ns: np.ndarray, received_ns: np.ndarray,
           seq_unstamped: np.ndarray) -> Stats:
    """One key's probes: the sequence numbers sent, the stamped arrivals (seq, sent_ns, received_ns) in any order,
    and the sequence numbers of the arrivals without a stamp."""
    order = np.lexsort((np.arange(len(received_ns)), received_ns))
    seq, sent_ns, received_ns = seq[order], sent_ns[order], received_ns[order]
    _, first = np.unique(seq, return_index=True)
    first.sort()
    seq, latency = seq[first], (received_ns[first] - sent_ns[first]) / 1e3
    reordered = int(np.count_nonzero(seq[1:] < np.maximum.accumulate(seq)[:-1])) if len(seq) > 1 else 0
    arrived = np.union1d(seq, seq_unstamped)
    total = len(np.union1d(seq_sent, arrived))
    nan = math.nan
    return Stats(sent=total, received=len(arrived), lost=total - len(arrived),
                 duplicates=len(order) + len(seq_unstamped) - len(arrived), reordered=reordered,
                 unstamped=len(arrived) - len(seq),
                 p50_us=float(np.percentile(latency, 50)) if len(latency) else nan,
                 p99_us=float(np.percentile(latency, 99)) if len(latency) else nan,
                 std_us=float(np.std(latency)) if len(latency) else nan)


def _window(sent: np.ndarray, received: np.ndarray, unstamped: np.ndarray, key: int, start_ns: int,
            end_ns: int) -> dict[int, Stats]:
    """Stats per key of rows [*keys, seq, sent_ns] (sent, unstamped) and [*keys, seq, sent_ns, received_ns]
    (received); `key` = how many leading columns form the key."""
    s, r, u = (rows[(rows[:, key + 1] >= start_ns) & (rows[:, key + 1] < end_ns)] for rows in (sent, received, unstamped))
    ids = (lambda rows: rows[:, 0]) if key == 1 else (lambda rows: (rows[:, 0] << 32) | rows[:, 1])
    s_ids, r_ids, u_ids = ids(s), ids(r), ids(u)
    out: dict[int, Stats] = {}
    for k in np.union1d(np.union1d(s_ids, r_ids), u_ids):
        mine = r[r_ids == k]
        out[int(k)] = _stats(s[s_ids == k, key], mine[:, key], mine[:, key + 1], mine[:, key + 2], u[u_ids == k, key])
    return out


def window_stats(log: ProbeLog, start_ns: int, end_ns: int, grace_ns: int = GRACE_NS) -> dict[int, Stats]:
    """Chain -> stats of its probes sent in [start_ns, end_ns), up to the horizon less `grace_ns`."""
    end = min(end_ns, log.horizon_ns - grace_ns)
    return _window(log.sent.rows(), log.received.rows(), log.unstamped.rows(), 1, start_ns, end)


def step_stats(log: ProbeLog, step_starts_ns: Sequence[int], grace_ns: int = GRACE_NS) -> list[dict[int, Stats]]:
    """Per step: chain -> stats. Step k runs from step_starts_ns[k] to the next step's start; the last to the horizon."""
    if any(b <= a for a, b in zip(step_starts_ns, step_starts_ns[1:])):
        raise SremError("step start times must increase", where="probe analysis")
    ends = [*step_starts_ns[1:], log.horizon_ns]
    return [window_stats(log, a, b, grace_ns) for a, b in zip(step_starts_ns, ends)]


def reconfiguration_stats(log: ProbeLog, times_ns: Sequence[int], before_ns: int, after_ns: int,
                          grace_ns: int = GRACE_NS) -> list[dict[int, Stats]]:
    """Per reconfiguration at time t: chain -> stats of probes sent in [t - before_ns, t + after_ns)."""
    if before_ns < 0 or after_ns < 0:
        raise SremError("a window around a reconfiguration extends forwards and backwards by >= 0 ns", where="probe analysis")
    return [window_stats(log, t - before_ns, t + after_ns, grace_ns) for t in times_ns]


@dataclass(frozen=True)
class Outage:
    """One chain's lost probes in a window: how many, the send times of the first and the last, and the
    arrival of the first probe sent after the last lost one (the chain delivering again; None if none has)."""

    lost: int
    first_lost_ns: int
    last_lost_ns: int
    resumed_ns: int | None


def outages(log: ProbeLog, start_ns: int, end_ns: int, grace_ns: int = GRACE_NS) -> dict[int, Outage]:
    """Chain -> its outage among the probes sent in [start_ns, end_ns), up to the horizon less `grace_ns`;
    chains that lost none of them are absent."""
    end = min(end_ns, log.horizon_ns - grace_ns)
    sent, received, unstamped = (rows[(rows[:, 2] >= start_ns) & (rows[:, 2] < end)]
                                 for rows in (log.sent.rows(), log.received.rows(), log.unstamped.rows()))
    out: dict[int, Outage] = {}
    for chain in np.unique(sent[:, 0]):
        mine = sent[sent[:, 0] == chain]
        got = received[received[:, 0] == chain]
        arrived = np.union1d(got[:, 1], unstamped[unstamped[:, 0] == chain, 1])
        lost = mine[~np.isin(mine[:, 1], arrived)]
        if not len(lost):
            continue
        last = int(lost[:, 2].max())
        later = got[got[:, 2] > last, 3]
        out[int(chain)] = Outage(len(np.unique(lost[:, 1])), int(lost[:, 2].min()), last,
                                 int(later.min()) if len(later) else None)
    return out


def baseline_stats(log: ProbeLog, grace_ns: int = GRACE_NS) -> dict[tuple[str, str], Stats]:
    """(source host address, destination host address) -> stats of the idle baseline probes between them."""
    end = log.horizon_ns - grace_ns
    stats = _window(log.baseline_sent.rows(), log.baseline_received.rows(), log.baseline_unstamped.rows(), 2,
                    -(1 << 62), end)
    return {(ipv4_text(k >> 32), ipv4_text(k & 0xFFFFFFFF)): v for k, v in stats.items()}


def table(stats: Mapping[Any, Stats], title: str, predicted_ms: Mapping[Any, float] | None = None,
          key_name: str = "chain") -> str:
    """A text table, one row per key in key order; `predicted_ms`: the model's delay per key, beside the measured."""
    model = predicted_ms is not None
    head = (f"{key_name:>16}  {'sent':>7}  {'lost':>6}  {'loss %':>7}  {'reord':>6}  {'dup':>5}  {'p50 ms':>8}  {'p99 ms':>8}"
            + (f"  {'model ms':>8}" if model else ""))
    lines = [title, head, "-" * len(head)]
    for key in sorted(stats):
        s = stats[key]
        row = (f"{_name(key):>16}  {s.sent:>7}  {s.lost:>6}  {100 * s.loss_ratio:>7.2f}  {s.reordered:>6}  {s.duplicates:>5}  "
               f"{_ms(s.p50_us):>8}  {_ms(s.p99_us):>8}")
        if model:
            value = predicted_ms.get(key)  # type: ignore[union-attr]
            row += f"  {'-' if value is None else f'{value:.3f}':>8}"
        lines.append(row)
    if not stats:
        lines.append("(no probes in this window)")
    if unstamped := [f"{_name(key)}: {stats[key].unstamped}" for key in sorted(stats) if stats[key].unstamped]:
        lines.append(f"received without a kernel timestamp (not in the latencies): {', '.join(unstamped)}")
    return "\n".join(lines)


def _name(key: Any) -> str:
    return " -> ".join(key) if isinstance(key, tuple) else str(key)


def _ms(us: float) -> str:
    return "-" if math.isnan(us) else f"{us / 1e3:.3f}"
