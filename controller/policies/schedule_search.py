"""The best schedule: one placement per step of the day, the same for every workload, found by local
search on the training workloads (`srem train --agent best-schedule`, then `--policy best-schedule:FILE`).

The best fixed placement (fixed_search.py) generalised to a placement per step, with its objective:
the working-hours acceptance over a seeded sample of the training workloads, ties broken by the
fewer requests rejected in the other steps (a fixed placement rejects none there; a schedule that
moves instances in the evening may make them wait), then by the lower mean day cost (`Score`). Every schedule is judged by the step evaluator over whole days: step t's
result depends on the placements at t-1 and t (the first step moves the instances from the
workload's initial placement), so a step's totals over the sample are kept per (step, placement
before, placement after), and changing one step's placement re-evaluates that step and the next only.

Starts: the best fixed placement at every step (`fixed:best`, when it was made for this network);
and, per policy of `START_POLICIES` that is installed, its most common placement at each step on the
sample and its whole days on a few workloads of it (greedy-slack needs no look-ahead;
schedule-foresight moves the next busy class in a step ahead). From the best start, coordinate-wise
local search: one step's placement at a time, the
others held, first-improvement sweeps over the moves and swaps of fixed_search's `neighbours` (all of
them, after those that put an instance where it is at the step before or after: staying put, or
moving in a step early), cycling over the steps until none improves or the budget is spent - first
over the steps that decide working-hours requests (the acceptance comes before the cost), then over
all. A step is swept again only when its own placement or a neighbouring step's changed since its
last sweep without an improvement.

Judging a candidate is a race against the step's current placement: over the first `screen`
workloads of the sample it must be no worse than the current one on the same workloads, or it is
dropped (a heuristic: a change that loses on a tenth of the sample rarely wins on the whole, and this
makes a candidate cost a tenth of an evaluation); past the screen it is dropped as soon as it has
rejected more, or rejected as many and cost more, than the current placement over the whole sample
(exact: totals only grow). The budget counts candidates judged, not seconds, so a seed and a budget
give the same schedule on any machine.

Regenerating the shipped `paper` schedule after the scenario changes is one command:
`srem train --agent best-schedule --out controller/policies/trained/paper-best-schedule.json --force`.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain

from controller.errors import SremError
from controller.model.constraints import storage_violations
from controller.model.dataset import Dataset
from controller.model.evaluator import StepEvaluator
from controller.model.substrate import Substrate
from controller.model.workload import Placement, Workload
from controller.policies.base import make_policy
from controller.policies.best_schedule import PlacementSchedule
from controller.policies.fixed import SHIPPED as BEST_FIXED
from controller.policies.fixed import load_placement
from controller.policies.fixed_search import Score, SearchSettings, neighbours, policy_days, training_sample
from srem_formats.progress import progress

FIXED_START = "fixed:best"
START_POLICIES = ("greedy-slack", "schedule-foresight")
"""Policies whose decisions on the sample are starts, when installed."""
DAY_STARTS = 8
"""Of each policy, its days on this many workloads are starts as well: in the working hours a policy
rarely decides the same placement twice on 100 `paper` workloads, so its most common placement per
step is there one workload's, and another workload's day may be a better schedule."""

Key = tuple[int, Placement | None, Placement]
"""(step, placement before it, placement at it); before None: each workload's initial placement."""
Totals = tuple[int, int, float]
"""Requests rejected in the working hours and in the other steps, and cost, summed over workloads."""


@dataclass(frozen=True)
class ScheduleSettings(SearchSettings):
    budget: int = 20000
    """Candidates to judge at most (on `paper`, over 100 workloads, 50-60 ms each on average on this
    project's 2-core machine shared with other work: most are dropped on the screen)."""
    screen: int = 10
    """Workloads a candidate must not lose on before it is judged on the whole sample."""


SCHEDULE_SEARCH = ScheduleSettings()


@dataclass(frozen=True)
class ScheduleResult:
    schedule: PlacementSchedule
    score: Score
    workloads: int
    """Training workloads judged (the sample)."""
    start: str
    """The start the search went from (`fixed:best`, a policy's name or NAME@WORKLOAD, see `starting_schedules`)."""
    starts: dict[str, Score]
    """Every start's own score."""
    evaluations: int
    seconds: float
    converged: bool
    """Every step ended at a local optimum (not at the budget)."""


