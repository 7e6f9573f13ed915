"""The chaos soak (controller/testbed/chaos.py, benchmarks/bench_chaos.py): its schedule is the seed's alone, puts
every fault inside a step of its own and spreads the kinds; its judgement counts a probe lost inside a fault's
window as inside and one lost elsewhere, while the configuration in force carried its chain, as outside; it
excuses chains whose admission a reconfiguration is changing, takes the first repair after a fault as its
recovery and holds it against the kind's bound; it finds probes delivered to another chain's destination and
counters that grew outside the windows. And a short soak on the live testbed (4 faults) in which every
invariant holds.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from controller.testbed import chaos as C
from controller.testbed import probes as P
from test_testbed_network import needs_testbed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

MS = 1_000_000
S = 1_000_000_000


# The schedule

def test_the_schedule_is_the_seeds_alone() -> None:
    assert C.schedule(7, 50, 80, 3.0) == C.schedule(7, 50, 80, 3.0)
    assert C.schedule(7, 50, 80, 3.0) != C.schedule(8, 50, 80, 3.0)


def test_every_fault_strikes_inside_a_step_of_its_own() -> None:
    faults = C.schedule(3, 60, 70, 3.0, tail_s=0.3)
    assert [f.index for f in faults] == list(range(60))
    steps = [f.step for f in faults]
    assert steps == sorted(steps) and len(set(steps)) == 60 and min(steps) >= 1 and max(steps) < 70
    for f in faults:
        assert 0 <= f.pick < 1
        if f.kind is C.Kind.CONTROLLER_DEPLOY:
            assert 0 <= f.at < 1, "a fraction of the step's work"
        else:
            assert 0 <= f.at < 3.0 - 0.3, "a moment of the step, before its last 0.3 s"


def test_the_kinds_are_spread_evenly_in_a_random_order() -> None:
    faults = C.schedule(0, 200, 221, 3.0)
    counts = Counter(f.kind for f in faults)
    assert set(counts) == set(C.KINDS) and max(counts.values()) - min(counts.values()) <= 1
    order = [f.kind for f in faults]
    assert order != [C.KINDS[i % len(C.KINDS)] for i in range(200)], "shuffled, not round-robin"
    moments = [f.at for f in faults if not f.kind is C.Kind.CONTROLLER_DEPLOY]
    assert min(moments) < 0.5 and max(moments) > 2.0, "spread over the step"
    assert Counter(f.kind for f in C.schedule(0, 4, 5, 3.0)).most_common(1)[0][1] == 1, "four faults, four kinds"


def test_a_schedule_that_cannot_fit_is_refused() -> None:
    with pytest.raises(ValueError, match="need 11 steps"):
        C.schedule(0, 10, 10, 3.0)
    with pytest.raises(ValueError, match="no moment"):
        C.schedule(0, 1, 5, 0.2)
    assert C.schedule(0, 0, 1, 3.0) == []


def test_a_target_is_picked_among_the_candidates() -> None:
    assert [C.choose(p, ["a", "b", "c"]) for p in (0.0, 0.34, 0.67, 0.999999)] == ["a", "b", "c", "c"]
    with pytest.raises(ValueError):
        C.choose(0.5, [])


# The judgement, on synthetic probe logs

def columns(names: tuple[str, ...], rows: list[tuple[int, ...]]) -> dict[str, list[int]]:
    return {n: [r[i] for r in rows] for i, n in enumerate(names)}


def answer(name: str, address: str, now_ns: int, sent: list[tuple[int, int, int]] = (),  # type: ignore[assignment]
           received: list[tuple[int, int, int, int]] = ()) -> dict[str, object]:  # type: ignore[assignment]
    return {"name": name, "address": address, "now_ns": now_ns, "data": columns(("chain", "sent", "received"), []),
            "probes_sent": columns(P.PROBE_SENT, list(sent)), "probes_received": columns(P.PROBE_RECEIVED, list(received)),
            "baseline_sent": columns(P.BASELINE_SENT, []), "baseline_received": columns(P.BASELINE_RECEIVED, [])}


def probe_log(chains: dict[int, set[int]], period_ns: int = 100 * MS, count: int = 100, latency_ns: int = 5 * MS,
              slow: dict[int, int] | None = None) -> tuple[P.ProbeLog, list[dict[str, object]]]:
    """Chains 1.. each sending `count` probes every `period_ns` from 0 (host 10.1.0.1 to 10.1.0.2); `chains[c]`: the
    seqs chain c lost. `slow`: seq -> latency for the probes of every chain that took longer."""
    sent, received = [], []
    for chain, lost in chains.items():
        for seq in range(count):
            t = seq * period_ns
            sent.append((chain, seq, t))
            if seq not in lost:
                received.append((chain, seq, t, t + (slow or {}).get(seq, latency_ns)))
    far = count * period_ns + 10 * P.GRACE_NS
    answers = [answer("a", "10.1.0.1", far, sent=sent), answer("b", "10.1.0.2", far, received=received)]
    log = P.ProbeLog()
    for a in answers:
        log.add(a)
    return log, answers


def struck(kind: C.Kind, at_ns: int, recovered_ns: int | None, index: int = 0, problems: tuple[str, ...] = ()) -> C.Struck:
    return C.Struck(C.Fault(index, 1, kind, 0.5, 0.0), "e1", at_ns, recovered_ns, problems)


ALL = frozenset({1, 2, 3})
SPANS = [C.Span(0, 1 * MS, ALL)]


def test_loss_inside_a_window_is_inside_and_elsewhere_outside() -> None:
    # Fault at 3.0 s, recovered at 4.0 s; chain 1 lost 30-39 (inside), chain 2 lost 80 (outside).
    log, _ = probe_log({1: set(range(30, 40)), 2: {80}, 3: set()})
    verdict = C.judge(log, SPANS, [struck(C.Kind.SWITCH, 3 * S, 4 * S)], C.Bounds())
    assert [(f.lost, f.chains) for f in verdict.faults] == [(10, (1,))]
    assert verdict.lost_outside.tolist() == [[2, 80, 8 * S]]
    assert verdict.lost_inside == 10 and verdict.survived == 1
    assert verdict.failures() == ["1 probes lost outside every fault window (chains [2])"]


def test_the_window_opens_earlier_by_the_probes_in_flight() -> None:
    """A probe sent 2.95 s, on its way for 80 ms when the fault struck at 3.0 s, is the fault's; one sent 2.8 s is not."""
    log, _ = probe_log({1: {28, 29}}, slow={27: 80 * MS})
    assert C.in_flight_ns(log, 3 * S) == 80 * MS
    verdict = C.judge(log, SPANS, [struck(C.Kind.SWITCH, 2950 * MS, 4 * S)], C.Bounds())
    assert verdict.faults[0].window == (2870 * MS, 4 * S)
    assert verdict.faults[0].lost == 1 and verdict.lost_outside.tolist() == [[1, 28, 2800 * MS]]


