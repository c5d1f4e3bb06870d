import numpy as np
import pytest

from equal.errors import ConfigError
from equal.reward import cost_matrix, ot_distance, reward_from_distance


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
