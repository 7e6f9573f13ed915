"""The paper's experiments: Fig. 5 (training reward per filter variant) and Fig. 6 (acceptance, cost and placement per hour).

Each writes CSV, PNG plots (matplotlib) and a markdown table into an output directory.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from controller.evaluation import EvaluationReport, evaluate_policy  # noqa: E402
from controller.model.dataset import Dataset  # noqa: E402
from controller.policies import make_policy  # noqa: E402
from controller.rl.training import TrainConfig, train  # noqa: E402

FIG5_VARIANTS = ("static", "dynamic", "hybrid")


@dataclass
class Fig5Result:
    rewards: dict[str, np.ndarray]
    """variant -> (seeds, episodes) rewards."""
    episodes_per_second: float

    def final(self, variant: str, tail: float = 0.1) -> tuple[float, float]:
        """Mean and spread (std over seeds) of each seed's mean reward over its last `tail` of episodes."""
        r = self.rewards[variant]
        k = max(int(r.shape[1] * tail), 1)
        per_seed = r[:, -k:].mean(axis=1)
        return float(per_seed.mean()), float(per_seed.std())


def fig5(dataset: Dataset, episodes: int, seeds: list[int], out: Path, progress: bool = True) -> Fig5Result:
    out.mkdir(parents=True, exist_ok=True)
    rewards: dict[str, np.ndarray] = {}
    speeds = []
    for variant in FIG5_VARIANTS:
        runs = []
        for seed in seeds:
            _, run = train(dataset, TrainConfig(variant=variant, episodes=episodes, seed=seed), progress=progress)
            runs.append(run.rewards)
            speeds.append(run.episodes_per_second)
        rewards[variant] = np.array(runs)
    result = Fig5Result(rewards, float(np.mean(speeds)))
    with open(out / "fig5.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["variant", "seed", "episode", "reward"])
        for variant, runs in rewards.items():
            for seed, run in zip(seeds, runs):
                writer.writerows([variant, seed, i, f"{r:.6f}"] for i, r in enumerate(run))
    window = max(episodes // 50, 1)
    fig, ax = plt.subplots(figsize=(7, 4))
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
    fig.tight_layout()
    fig.savefig(out / "fig5.png", dpi=120)
    plt.close(fig)
    lines = ["| filters | final reward (mean of last 10% of episodes) | spread over seeds (std) |", "|---|---|---|"]
    for variant in FIG5_VARIANTS:
        mean, std = result.final(variant)
        lines.append(f"| {variant} | {mean:.3f} | {std:.3f} |")
    (out / "fig5.md").write_text("\n".join(lines) + "\n")
    return result


def fig6(dataset: Dataset, policies: dict[str, str], out: Path, limit: int | None = None, progress: bool = True) -> dict[str, EvaluationReport]:
    """`policies`: label -> policy spec. Writes fig6.csv, fig6a/b/c.png and fig6.md."""
    out.mkdir(parents=True, exist_ok=True)
    reports = {label: evaluate_policy(dataset, make_policy(spec), "test", limit, progress) for label, spec in policies.items()}
    hours = dataset.hours
    with open(out / "fig6.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["policy", "hour", "acceptance_ratio", "cost_it", "cost_bw", "cost_reconf", "cost_total",
                         "share_server", "share_lm", "share_em"])
        for label, report in reports.items():
            for h in report.per_hour:
                writer.writerow([label, h.hour, f"{h.acceptance_ratio:.4f}", f"{h.cost_it:.4f}", f"{h.cost_bw:.4f}",
                                 f"{h.cost_reconf:.4f}", f"{h.cost_total:.4f}", f"{h.share_server:.4f}",
                                 f"{h.share_lm:.4f}", f"{h.share_em:.4f}"])
    labels = [f"{h}:00" for h in hours]
    width = 0.8 / len(reports)
    for name, field, ylabel in (("fig6a", "acceptance_ratio", "acceptance ratio"), ("fig6b", "cost_total", "total cost per workload")):
        fig, ax = plt.subplots(figsize=(8, 4))
        for i, (label, report) in enumerate(reports.items()):
            values = [getattr(h, field) for h in report.per_hour]
            ax.bar(np.arange(len(hours)) + i * width, values, width, label=label)
        ax.set_xticks(np.arange(len(hours)) + 0.4 - width / 2, labels)
        ax.set_ylabel(ylabel)
        if field == "cost_total":
            ax.set_yscale("log")
        ax.set_title(f"Fig. {name[3:]}: {ylabel} per hour, {dataset.manifest.scenario} test set")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=120)
        plt.close(fig)
    main_label = next(iter(reports))
    main = reports[main_label]
    fig, ax = plt.subplots(figsize=(7, 4))
    bottom = np.zeros(len(hours))
    for kind in ("server", "lm", "em"):
        values = np.array([getattr(h, f"share_{kind}") for h in main.per_hour])
        ax.bar(labels, values, bottom=bottom, label={"server": "servers", "lm": "LM", "em": "EM"}[kind])
        bottom += values
    ax.set_ylabel("share of instance placements")
    ax.set_title(f"Fig. 6c: where {main_label} places instances")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "fig6c.png", dpi=120)
    plt.close(fig)
    (out / "fig6.md").write_text(comparison_markdown(reports, hours))
    return reports


