"""Formats evaluation reports: the per-hour text table, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from controller.evaluation import EvaluationReport

CSV_COLUMNS = [
    "hour", "working_hours", "requests", "accepted", "acceptance_ratio",
    "cost_it", "cost_bw", "cost_reconf", "cost_total", "share_server", "share_lm", "share_em",
]


def per_hour_table(report: EvaluationReport) -> str:
    head = f"{'hour':>5}  {'period':<7}  {'accept':>7}  {'cost IT':>9}  {'cost BW':>9}  {'cost RC':>9}  {'total':>9}  {'srv/LM/EM':>14}  rejected by"
    lines = [
        f"policy {report.policy} on {report.scenario} ({report.split}, {report.workloads} workloads; costs are means per workload)",
        head,
        "-" * len(head),
    ]
    for h in report.per_hour:
        shares = f"{h.share_server:.2f}/{h.share_lm:.2f}/{h.share_em:.2f}"
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(h.rejected.items(), key=lambda kv: -kv[1])) or "-"
        lines.append(
            f"{h.hour:>2}:00  {'working' if h.working_hours else 'evening':<7}  {h.acceptance_ratio:>7.3f}  "
            f"{h.cost_it:>9.3f}  {h.cost_bw:>9.3f}  {h.cost_reconf:>9.3f}  {h.cost_total:>9.3f}  {shares:>14}  {reasons}"
        )
    return "\n".join(lines)


def to_csv(report: EvaluationReport) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["policy", "split", *CSV_COLUMNS], lineterminator="\n")
    writer.writeheader()
    for h in report.per_hour:
        row: dict[str, Any] = {k: v for k, v in h.to_dict().items() if k in CSV_COLUMNS}
        writer.writerow({"policy": report.policy, "split": report.split, **row})
    return out.getvalue()


def to_json(document: Any) -> str:
    return json.dumps(document, indent=1)
