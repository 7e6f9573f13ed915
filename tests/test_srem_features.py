"""SR-EM's optional state (issue 19): the schedule's busy flags, the model's per-host estimates, and learning from a teacher."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from controller.errors import SremError
from controller.model.estimates import ChainEstimator
from controller.policies import make_policy
from controller.policies.fixed_search import policy_days
from controller.rl.agent import Agent, TrainConfig
from controller.rl.env import SremEnv
from controller.rl.features import HOST_FEATURES, host_features
from controller.rl.training import train


def test_schedule_flags_are_the_busy_instances_now_and_next(small_dataset) -> None:
    sub = small_dataset.substrate
    config = TrainConfig(features="schedule")
    env = SremEnv(small_dataset, "test", limit=2, encoder=config.encoder(sub))
    state, _ = env.reset(options={"workload": 0})
    k = len(sub.instances)
    flags = state[-2 * k:]
    assert np.array_equal(flags[:k], env.workload.busy_instances(0, k))
    assert np.array_equal(flags[k:], env.workload.busy_instances(1, k))
    assert flags[:k].any() and flags[k:].any() and not (flags[:k] * flags[k:]).any()  # one class busy per step


def test_host_features_need_only_the_known_day_and_stay_in_range(small_dataset) -> None:
    sub = small_dataset.substrate
    workload = small_dataset.test[0]
    estimator = ChainEstimator(sub, workload)
    features = host_features(estimator, workload.known_until(0), 0, workload.initial_placement)
    assert features.shape == (len(sub.instances), len(sub.hosts), HOST_FEATURES)
    assert features.min() >= 0.0 and features.max() <= 1.0
    busy = workload.busy_instances(0, len(sub.instances))
    switch = np.array([h.kind.name != "SERVER" for h in sub.hosts])
    # A busy instance keeps at least as many of its requests in some switch as on any server (more, for some,
    # despite the programming delay); a quiet one keeps them all where it is (moving costs it time).
    better = [features[k, switch, 0].max() - features[k, ~switch, 0].max() for k in np.flatnonzero(busy)]
    assert min(better) >= 0.0 and max(better) > 0.0
    quiet = np.flatnonzero(~busy & ~workload.busy_instances(1, len(sub.instances)))
    here = np.array(workload.initial_placement)[quiet]
    assert np.allclose(features[quiet, here, 0], 1.0)


def test_a_network_with_host_features_loads_no_extra_weights_without_them(small_dataset) -> None:
    sub = small_dataset.substrate
    plain = Agent(sub, TrainConfig())
    hosts = Agent(sub, TrainConfig(features="hosts"))
    assert "w_host" not in plain.net.state_dict() and "w_host" in hosts.net.state_dict()
    state = torch.zeros(1, hosts.encoder.size)
    assert hosts.net(state).shape == (1, len(sub.instances), len(sub.hosts))


def test_learning_from_a_teacher_follows_its_choices(small_dataset) -> None:
    """Demonstrations alone (no episode explores): the networks pick the teacher's host far more often than
    the untrained ones do."""
    sub = small_dataset.substrate
    days = list(enumerate(policy_days(small_dataset, make_policy("schedule-foresight"), small_dataset.split("train", 6))))

    def agreement(agent: Agent) -> float:
        env = SremEnv(small_dataset, "train", limit=6, encoder=agent.encoder)
        same = total = 0
        for index, placements in days:
            state, _ = env.reset(options={"workload": index})
            for placement in placements:
                same += int((np.array(agent.act(state)) == np.array(placement)).sum())
                total += len(placement)
                state, *_ = env.step(placement)
        return same / total

    config = TrainConfig(features="hosts", teacher="schedule-foresight", demonstrations=6, pretrain_updates=400,
                         episodes=1, epsilon_start=0.0, epsilon_end=0.0, hidden=16, seed=2)
    taught, _ = train(small_dataset, config, limit=6, progress=False, teacher_days=days)
    untaught = Agent(sub, TrainConfig(features="hosts", hidden=16, seed=2))
    assert agreement(taught) > agreement(untaught) + 0.2


def test_a_teacher_without_days_is_refused(small_dataset) -> None:
    with pytest.raises(SremError, match="teacher"):
        train(small_dataset, TrainConfig(episodes=1, teacher="schedule-foresight"), limit=2, progress=False)