class ScheduleEvaluator:
    """Scores schedules over a sample of workloads, keeping every step's totals per `Key`, over the
    first `screen` workloads and over all of them."""

    def __init__(self, dataset: Dataset, workloads: list[Workload], screen: int) -> None:
        self.workloads = workloads
        self.screen = min(screen, len(workloads))
        self.evaluator = StepEvaluator(dataset.substrate, dataset.objective_weights)
        self.working = [dataset.is_working_hour(h) for h in dataset.hours]
        self.steps = len(self.working)
        self.offered = (sum(len(w.requests) for w in workloads[:self.screen]), sum(len(w.requests) for w in workloads))
        """Requests per step over the screen and over the whole sample."""
        self.head: dict[Key, Totals] = {}
        self.full: dict[Key, Totals] = {}
        self.dropped: set[tuple[tuple[Key, ...], tuple[Key, ...]]] = set()
        """(candidate's keys, current's keys) of the challenges lost before the end."""

    def keys(self, schedule: PlacementSchedule, steps: range) -> tuple[Key, ...]:
        return tuple((s, schedule[s - 1] if s else None, schedule[s]) for s in steps)

    def judged(self, current: PlacementSchedule, candidate: PlacementSchedule, steps: range) -> bool:
        """The challenge's answer is known without evaluating anything."""
        keys = self.keys(candidate, steps)
        return all(key in self.full for key in keys) or (keys, self.keys(current, steps)) in self.dropped

    def score(self, schedule: PlacementSchedule) -> Score:
        """The whole day's score over the sample."""
        keys = self.keys(schedule, range(self.steps))
        self._run(keys, None, None)
        return self._score(keys, [self.full[key] for key in keys], whole=True)

    def challenge(self, current: PlacementSchedule, candidate: PlacementSchedule, steps: range) -> bool:
        """The candidate beats the current schedule over `steps` (the only ones where they differ)."""
        ours, theirs = self.keys(current, steps), self.keys(candidate, steps)
        bar = self._score(ours, [self.full[key] for key in ours], whole=True)
        if (theirs, ours) in self.dropped:
            return False
        if not self._run(theirs, self._score(ours, [self.head[key] for key in ours], whole=False), bar):
            self.dropped.add((theirs, ours))
            return False
        return self._score(theirs, [self.full[key] for key in theirs], whole=True).better_than(bar)

    def _score(self, keys: tuple[Key, ...], totals: list[Totals], whole: bool) -> Score:
        offered = self.offered[whole] * sum(self.working[step] for step, _, _ in keys)
        workloads = len(self.workloads) if whole else self.screen
        return Score(offered - sum(t[0] for t in totals), offered, sum(t[2] for t in totals) / max(workloads, 1),
                     sum(t[1] for t in totals))

    def _run(self, keys: tuple[Key, ...], head_bar: Score | None, bar: Score | None) -> bool:
        """Evaluates the keys not known yet over the sample, workload by workload; False (and nothing
        kept over the whole sample) as soon as they are behind `head_bar` over the screen or can no
        longer beat `bar` over the sample."""
        running = {key: (0, 0, 0.0) for key in keys if key not in self.full}
        for index, workload in enumerate(self.workloads):
            if index == self.screen:
                self.head.update(running)
                if head_bar is not None and head_bar.better_than(
                        self._score(keys, [self.head[key] for key in keys], whole=False)):
                    return False
            for key in running:
                step, before, after = key
                result = self.evaluator.evaluate(workload, step, workload.initial_placement if before is None else before, after)
                working, other, cost = running[key]
                rejected = len(result.requests) - result.accepted
                running[key] = (working + rejected, other, cost + result.cost.total) if self.working[step] else (
                    working, other + rejected, cost + result.cost.total)
            # What is in so far only grows with the workloads still to come: a lower bound of the totals.
            if bar is not None and not self._score(keys, [running.get(key) or self.full[key] for key in keys],
                                                   whole=True).better_than(bar):
                return False
        if self.screen == len(self.workloads):
            self.head.update(running)
        self.full.update(running)
        return True


def most_common_schedule(days: list[list[Placement]]) -> PlacementSchedule:
    """Per step, the placement most common at that step over `days` (the first seen among equals)."""
    return tuple(Counter(day[step] for day in days).most_common(1)[0][0] for step in range(len(days[0])))


def starting_schedules(dataset: Dataset, workloads: list[Workload]) -> dict[str, PlacementSchedule]:
    """The starts that apply to this dataset's network: `fixed:best` when the shipped file was made for
    it; and of every installed policy of `START_POLICIES`, its most common placement per step (label:
    its name) and its whole days on the first `DAY_STARTS` workloads (label: NAME@WORKLOAD)."""
    substrate = dataset.substrate
    starts = {}
    try:
        starts[FIXED_START] = (load_placement(BEST_FIXED, substrate),) * len(dataset.hours)
    except SremError:
        pass  # made for another network: no best fixed placement to start from
    for name in START_POLICIES:
        try:
            policy = make_policy(name)
        except SremError:
            continue  # not installed here
        days = policy_days(dataset, policy, workloads)
        starts[name] = most_common_schedule(days)
        starts.update((f"{name}@{workload.id}", tuple(day)) for workload, day in zip(workloads[:DAY_STARTS], days))
    return starts


