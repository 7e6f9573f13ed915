"""The paper's experiments: Fig. 5 (training reward per filter variant), Fig. 6 (acceptance, cost and
placement per hour) and the gap of every method to the exact optimum.

Each experiment owns its defaults - a frozen dataclass per experiment, with a full and a quick
(`--quick`) set of values - so the CLI only maps flags onto them. Each writes CSV, a markdown table and
(Fig. 5 and 6) PNG plots into an output directory and returns a result that renders as markdown and
as a JSON document. matplotlib, torch and the solver are imported only when an experiment runs
(controller.policies loads a policy's module when it is made): the CLI imports this module to build
its help.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from controller.errors import SremError
from controller.evaluation import EvaluationReport, evaluate_policy
from controller.model.dataset import Dataset
from controller.policies import Policy, make_policy

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

METHODS: Mapping[str, str] = {"SR-EM": "srem", "LAG": "lag", "DDQN-CM": "ddqn-cm", "RANDOM": "random", "static": "static",
                               "greedy-slack": "greedy-slack", "best-fixed": "fixed:best"}
"""The paper's comparison and two EM-aware baselines it did not have, label -> policy spec. `srem` and
`ddqn-cm` load the checkpoints, `fixed:best` the placement file (controller/policies/trained/), shipped
for the `paper` scenario's network; on another network they need one made for it."""


@dataclass(frozen=True)
class Fig5Settings:
    """Fig. 5: SR-EM's training reward with static, dynamic and hybrid filters."""

    scenario: str = "paper"
    episodes: int = 12_000
    """Training episodes per run (the paper's)."""
    seeds: int = 3
    """Runs per variant, seeds 0..seeds-1."""


@dataclass(frozen=True)
class Fig6Settings:
    """Fig. 6: every method over the test workloads, per hour."""

    scenario: str = "paper"
    """The shipped SR-EM and DDQN-CM checkpoints and best fixed placement are made for it."""
    limit: int | None = None
    """The first N test workloads; None: all."""
    methods: Mapping[str, str] = field(default_factory=lambda: dict(METHODS))


@dataclass(frozen=True)
class GapSettings:
    """Every method's acceptance and cost against the exact optimum (`ilp`) of every step."""

    scenario: str = "small"
    """The MILP of a `paper` step does not solve within minutes (README, "Exact optimum")."""
    limit: int | None = None
    """The first N test workloads; None: all."""
    time_limit_s: float = 60.0
    """The solver's time limit per step."""
    methods: Mapping[str, str] = field(default_factory=lambda: dict(METHODS))


FIG5, FIG5_QUICK = Fig5Settings(), Fig5Settings(scenario="small", episodes=200, seeds=2)
FIG6, FIG6_QUICK = Fig6Settings(), Fig6Settings(limit=30)
GAP, GAP_QUICK = GapSettings(), GapSettings(limit=2)
FIG5_VARIANTS = ("static", "dynamic", "hybrid")
OPTIMUM = "optimum"
"""The exact solver's label in the gap report."""


def safe_name(text: str) -> str:
    """`text` as one file-name component: runs of anything but letters, digits, `.`, `_` and `-`
    become `-`; a long one keeps its end (a checkpoint's name) and a hash of the whole."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "-"
    if len(name) > 80:
        name = f"{name[-60:].lstrip('-.')}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return name


def results_folder(experiment: str, scenario: str, *, quick: bool = False, methods: Sequence[str] = (),
                   budgets: Mapping[str, float | int] | None = None) -> Path:
    """results/EXPERIMENT-SCENARIO[-METHOD...][-quick][-BUDGET...], e.g. results/fig6-paper-quick:
    runs with other scenarios, methods (`--policy` as given) or budgets (flags as given) never share
    a folder."""
    parts = [experiment, scenario, *methods, *(["quick"] if quick else []),
             *(f"{flag}{value:g}" for flag, value in (budgets or {}).items())]
    return Path("results") / "-".join(safe_name(p) for p in parts)


@dataclass(frozen=True)
class Method:
    label: str
    spec: str
    policy: Policy


@dataclass(frozen=True)
class Methods:
    bound: list[Method]
    """The methods to compare, bound to the dataset's network."""
    left_out: dict[str, str]
    """label -> why it was left out."""


