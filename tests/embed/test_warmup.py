"""The warm-up on a tiny embedder built from a config: fine-tuning must improve retrieval."""

import numpy as np
import pytest

from equal.embed.warmup import WarmupConfig, finetune_embedder, retrieval_metrics, split_documents


def tiny_embedder(tmp_path):
    """The smoke profile's random 1-layer BERT embedder (seeded), built into ``tmp_path``."""
    from sentence_transformers import SentenceTransformer

    from equal.weights import build_tiny_embedder

    return SentenceTransformer(str(build_tiny_embedder(tmp_path / "tiny-bert", seed=0)), device="cpu")


def synthetic_aligned_set(n=40, seed=0):
    """Documents about random topics, each with a QA pair that shares its rare words."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(400)]
    docs, qas = [], []
    for _ in range(n):
        topic = list(rng.choice(words, size=4, replace=False))
        filler = list(rng.choice(words, size=8))
        docs.append(" ".join(topic + filler))
        qas.append(f"Question: what about {topic[0]} {topic[1]}? Answer: {topic[2]} {topic[3]}")
    return docs, qas


def test_split_is_by_document_and_seeded():
    train, holdout = split_documents([f"d{i}" for i in range(10)], 0.2, seed=0)
    assert len(holdout) == 2 and not train & holdout
    assert split_documents([f"d{i}" for i in range(10)], 0.2, seed=0) == (train, holdout)


def test_retrieval_metrics_worked_example():
    docs = np.eye(3)
    qas = np.array([[1.0, 0, 0], [0, 0.2, 1.0], [1.0, 0.1, 0]])
    metrics = retrieval_metrics(docs, ["a", "b", "c"], qas, ["a", "b", "c"], ks=(1, 2))
    # ranks: a→1, b→2 (c scores higher), c→3
    ranked = {k: metrics[k] for k in ("recall@1", "recall@2", "mrr")}
    assert ranked == pytest.approx({"recall@1": 1 / 3, "recall@2": 2 / 3, "mrr": (1 + 1 / 2 + 1 / 3) / 3})
    # own cosines 1, 0.2, 0 (unnormalised here); margins 1-0=1, 0.2-1=-0.8, 0-1=-1
    assert metrics["own_cosine"] == pytest.approx(0.4) and metrics["margin"] == pytest.approx(-0.8 / 3)


@pytest.mark.slow
def test_finetuning_a_tiny_embedder_improves_retrieval(tmp_path):
    model = tiny_embedder(tmp_path)
    docs, qas = synthetic_aligned_set()
    ids = [f"d{i}" for i in range(len(docs))]

    def metrics():
        d = model.encode(docs, normalize_embeddings=True)
        q = model.encode(qas, normalize_embeddings=True)
        return retrieval_metrics(d, ids, q, ids)

    before = metrics()
    config = WarmupConfig(epochs=10, learning_rate=2e-3, batch_size=8, num_negatives=2, range_min=1, range_max=10)
    finetune_embedder(model, docs, qas, config, tmp_path / "tuned")
    after = metrics()
    assert after["mrr"] > before["mrr"] + 0.1, (before, after)
    assert (tmp_path / "tuned" / "modules.json").is_file()


@pytest.mark.slow
def test_finetuning_is_reproducible_with_a_seed(tmp_path):
    docs, qas = synthetic_aligned_set(n=24, seed=1)
    config = WarmupConfig(epochs=2, learning_rate=5e-4, batch_size=8, num_negatives=2, range_min=1, range_max=10)
    vectors = []
    for run in range(2):
        model = tiny_embedder(tmp_path / f"run{run}")
        finetune_embedder(model, docs, qas, config, tmp_path / f"tuned{run}")
        vectors.append(model.encode(docs[:5]))
    assert np.allclose(vectors[0], vectors[1], atol=1e-6)
