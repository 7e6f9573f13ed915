"""The best fixed placement: one host per instance for every step and workload, found by local search on
the training workloads (`srem train --agent best-fixed`, then `--policy fixed:FILE`).

What it maximises: the working-hours acceptance (accepted over offered requests in the working-hours
steps) over a seeded sample of the training workloads, ties broken by the lower mean day cost (eq. 1
summed over the steps). Every candidate is judged by the step evaluator over whole days: the first
step moves the instances from the workload's initial placement, the later ones move nothing.

How: the starts are every simple fixed placement (`fixed.simple_forms`: cheapest servers, each
switch's EM, each switch's LM, round-robin over the EMs) and the placement greedy-slack chooses most
often in working hours on the sample. First-improvement local search moves one instance to another
host or swaps two instances on different hosts, in a seeded random order, every neighbour respecting
storage and the RDMA tables (eq. 7). Phase 1 tries, from every start, the changes that keep its
instances together (`neighbours`), keeping only placements that accept at least as many requests as
the best start; phase 2 runs the full local search from the best placement phase 1 reached, until it
reaches a local optimum or the budget of evaluated placements is spent. The budget counts evaluations, not seconds, so a seed and a budget give the same placement on any
machine; an evaluation dropped early (`FixedEvaluator`) counts as one too.

Regenerating the shipped `paper` placement after the scenario changes is one command:
`srem train --agent best-fixed --out controller/policies/trained/paper-best-fixed.json --force`.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from controller.model.constraints import storage_violations
from controller.model.dataset import Dataset
from controller.model.evaluator import StepEvaluator
from controller.model.substrate import HostKind, Substrate
from controller.model.workload import Placement, Workload
from controller.policies.base import Policy, observe, start_day
from controller.policies.fixed import simple_forms, simple_placement
from controller.policies.greedy_slack import GreedySlackPolicy
from srem_formats.progress import progress

GREEDY_START = "greedy-slack"
"""The start label of greedy-slack's most common working-hours placement."""


@dataclass(frozen=True)
class SearchSettings:
    budget: int = 600
    """Placements to evaluate at most (on `paper`, over 100 workloads, a third of a second each on
    average: those that fall behind are dropped early)."""
    sample: int = 100
    """Training workloads the placements are judged on (a seeded sample; all when there are fewer)."""
    seed: int = 0
    """Seed of the sample and of the order neighbours are tried in."""


SEARCH = SearchSettings()


@dataclass(frozen=True)
class Score:
    """A fixed placement's result over the sample."""

    accepted: int
    """Requests accepted in the working-hours steps, summed over the workloads."""
    offered: int
    cost_per_workload_day: float
    rejected_outside: int = 0
    """Requests rejected in the other steps, summed over the workloads (the schedule search counts them;
    a fixed placement moves nothing after the first step, so it rejects none there)."""

    @property
    def acceptance(self) -> float:
        return self.accepted / self.offered if self.offered else 1.0

    def better_than(self, other: Score) -> bool:
        """More accepted requests, or as many and fewer rejected outside the working hours, or as many
        of both for less cost (a relative 1e-9 below, so float noise is no gain)."""
        if self.accepted != other.accepted:
            return self.accepted > other.accepted
        if self.rejected_outside != other.rejected_outside:
            return self.rejected_outside < other.rejected_outside
        return self.cost_per_workload_day < other.cost_per_workload_day * (1 - 1e-9)


@dataclass(frozen=True)
class SearchResult:
    placement: Placement
    score: Score
    workloads: int
    """Training workloads judged (the sample)."""
    start: str
    """The start the best placement was reached from (a `fixed:` ARG or `greedy-slack`)."""
    starts: dict[str, Score]
    """Every start's own score."""
    evaluations: int
    seconds: float
    converged: bool
    """The full local search ended at a local optimum (not at the budget)."""


