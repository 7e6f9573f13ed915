"""Property tests of the step evaluator over random placements of the `small` scenario."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.model.constraints import within_capacity
from controller.model.evaluator import Outcome, StepEvaluator


def placements(num_instances: int, num_hosts: int):
    return st.tuples(*[st.integers(0, num_hosts - 1) for _ in range(num_instances)])


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_invariants_of_a_step(small_dataset, data):
    sub = small_dataset.substrate
    ev = StepEvaluator(sub, small_dataset.objective_weights)
    workload = small_dataset.test[data.draw(st.integers(0, len(small_dataset.test) - 1))]
    step = data.draw(st.integers(0, len(small_dataset.hours) - 1))
    previous = data.draw(placements(len(sub.instances), len(sub.hosts)))
    placement = data.draw(placements(len(sub.instances), len(sub.hosts)))
    result = ev.evaluate(workload, step, previous, placement)

    # no accepted request uses an overloaded resource
    for r, instances in zip(result.requests, workload.assignment):
        if r.accepted:
            assert all(placement[k] not in result.violations for k in instances)
            assert r.delay_ms <= r.deadline_ms
            assert r.paths is not None
    for k, load in enumerate(result.instance_load_mbps):
        assert within_capacity(load, 0.0, sub.instance_capacity_mbps(k, placement[k]))
    for link, load in zip(sub.links, result.link_load_mbps):
        assert within_capacity(load, 0.0, link.capacity_mbps)
    # What a rejected request loads follows the scenario's `rejected_traffic` (docs/model.md): the instance
    # loads are exactly the processed requests' traffic (the accepted ones, and under `carried` the late
    # ones too), the link loads exactly the carried requests' (the accepted ones, and under `carried` every
    # one that found its paths)
    carry_rejected = small_dataset.objective_weights.rejected_traffic == "carried"
    processed = carried = 0.0
    for r, instances in zip(result.requests, workload.assignment):
        rate = workload.requests[r.request].rate_mbps[step]
        assert r.carried == (r.accepted or (carry_rejected and r.paths is not None))
        if r.accepted or (carry_rejected and r.outcome is Outcome.DEADLINE):
            processed += rate * len(instances)
        if r.carried:
            carried += rate * sum(len(path) for path in r.paths)
    assert abs(sum(result.instance_load_mbps) - processed) < 1e-6
    assert abs(sum(result.link_load_mbps) - carried) < 1e-6

    # every cost part is non-negative
    c = result.cost
    assert min(c.it, c.bandwidth, c.migration, c.programming, c.total) >= 0.0
    for r, instances in zip(result.requests, workload.assignment):
        uses_overloaded = any(placement[k] in result.violations for k in instances)
        assert (r.outcome is Outcome.STORAGE) == uses_overloaded


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_step_that_moves_nothing_costs_no_reconfiguration(small_dataset, data):
    sub = small_dataset.substrate
    ev = StepEvaluator(sub)
    workload = small_dataset.test[data.draw(st.integers(0, len(small_dataset.test) - 1))]
    placement = data.draw(placements(len(sub.instances), len(sub.hosts)))
    step = data.draw(st.integers(0, len(small_dataset.hours) - 1))
    result = ev.evaluate(workload, step, placement, placement)
    assert result.cost.reconfiguration == 0.0
    assert all(r.reconfiguration_ms == 0.0 for r in result.requests)