def step_neighbours(substrate: Substrate, schedule: PlacementSchedule, step: int, initial: Placement,
                    rng: random.Random) -> Iterator[Placement]:
    """Placements for `step` one move or swap from its own, each once: first those that put an
    instance where it is at the step before (staying put) or after (moving in a step early) - moved
    there, or swapped with each instance there (the room a switch memory has is usually taken) - in
    a random order; then `neighbours`' moves and swaps."""
    here = schedule[step]
    around = [schedule[step - 1] if step else initial, *schedule[step + 1:step + 2]]
    early = []
    for other in around:
        for k, h in enumerate(other):
            if h != here[k]:
                early.append(here[:k] + (h,) + here[k + 1:])
                for j in (j for j, hj in enumerate(here) if hj == h):
                    swapped = list(here)
                    swapped[j], swapped[k] = here[k], h
                    early.append(tuple(swapped))
    rng.shuffle(early)
    seen = {here}
    for placement in chain(early, neighbours(substrate, here, rng, full=True)):
        if placement not in seen:
            seen.add(placement)
            yield placement


def search_schedule(dataset: Dataset, settings: ScheduleSettings = SCHEDULE_SEARCH,
                    progress: Callable[[int], None] | None = None) -> ScheduleResult:
    """The best schedule found within the budget; `progress(n)` is told of every n candidates judged."""
    began = time.perf_counter()
    substrate = dataset.substrate
    rng = random.Random(settings.seed)
    workloads = training_sample(dataset, settings.sample, rng)
    judge = ScheduleEvaluator(dataset, workloads, settings.screen)
    last = judge.steps - 1
    evaluations = 0

    candidates = starting_schedules(dataset, workloads)
    starts = {label: judge.score(schedule) for label, schedule in candidates.items()
              if not any(storage_violations(substrate, placement) for placement in schedule)}
    start = min(starts, key=lambda label: (-starts[label].accepted, starts[label].cost_per_workload_day, label))
    schedule = candidates[start]
    initial = workloads[0].initial_placement

    def sweep(step: int) -> bool | None:
        """One first-improvement sweep of `step`'s placement over the changes one move or swap makes to
        it at the sweep's start, each applied to the placement as improved so far: whether it
        improved; None when the budget ran out."""
        nonlocal schedule, evaluations
        affected = range(step, min(step + 1, last) + 1)
        base = schedule[step]
        improved = False
        for neighbour in step_neighbours(substrate, schedule, step, initial, rng):
            placement = list(schedule[step])
            for k, host in enumerate(neighbour):
                if host != base[k]:
                    placement[k] = host
            candidate = schedule[:step] + (tuple(placement),) + schedule[step + 1:]
            if candidate[step] == schedule[step] or storage_violations(substrate, candidate[step]):
                continue
            if not judge.judged(schedule, candidate, affected):
                if evaluations >= settings.budget:
                    return None
                evaluations += 1
                if progress:
                    progress(1)
            if judge.challenge(schedule, candidate, affected):
                schedule = candidate
                improved = True
        return improved

    def cycle(steps: list[int]) -> bool | None:
        """Sweeps over `steps` until a sweep of each improves nothing: True; None when the budget ran out.
        A step is swept again only when its own placement or a neighbouring step's changed since its
        last sweep without an improvement."""
        settled: dict[int, PlacementSchedule] = {}
        while True:
            swept = False
            for step in steps:
                if settled.get(step) == schedule[max(step - 1, 0):step + 2]:
                    continue
                swept = True
                improved = sweep(step)
                if improved is None:
                    return None
                if not improved:
                    settled[step] = schedule[max(step - 1, 0):step + 2]
            if not swept:
                return True

    # The steps whose placement decides working-hours requests first (acceptance comes before cost),
    # then every step.
    deciding = [step for step in range(judge.steps) if judge.working[step] or (step < last and judge.working[step + 1])]
    converged = cycle(deciding) is not None and cycle(list(range(judge.steps))) is not None
    return ScheduleResult(schedule, judge.score(schedule), len(workloads), start, starts, evaluations,
                          time.perf_counter() - began, converged)


def search_with_progress(dataset: Dataset, settings: ScheduleSettings, show: bool) -> ScheduleResult:
    """`search_schedule` with a progress bar over the budget on stderr."""
    with progress(total=settings.budget, desc="searching schedules", unit="candidate", show=show) as bar:
        return search_schedule(dataset, settings, bar.update)