def test_a_probe_sent_at_the_recovery_is_outside() -> None:
    log, _ = probe_log({1: {40}})
    assert C.judge(log, SPANS, [struck(C.Kind.EMAC, 3 * S, 4 * S)], C.Bounds()).lost_outside.tolist() == [[1, 40, 4 * S]]
    assert C.judge(log, SPANS, [struck(C.Kind.EMAC, 3 * S, 4 * S + 1)], C.Bounds()).faults[0].lost == 1


def test_a_probe_inside_two_windows_counts_once_for_the_first() -> None:
    log, _ = probe_log({1: {35}})
    verdict = C.judge(log, SPANS, [struck(C.Kind.SWITCH, 3 * S, 4 * S), struck(C.Kind.MEMSERVER, 3400 * MS, 5 * S, 1)],
                      C.Bounds())
    assert [f.lost for f in verdict.faults] == [1, 0] and verdict.lost_inside == 1


def test_a_rejected_chain_owes_nothing_and_a_changing_one_is_excused_while_it_changes() -> None:
    # Step 1 runs from 5.0 s, in force from 5.5 s: chain 2 carried before, rejected after; chain 3 the reverse.
    spans = [C.Span(0, 1 * MS, frozenset({1, 2})), C.Span(5 * S, 5500 * MS, frozenset({1, 3}))]
    log, _ = probe_log({1: set(), 2: {52, 60, 70}, 3: {20, 52, 70}})
    verdict = C.judge(log, spans, [], C.Bounds())
    assert verdict.lost_excused == 2, "chain 2's and 3's probes sent between 5.0 and 5.5 s"
    assert verdict.lost_outside.tolist() == [[3, 70, 7 * S]], "chain 3 carried from 5.5 s; chain 2 rejected: owes nothing"
    assert C.owed(spans, 1, 5200 * MS) is True and C.owed(spans, 2, 4 * S) is True and C.owed(spans, 3, 4 * S) is False
    assert C.owed(spans, 2, 5200 * MS) is None and C.owed(spans, 2, 6 * S) is False


def test_probes_before_the_first_configuration_and_after_the_horizon_are_not_judged() -> None:
    log, _ = probe_log({1: {0, 1, 99}})
    verdict = C.judge(log, [C.Span(0, 150 * MS, ALL)], [], C.Bounds(), grace_ns=P.GRACE_NS)
    assert verdict.lost_outside.tolist() == [[1, 99, 9900 * MS]], "probe 0 and 1 predate 150 ms; 99 is before the horizon"
    late = P.ProbeLog()
    late.add(answer("a", "10.1.0.1", 9900 * MS + P.GRACE_NS, sent=[(1, 99, 9900 * MS)]))
    assert len(C.lost_probes(late, 0, 1 << 62)) == 0, "sent within the grace before the horizon: maybe on its way"
    assert C.probes_sent(log, 150 * MS) == 98, "seqs 2-99"