def bind_methods(dataset: Dataset, methods: Mapping[str, str], given: Collection[str]) -> Methods:
    """Every method's policy, bound to the dataset's network now, so that a checkpoint that does not
    fit fails before hours of evaluation and before anything is written.

    A default method that does not bind (its shipped checkpoint or placement file is for another network) is left out,
    with the reason; a method the user named (its label in `given`) must bind. (`evaluate_policy`
    binds again: reloading a checkpoint takes milliseconds.)
    """
    bound, left_out = [], {}
    for label, spec in methods.items():
        policy = make_policy(spec)
        try:
            policy.bind(dataset.substrate)
        except SremError as exc:
            if label in given:
                raise
            left_out[label] = exc.one_line()
            continue
        bound.append(Method(label, spec, policy))
    return Methods(bound, left_out)


def _evaluate_all(dataset: Dataset, methods: Sequence[Method], limit: int | None, progress: bool) -> dict[str, EvaluationReport]:
    return {m.label: evaluate_policy(dataset, m.policy, "test", limit, progress, spec=m.spec) for m in methods}


def _left_out_markdown(left_out: Mapping[str, str]) -> list[str]:
    return ["", *(f"Left out {label}: {why}" for label, why in left_out.items())] if left_out else []


def _save(fig: Figure, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _subplots(width: float = 7.0) -> tuple[Figure, Axes]:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=(width, 4))


@dataclass
class Fig5Result:
    scenario: str
    seeds: list[int]
    episodes: int
    rewards: dict[str, np.ndarray]
    """variant -> (seeds, episodes) rewards."""
    episodes_per_second: float

    def final(self, variant: str, tail: float = 0.1) -> tuple[float, float]:
        """Mean and spread (std over seeds) of each seed's mean reward over its last `tail` of episodes."""
        r = self.rewards[variant]
        k = max(int(r.shape[1] * tail), 1)
        per_seed = r[:, -k:].mean(axis=1)
        return float(per_seed.mean()), float(per_seed.std())

    def markdown(self) -> str:
        lines = ["| filters | final reward (mean of last 10% of episodes) | spread over seeds (std) |", "|---|---|---|"]
        for variant in FIG5_VARIANTS:
            mean, std = self.final(variant)
            lines.append(f"| {variant} | {mean:.3f} | {std:.3f} |")
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "episodes": self.episodes, "seeds": self.seeds,
                "episodes_per_second": self.episodes_per_second,
                "final_reward": {v: dict(zip(("mean", "std"), self.final(v))) for v in FIG5_VARIANTS}}


