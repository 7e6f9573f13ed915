"""The paper's experiments: Fig. 5 (how SR-EM learns with each filter variant), Fig. 6 (acceptance, cost and
placement per hour) and the gap of every method to the exact optima (per step, and over the day).

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
import multiprocessing
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from controller.errors import SremError
from controller.evaluation import EvaluationReport, evaluate_policy
from controller.filter_stats import FilterRemoval, filter_removal
from controller.intervals import mean_ci95
from controller.model.dataset import Dataset
from controller.model.evaluator import StepEvaluator, StepResult
from controller.model.feasibility import capacities
from controller.model.substrate import HostKind
from controller.model.workload import Placement
from controller.policies import Policy, make_policy
from srem_formats.progress import progress as progress_of

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from controller.exact_day import DaySolution
    from controller.learning_curve import LearningRun

METHODS: Mapping[str, str] = {"SR-EM": "srem", "LAG": "lag", "DDQN-CM": "ddqn-cm", "RANDOM": "random", "static": "static",
                               "greedy-slack": "greedy-slack", "best-fixed": "fixed:best",
                               "schedule-foresight": "schedule-foresight", "best-schedule": "best-schedule"}
"""The paper's comparison and the EM-aware baselines it did not have, label -> policy spec (schedule-foresight
also reads the public schedule of service classes; best-schedule is one placement per step, searched on
training workloads). `srem` and `ddqn-cm` load the checkpoints, `fixed:best` and `best-schedule` their files
(controller/policies/trained/), shipped for the `paper` scenario's network; on another network they need
ones made for it."""


@dataclass(frozen=True)
class Fig5Settings:
    """Fig. 5: how SR-EM learns with static, dynamic and hybrid filters - the greedy policy's reward and
    acceptance on test workloads at checkpoints during training, the training reward, and what each
    filter removes of random exploration. The fields after `seeds` are the same with --quick."""

    scenario: str = "paper"
    episodes: int = 2_000
    """Training episodes per run. On `paper` an episode takes 0.15-0.19 s of one core (measured), so the 9
    runs, 2 at once, take about 30 minutes on 2 cores; the paper's 12,000 would take 2.5 hours."""
    seeds: int = 3
    """Runs per variant, seeds 0..seeds-1."""
    checkpoints: int = 10
    """Measurements per run: every episodes/checkpoints episodes (and at the end)."""
    test_workloads: int = 50
    """The greedy policy is scored on the first N test workloads (1.1 s per checkpoint on `paper`; all 300
    would take 6x as long)."""
    jobs: int = 2
    """Training runs at once, each in its own process; a run is the same whatever the number."""
    filter_placements: int = 2000
    """Unfiltered random placements drawn to measure what the filters remove."""
    filter_seed: int = 0


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
    """Every method's acceptance and cost against the exact optimum (`ilp`) of every step and the day-long optimum
    of every workload (controller/exact_day.py)."""

    scenario: str = "small"
    """The MILP of a `paper` step does not solve within minutes (README, "Exact optimum")."""
    limit: int | None = None
    """The first N test workloads; None: all."""
    time_limit_s: float = 60.0
    """The solver's time limit per step."""
    day_time_limit_s: float = 120.0
    """The day-long optimum's time limit per workload (controller/exact_day.py; on `paper` its program has
    about 88,000 columns and 40,000 rows)."""
    methods: Mapping[str, str] = field(default_factory=lambda: dict(METHODS))


FIG5, FIG5_QUICK = Fig5Settings(), Fig5Settings(scenario="small", episodes=60, seeds=3)
FIG6, FIG6_QUICK = Fig6Settings(), Fig6Settings(limit=30)
GAP, GAP_QUICK = GapSettings(), GapSettings(limit=2, day_time_limit_s=30.0)
FIG5_VARIANTS = ("static", "dynamic", "hybrid")
OPTIMUM = "optimum"
"""The exact solver's label in the gap report."""
DAY_OPTIMUM = "day-optimum"
"""The day-long optimum's label in the gap report (an oracle with the whole day: controller/exact_day.py)."""


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


def _left_out_markdown(left_out: Mapping[str, str]) -> list[str]:
    return ["", *(f"Left out {label}: {why}" for label, why in left_out.items())] if left_out else []


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    return plt


def _figure(width: float, height: float) -> Figure:
    """A figure laid out so that legends placed outside the panels ("outside ..." locations) stay clear of them."""
    return _pyplot().figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)


