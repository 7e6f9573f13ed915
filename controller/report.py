"""Formats evaluation reports: the per-hour text table, CSV and JSON.

Totals over the workloads and means per workload sit side by side in every report, so each column
says which it is: `*_total` (requests, accepted, rejected) or `*_per_workload` (costs).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from controller.evaluation import EvaluationReport
from controller.model.evaluator import Outcome

REJECTION_REASONS = [o.value for o in Outcome if o is not Outcome.ACCEPTED]
CSV_COLUMNS = [
    "hour", "working_hours", "workloads", "requests_total", "accepted_total", "acceptance_ratio",
    "cost_it_per_workload", "cost_bw_per_workload", "cost_reconf_per_workload", "cost_total_per_workload",
    "share_server", "share_lm", "share_em", *(f"rejected_{reason}_total" for reason in REJECTION_REASONS),
]


def per_hour_table(report: EvaluationReport) -> str:
    head = (f"{'hour':>5}  {'period':<7}  {'accept':>7}  {'IT/wl':>9}  {'BW/wl':>9}  {'reconf/wl':>9}  {'total/wl':>9}  "
            f"{'srv/LM/EM':>14}  rejected (total)")
    lines = [
        f"policy {report.spec} on {report.scenario} ({report.split}, {report.workloads} workloads); accept = accepted / requests;"
        f" /wl and srv/LM/EM: means per workload; rejected: totals over the {report.workloads} workloads",
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
    writer = csv.DictWriter(out, fieldnames=["policy", "split", *CSV_COLUMNS, "spec"], lineterminator="\n")
    writer.writeheader()
    for h in report.per_hour:
        doc = h.to_dict()
        rejected = doc.pop("rejected_total")
        row: dict[str, Any] = {**doc, **{f"rejected_{reason}_total": rejected.get(reason, 0) for reason in REJECTION_REASONS}}
        writer.writerow({"policy": report.policy, "split": report.split, **row, "spec": report.spec})
    return out.getvalue()


def to_json(document: Any) -> str:
    return json.dumps(document, indent=1)
