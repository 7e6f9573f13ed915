"""Measuring a training run as it learns (Fig. 5) leaves the run as it was, and scores the networks
exactly as the deployed `srem` policy plays them."""

from __future__ import annotations

from controller.evaluation import evaluate_policy
from controller.learning_curve import greedy_score, learning_run
from controller.policies import make_policy
from controller.rl.agent import TrainConfig
from controller.rl.env import SremEnv
from controller.rl.training import train


def test_measuring_does_not_change_the_run_and_scores_what_srem_deploys(small_dataset, tmp_path):
    # 8 days of 6 steps: past the first replay batch (32 transitions), so the networks have learnt by the end.
    measured = learning_run(small_dataset, "hybrid", seed=3, episodes=8, every=4, test_workloads=2)
    checkpoint = tmp_path / "plain.pt"
    agent, plain = train(small_dataset, TrainConfig(variant="hybrid", episodes=8, seed=3), checkpoint=checkpoint, progress=False)
    assert measured.training_rewards == plain.rewards
    assert measured.checkpoints == [4, 8]

    env = SremEnv(small_dataset, "test", limit=2)
    reward, acceptance = greedy_score(agent, env)
    assert (measured.test_reward[-1], measured.test_acceptance[-1]) == (reward, acceptance)

    report = evaluate_policy(small_dataset, make_policy(f"srem:{checkpoint}"), "test", limit=2, progress=False)
    working = [h for h in report.per_hour if h.working_hours]
    assert acceptance == sum(h.accepted for h in working) / sum(h.requests for h in working)