def _legend_below(fig: Figure, ax: Axes, columns: int) -> None:
    """One legend for the figure, under its panels, so that it hides no bar or curve."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=columns, frameon=False)


def _or_none(value: float) -> float | None:
    """JSON has no NaN: an interval that one sample cannot give is null."""
    return None if np.isnan(value) else float(value)


PAPER_ORDER = ("hybrid", "dynamic", "static")
"""Fig. 5 of the paper: hybrid filters converge to the highest reward, then dynamic, then static."""


def _over_seeds(values: np.ndarray) -> dict[str, float | None]:
    """Mean, sample std and 95% interval (Student's t) over the seeds of one value per seed."""
    mean, half = mean_ci95(values)
    std = float(values.std(ddof=1)) if len(values) > 1 else None
    return {"mean": float(mean), "std": std, "ci95_low": _or_none(mean - half), "ci95_high": _or_none(mean + half)}


@dataclass
class Fig5Result:
    scenario: str
    seeds: list[int]
    episodes: int
    test_workloads: int
    """The greedy policy was scored on the first N test workloads."""
    runs: list[LearningRun]
    """One per variant and seed: FIG5_VARIANTS in order, each with the seeds ascending."""
    filters: FilterRemoval
    """What each filter removes of random exploratory instance choices."""
    jobs: int
    """Runs trained at once."""

    @property
    def checkpoints(self) -> list[int]:
        return self.runs[0].checkpoints

    @property
    def episodes_per_second(self) -> float:
        """Training speed of one run, mean over the runs."""
        return float(np.mean([r.episodes_per_second for r in self.runs]))

    def curves(self, variant: str, name: str) -> np.ndarray:
        """(seeds, checkpoints) of `test_reward` or `test_acceptance`; (seeds, episodes) of `training_rewards`."""
        return np.array([getattr(r, name) for r in self.runs if r.variant == variant])

    def final(self, variant: str, name: str = "test_reward") -> dict[str, float | None]:
        """Over the seeds, each seed's value at the last checkpoint (after the last episode)."""
        return _over_seeds(self.curves(variant, name)[:, -1])

    def final_training(self, variant: str, tail: float = 0.1) -> dict[str, float | None]:
        """Over the seeds, each seed's mean training reward over its last `tail` of episodes."""
        rewards = self.curves(variant, "training_rewards")
        k = max(int(rewards.shape[1] * tail), 1)
        return _over_seeds(rewards[:, -k:].mean(axis=1))

    def order(self) -> list[str]:
        """The variants by their mean final test reward, highest first."""
        return sorted(FIG5_VARIANTS, key=lambda v: -float(self.curves(v, "test_reward")[:, -1].mean()))

    @property
    def paper_order_holds(self) -> bool:
        return tuple(self.order()) == PAPER_ORDER

    @property
    def paper_order_beyond_ci95(self) -> bool:
        """The paper's order holds with each variant's 95% interval above the next one's."""
        finals = [self.final(v) for v in PAPER_ORDER]
        return all(a["ci95_low"] is not None and b["ci95_high"] is not None and a["ci95_low"] > b["ci95_high"]
                   for a, b in zip(finals, finals[1:]))

    def markdown(self) -> str:
        every = self.checkpoints[0] if self.checkpoints else self.episodes
        seeds = f"{len(self.seeds)} seed{'s' if len(self.seeds) != 1 else ''}"
        lines = [f"Fig. 5 on {self.scenario}: {seeds} x {self.episodes} training episodes per filter variant; "
                 f"every {every} episodes the greedy policy (no exploration) is scored on the first {self.test_workloads} "
                 "test workloads.", "",
                 "| filters | test reward at the end | std over seeds | 95% interval | working-hours acceptance (test) | "
                 "training reward (last 10% of episodes) |", "|---|---|---|---|---|---|"]
        for variant in FIG5_VARIANTS:
            reward, accept, training = self.final(variant), self.final(variant, "test_acceptance"), self.final_training(variant)
            lines.append(f"| {variant} | {reward['mean']:.3f} | {_fmt(reward['std'])} | {_interval(reward)} | "
                         f"{accept['mean']:.3f} {_interval(accept)} | {training['mean']:.3f} |")
        holds = "holds" if self.paper_order_holds else "does not hold"
        if not self.paper_order_holds:
            apart = ""
        elif len(self.seeds) < 2:
            apart = " (one seed: no interval to tell it from chance)"
        else:
            apart = " and the 95% intervals are apart" if self.paper_order_beyond_ci95 else " but the 95% intervals overlap"
        f = self.filters
        lines += ["", "Test reward: eq. 20 summed over a day's steps, mean over the test workloads; intervals: Student's t "
                  "over the seeds.",
                  f"By the mean test reward: {' > '.join(self.order())}; "
                  f"the paper's order ({' > '.join(PAPER_ORDER)}) {holds}{apart}.",
                  "", f"Of random exploratory instance choices ({f.placements} unfiltered random placements, {f.choices} "
                  f"instance choices), the static filter removes {f.static:.1%} and the dynamic filter {f.dynamic:.1%} "
                  f"({f.dynamic_not_static:.1%} beyond the static filter's).",
                  "", f"Training: {self.episodes_per_second:.2f} episodes/s per run (mean over {len(self.runs)} runs, "
                  f"{self.jobs} at once)."]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "episodes": self.episodes, "seeds": self.seeds,
                "test_workloads": self.test_workloads, "checkpoints": self.checkpoints,
                "episodes_per_second": self.episodes_per_second, "jobs": self.jobs,
                "final_test_reward": {v: self.final(v) for v in FIG5_VARIANTS},
                "final_test_acceptance": {v: self.final(v, "test_acceptance") for v in FIG5_VARIANTS},
                "final_training_reward": {v: self.final_training(v) for v in FIG5_VARIANTS},
                "order": self.order(), "paper_order_holds": self.paper_order_holds,
                "paper_order_beyond_ci95": self.paper_order_beyond_ci95,
                "filter_removal": self.filters.to_dict()}


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _interval(summary: Mapping[str, float | None]) -> str:
    return f"[{_fmt(summary['ci95_low'])}, {_fmt(summary['ci95_high'])}]"