def test_an_unstamped_arrival_is_no_loss() -> None:
    log, _ = probe_log({1: {5}})
    log.add({**answer("b", "10.1.0.2", 10**12), "probes_unstamped": columns(P.PROBE_UNSTAMPED, [(1, 5, 500 * MS)])})
    assert len(C.lost_probes(log, 0, 1 << 62)) == 0


def test_recovery_is_the_first_repair_after_the_fault_and_is_held_to_the_kinds_bound() -> None:
    assert C.recovered_at(10, [5, 30, 20]) == 20
    assert C.recovered_at(10, [5], healed_at_start_ns=[40]) == 40
    assert C.recovered_at(10, [5, 10]) is None
    log, _ = probe_log({1: set()})
    bounds = C.Bounds(process_s=1.0, controller_s=3.0)
    faults = [struck(C.Kind.SWITCH, 1 * S, 1 * S + 900 * MS, 0), struck(C.Kind.MEMSERVER, 3 * S, 4500 * MS, 1),
              struck(C.Kind.CONTROLLER, 5 * S, 7 * S, 2), struck(C.Kind.EMAC, 8 * S, None, 3),
              struck(C.Kind.SWITCH, 9 * S, 9100 * MS, 4, problems=("e1's tables differ from the deploy path's entries",))]
    verdict = C.judge(log, SPANS, faults, bounds)
    assert [f.within_bound for f in verdict.faults] == [True, False, True, False, True]
    assert [f.survived for f in verdict.faults] == [True, False, True, False, False]
    assert verdict.faults[3].window[1] == 9 * S, "an unrecovered fault's window ends at its bound"
    assert verdict.failures() == [
        "fault 1 (memserver e1, step 1): recovered after 1.50 s, bound 1 s",
        "fault 3 (emac e1, step 1): never recovered",
        "fault 4 (switch e1, step 1): e1's tables differ from the deploy path's entries"]
    text = C.summary(verdict, C.probes_sent(log, 0), bounds)
    assert "faults injected: 5 (switch 2, memserver 1, emac 1, controller 1, controller-deploy 0)" in text
    assert "faults survived: 2" in text and "recovery s: p50 1.20, max 2.00 (controller e1, step 1)" in text
    assert "lost inside fault windows: 0" in text and "lost outside any window: 0" in text
    assert "invariants FAILED (3):" in text


def test_a_probe_at_another_host_than_its_chains_destination_is_found() -> None:
    _, answers = probe_log({1: set(), 2: set()}, count=3)
    assert C.misdelivered(answers, {1: "10.1.0.2", 2: "10.1.0.2"}) == {}
    assert C.misdelivered(answers, {1: "10.1.0.2", 2: "10.1.0.5"}) == {2: 3}


def test_counters_grow_across_restarts_and_count_outside_windows_only() -> None:
    assert C.counter_growth([(1.0, 0.0), (1.0, 3.0), (2.0, 1.0), (2.0, 4.0)]) == 3 + 1 + 3
    assert C.counter_growth([(1.0, 5.0), (1.0, 2.0)]) == 2, "a value going down: restarted"
    samples = [(10, 1.0, 0.0), (20, 1.0, 4.0), (30, 1.0, 4.0), (40, 2.0, 2.0)]
    assert C.growth_outside(samples, []) == 6
    assert C.growth_outside(samples, [(15, 18)]) == 2, "(10, 20] overlaps the window"
    assert C.growth_outside(samples, [(35, 50)]) == 4
    assert C.growth_outside([(10, 1.0, 3.0)], []) == 3, "counted from 0 before the first sample"


def test_percentiles() -> None:
    assert C.percentile([1.0, 2.0, 3.0], 50) == 2.0
    assert np.isnan(C.percentile([], 50))


# On the live testbed

@needs_testbed
def test_a_short_soak_survives_four_faults_of_four_kinds(tmp_path: Path) -> None:
    import bench_chaos

    soak = bench_chaos.Soak(faults=4, steps=5, seed=1, step_seconds=3.0, out=tmp_path)
    verdict, sent = bench_chaos.run_soak(soak)
    print("\n" + C.summary(verdict, sent, soak.bounds))
    assert len(verdict.faults) == 4 and len({f.struck.fault.kind for f in verdict.faults}) == 4
    assert sent > 0 and verdict.failures() == []