def fig5(dataset: Dataset, episodes: int, seeds: list[int], out: Path, progress: bool = True) -> Fig5Result:
    """Writes fig5.csv, fig5.png and fig5.md into `out`."""
    from controller.rl.training import TrainConfig, train

    rewards: dict[str, np.ndarray] = {}
    speeds = []
    for variant in FIG5_VARIANTS:
        runs = []
        for seed in seeds:
            _, run = train(dataset, TrainConfig(variant=variant, episodes=episodes, seed=seed), progress=progress)
            runs.append(run.rewards)
            speeds.append(run.episodes_per_second)
        rewards[variant] = np.array(runs)
    result = Fig5Result(dataset.manifest.scenario, seeds, episodes, rewards, float(np.mean(speeds)))
    with open(out / "fig5.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "seed", "episode", "reward"])
        for variant, runs in rewards.items():
            for seed, run in zip(seeds, runs):
                writer.writerows([variant, seed, i, f"{r:.6f}"] for i, r in enumerate(run))
    window = max(episodes // 50, 1)
    fig, ax = _subplots()
    for variant, runs in rewards.items():
        kernel = np.ones(window) / window
        smooth = np.array([np.convolve(run, kernel, mode="valid") for run in runs])
        x = np.arange(smooth.shape[1]) + window
        mean, std = smooth.mean(axis=0), smooth.std(axis=0)
        ax.plot(x, mean, label=variant)
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("episode")
    ax.set_ylabel(f"episode reward (moving mean of {window})")
    ax.set_title(f"Fig. 5: training reward, {dataset.manifest.scenario}, {len(seeds)} seeds (band: std)")
    ax.legend()
    _save(fig, out / "fig5.png")
    (out / "fig5.md").write_text(result.markdown())
    return result


FIG6_CSV_COLUMNS = ["policy", "spec", "hour", "acceptance_ratio", "cost_it_per_workload", "cost_bw_per_workload",
                    "cost_reconf_per_workload", "cost_total_per_workload", "share_server", "share_lm", "share_em"]


@dataclass
class Fig6Result:
    scenario: str
    hours: list[int]
    reports: dict[str, EvaluationReport]
    """label -> its evaluation over the test workloads."""
    left_out: dict[str, str]
    """label -> why it was left out."""

    def markdown(self) -> str:
        names = list(self.reports)
        head = ["| hour | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
        lines = ["Acceptance ratio per hour", "", *head]
        for i, hour in enumerate(self.hours):
            lines.append(f"| {hour}:00 | " + " | ".join(f"{self.reports[n].per_hour[i].acceptance_ratio:.3f}" for n in names) + " |")
        lines += ["", "Total cost per workload per hour (eq. 1; mean over the workloads)", "", *head]
        for i, hour in enumerate(self.hours):
            lines.append(f"| {hour}:00 | " + " | ".join(f"{self.reports[n].per_hour[i].cost_total:.3f}" for n in names) + " |")
        main = names[0]
        lines += ["", f"Where {main} places instances (servers / LM / EM)", "", "| hour | servers | LM | EM |", "|---|---|---|---|"]
        for h in self.reports[main].per_hour:
            lines.append(f"| {h.hour}:00 | {h.share_server:.2f} | {h.share_lm:.2f} | {h.share_em:.2f} |")
        return "\n".join(lines + _left_out_markdown(self.left_out)) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "policies": {label: r.to_dict() for label, r in self.reports.items()},
                "left_out": self.left_out}


def fig6(dataset: Dataset, methods: Methods, out: Path, limit: int | None = None, progress: bool = True) -> Fig6Result:
    """Writes fig6.csv, fig6a/b/c.png and fig6.md into `out`; fig6c shows the first method's placements."""
    reports = _evaluate_all(dataset, methods.bound, limit, progress)
    result = Fig6Result(dataset.manifest.scenario, dataset.hours, reports, methods.left_out)
    with open(out / "fig6.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FIG6_CSV_COLUMNS)
        for label, report in reports.items():
            for h in report.per_hour:
                writer.writerow([label, report.spec, h.hour, f"{h.acceptance_ratio:.4f}", f"{h.cost_it:.4f}", f"{h.cost_bw:.4f}",
                                 f"{h.cost_reconf:.4f}", f"{h.cost_total:.4f}", f"{h.share_server:.4f}",
                                 f"{h.share_lm:.4f}", f"{h.share_em:.4f}"])
    hours = dataset.hours
    labels = [f"{h}:00" for h in hours]
    width = 0.8 / len(reports)
    for name, attr, ylabel in (("fig6a", "acceptance_ratio", "acceptance ratio"), ("fig6b", "cost_total", "total cost per workload")):
        fig, ax = _subplots(width=8.0)
        for i, (label, report) in enumerate(reports.items()):
            values = [getattr(h, attr) for h in report.per_hour]
            ax.bar(np.arange(len(hours)) + i * width, values, width, label=label)
        ax.set_xticks(np.arange(len(hours)) + 0.4 - width / 2, labels)
        ax.set_ylabel(ylabel)
        if attr == "cost_total":
            ax.set_yscale("log")
        ax.set_title(f"Fig. {name[3:]}: {ylabel} per hour, {dataset.manifest.scenario} test set")
        ax.legend(fontsize=8)
        _save(fig, out / f"{name}.png")
    main_label = next(iter(reports))
    fig, ax = _subplots()
    bottom = np.zeros(len(hours))
    for kind in ("server", "lm", "em"):
        values = np.array([getattr(h, f"share_{kind}") for h in reports[main_label].per_hour])
        ax.bar(labels, values, bottom=bottom, label={"server": "servers", "lm": "LM", "em": "EM"}[kind])
        bottom += values
    ax.set_ylabel("share of instance placements")
    ax.set_title(f"Fig. 6c: where {main_label} places instances")
    ax.legend()
    _save(fig, out / "fig6c.png")
    (out / "fig6.md").write_text(result.markdown())
    return result


@dataclass(frozen=True)
class GapRow:
    label: str
    spec: str
    requests_total: int
    accepted_total: int
    acceptance_ratio: float
    acceptance_gap: float
    """acceptance_ratio minus the optimum's (-0.136: 13.6 percentage points below it)."""
    cost_per_workload_day: float
    """Mean over the workloads of a day's total cost (eq. 1 summed over the steps)."""
    cost_gap_relative: float
    """cost_per_workload_day over the optimum's, minus 1 (+0.225: 22.5% dearer)."""


@dataclass
class GapResult:
    scenario: str
    workloads: int
    time_limit_s: float
    steps: int
    steps_optimal: int
    """Steps the solver proved optimal within the time limit."""
    rows: list[GapRow]
    """Every method, the optimum last."""
    left_out: dict[str, str]

    def markdown(self) -> str:
        lines = [f"Gap to the exact optimum on {self.scenario} ({self.workloads} test workloads; "
                 f"{self.steps_optimal} of {self.steps} steps proven optimal within {self.time_limit_s:g} s)", "",
                 "| method | acceptance | acceptance gap | cost per workload-day | cost gap (relative) |", "|---|---|---|---|---|"]
        lines += [f"| {r.label} | {r.acceptance_ratio:.3f} | {r.acceptance_gap:+.3f} | {r.cost_per_workload_day:.3f} | "
                  f"{r.cost_gap_relative:+.1%} |" for r in self.rows]
        return "\n".join(lines + _left_out_markdown(self.left_out)) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "workloads": self.workloads, "time_limit_s": self.time_limit_s,
                "steps": self.steps, "steps_optimal": self.steps_optimal,
                "methods": {r.label: {k: v for k, v in asdict(r).items() if k != "label"} for r in self.rows},
                "left_out": self.left_out}


def optimality_gap(dataset: Dataset, methods: Methods, time_limit_s: float, limit: int | None, out: Path,
                   progress: bool = True) -> GapResult:
    """Each method's acceptance and cost against the exact optimum (`ilp`) over the test split; writes gap.csv and gap.md."""
    spec = f"ilp:{time_limit_s:g}"
    ilp = make_policy(spec)
    reports = _evaluate_all(dataset, [*methods.bound, Method(OPTIMUM, spec, ilp)], limit, progress)
    statuses = [s.status for s in ilp.solutions]  # type: ignore[attr-defined]

    def totals(report: EvaluationReport) -> tuple[int, int, float]:
        return (sum(h.requests for h in report.per_hour), sum(h.accepted for h in report.per_hour),
                sum(h.cost_total for h in report.per_hour))

    best_requests, best_accepted, best_cost = totals(reports[OPTIMUM])
    best_acceptance = best_accepted / max(best_requests, 1)
    rows = []
    for label, report in reports.items():
        requests, accepted, cost = totals(report)
        acceptance = accepted / max(requests, 1)
        rows.append(GapRow(label, report.spec, requests, accepted, acceptance, acceptance - best_acceptance, cost,
                           cost / best_cost - 1 if best_cost else 0.0))
    result = GapResult(dataset.manifest.scenario, reports[OPTIMUM].workloads, time_limit_s, len(statuses),
                       statuses.count("optimal"), rows, methods.left_out)
    with open(out / "gap.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["policy", "spec", "requests_total", "accepted_total", "acceptance_ratio", "acceptance_gap",
                         "cost_per_workload_day", "cost_gap_relative"])
        writer.writerows([r.label, r.spec, r.requests_total, r.accepted_total, f"{r.acceptance_ratio:.4f}",
                          f"{r.acceptance_gap:.4f}", f"{r.cost_per_workload_day:.4f}", f"{r.cost_gap_relative:.4f}"]
                         for r in rows)
    (out / "gap.md").write_text(result.markdown())
    return result
