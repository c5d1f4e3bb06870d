import math

import numpy as np
import pytest

from equal.errors import ConfigError
from equal.select.policies import UCB, EpsilonGreedy, Greedy, RoundRobin, StaticRanking, ThompsonSampling, make_policy


def played(policy, history, n_arms=3, distances=None):
    policy.start(n_arms, distances)
    for arm, reward in history:
        policy.update(arm, reward)
    return policy


def test_paper_ucb_matches_the_worked_example():
    # Pulls T = (1, 2, 3), cumulative rewards R = (0.5, 0.4, 0.3): ΣT = 6, α = 1/7,
    # DS_j = R_j + (1/7)·sqrt(2 ln 6 / T_j) = (0.77043, 0.59122, 0.45613).
    history = [(0, 0.5), (1, 0.2), (1, 0.4), (2, 0.9), (2, 0.1), (2, 0.3)]
    policy = played(UCB(alpha="decay"), history)
    assert policy.pulls_.tolist() == [1, 2, 3]
    assert policy.exploration_weight() == pytest.approx(1 / 7)
    scores = policy.scores(np.ones(3, bool), np.random.default_rng(0))
    assert scores == pytest.approx([0.77043, 0.59122, 0.45613], abs=1e-5)
    assert policy.select(np.ones(3, bool), 2, np.random.default_rng(0)).tolist() == [0, 1]
    assert policy.select(np.array([False, True, True]), 2, np.random.default_rng(0)).tolist() == [1, 2]


def test_authors_ucb_uses_mean_rewards_count_plus_one_and_shares_rewards():
    distances = np.array([[0.0, 0.1, 0.9], [0.1, 0.0, 0.9], [0.9, 0.9, 0.0]])
    policy = played(
        UCB(alpha=0.001, count_offset=1, reward_mode="per_pull", share_threshold=0.2),
        [(0, 0.4), (0, 0.2), (2, 0.1)],
        distances=distances,
    )
    # arm 1 was never pulled but received both of arm 0's rewards through sharing
    assert policy.pulls_.tolist() == [2, 0, 1]
    assert policy.values_ == pytest.approx([0.3, 0.3, 0.1])
    bonus = 0.001 * np.sqrt(2 * math.log(3) / np.array([3, 1, 2]))
    assert policy.scores(np.ones(3, bool), None) == pytest.approx(np.array([0.3, 0.3, 0.1]) + bonus)
    # an arm never pulled is tried first whatever its shared value
    assert policy.select(np.ones(3, bool), 1, np.random.default_rng(0)).tolist() == [1]
    with pytest.raises(ConfigError, match="per_pull"):
        UCB(share_threshold=0.2).start(3, distances)


def test_fixed_alpha_ucb_agrees_with_mabwiser_ucb1():
    from mabwiser.mab import MAB, LearningPolicy

    rng = np.random.default_rng(3)
    arms = rng.integers(0, 4, size=40)
    arms[:4] = [0, 1, 2, 3]
    rewards = rng.random(40)
    ours = played(UCB(alpha=1.5, reward_mode="per_pull"), zip(arms.tolist(), rewards.tolist(), strict=True), 4)
    theirs = MAB(arms=[0, 1, 2, 3], learning_policy=LearningPolicy.UCB1(alpha=1.5))
    theirs.fit(decisions=arms, rewards=rewards)
    expected = theirs.predict_expectations()
    assert ours.scores(np.ones(4, bool), None) == pytest.approx([expected[a] for a in range(4)])


def test_greedy_has_no_exploration_and_static_ranking_freezes():
    greedy = played(Greedy(), [(0, 0.5), (1, 0.6), (2, 0.1), (1, 0.2)])
    assert greedy.select(np.ones(3, bool), 1, np.random.default_rng(0)).tolist() == [0]
    static = played(StaticRanking(), [(0, 0.5), (1, 0.6), (2, 0.1)])
    assert static.select(np.ones(3, bool), 3, np.random.default_rng(0)).tolist() == [1, 0, 2]
    static.update(1, -5.0)  # later evidence does not move the one-shot ranking
    assert static.select(np.ones(3, bool), 1, np.random.default_rng(0)).tolist() == [1]
    assert static.select(np.array([True, False, True]), 1, np.random.default_rng(0)).tolist() == [0]


def test_unpulled_arms_first_then_seeded_ties_and_round_robin_balance():
    policy = RoundRobin().start(5)
    order = []
    for round_index in range(4):
        chosen = policy.select(np.ones(5, bool), 3, np.random.default_rng([7, round_index]))
        order.append(chosen.tolist())
        for arm in chosen:
            policy.update(int(arm), 0.0)
    assert sorted(order[0] + order[1][:2]) == [0, 1, 2, 3, 4]  # every arm once before any twice
    assert policy.pulls_.max() - policy.pulls_.min() <= 1
    again = RoundRobin().start(5)
    assert again.select(np.ones(5, bool), 3, np.random.default_rng([7, 0])).tolist() == order[0]


def test_thompson_and_epsilon_greedy_are_seeded_and_respect_availability():
    for policy in (ThompsonSampling(prior_std=0.1), EpsilonGreedy(epsilon=0.5)):
        played(policy, [(0, 0.5), (1, 0.4), (2, 0.3)])
        available = np.array([True, False, True])
        picks = [policy.select(available, 2, np.random.default_rng(s)).tolist() for s in range(20)]
        assert all(sorted(p) == [0, 2] for p in picks)
        assert picks == [policy.select(available, 2, np.random.default_rng(s)).tolist() for s in range(20)]
    eps = played(EpsilonGreedy(epsilon=0.0), [(0, 0.1), (1, 0.9), (2, 0.3)])
    assert eps.select(np.ones(3, bool), 1, np.random.default_rng(0)).tolist() == [1]


def test_make_policy_errors_are_clear():
    assert isinstance(make_policy({"name": "ucb", "alpha": 0.001}), UCB)
    with pytest.raises(ConfigError, match="unknown policy"):
        make_policy({"name": "nope"})
    with pytest.raises(ConfigError, match="bad parameters"):
        make_policy({"name": "greedy", "alpha": 1})
    with pytest.raises(ConfigError, match="reward_mode"):
        UCB(reward_mode="sum").start(2)
