"""What SR-EM's filters remove of random exploratory instance choices, counted by hand on a tiny
substrate, checked against the dynamic filter as the agent applies it, and measured on `paper`."""

from __future__ import annotations

import itertools

import numpy as np
from factories import substrate, switch, topology_dict, vnf

from controller.filter_stats import filter_removal, removed_choices, unfiltered_placements
from controller.model.feasibility import capacities, place_one_by_one
from controller.model.substrate import HostKind


def tiny_tables():
    """Hosts: m1 (server), lm-s1 (40 MB), em-s1 (80 MB); instances: big (60 MB), placed first, and small (30 MB)."""
    topo = topology_dict(["s1"], ["m1"], [("s1", "m1", 10.0, 0.01)])
    sub = substrate(topo, [vnf("big", 60.0), vnf("small", 30.0)], switches={"s1": switch(lm=40.0, em=80.0)})
    assert [h.kind for h in sub.hosts] == [HostKind.SERVER, HostKind.LM, HostKind.EM]
    return capacities(sub)


ALL_PLACEMENTS = list(itertools.product(range(3), repeat=2))
"""Every (big's host, small's host): each equally likely under unfiltered exploration."""


def test_exact_fractions_over_every_placement_of_a_tiny_substrate():
    # Static: big can never be held by the 40 MB LM (3 placements). Dynamic: those 3, plus small in
    # the LM after big overfilled it, plus small in the EM after big left it 20 MB: 5 of 18 choices.
    removal = removed_choices(tiny_tables(), ALL_PLACEMENTS)
    assert (removal.placements, removal.choices) == (9, 18)
    assert removal.static == 3 / 18
    assert removal.dynamic == 5 / 18
    assert removal.dynamic_not_static == 2 / 18


def test_a_choice_is_counted_as_removed_exactly_when_the_agents_dynamic_filter_changes_it():
    tables = tiny_tables()
    eligible = np.ones((2, 3), dtype=bool)
    for placement in ALL_PLACEMENTS:
        wanted = np.eye(3)[list(placement)]  # scores that pick exactly this placement where allowed
        chosen = place_one_by_one(tables, wanted, eligible, dynamic=True)
        assert (removed_choices(tables, [placement]).dynamic > 0) == (chosen != placement), placement


def test_unfiltered_exploration_draws_every_host_of_the_allowed_kinds_and_no_other():
    tables = tiny_tables()
    drawn = unfiltered_placements(tables, (HostKind.SERVER, HostKind.EM), 200, np.random.default_rng(0))
    assert drawn.shape == (200, 2) and set(np.unique(drawn)) == {0, 2}


def test_on_paper_the_dynamic_filter_removes_at_least_a_fifth_of_random_choices(paper_dataset):
    # The bar for the recalibrated scenario: storage binds.
    removal = filter_removal(capacities(paper_dataset.substrate), tuple(HostKind), 500, seed=0)
    assert removal.choices == 500 * len(paper_dataset.substrate.instances)
    assert removal.dynamic >= 0.20
    assert removal.dynamic >= removal.static