class FixedEvaluator:
    """Scores fixed placements over a set of workloads, each placement once.

    A step's result depends only on the workload, the step and the placements before and after it
    (the initial one before the first step, the fixed one after), so the working-hours steps of every
    workload are judged first and a placement is dropped as soon as it has rejected more requests than
    one that accepts `at_least` may: the search only ever wants placements that accept at least as many
    as the one it holds. That pruning is exact. The evening steps, which only add cost, come last."""

    def __init__(self, dataset: Dataset, workloads: list[Workload]) -> None:
        self.workloads = workloads
        self.evaluator = StepEvaluator(dataset.substrate, dataset.objective_weights)
        steps = [(step, dataset.is_working_hour(h)) for step, h in enumerate(dataset.hours)]
        self.working = [step for step, working in steps if working]
        self.evening = [step for step, working in steps if not working]
        self.offered = sum(len(w.requests) for w in workloads) * len(self.working)
        self.scores: dict[Placement, Score] = {}
        self.beaten: dict[Placement, int] = {}
        """Placements dropped early -> the `at_least` they failed: they accept fewer than that."""

    def judged(self, placement: Placement, at_least: int) -> bool:
        """The answer for (placement, at_least) is known without evaluating."""
        return placement in self.scores or self.beaten.get(placement, at_least + 1) <= at_least

    def score(self, placement: Placement, at_least: int = 0) -> Score | None:
        """Its score, or None when it accepts fewer than `at_least` working-hours requests."""
        if placement in self.scores:
            found = self.scores[placement]
            return found if found.accepted >= at_least else None
        if self.judged(placement, at_least):
            return None
        allowed = self.offered - at_least
        rejected = 0
        cost = 0.0
        for workload in self.workloads:
            for step in self.working:
                result = self.evaluator.evaluate(workload, step, self.before(workload, step, placement), placement)
                rejected += len(result.requests) - result.accepted
                cost += result.cost.total
            if rejected > allowed:
                self.beaten[placement] = at_least
                return None
        for workload in self.workloads:
            for step in self.evening:
                cost += self.evaluator.evaluate(workload, step, self.before(workload, step, placement), placement).cost.total
        found = self.scores[placement] = Score(self.offered - rejected, self.offered, cost / max(len(self.workloads), 1))
        return found

    @staticmethod
    def before(workload: Workload, step: int, placement: Placement) -> Placement:
        """Where the instances are before `step` under a fixed placement."""
        return workload.initial_placement if step == 0 else placement


def training_sample(dataset: Dataset, size: int, rng: random.Random) -> list[Workload]:
    """A seeded sample of `size` training workloads (all of them when there are fewer), in dataset order."""
    train = dataset.split("train")
    return [train[i] for i in sorted(rng.sample(range(len(train)), min(size, len(train))))]


def policy_days(dataset: Dataset, policy: Policy, workloads: list[Workload]) -> list[list[Placement]]:
    """Per workload, the placement `policy` decides at every step, as `srem evaluate` would make them
    (each step from the one before; without the previous step's evaluation, which the heuristics do
    not read)."""
    substrate = dataset.substrate
    policy.bind(substrate)
    days = []
    for workload in workloads:
        start_day(policy, substrate, workload)
        placement = workload.initial_placement
        day = []
        for step, hour in enumerate(dataset.hours):
            placement = tuple(int(h) for h in policy.decide(
                observe(substrate, workload, step, hour, dataset.is_working_hour(hour), placement, None)))
            day.append(placement)
        days.append(day)
    return days


def greedy_placement(dataset: Dataset, workloads: list[Workload]) -> Placement:
    """The placement greedy-slack chooses most often in the working-hours steps of `workloads`."""
    working_hours: Counter[Placement] = Counter()
    every_step: Counter[Placement] = Counter()
    for day in policy_days(dataset, GreedySlackPolicy(), workloads):
        for hour, placement in zip(dataset.hours, day):
            every_step[placement] += 1
            if dataset.is_working_hour(hour):
                working_hours[placement] += 1
    # A scenario without working hours has no acceptance to win: the most common placement of all steps.
    return (working_hours or every_step).most_common(1)[0][0]


