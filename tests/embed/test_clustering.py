import numpy as np
import pytest
from scipy.linalg import sqrtm

from equal.embed.clustering import ClusterGaussians, cluster_table, elbow, fit_kmeans, gaussian_w2, pairwise_w2


def blobs(seed=0, n=60, centres=((0, 0, 0), (5, 5, 0), (0, 5, 5), (5, 0, 5))):
    rng = np.random.default_rng(seed)
    x = np.vstack([rng.normal(c, 0.3, size=(n, 3)) for c in centres])
    return x.astype(np.float32), np.repeat(np.arange(len(centres)), n)


def test_w2_closed_forms():
    m1, m2 = np.array([0.0, 0.0]), np.array([3.0, 4.0])
    identity = np.eye(2)
    assert gaussian_w2(m1, identity, m2, identity) == pytest.approx(5.0)  # equal covariances: distance of means
    # Commuting (diagonal) covariances: W2² = |m1-m2|² + Σ (sqrt(a_i) - sqrt(b_i))²
    a, b = np.diag([4.0, 9.0]), np.diag([1.0, 16.0])
    assert gaussian_w2(m1, a, m2, b) == pytest.approx(np.sqrt(25 + (2 - 1) ** 2 + (3 - 4) ** 2))


def test_w2_matches_the_sqrtm_formula_on_random_covariances():
    rng = np.random.default_rng(1)
    g1, g2 = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
    c1, c2 = g1 @ g1.T + np.eye(5), g2 @ g2.T + np.eye(5)
    m1, m2 = rng.normal(size=5), rng.normal(size=5)
    root = sqrtm(c1)
    expected = np.sqrt(np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * np.real(sqrtm(root @ c2 @ root))))
    assert gaussian_w2(m1, c1, m2, c2) == pytest.approx(expected, rel=1e-6)
    assert gaussian_w2(m1, c1, m1, c1) == pytest.approx(0.0, abs=1e-5)


def test_kmeans_is_deterministic_with_a_seed_and_finds_the_blobs():
    x, truth = blobs()
    first, _, _ = fit_kmeans(x, 4, seed=3)
    second, _, _ = fit_kmeans(x, 4, seed=3)
    assert (first == second).all()
    table = cluster_table(first, [f"d{t}" for t in truth])
    assert (table["purity"] == 1.0).all() and sorted(table["size"]) == [60] * 4


def test_elbow_finds_four_blobs_and_faiss_agrees():
    x, _ = blobs()
    k, curve = elbow(x, list(range(2, 10)), seed=0)
    assert k == 4 and curve["inertia"].is_monotonic_decreasing
    labels, _, _ = fit_kmeans(x, 4, seed=0, algorithm="faiss")
    assert len(set(labels)) == 4


def test_pairwise_w2_orders_clusters_by_distance():
    x, truth = blobs()
    distances = pairwise_w2(ClusterGaussians.fit(x, truth))
    assert np.allclose(distances, distances.T) and np.allclose(np.diag(distances), 0)
    assert distances[0, 1] == pytest.approx(np.sqrt(50), rel=0.05)  # centres (0,0,0) and (5,5,0)


def test_batched_w2_equals_the_pairwise_loop_and_far_pairs_can_be_skipped():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1200, 16))
    labels = rng.integers(0, 12, size=1200)
    x[labels < 4] += 3.0  # two groups of clusters far apart
    gaussians = ClusterGaussians.fit(x, labels)
    exact = pairwise_w2(gaussians, batched=False)
    assert np.allclose(pairwise_w2(gaussians, batched=True, device="cpu", block_bytes=16 * 16 * 8 * 3 * 5), exact)
    near = pairwise_w2(gaussians, only_below=2.0)
    skipped = np.isinf(near)
    assert skipped.any() and not skipped.all()
    assert np.array_equal(near[~skipped], exact[~skipped])  # the pairs computed are exact
    assert (exact[skipped] >= 2.0).all()  # a skipped pair is never one the threshold would have shared