FIG5_CSV_COLUMNS = ["variant", "seed", "episodes_trained", "test_reward", "test_acceptance_working_hours"]
FIG5_TRAINING_CSV_COLUMNS = ["variant", "seed", "episode", "training_reward"]


def fig5(dataset: Dataset, episodes: int, seeds: list[int], out: Path, progress: bool = True,
         settings: Fig5Settings = FIG5) -> Fig5Result:
    """Train every variant with every seed, measure each run as it learns (controller/learning_curve.py)
    and what the filters remove (controller/filter_stats.py); write fig5.csv (the test measurements),
    fig5_training.csv, fig5.png and fig5.md into `out`. `episodes` and `seeds` as given, the rest from `settings`."""
    from controller.rl.agent import TrainConfig

    runs = _learning_runs(dataset, episodes, seeds, settings, progress)
    filters = filter_removal(capacities(dataset.substrate), TrainConfig().allowed_kinds(), settings.filter_placements,
                             settings.filter_seed)
    scored = min(settings.test_workloads, len(dataset.split("test")))
    result = Fig5Result(dataset.manifest.scenario, seeds, episodes, scored, runs, filters, settings.jobs)
    with open(out / "fig5.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FIG5_CSV_COLUMNS)
        for run in runs:
            writer.writerows([run.variant, run.seed, episode, f"{reward:.6f}", f"{accept:.6f}"]
                             for episode, reward, accept in zip(run.checkpoints, run.test_reward, run.test_acceptance))
    with open(out / "fig5_training.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FIG5_TRAINING_CSV_COLUMNS)
        for run in runs:
            writer.writerows([run.variant, run.seed, i + 1, f"{r:.6f}"] for i, r in enumerate(run.training_rewards))
    _plot_fig5(result, out / "fig5.png")
    (out / "fig5.md").write_text(result.markdown())
    return result


def _learning_runs(dataset: Dataset, episodes: int, seeds: list[int], settings: Fig5Settings,
                   progress: bool) -> list[LearningRun]:
    """Every variant with every seed, `settings.jobs` at once in processes of their own (spawned: a forked
    torch can hang); one run's progress bar when they run one by one, a bar of runs otherwise."""
    from controller.learning_curve import learning_run

    every = max(episodes // settings.checkpoints, 1)
    tasks = [(dataset, variant, seed, episodes, every, settings.test_workloads)
             for variant in FIG5_VARIANTS for seed in seeds]
    if settings.jobs == 1:
        return [learning_run(*task, progress=progress) for task in tasks]
    with ProcessPoolExecutor(min(settings.jobs, len(tasks)), mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(learning_run, *task) for task in tasks]
        for _ in progress_of(as_completed(futures), total=len(futures), desc="fig5 training runs", unit="run",
                             show=progress):
            pass
        return [f.result() for f in futures]


def _plot_fig5(result: Fig5Result, path: Path) -> None:
    fig = _figure(8.0, 10.0)
    axes = fig.subplots(3, 1, sharex=True)
    x = np.array(result.checkpoints)
    window = max(result.episodes // 50, 1)
    for variant in FIG5_VARIANTS:
        for ax, name in zip(axes[:2], ("test_reward", "test_acceptance")):
            mean, half = mean_ci95(result.curves(variant, name))
            (line,) = ax.plot(x, mean, marker="o", markersize=3, label=variant)
            ax.fill_between(x, mean - half, mean + half, color=line.get_color(), alpha=0.2, linewidth=0)
        kernel = np.ones(window) / window
        smooth = np.array([np.convolve(run, kernel, mode="valid") for run in result.curves(variant, "training_rewards")])
        mean, half = mean_ci95(smooth)
        xs = np.arange(smooth.shape[1]) + window
        (line,) = axes[2].plot(xs, mean, label=variant)
        axes[2].fill_between(xs, mean - half, mean + half, color=line.get_color(), alpha=0.2, linewidth=0)
    axes[0].set_title(f"(a) greedy policy on the first {result.test_workloads} test workloads")
    axes[0].set_ylabel("reward per day\n(eq. 20 summed over its steps)")
    axes[1].set_title("(b) its working-hours acceptance on those workloads")
    axes[1].set_ylabel("acceptance ratio\n(accepted / requests)")
    axes[1].set_ylim(0, 1.02)
    axes[2].set_title("(c) training reward (exploring, epsilon-greedy)")
    axes[2].set_ylabel("reward per day\n" + (f"(moving mean of {window} episodes)" if window > 1 else "(each episode)"))
    axes[2].set_xlabel("training episodes (one episode: one training workload's day)")
    axes[2].xaxis.get_major_locator().set_params(integer=True)
    fig.suptitle(f"Fig. 5: SR-EM learning with each filter variant, {result.scenario}\n"
                 f"lines: mean over {len(result.seeds)} seeds; bands: 95% interval over the seeds")
    _legend_below(fig, axes[0], len(FIG5_VARIANTS))
    _save(fig, path)


FIG6_CSV_COLUMNS = ["policy", "spec", "hour", "acceptance_ratio", "acceptance_ratio_ci95", "cost_it_per_workload",
                    "cost_bw_per_workload", "cost_reconf_per_workload", "cost_total_per_workload",
                    "cost_total_per_workload_ci95", "share_server", "share_lm", "share_em"]
"""`*_ci95`: half-width of the 95% interval over the workloads (empty with one workload)."""
COST_PARTS = ("it", "bandwidth", "reconfiguration")
COST_PART_STYLE = {"it": ("IT", "tab:gray"), "bandwidth": ("bandwidth", "tab:olive"),
                   "reconfiguration": ("reconfiguration", "tab:cyan")}
"""Label and colour of each part; colours the methods' bars (tab10's first seven) do not use."""


@dataclass
class MethodDays:
    """A method over the test workloads: the per-hour report, and each workload's values that the
    report averages away and the 95% intervals need."""

    report: EvaluationReport
    acceptance: np.ndarray
    """(workloads, steps): each workload's acceptance ratio at each step."""
    costs: np.ndarray
    """(workloads, steps, 3): eq. 1's weighted parts (COST_PARTS); they sum to eq. 1's total."""

    def acceptance_ci95(self) -> np.ndarray:
        return mean_ci95(self.acceptance)[1]

    def cost_total_ci95(self) -> np.ndarray:
        return mean_ci95(self.costs.sum(axis=2))[1]

    def cost_split(self, steps: np.ndarray) -> dict[str, float]:
        """Mean over the workloads of each part summed over `steps` (a bool mask over the steps)."""
        parts = self.costs[:, steps, :].sum(axis=1).mean(axis=0)
        return {part: float(v) for part, v in zip(COST_PARTS, parts)}


def _evaluate_days(dataset: Dataset, method: Method, limit: int | None, progress: bool) -> MethodDays:
    """`evaluate_policy` over the test split, keeping each workload's acceptance and cost parts per step."""
    weights = dataset.objective_weights
    acceptance: list[list[float]] = []
    costs: list[list[list[float]]] = []

    def keep(results: list[StepResult]) -> None:
        acceptance.append([r.acceptance_ratio for r in results])
        costs.append([[weights.it * r.cost.it, weights.bandwidth * r.cost.bandwidth,
                       weights.reconfiguration * r.cost.reconfiguration] for r in results])

    report = evaluate_policy(dataset, method.policy, "test", limit, progress, spec=method.spec, on_day=keep)
    return MethodDays(report, np.array(acceptance, dtype=float), np.array(costs, dtype=float))


@dataclass
class Fig6Result:
    scenario: str
    hours: list[int]
    working: list[bool]
    """Per step: is it in working hours."""
    methods: dict[str, MethodDays]
    """label -> its evaluation over the test workloads."""
    left_out: dict[str, str]
    """label -> why it was left out."""

    @property
    def reports(self) -> dict[str, EvaluationReport]:
        return {label: days.report for label, days in self.methods.items()}

    def cost_split(self, label: str) -> dict[str, dict[str, float]]:
        working = np.array(self.working)
        days = self.methods[label]
        return {"working_hours": days.cost_split(working), "evening": days.cost_split(~working)}

    def markdown(self) -> str:
        names = list(self.methods)
        workloads = next(iter(self.methods.values())).report.workloads if names else 0
        head = ["| hour | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]

        def table(values: Callable[[str], Sequence[float]], half: Callable[[str], np.ndarray]) -> list[str]:
            rows = []
            for i, hour in enumerate(self.hours):
                cells = [f"{values(n)[i]:.3f}" + ("" if np.isnan(half(n)[i]) else f" ± {half(n)[i]:.3f}") for n in names]
                rows.append(f"| {hour}:00 | " + " | ".join(cells) + " |")
            return rows

        lines = [f"Acceptance ratio per hour (± half-width of the 95% interval over the {workloads} test workloads)", "",
                 *head, *table(lambda n: [h.acceptance_ratio for h in self.methods[n].report.per_hour],
                               lambda n: self.methods[n].acceptance_ci95())]
        lines += ["", "Total cost per workload per hour (eq. 1, price units; mean over the workloads ± 95% interval)", "",
                  *head, *table(lambda n: [h.cost_total for h in self.methods[n].report.per_hour],
                                lambda n: self.methods[n].cost_total_ci95())]
        lines += ["", "Cost per workload by part of the day (eq. 1's parts summed over the steps, mean over the workloads)", "",
                  "| method | working: IT | working: bandwidth | working: reconfiguration | evening: IT | evening: bandwidth | "
                  "evening: reconfiguration |", "|---|---|---|---|---|---|---|"]
        for name in names:
            split = self.cost_split(name)
            lines.append(f"| {name} | " + " | ".join(f"{split[period][part]:.3f}" for period in ("working_hours", "evening")
                                                       for part in COST_PARTS) + " |")
        if names:
            main = names[0]
            lines += ["", f"Where {main} places instances (servers / LM / EM)", "", "| hour | servers | LM | EM |",
                      "|---|---|---|---|"]
            for h in self.methods[main].report.per_hour:
                lines.append(f"| {h.hour}:00 | {h.share_server:.2f} | {h.share_lm:.2f} | {h.share_em:.2f} |")
        return "\n".join(lines + _left_out_markdown(self.left_out)) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "policies": {label: r.to_dict() for label, r in self.reports.items()},
                "intervals": {label: {"acceptance_ratio_ci95": [_or_none(v) for v in days.acceptance_ci95()],
                                      "cost_total_per_workload_ci95": [_or_none(v) for v in days.cost_total_ci95()]}
                              for label, days in self.methods.items()},
                "cost_split": {label: self.cost_split(label) for label in self.methods},
                "left_out": self.left_out}


def fig6(dataset: Dataset, methods: Methods, out: Path, limit: int | None = None, progress: bool = True) -> Fig6Result:
    """Writes fig6.csv, fig6a/b/c.png and fig6.md into `out`; fig6c shows the first method's placements."""
    days = {m.label: _evaluate_days(dataset, m, limit, progress) for m in methods.bound}
    result = Fig6Result(dataset.manifest.scenario, dataset.hours, [dataset.is_working_hour(h) for h in dataset.hours],
                        days, methods.left_out)
    with open(out / "fig6.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(FIG6_CSV_COLUMNS)
        for label, method in days.items():
            accept_ci, cost_ci = method.acceptance_ci95(), method.cost_total_ci95()
            for i, h in enumerate(method.report.per_hour):
                writer.writerow([label, method.report.spec, h.hour, f"{h.acceptance_ratio:.4f}", _csv_float(accept_ci[i]),
                                 f"{h.cost_it:.4f}", f"{h.cost_bw:.4f}", f"{h.cost_reconf:.4f}", f"{h.cost_total:.4f}",
                                 _csv_float(cost_ci[i]), f"{h.share_server:.4f}", f"{h.share_lm:.4f}", f"{h.share_em:.4f}"])
    if days:
        _plot_fig6(result, dataset, out)
    (out / "fig6.md").write_text(result.markdown())
    return result


def _csv_float(value: float) -> str:
    return "" if np.isnan(value) else f"{value:.4f}"


def _hours_axis(ax: Axes, dataset: Dataset) -> None:
    hours = dataset.hours
    step = hours[1] - hours[0] if len(hours) > 1 else 1
    ax.set_xticks(np.arange(len(hours)), [f"{h}:00" for h in hours])
    ax.set_xlabel(f"hour of day (start of each {step}-hour step; working hours until {dataset.manifest.working_until_hour}:00)")


def _grouped_bars(ax: Axes, result: Fig6Result, values: Callable[[MethodDays], Sequence[float]],
                  half: Callable[[MethodDays], np.ndarray]) -> None:
    """One bar per method at every hour, with its 95% interval as an error bar."""
    n = len(result.methods)
    width = 0.8 / n
    x = np.arange(len(result.hours))
    for i, (label, days) in enumerate(result.methods.items()):
        ax.bar(x + (i - (n - 1) / 2) * width, values(days), width, yerr=half(days), capsize=1.5, label=label,
               error_kw={"elinewidth": 0.8})


def _plot_fig6(result: Fig6Result, dataset: Dataset, out: Path) -> None:
    scenario = result.scenario
    workloads = next(iter(result.methods.values())).report.workloads
    columns = min(len(result.methods), 4)

    fig = _figure(9.0, 5.0)
    ax = fig.subplots()
    _grouped_bars(ax, result, lambda d: [h.acceptance_ratio for h in d.report.per_hour], lambda d: d.acceptance_ci95())
    _hours_axis(ax, dataset)
    ax.set_ylabel("acceptance ratio (accepted / requests)")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Fig. 6a: acceptance per hour, {scenario} test set ({workloads} workloads; error bars: 95% interval)")
    _legend_below(fig, ax, columns)
    _save(fig, out / "fig6a.png")

    fig = _figure(10.0, 9.0)
    grid = fig.add_gridspec(2, 2)
    top = fig.add_subplot(grid[0, :])
    _grouped_bars(top, result, lambda d: [h.cost_total for h in d.report.per_hour], lambda d: d.cost_total_ci95())
    _hours_axis(top, dataset)
    top.set_yscale("log")
    top.set_ylabel("cost per workload per step\n(eq. 1, price units; log scale)")
    top.set_title(f"Fig. 6b: total cost per hour, {scenario} test set ({workloads} workloads; error bars: 95% interval)")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    labels = list(result.methods)
    working = np.array(result.working)
    for column, (period, title) in enumerate((("working_hours", "working hours"), ("evening", "evening"))):
        ax = fig.add_subplot(grid[1, column])
        steps = [f"{h}:00" for h, w in zip(result.hours, working) if w == (period == "working_hours")]
        bottom = np.zeros(len(labels))
        for part in COST_PARTS:
            values = np.array([result.cost_split(label)[period][part] for label in labels])
            name, colour = COST_PART_STYLE[part]
            ax.bar(np.arange(len(labels)), values, 0.6, bottom=bottom, label=name, color=colour)
            bottom += values
        ax.set_xticks(np.arange(len(labels)), labels, rotation=35, ha="right")
        ax.set_xlabel("method")
        ax.set_ylabel(f"cost per workload, {title}\n(price units, summed over {len(steps)} steps)")
        ax.set_title(f"cost split, {title} ({', '.join(steps)})")
    _legend_below(fig, ax, len(COST_PARTS))
    _save(fig, out / "fig6b.png")

    main_label = labels[0]
    fig = _figure(8.0, 4.5)
    ax = fig.subplots()
    bottom = np.zeros(len(result.hours))
    for kind in HostKind:
        values = np.array([getattr(h, f"share_{kind.name.lower()}") for h in result.methods[main_label].report.per_hour])
        ax.bar(np.arange(len(result.hours)), values, 0.6, bottom=bottom,
               label={HostKind.SERVER: "servers", HostKind.LM: "switch LM", HostKind.EM: "switch EM"}[kind])
        bottom += values
    _hours_axis(ax, dataset)
    ax.set_ylabel("share of the instances\n(mean over the workloads)")
    ax.set_ylim(0, 1.0)
    ax.set_title(f"Fig. 6c: where {main_label} places instances, {scenario} test set")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    _save(fig, out / "fig6c.png")


@dataclass(frozen=True)
class GapRow:
    label: str
    spec: str
    requests_total: int
    accepted_total: int
    acceptance_ratio: float
    working_hours_acceptance: float
    """acceptance_ratio over the working-hours steps alone."""
    acceptance_gap: float
    """acceptance_ratio minus the per-step optimum's (-0.136: 13.6 percentage points below it)."""
    cost_per_workload_day: float
    """Mean over the workloads of a day's total cost (eq. 1 summed over the steps)."""
    cost_gap_relative: float
    """cost_per_workload_day over the per-step optimum's, minus 1 (+0.225: 22.5% dearer)."""
    day_acceptance_gap: float
    """acceptance_ratio minus the day-long optimum's (the best day it found, judged by the evaluator)."""
    day_ceiling_gap: float
    """acceptance_ratio minus the day-long optimum's ceiling (its proven bound on accepted requests over all requests)."""
    day_cost_gap_relative: float
    """cost_per_workload_day over the day-long optimum's, minus 1."""


@dataclass(frozen=True)
class DayOptimumRow:
    """The day-long optimum of one workload (gap-day.csv)."""

    workload: int
    status: str
    accepted: int
    accepted_bound: float
    mip_gap: float
    """Relative gap of the acceptance phase: (bound - the program's accepted) / bound."""
    cost: float
    start: str
    """The method whose day it started from (the most accepted on this workload, then the cheapest)."""
    start_accepted: int
    seconds: float


@dataclass
class GapResult:
    scenario: str
    workloads: int
    time_limit_s: float
    steps: int
    steps_optimal: int
    """Steps the per-step solver proved optimal within the time limit."""
    day_time_limit_s: float
    day_workloads_optimal: int
    """Workloads whose day-long optimum was proven within its time limit."""
    day_acceptance_ceiling: float
    """The day-long optimum's proven bounds summed, over all requests: no method can accept more (on the
    program's model, exact_day.py)."""
    day_mip_gap_mean: float
    """Mean over the workloads of the day-long optimum's acceptance MIP gap."""
    rows: list[GapRow]
    """Every method, then the per-step optimum and the day-long optimum."""
    days: list[DayOptimumRow]
    left_out: dict[str, str]

    def markdown(self) -> str:
        lines = [f"Gap to the exact optima on {self.scenario} ({self.workloads} test workloads). Per step: "
                 f"{self.steps_optimal} of {self.steps} steps proven optimal within {self.time_limit_s:g} s. Day-long "
                 f"(an oracle with the whole day, started from each workload's best method): {self.day_workloads_optimal} "
                 f"of {self.workloads} days proven within {self.day_time_limit_s:g} s, acceptance ceiling "
                 f"{self.day_acceptance_ceiling:.3f}, mean MIP gap {self.day_mip_gap_mean:.2%}", "",
                 "| method | acceptance | working hours | gap to per-step optimum | gap to day optimum | gap to day ceiling "
                 "| cost per workload-day | cost vs per-step optimum | cost vs day optimum |", "|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r.label} | {r.acceptance_ratio:.3f} | {r.working_hours_acceptance:.3f} | {r.acceptance_gap:+.3f} | "
                  f"{r.day_acceptance_gap:+.3f} | {r.day_ceiling_gap:+.3f} | {r.cost_per_workload_day:.3f} | "
                  f"{r.cost_gap_relative:+.1%} | {r.day_cost_gap_relative:+.1%} |" for r in self.rows]
        return "\n".join(lines + _left_out_markdown(self.left_out)) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "workloads": self.workloads, "time_limit_s": self.time_limit_s,
                "steps": self.steps, "steps_optimal": self.steps_optimal, "day_time_limit_s": self.day_time_limit_s,
                "day_workloads_optimal": self.day_workloads_optimal, "day_acceptance_ceiling": self.day_acceptance_ceiling,
                "day_mip_gap_mean": self.day_mip_gap_mean,
                "methods": {r.label: {k: v for k, v in asdict(r).items() if k != "label"} for r in self.rows},
                "days": [asdict(d) for d in self.days], "left_out": self.left_out}


@dataclass(frozen=True)
class _Day:
    """One method's day on one workload, as the evaluator judged it."""

    placements: tuple[Placement, ...]
    accepted: int
    cost: float


def _evaluate_keeping_days(dataset: Dataset, methods: Sequence[Method], limit: int | None,
                           progress: bool) -> tuple[dict[str, EvaluationReport], dict[str, list[_Day]]]:
    """`evaluate_policy` for every method, keeping each workload's day (the day-long optimum starts from the best)."""
    reports, days = {}, {}
    for m in methods:
        kept: list[_Day] = days.setdefault(m.label, [])

        def keep(results: list[StepResult], kept: list[_Day] = kept) -> None:
            kept.append(_Day(tuple(r.placement for r in results), sum(r.accepted for r in results),
                             sum(r.cost.total for r in results)))

        reports[m.label] = evaluate_policy(dataset, m.policy, "test", limit, progress, spec=m.spec, on_day=keep)
    return reports, days


def _day_optima(dataset: Dataset, days: Mapping[str, list[_Day]], time_limit_s: float, limit: int | None,
                progress: bool) -> tuple[list[DaySolution], list[str]]:
    """The day-long optimum of every test workload, each started from the best method's day on it; and those methods."""
    from controller.exact_day import solve_day

    evaluator = StepEvaluator(dataset.substrate, dataset.objective_weights)
    solutions, starts = [], []
    workloads = dataset.split("test", limit)
    for i, workload in enumerate(progress_of(workloads, desc="day-long optimum", unit="workload", show=progress)):
        label = max(days, key=lambda m: (days[m][i].accepted, -days[m][i].cost))
        solutions.append(solve_day(evaluator, workload, time_limit_s, days[label][i].placements))
        starts.append(label)
    return solutions, starts


def optimality_gap(dataset: Dataset, methods: Methods, time_limit_s: float, limit: int | None, out: Path,
                   progress: bool = True, day_time_limit_s: float = GAP.day_time_limit_s) -> GapResult:
    """Each method's acceptance and cost against the per-step optimum (`ilp`) and the day-long optimum
    (controller/exact_day.py) over the test split; writes gap.csv, gap-day.csv and gap.md."""
    spec = f"ilp:{time_limit_s:g}"
    ilp = make_policy(spec)
    reports, days = _evaluate_keeping_days(dataset, [*methods.bound, Method(OPTIMUM, spec, ilp)], limit, progress)
    statuses = [s.status for s in ilp.solutions]  # type: ignore[attr-defined]
    solutions, starts = _day_optima(dataset, days, day_time_limit_s, limit, progress)
    working = [t for t, hour in enumerate(dataset.hours) if dataset.is_working_hour(hour)]

    def totals(report: EvaluationReport) -> tuple[int, int, float, float]:
        work = [h for h in report.per_hour if h.working_hours]
        return (sum(h.requests for h in report.per_hour), sum(h.accepted for h in report.per_hour),
                sum(h.cost_total for h in report.per_hour), sum(h.accepted for h in work) / max(sum(h.requests for h in work), 1))

    day_requests = sum(len(r.requests) for s in solutions for r in s.results)
    day_work = sum(len(s.results[t].requests) for s in solutions for t in working)
    day_totals = (day_requests, sum(s.accepted for s in solutions), float(np.mean([s.cost for s in solutions])),
                  sum(s.accepted_at(working) for s in solutions) / max(day_work, 1))
    every = {label: totals(report) for label, report in reports.items()} | {DAY_OPTIMUM: day_totals}
    specs = {label: report.spec for label, report in reports.items()} | {DAY_OPTIMUM: f"{DAY_OPTIMUM}:{day_time_limit_s:g}"}
    step_requests, step_accepted, step_cost, _ = every[OPTIMUM]
    step_acceptance = step_accepted / max(step_requests, 1)
    day_acceptance = day_totals[1] / max(day_requests, 1)
    ceiling = sum(s.accepted_bound for s in solutions) / max(day_requests, 1)
    rows = []
    for label, (requests, accepted, cost, work) in every.items():
        acceptance = accepted / max(requests, 1)
        rows.append(GapRow(label, specs[label], requests, accepted, acceptance, work, acceptance - step_acceptance, cost,
                           cost / step_cost - 1 if step_cost else 0.0, acceptance - day_acceptance, acceptance - ceiling,
                           cost / day_totals[2] - 1 if day_totals[2] else 0.0))
    day_rows = [DayOptimumRow(w.id, s.status, s.accepted, s.accepted_bound, s.accepted_gap, s.cost, start, s.start_accepted,
                              s.seconds) for w, s, start in zip(dataset.split("test", limit), solutions, starts)]
    result = GapResult(dataset.manifest.scenario, reports[OPTIMUM].workloads, time_limit_s, len(statuses),
                       statuses.count("optimal"), day_time_limit_s, sum(s.status == "optimal" for s in solutions), ceiling,
                       float(np.mean([s.accepted_gap for s in solutions])), rows, day_rows, methods.left_out)
    with open(out / "gap.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["policy", "spec", "requests_total", "accepted_total", "acceptance_ratio", "working_hours_acceptance",
                         "acceptance_gap", "cost_per_workload_day", "cost_gap_relative", "day_acceptance_gap",
                         "day_ceiling_gap", "day_cost_gap_relative"])
        writer.writerows([r.label, r.spec, r.requests_total, r.accepted_total, f"{r.acceptance_ratio:.4f}",
                          f"{r.working_hours_acceptance:.4f}", f"{r.acceptance_gap:.4f}", f"{r.cost_per_workload_day:.4f}",
                          f"{r.cost_gap_relative:.4f}", f"{r.day_acceptance_gap:.4f}", f"{r.day_ceiling_gap:.4f}",
                          f"{r.day_cost_gap_relative:.4f}"] for r in rows)
    with open(out / "gap-day.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["workload", "status", "accepted", "accepted_bound", "mip_gap", "cost", "start", "start_accepted",
                         "seconds"])
        writer.writerows([d.workload, d.status, d.accepted, f"{d.accepted_bound:g}", f"{d.mip_gap:.4f}", f"{d.cost:.4f}",
                          d.start, d.start_accepted, f"{d.seconds:.1f}"] for d in day_rows)
    (out / "gap.md").write_text(result.markdown())
    return result
