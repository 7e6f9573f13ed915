"""The SR-EM agent: filtered networks, filters, environment, training, checkpoints, and the baselines' storage."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from controller.errors import SremError
from controller.evaluation import run_day
from controller.model.constraints import storage_violations
from controller.model.evaluator import StepEvaluator
from controller.model.feasibility import capacities, place_one_by_one
from controller.policies import make_policy
from controller.rl.agent import MAX_HIDDEN, TrainConfig, connectivity
from controller.rl.checkpoint import ADDED_LATER, deployable, substrate_hash
from controller.rl.env import SremEnv
from controller.rl.network import PlacementQNetwork, parameter_count, state_layout
from controller.rl.training import train


def test_static_filter_removes_weights(small_dataset):
    sub = small_dataset.substrate
    mask = capacities(sub).can_ever_hold()
    assert 0 < mask.sum() < mask.size  # large types cannot live in any LM
    features, hidden = 50, 16
    filtered = PlacementQNetwork(features, mask, hidden)
    full = PlacementQNetwork(features, np.ones_like(mask), hidden)
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    per_output = hidden + 1
    assert count(full) - count(filtered) == (mask.size - mask.sum()) * per_output
    assert count(filtered) == mask.shape[0] * (features * hidden + hidden) + int(mask.sum()) * per_output


@pytest.mark.parametrize("host_features", [0, 3])
def test_the_layout_known_before_building_is_the_built_network_s(small_dataset, host_features):
    mask = capacities(small_dataset.substrate).can_ever_hold()
    features = 50 + mask.size * host_features
    layout = state_layout(features, mask, 16, host_features)
    net = PlacementQNetwork(features, mask, 16, host_features)
    assert {name: (tuple(t.shape), t.dtype) for name, t in net.state_dict().items()} == layout
    assert parameter_count(layout) == sum(p.numel() for p in net.parameters())


def test_the_trainer_refuses_a_network_too_large_before_building_it(small_dataset, monkeypatch):
    """The bounds a checkpoint's reader applies are the trainer's: a width past MAX_HIDDEN, or networks of more
    than MAX_PARAMETERS weights, are refused in one line and nothing is allocated."""
    def never(*_: object, **__: object) -> None:
        raise AssertionError("a network was built")

    monkeypatch.setattr(PlacementQNetwork, "__init__", never)
    with pytest.raises(SremError, match=f"less than or equal to {MAX_HIDDEN}") as err:
        train(small_dataset, TrainConfig(episodes=1, hidden=2**20), progress=False)
    assert err.value.key == "config.hidden"
    monkeypatch.setattr("controller.rl.agent.MAX_PARAMETERS", 10_000)
    with pytest.raises(SremError, match=r"24 instance networks of 8 hidden units .* more than the 10,000 srem builds"):
        train(small_dataset, TrainConfig(episodes=1, hidden=8), progress=False)


def test_batched_networks_equal_one_network_per_instance(small_dataset):
    mask = capacities(small_dataset.substrate).can_ever_hold()
    torch.manual_seed(0)
    net = PlacementQNetwork(10, mask, 8)
    x = torch.randn(3, 10)
    q = net(x)
    for k in range(mask.shape[0]):
        h = torch.relu(x @ net.w1[k] + net.b1[k])
        rows = net.index[k][mask[k]]
        expected = h @ net.w2[rows].T + net.b2[rows]
        assert torch.allclose(q[:, k, torch.as_tensor(mask[k])], expected, atol=1e-6)
        assert torch.isinf(q[:, k, torch.as_tensor(~mask[k])]).all()


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_filters_never_choose_an_infeasible_host(small_dataset, data):
    sub = small_dataset.substrate
    mask = capacities(sub).can_ever_hold()
    # An array strategy, not a list of mask.size floats: its smallest example (one fill value, i.e. all
    # ties) stays small at 24 instances x 32 hosts, where a list's trips Hypothesis's large_base_example check.
    scores = data.draw(arrays(np.float64, mask.shape, elements=st.floats(-1e6, 1e6)))
    scores = np.where(mask, scores, -np.inf)
    explore = data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))) if explore else None
    placement = place_one_by_one(capacities(sub), scores, mask, True, rng)
    assert all(mask[k, h] for k, h in enumerate(placement))
    assert storage_violations(sub, placement) == {}


def test_environment_passes_gymnasiums_checker(small_dataset):
    env = SremEnv(small_dataset, "train", limit=5)
    check_env(env, skip_render_check=True)
    obs, _ = env.reset(seed=1)
    total_steps = 0
    done = False
    while not done:
        obs, reward, done, _, info = env.step(env.action_space.sample())
        total_steps += 1
        assert "result" in info and np.isfinite(reward)
    assert total_steps == len(small_dataset.hours)


def test_reward_of_keeping_the_initial_placement_is_eq20(small_dataset):
    env = SremEnv(small_dataset, "train", limit=3)
    env.reset(options={"workload": 0})
    _, reward, _, _, info = env.step(env.workload.initial_placement)
    w = small_dataset.reward_weights
    assert reward == pytest.approx(w.acceptance * info["result"].acceptance_ratio - w.cost * 1.0)


def test_short_training_improves_and_is_deterministic(small_dataset):
    config = TrainConfig(episodes=240, seed=3, hidden=32)
    _, first = train(small_dataset, config, progress=False)
    _, again = train(small_dataset, config, progress=False)
    assert first.rewards == again.rewards
    early, late = np.mean(first.rewards[:40]), np.mean(first.rewards[-40:])
    assert late > early + 0.1, (early, late)


def test_variants_change_the_output_layer(small_dataset):
    cut = connectivity(small_dataset.substrate, TrainConfig(variant="static"))
    full = connectivity(small_dataset.substrate, TrainConfig(variant="dynamic"))
    servers_only = connectivity(small_dataset.substrate, TrainConfig(variant="none", host_kinds=("SERVER",)))
    assert cut.sum() < full.sum() == full.size
    assert servers_only.sum() == len(small_dataset.substrate.instances) * small_dataset.substrate.num_servers


@pytest.fixture(scope="module")
def small_checkpoints(small_dataset, tmp_path_factory):
    from controller.policies.ddqn_cm import ddqn_cm_config, ddqn_cm_reward

    out = tmp_path_factory.mktemp("ck")
    train(small_dataset, TrainConfig(episodes=30, hidden=16), checkpoint=out / "srem.pt", progress=False)
    train(small_dataset, ddqn_cm_config(episodes=30, hidden=16), checkpoint=out / "ddqn.pt", reward_fn=ddqn_cm_reward, progress=False)
    return out


@pytest.mark.parametrize("name", ["random", "lag", "srem", "ddqn-cm", "static"])
def test_no_policy_violates_storage(small_dataset, small_checkpoints, name):
    spec = {"srem": f"srem:{small_checkpoints / 'srem.pt'}", "ddqn-cm": f"ddqn-cm:{small_checkpoints / 'ddqn.pt'}"}.get(name, name)
    policy = make_policy(spec)
    policy.bind(small_dataset.substrate)
    evaluator = StepEvaluator(small_dataset.substrate)
    for workload in small_dataset.test:
        for result in run_day(evaluator, small_dataset, workload, policy):
            assert result.feasible, result.violations
            if name == "ddqn-cm":
                assert all(small_dataset.substrate.hosts[h].kind == 0 for h in result.placement)
            if name == "lag":
                assert all(small_dataset.substrate.hosts[h].kind != 2 for h in result.placement)


def test_checkpoint_for_another_substrate_is_refused(small_checkpoints, small_dataset, paper_dataset):
    policy = make_policy(f"srem:{small_checkpoints / 'srem.pt'}")
    with pytest.raises(SremError) as err:
        policy.bind(paper_dataset.substrate)
    text = str(err.value)
    assert "scenario small" in text
    assert substrate_hash(small_dataset.substrate)[:12] in text and substrate_hash(paper_dataset.substrate)[:12] in text


def test_corrupt_checkpoint_is_refused(small_dataset, tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x02garbage" * 10)
    with pytest.raises(SremError, match="not a readable checkpoint") as err:
        make_policy(f"srem:{bad}").bind(small_dataset.substrate)
    assert err.value.where == str(bad)


def test_resume_continues_where_it_stopped(small_dataset, tmp_path):
    path = tmp_path / "r.pt"
    _, first = train(small_dataset, TrainConfig(episodes=20, hidden=16), checkpoint=path, progress=False)
    _, resumed = train(small_dataset, TrainConfig(episodes=35, hidden=16), checkpoint=path, resume=True, progress=False)
    assert resumed.start_episode == 20 and len(resumed.rewards) == 35 and resumed.rewards[:20] == first.rewards
    with pytest.raises(SremError, match="another configuration"):
        train(small_dataset, TrainConfig(episodes=40, hidden=16, discount=0.9), checkpoint=path, resume=True, progress=False)


def test_resuming_never_shortens_a_run_nor_trusts_a_broken_record_of_it(small_dataset, tmp_path):
    """Issue 20, finding 10: `--resume --episodes 100` on a 350-episode checkpoint rewrote it with no note."""
    path = tmp_path / "r.pt"
    train(small_dataset, TrainConfig(episodes=6, hidden=8), checkpoint=path, progress=False)
    before = path.read_bytes()
    with pytest.raises(SremError, match="has done 6 episodes, more than --episodes 4: give --episodes 6 or more"):
        train(small_dataset, TrainConfig(episodes=4, hidden=8), checkpoint=path, resume=True, progress=False)
    assert path.read_bytes() == before
    good = torch.load(path, weights_only=True)
    for key, value, said in (("episode", -1, "episode: not a count"), ("episode", "6", "episode: not a count"),
                             ("rewards", [0.0] * 5, "rewards: not one finite reward for each of its 6"),
                             ("rewards", [float("nan")] * 6, "rewards: not one finite"),
                             ("optimizer", {"state": {}, "param_groups": []}, "optimizer: not this network's")):
        torch.save({**good, key: value}, path)
        with pytest.raises(SremError, match=said) as err:
            train(small_dataset, TrainConfig(episodes=8, hidden=8), checkpoint=path, resume=True, progress=False)
        assert err.value.where == str(path) and "\n" not in str(err.value)


def test_a_deployable_checkpoint_decides_the_same_and_cannot_be_resumed(small_dataset, small_checkpoints, tmp_path):
    full, slim = small_checkpoints / "srem.pt", tmp_path / "slim.pt"
    deployable(full, slim)
    assert slim.stat().st_size < 0.6 * full.stat().st_size
    evaluator = StepEvaluator(small_dataset.substrate)
    days = []
    for path in (full, slim):
        policy = make_policy(f"srem:{path}")
        policy.bind(small_dataset.substrate)
        days.append([r.placement for w in small_dataset.test[:3] for r in run_day(evaluator, small_dataset, w, policy)])
    assert days[0] == days[1]
    with pytest.raises(SremError, match="deployable checkpoint .* cannot be resumed") as err:
        train(small_dataset, TrainConfig(episodes=40, hidden=16), checkpoint=slim, resume=True, progress=False)
    assert err.value.where == str(slim)


def test_a_checkpoint_from_before_the_later_config_keys_resumes(small_dataset, tmp_path):
    """Keys added to the configuration after the first checkpoints (issue 19's, the agent) read as their
    defaults, so such a checkpoint resumes with the flags it was trained with."""
    path = tmp_path / "old.pt"
    train(small_dataset, TrainConfig(episodes=3, hidden=8), checkpoint=path, progress=False)
    doc = torch.load(path, weights_only=True)
    doc["config"] = {k: v for k, v in doc["config"].items() if k not in ADDED_LATER}
    torch.save(doc, path)
    _, resumed = train(small_dataset, TrainConfig(episodes=5, hidden=8), checkpoint=path, resume=True, progress=False)
    assert resumed.start_episode == 3 and len(resumed.rewards) == 5


def test_making_a_deployable_checkpoint_of_a_file_that_is_none_is_refused(tmp_path):
    bad, out = tmp_path / "bad.pt", tmp_path / "slim.pt"
    bad.write_bytes(b"\x80\x02garbage" * 10)
    with pytest.raises(SremError, match="not a readable checkpoint") as err:
        deployable(bad, out)
    assert err.value.where == str(bad) and not out.exists()