def comparison_markdown(reports: dict[str, EvaluationReport], hours: list[int]) -> str:
    names = list(reports)
    lines = ["Acceptance ratio per hour", "", "| hour | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for i, hour in enumerate(hours):
        lines.append(f"| {hour}:00 | " + " | ".join(f"{reports[n].per_hour[i].acceptance_ratio:.3f}" for n in names) + " |")
    lines += ["", "Total cost per workload per hour (eq. 1)", "", "| hour | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for i, hour in enumerate(hours):
        lines.append(f"| {hour}:00 | " + " | ".join(f"{reports[n].per_hour[i].cost_total:.3f}" for n in names) + " |")
    main = names[0]
    lines += ["", f"Where {main} places instances (servers / LM / EM)", "", "| hour | servers | LM | EM |", "|---|---|---|---|"]
    for h in reports[main].per_hour:
        lines.append(f"| {h.hour}:00 | {h.share_server:.2f} | {h.share_lm:.2f} | {h.share_em:.2f} |")
    return "\n".join(lines) + "\n"


def optimality_gap(dataset: Dataset, policies: dict[str, str], time_limit_s: float, limit: int | None, out: Path,
                   progress: bool = True) -> str:
    """Each method's acceptance and cost against the exact optimum (`ilp`) over a split; writes gap.md and gap.csv."""
    out.mkdir(parents=True, exist_ok=True)
    reports = {label: evaluate_policy(dataset, make_policy(spec), "test", limit, progress) for label, spec in policies.items()}
    ilp = make_policy(f"ilp:{time_limit_s}")
    reports["optimum (ilp)"] = evaluate_policy(dataset, ilp, "test", limit, progress)
    statuses = [s.status for s in ilp.solutions]  # type: ignore[attr-defined]
    best = reports["optimum (ilp)"]

    def totals(report: EvaluationReport) -> tuple[float, float]:
        accepted = sum(h.accepted for h in report.per_hour) / max(sum(h.requests for h in report.per_hour), 1)
        return accepted, sum(h.cost_total for h in report.per_hour)

    best_acc, best_cost = totals(best)
    lines = [f"Gap to the exact optimum on {dataset.manifest.scenario} ({best.workloads} test workloads; "
             f"{statuses.count('optimal')} of {len(statuses)} steps proven optimal within {time_limit_s:g} s)", "",
             "| method | acceptance | gap (points) | cost per workload-day | gap (relative) |", "|---|---|---|---|---|"]
    rows = []
    for label, report in reports.items():
        acc, cost = totals(report)
        rows.append((label, acc, acc - best_acc, cost, (cost - best_cost) / best_cost if best_cost else 0.0))
        lines.append(f"| {label} | {acc:.3f} | {acc - best_acc:+.3f} | {cost:.3f} | {rows[-1][4]:+.1%} |")
    with open(out / "gap.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["policy", "acceptance_ratio", "acceptance_gap", "cost", "cost_gap_relative"])
        writer.writerows([r[0], f"{r[1]:.4f}", f"{r[2]:.4f}", f"{r[3]:.4f}", f"{r[4]:.4f}"] for r in rows)
    text = "\n".join(lines) + "\n"
    (out / "gap.md").write_text(text)
    return text
