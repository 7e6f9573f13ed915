"""`best-schedule[:FILE]`: one placement per step of the day, the same for every workload - the best
fixed placement generalised to a placement per step, as `srem train --agent best-schedule` found it
on the training workloads (schedule_search.py). Without FILE, the one shipped for the `paper`
scenario (controller/policies/trained/paper-best-schedule.json).

A schedule file is JSON: `{"format": "srem-schedule", "version": 1, "scenario": NAME,
"substrate_hash": HASH, "steps": [{"step": 0, "hour": 10, "placement": {"firewall#0": "em:c2", ...}},
...]}`, one entry per step of the day in order, each naming every instance once (as a placement file
of `fixed:FILE` does); other keys (what the search measured) are kept for the reader. Binding checks
the file was made for this substrate (`substrate_hash`, the same as a checkpoint's) and that every
step's placement respects storage and the RDMA tables (eq. 7); a day with another number of steps is
refused when it starts. Each in one line naming the file.

The policy reads nothing of the observation but its step: the schedule is decided before the day.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from controller.errors import SremError
from controller.model.substrate import Substrate, check_made_for, substrate_hash
from controller.model.workload import Placement, Workload
from controller.policies.base import Observation, Policy, register
from controller.policies.fixed import check_fits, placement_from_names, placement_names
from controller.validation import read_json

FORMAT = "srem-schedule"
VERSION = 1
SHIPPED = Path(__file__).resolve().parent / "trained" / "paper-best-schedule.json"
"""`best-schedule`: the best schedule found on the `paper` training workloads."""

PlacementSchedule = tuple[Placement, ...]
"""One placement per step of the day."""


def schedule_document(substrate: Substrate, scenario: str, hours: Sequence[int], schedule: PlacementSchedule,
                      **measured: Any) -> dict[str, Any]:
    """A schedule file's content."""
    return {"format": FORMAT, "version": VERSION, "scenario": scenario, "substrate_hash": substrate_hash(substrate),
            **measured, "steps": [{"step": step, "hour": hour, "placement": placement_names(substrate, placement)}
                                  for step, (hour, placement) in enumerate(zip(hours, schedule, strict=True))]}


def load_schedule(path: Path, substrate: Substrate) -> PlacementSchedule:
    """The schedule a file holds, refused in one line unless it was made for `substrate`, has every
    step in order and every step's placement respects storage (eq. 7)."""
    doc = check_made_for(read_json(path), substrate, FORMAT, VERSION, "schedule file", path)
    steps = doc.get("steps")
    if not isinstance(steps, list) or not steps:
        raise SremError("no steps list", where=path, key="steps")
    schedule = []
    for step, entry in enumerate(steps):
        key = f"steps[{step}]"
        found = entry.get("step") if isinstance(entry, dict) else None
        if found != step:
            raise SremError(f"step {step} missing (this entry is step {found!r}): one entry per step, in order",
                            where=path, key=key)
        placement = placement_from_names(entry.get("placement"), substrate, path, f"{key}.placement")
        check_fits(substrate, placement, path, key)
        schedule.append(placement)
    return tuple(schedule)


@register("best-schedule")
class BestSchedulePolicy(Policy):
    def __init__(self, arg: str | None = None) -> None:
        self.path = Path(arg) if arg else SHIPPED
        self.schedule: PlacementSchedule = ()
        self.substrate: Substrate | None = None

    def bind(self, substrate: Substrate) -> None:
        self.schedule = load_schedule(self.path, substrate)
        self.substrate = substrate

    def reset(self, substrate: Substrate, workload: Workload) -> None:
        if self.substrate is not substrate:
            self.bind(substrate)
        if workload.num_steps != len(self.schedule):
            raise SremError(f"a schedule of {len(self.schedule)} steps for a day of {workload.num_steps}", where=self.path)

    def decide(self, observation: Observation) -> Placement:
        assert self.schedule, "bind() the policy to a substrate first"
        return self.schedule[observation.step]