def neighbours(substrate: Substrate, placement: Placement, rng: random.Random, full: bool) -> Iterator[Placement]:
    """The placements one move (an instance to another host) or one swap (two instances on different
    hosts) away that keep the instances together - moves to the other memory of the instance's switch
    or to a host other instances already use, and swaps - each group in a random order; with `full`,
    then every other move. Fixed placements that serve the working hours gather the instances in one
    switch, and what is left to gain there is mostly such moves (a small instance from EM to LM)."""
    hosts = substrate.hosts
    used = set(placement)
    near, far = [], []
    for k, here in enumerate(placement):
        for h in range(len(hosts)):
            if h != here:
                together = h in used or (hosts[h].kind is not HostKind.SERVER and hosts[h].node == hosts[here].node)
                (near if together else far).append((k, h))
    swaps = [(a, b) for a in range(len(placement)) for b in range(a + 1, len(placement)) if placement[a] != placement[b]]
    for group in (near, swaps, far):
        rng.shuffle(group)
    for k, h in near:
        yield placement[:k] + (h,) + placement[k + 1:]
    for a, b in swaps:
        p = list(placement)
        p[a], p[b] = p[b], p[a]
        yield tuple(p)
    if full:
        for k, h in far:
            yield placement[:k] + (h,) + placement[k + 1:]


def search_fixed(dataset: Dataset, settings: SearchSettings = SEARCH,
                 progress: Callable[[int], None] | None = None) -> SearchResult:
    """The best fixed placement found within the budget; `progress(n)` is told of every n placements evaluated."""
    began = time.perf_counter()
    substrate = dataset.substrate
    rng = random.Random(settings.seed)
    judge = FixedEvaluator(dataset, training_sample(dataset, settings.sample, rng))
    evaluations = 0

    def fits(placement: Placement) -> bool:
        return not storage_violations(substrate, placement)

    def score(placement: Placement, at_least: int = 0) -> Score | None:
        nonlocal evaluations
        if not judge.judged(placement, at_least):
            evaluations += 1
            if progress:
                progress(1)
        return judge.score(placement, at_least)

    def descend(current: Placement, current_score: Score, full: bool, floor: int) -> tuple[Placement, Score, bool]:
        """First-improvement local search, considering only placements that accept at least `floor`;
        True when it ended at a local optimum, False when the budget ran out."""
        while True:
            for neighbour in neighbours(substrate, current, rng, full):
                if not fits(neighbour):
                    continue
                at_least = max(current_score.accepted, floor)
                if not judge.judged(neighbour, at_least) and evaluations >= settings.budget:
                    return current, current_score, False
                found = score(neighbour, at_least)
                if found is not None and found.better_than(current_score):
                    current, current_score = neighbour, found
                    break
            else:
                return current, current_score, True

    def rank(scores: dict[str, Score]) -> list[str]:
        return sorted(scores, key=lambda label: (-scores[label].accepted, scores[label].cost_per_workload_day, label))

    candidates = {form: simple_placement(substrate, form) for form in simple_forms(substrate)}
    candidates[GREEDY_START] = greedy_placement(dataset, judge.workloads)
    starts: dict[str, Score] = {}
    for label, placement in candidates.items():
        if fits(placement):
            found = score(placement)
            assert found is not None, "judged without a floor: never dropped"
            starts[label] = found
    # Phase 1: can a start beat the best start with changes that keep its instances together? Cheap:
    # a start far below the best is dropped after its first few workloads.
    best_label = rank(starts)[0]
    reached = {label: (candidates[label], starts[label]) for label in starts}
    for label in rank(starts):
        found_placement, found_score, _ = descend(*reached[label], full=False, floor=starts[best_label].accepted)
        reached[label] = found_placement, found_score
    # Phase 2: the full local search from the best of them.
    best_label = rank({label: found_score for label, (_, found_score) in reached.items()})[0]
    best, best_score, converged = descend(*reached[best_label], full=True, floor=0)
    return SearchResult(best, best_score, len(judge.workloads), best_label, starts, evaluations, time.perf_counter() - began, converged)


def search_with_progress(dataset: Dataset, settings: SearchSettings, show: bool) -> SearchResult:
    """`search_fixed` with a progress bar over the budget on stderr."""
    with progress(total=settings.budget, desc="searching fixed placements", unit="placement", show=show) as bar:
        return search_fixed(dataset, settings, bar.update)
