import numpy as np
import pytest

from equal.errors import ConfigError
from equal.select.reward import OTReward, RewardConfig, cost_matrix, ot_distance, reward_from_distance


def cloud(centre, n, seed, spread=0.05):
    rng = np.random.default_rng(seed)
    return np.asarray(centre, dtype=float) + rng.normal(0, spread, size=(n, len(centre)))


def test_identical_sets_have_zero_distance_and_costs_are_right():
    x = cloud([1, 0, 0], 10, 0)
    assert ot_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert cost_matrix(np.array([[1.0, 0]]), np.array([[0.0, 1.0], [-1.0, 0]])).tolist() == [[1.0, 2.0]]
    assert cost_matrix(np.array([[0.0, 0]]), np.array([[3.0, 4.0]]), "euclidean").tolist() == [[5.0]]


def test_a_cluster_drawn_near_the_reference_scores_higher():
    reference = cloud([1, 0, 0], 50, 0)
    similar, unrelated = cloud([1, 0.1, 0], 20, 1), cloud([0, 0, 1], 20, 2)
    for metric in ("cosine", "euclidean"):
        near, far = ot_distance(similar, reference, metric), ot_distance(unrelated, reference, metric)
        assert near < far
        for convention in ("one_minus", "negative"):
            assert reward_from_distance(near, convention) > reward_from_distance(far, convention)
    assert reward_from_distance(0.3, "one_minus", offset=0.12) == pytest.approx(0.58)


def test_sinkhorn_approaches_the_exact_distance():
    x, y = cloud([1, 0, 0], 15, 3, spread=0.3), cloud([0.5, 0.5, 0], 25, 4, spread=0.3)
    exact = ot_distance(x, y, solver="emd")
    assert ot_distance(x, y, solver="sinkhorn", reg=0.005) == pytest.approx(exact, rel=0.05)
    assert ot_distance(x, y, solver="sinkhorn", reg=0.5) >= exact - 1e-9  # entropy only adds cost


def test_bad_options_and_empty_sets():
    x = cloud([1, 0], 3, 0)
    with pytest.raises(ConfigError):
        ot_distance(x, x, metric="manhattan")
    with pytest.raises(ConfigError):
        ot_distance(x, x, solver="greenkhorn")
    with pytest.raises(ValueError):
        ot_distance(x[:0], x)


def test_cumulative_reward_scores_the_whole_history_and_per_pull_only_the_new_items():
    reference = cloud([1, 0, 0], 30, 0)
    near, far = cloud([1, 0.1, 0], 5, 1), cloud([0, 0, 1], 5, 2)
    cumulative = OTReward(reference)
    first = cumulative(0, near, True)
    mixed = cumulative(0, far, True)
    assert mixed == pytest.approx(reward_from_distance(ot_distance(np.vstack([near, far]), reference)))
    assert mixed < first
    per_pull = OTReward(reference)
    per_pull(0, near, False)
    assert per_pull(0, far, False) == pytest.approx(reward_from_distance(ot_distance(far, reference)))
    empty = OTReward(reference, RewardConfig(empty_distance=1.0))(3, np.empty((0, 3)), True)
    assert empty == pytest.approx(0.0)
    with pytest.raises(ConfigError, match="metric"):
        RewardConfig(metric="manhattan")


@pytest.mark.slow
def test_real_math_questions_score_higher_than_code_against_a_gsm8k_reference(builtin_splits):
    """With the real embedder: a set drawn like D_r (other GSM8K problems) beats MBPP problems."""
    from equal.embed.embedding import load_embedder
    from equal.embed.warmup import qa_text

    targets = builtin_splits
    model = load_embedder()

    def embed(items):
        texts = [qa_text({"question": i["question"], "answer": i["solution"]}) for i in items]
        return model.encode(texts, normalize_embeddings=True)

    reference = embed(targets["gsm8k_train"][:40])
    reward = OTReward(reference)
    math_reward = reward(0, embed(targets["gsm8k_train"][100:120]), True)
    code_reward = reward(1, embed(targets["mbpp_train"][:20]), True)
    assert math_reward > code_reward + 0.1
