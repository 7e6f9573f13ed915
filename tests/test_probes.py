"""The probe analysis (controller/testbed/probes.py) on records whose statistics are known by construction."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from controller.errors import SremError
from controller.testbed.probes import GRACE_NS, ProbeLog, Stats, baseline_stats, reconfiguration_stats, step_stats, \
    table, window_stats

MS = 1_000_000
FAR = 10 * GRACE_NS
"""A horizon so far after the probes that the grace leaves none of them out."""


def answer(name: str = "h1", address: str = "10.1.0.1", now: int = FAR,
           sent: list[tuple[int, int, int]] = (), received: list[tuple[int, int, int, int]] = (),  # type: ignore[assignment]
           baseline_sent: list[tuple[str, int, int]] = (), baseline_received: list[tuple[str, int, int, int]] = (),  # type: ignore[assignment]
           data: list[tuple[int, int, int]] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    """A `collect` answer of hosts/traffic.py with these records."""
    def columns(names: tuple[str, ...], rows: list[tuple[Any, ...]]) -> dict[str, list[Any]]:
        return {n: [r[i] for r in rows] for i, n in enumerate(names)}
    return {"name": name, "address": address, "now_ns": now,
            "probes_sent": columns(("chain", "seq", "sent_ns"), list(sent)),
            "probes_received": columns(("chain", "seq", "sent_ns", "received_ns"), list(received)),
            "baseline_sent": columns(("dst", "seq", "sent_ns"), list(baseline_sent)),
            "baseline_received": columns(("src", "seq", "sent_ns", "received_ns"), list(baseline_received)),
            "data": columns(("chain", "sent", "received"), list(data))}


def log_of(*answers: dict[str, Any]) -> ProbeLog:
    log = ProbeLog()
    for a in answers:
        log.add(a)
    return log


def chain_log(chain: int, sent_ns: list[int], arrivals: list[tuple[int, int]], now: int = FAR) -> ProbeLog:
    """Probes seq 0.. of one chain sent at `sent_ns`; `arrivals`: (seq, latency ns) in arrival order."""
    sent = [(chain, seq, t) for seq, t in enumerate(sent_ns)]
    received, clock = [], 0
    for seq, latency in arrivals:
        clock = max(clock + 1, sent_ns[seq] + latency)
        received.append((chain, seq, sent_ns[seq], clock))
    return log_of(answer("a", now=now, sent=sent), answer("b", "10.1.0.2", now=now, received=received))


def everything(log: ProbeLog) -> dict[int, Stats]:
    return window_stats(log, 0, FAR)


def test_percentiles_on_known_latencies() -> None:
    # Latencies 1..100 us, arriving in sequence: numpy's linear interpolation gives p50 50.5, p99 99.01.
    sent = [i * MS for i in range(100)]
    s = everything(chain_log(4, sent, [(i, (i + 1) * 1000) for i in range(100)]))[4]
    assert (s.sent, s.received, s.lost, s.reordered, s.duplicates) == (100, 100, 0, 0, 0)
    assert s.p50_us == pytest.approx(50.5)
    assert s.p99_us == pytest.approx(99.01)
    assert s.std_us == pytest.approx(float(np.std(np.arange(1, 101))))


def test_loss_counts_sent_probes_that_never_arrived() -> None:
    sent = [i * MS for i in range(10)]
    s = everything(chain_log(1, sent, [(i, 500) for i in range(10) if i not in (3, 7)]))[1]
    assert (s.sent, s.received, s.lost) == (10, 8, 2)
    assert s.loss_ratio == pytest.approx(0.2)


def test_a_received_probe_the_sender_did_not_report_still_counts_as_sent() -> None:
    log = log_of(answer("a", sent=[(1, 0, 0)]), answer("b", "10.1.0.2", received=[(1, 0, 0, 10), (1, 1, MS, MS + 10)]))
    s = everything(log)[1]
    assert (s.sent, s.received, s.lost) == (2, 2, 0)


@pytest.mark.parametrize(("order", "reordered"), [
    ([0, 1, 3, 2, 4, 6, 5, 7], 2),
    ([5, 0, 1, 2, 3, 4], 5),
    ([0, 1, 2, 3], 0),
    ([3, 2, 1, 0], 3),
])
def test_reordering_counts_arrivals_after_a_higher_sequence_number(order: list[int], reordered: int) -> None:
    sent = [i * MS for i in range(len(order))]
    s = everything(chain_log(2, sent, [(seq, 20 * MS) for seq in order]))[2]
    assert s.reordered == reordered
    assert s.lost == 0


def test_a_duplicate_is_neither_reordered_nor_a_second_latency() -> None:
    log = log_of(answer("a", sent=[(1, 0, 0), (1, 1, MS)]),
                 answer("b", "10.1.0.2", received=[(1, 0, 0, 100), (1, 1, MS, MS + 100), (1, 0, 0, 5 * MS)]))
    s = everything(log)[1]
    assert (s.received, s.duplicates, s.reordered, s.lost) == (2, 1, 0, 0)
    assert s.p99_us == pytest.approx(0.1)


def test_arrival_order_is_the_kernel_timestamps_not_the_order_records_came_in() -> None:
    received = [(1, 1, MS, MS + 100), (1, 0, 0, 100)]  # listed out of order, arrived in order
    s = everything(log_of(answer("a", sent=[(1, 0, 0), (1, 1, MS)]), answer("b", "10.1.0.2", received=received)))[1]
    assert s.reordered == 0


def test_chains_are_kept_apart() -> None:
    log = log_of(answer("a", sent=[(1, 0, 0), (2, 0, 0), (2, 1, MS)]),
                 answer("b", "10.1.0.2", received=[(2, 1, MS, MS + 2000), (1, 0, 0, 1000)]))
    stats = everything(log)
    assert set(stats) == {1, 2}
    assert (stats[1].lost, stats[2].lost, stats[2].reordered) == (0, 1, 0)
    assert stats[1].p50_us == pytest.approx(1.0) and stats[2].p50_us == pytest.approx(2.0)


def test_a_probe_sent_at_a_step_boundary_belongs_to_the_next_step() -> None:
    sent = [0, 99, 100, 150, 200]
    steps = step_stats(chain_log(1, sent, [(i, 10) for i in range(5)]), [0, 100, 200])
    assert [s[1].sent for s in steps] == [2, 2, 1]


def test_the_last_step_leaves_out_probes_that_may_still_be_on_their_way() -> None:
    now = 5 * GRACE_NS
    sent = [GRACE_NS, 2 * GRACE_NS, now - GRACE_NS, now - GRACE_NS // 2]
    # Only probe 0 arrived: 1 and 2 are lost (sent a grace or more before the horizon), 3 is pending.
    log = chain_log(1, sent, [(0, 10)], now=now)
    [s] = step_stats(log, [0])
    assert (s[1].sent, s[1].lost) == (2, 1)
    assert step_stats(log, [0], grace_ns=0)[0][1].sent == 4


def test_the_horizon_is_the_earliest_agent_collect() -> None:
    log = log_of(answer("a", now=7 * GRACE_NS), answer("b", "10.1.0.2", now=3 * GRACE_NS))
    assert log.horizon_ns == 3 * GRACE_NS
    log.add(answer("b", "10.1.0.2", now=9 * GRACE_NS))
    assert log.horizon_ns == 7 * GRACE_NS


def test_step_starts_must_increase() -> None:
    with pytest.raises(SremError, match="increase"):
        step_stats(ProbeLog(), [0, 0])


def test_window_around_each_reconfiguration() -> None:
    sent = [i * MS for i in range(100)]
    # Probes 40..59 arrive out of order (a reconfiguration at 50 ms moved the chain); 55 is lost.
    arrivals = [(i, 100) for i in range(40)] + [(i, 100) for i in range(50, 60) if i != 55] \
        + [(i, 100) for i in range(40, 50)] + [(i, 100) for i in range(60, 100)]
    log = chain_log(3, sent, arrivals)
    [around, far] = reconfiguration_stats(log, [50 * MS, 80 * MS], before_ns=10 * MS, after_ns=10 * MS)
    assert (around[3].sent, around[3].lost, around[3].reordered) == (20, 1, 10)
    assert (far[3].sent, far[3].lost, far[3].reordered) == (20, 0, 0)
    with pytest.raises(SremError):
        reconfiguration_stats(log, [50 * MS], before_ns=-1, after_ns=0)


def test_empty_inputs() -> None:
    log = ProbeLog()
    assert log.horizon_ns == 0
    assert window_stats(log, 0, FAR) == {}
    assert step_stats(log, [0, 10]) == [{}, {}]
    assert reconfiguration_stats(log, [], 1, 1) == []
    assert baseline_stats(log) == {}
    assert log.data_counts() == {}
    assert "(no probes" in table({}, "t")
    # An agent that reported nothing: a window with no probes in it.
    assert window_stats(log_of(answer()), 0, FAR) == {}


def test_sent_but_never_received_has_no_latency() -> None:
    s = everything(log_of(answer("a", sent=[(1, 0, 0)])))[1]
    assert (s.sent, s.received, s.lost) == (1, 0, 1)
    assert math.isnan(s.p50_us) and math.isnan(s.p99_us)


def test_baseline_per_host_pair() -> None:
    log = log_of(answer("a", "10.1.0.1", baseline_sent=[("10.1.0.2", 0, 0), ("10.1.0.2", 1, MS), ("10.1.0.3", 0, 0)]),
                 answer("b", "10.1.0.2", baseline_received=[("10.1.0.1", 0, 0, 3000), ("10.1.0.1", 1, MS, MS + 5000)]),
                 answer("c", "10.1.0.3"))
    stats = baseline_stats(log)
    assert set(stats) == {("10.1.0.1", "10.1.0.2"), ("10.1.0.1", "10.1.0.3")}
    ab = stats[("10.1.0.1", "10.1.0.2")]
    assert (ab.sent, ab.lost, ab.p50_us) == (2, 0, pytest.approx(4.0))
    assert stats[("10.1.0.1", "10.1.0.3")].lost == 1


def test_data_counts_sum_agents_latest_totals() -> None:
    log = log_of(answer("a", data=[(1, 10, 0)]), answer("b", "10.1.0.2", data=[(1, 0, 9), (2, 4, 0)]))
    log.add(answer("a", data=[(1, 25, 0)]))
    assert log.data_counts() == {1: (25, 9), 2: (4, 0)}


@pytest.mark.parametrize(("change", "key"), [
    ({"probes_sent": {"chain": [1], "seq": [0]}}, "probes_sent"),
    ({"probes_received": {"chain": [1], "seq": [0, 1], "sent_ns": [0], "received_ns": [1]}}, "probes_received"),
    ({"baseline_received": {"src": ["10.1.0"], "seq": [0], "sent_ns": [0], "received_ns": [1]}}, "baseline_received"),
    ({"data": {"chain": ["x"], "sent": [1], "received": [0]}}, "data"),
    ({"address": "nowhere"}, "address"),
])
def test_a_malformed_answer_is_refused_whole(change: dict[str, Any], key: str) -> None:
    log = log_of(answer("a", sent=[(1, 0, 0)]))
    bad = answer("b", "10.1.0.2", received=[(1, 0, 0, 10)]) | change
    with pytest.raises(SremError, match=f"traffic agent b: {key}"):
        log.add(bad)
    assert everything(log)[1].received == 0 and "b" not in log.last_collect


def test_table_rows_with_the_model_beside() -> None:
    log = log_of(answer("a", sent=[(1, 0, 0), (2, 0, 0)]), answer("b", "10.1.0.2", received=[(1, 0, 0, 2_500_000)]))
    text = table(everything(log), "step 0", predicted_ms={1: 2.0})
    lines = text.splitlines()
    assert lines[0] == "step 0" and "model ms" in lines[1]
    row1, row2 = lines[3].split(), lines[4].split()
    assert row1 == ["1", "1", "0", "0.00", "0", "0", "2.500", "2.500", "2.000"]
    assert row2 == ["2", "1", "1", "100.00", "0", "0", "-", "-", "-"]
