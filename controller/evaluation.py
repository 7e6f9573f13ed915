"""Runs a policy over the workloads of a dataset split, step by step, and aggregates the results per hour."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from controller.errors import SremError
from controller.model.dataset import Dataset
from controller.model.evaluator import Outcome, StepEvaluator, StepResult, host_kind_shares
from controller.model.substrate import HostKind
from controller.model.workload import Workload
from controller.policies.base import Policy, observe, start_day
from srem_formats.progress import progress as progress_of


def run_day(evaluator: StepEvaluator, dataset: Dataset, workload: Workload, policy: Policy) -> list[StepResult]:
    """One workload through all its steps: the policy decides, the evaluator judges, the placement carries over."""
    start_day(policy, evaluator.substrate, workload)
    placement = workload.initial_placement
    last: StepResult | None = None
    results = []
    for step, hour in enumerate(dataset.hours):
        observation = observe(evaluator.substrate, workload, step, hour, dataset.is_working_hour(hour), placement, last)
        decided = tuple(int(h) for h in policy.decide(observation))
        try:
            last = evaluator.evaluate(workload, step, placement, decided)
        except ValueError as exc:
            raise SremError(f"invalid placement at {hour}:00 of workload {workload.id}: {exc}", where=f"policy {policy.name}") from None
        results.append(last)
        placement = decided
    return results


@dataclass
class HourSummary:
    """One step's results over the workloads of a split.

    `requests`, `accepted` and `rejected` are totals over the workloads; the costs and the shares
    are means per workload (after `finish`). Reports label every field with which it is
    (`to_dict`, the CSV and the text table), since the two kinds sit side by side."""

    hour: int
    working_hours: bool
    requests: int = 0
    accepted: int = 0
    workloads: int = 0
    cost_it: float = 0.0
    cost_bw: float = 0.0
    cost_reconf: float = 0.0
    cost_total: float = 0.0
    share_server: float = 0.0
    share_lm: float = 0.0
    share_em: float = 0.0
    rejected: dict[str, int] = field(default_factory=dict)

    @property
    def acceptance_ratio(self) -> float:
        return self.accepted / self.requests if self.requests else 1.0

    def add(self, result: StepResult, shares: dict[HostKind, float]) -> None:
        """Accumulate one workload's step; costs and shares are kept as sums until `finish`."""
        self.workloads += 1
        self.requests += len(result.requests)
        self.accepted += result.accepted
        self.cost_it += result.cost.it
        self.cost_bw += result.cost.bandwidth
        self.cost_reconf += result.cost.reconfiguration
        self.cost_total += result.cost.total
        self.share_server += shares[HostKind.SERVER]
        self.share_lm += shares[HostKind.LM]
        self.share_em += shares[HostKind.EM]
        counts = Counter(r.outcome.value for r in result.requests if r.outcome is not Outcome.ACCEPTED)
        for reason, n in counts.items():
            self.rejected[reason] = self.rejected.get(reason, 0) + n

    def finish(self) -> None:
        """Turn sums into means per workload."""
        n = max(self.workloads, 1)
        for name in ("cost_it", "cost_bw", "cost_reconf", "cost_total", "share_server", "share_lm", "share_em"):
            setattr(self, name, getattr(self, name) / n)

    def to_dict(self) -> dict[str, Any]:
        """The JSON/CSV fields (README, "JSON output"): totals end in `_total`, means in `_per_workload`."""
        return {
            "hour": self.hour,
            "working_hours": self.working_hours,
            "workloads": self.workloads,
            "requests_total": self.requests,
            "accepted_total": self.accepted,
            "acceptance_ratio": self.acceptance_ratio,
            "cost_it_per_workload": self.cost_it,
            "cost_bw_per_workload": self.cost_bw,
            "cost_reconf_per_workload": self.cost_reconf,
            "cost_total_per_workload": self.cost_total,
            "share_server": self.share_server,
            "share_lm": self.share_lm,
            "share_em": self.share_em,
            "rejected_total": dict(sorted(self.rejected.items())),
        }


@dataclass
class EvaluationReport:
    scenario: str
    scenario_hash: str
    policy: str
    """The policy's registered name."""
    spec: str
    """The policy as given (`srem:results/a.pt`); tells apart runs of one policy with other arguments."""
    split: str
    workloads: int
    per_hour: list[HourSummary]

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "scenario_hash": self.scenario_hash,
            "policy": self.policy,
            "spec": self.spec,
            "split": self.split,
            "workloads": self.workloads,
            "per_hour": [h.to_dict() for h in self.per_hour],
        }


def evaluate_policy(dataset: Dataset, policy: Policy, split: str, limit: int | None = None, progress: bool = True,
                    spec: str | None = None, on_day: Callable[[list[StepResult]], None] | None = None) -> EvaluationReport:
    """`spec`: the policy as given, recorded in the report (default its name); `on_day` sees every
    workload's step results (for figures per workload, such as intervals over the workloads)."""
    spec = spec or policy.name
    workloads = dataset.split(split, limit)
    policy.bind(dataset.substrate)
    policy.use_objective(dataset.objective_weights)
    evaluator = StepEvaluator(dataset.substrate, dataset.objective_weights)
    per_hour = [HourSummary(hour, dataset.is_working_hour(hour)) for hour in dataset.hours]
    for workload in progress_of(workloads, desc=f"evaluating {spec}", unit="workload", show=progress):
        results = run_day(evaluator, dataset, workload, policy)
        for summary, result in zip(per_hour, results):
            summary.add(result, host_kind_shares(dataset.substrate, result.placement))
        if on_day is not None:
            on_day(results)
    for summary in per_hour:
        summary.finish()
    return EvaluationReport(
        scenario=dataset.manifest.scenario,
        scenario_hash=dataset.manifest.scenario_hash,
        policy=policy.name,
        spec=spec,
        split=split,
        workloads=len(workloads),
        per_hour=per_hour,
    )
