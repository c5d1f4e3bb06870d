"""The per-text embedding store: append-only shards, amortised growth, legacy files read, compaction."""

from __future__ import annotations

import numpy as np
import pytest

from equal.embed.embedding import EmbeddingStore, load_embedder
from equal.weights import TINY_EMBEDDER


def _texts(n: int, offset: int = 0) -> list[str]:
    return [f"Question {i}: what is {i} + {i}? Answer: {2 * i}." for i in range(offset, offset + n)]


@pytest.mark.slow
def test_store_appends_shards_and_never_rewrites_saved_ones(tmp_path):
    model = load_embedder(TINY_EMBEDDER)
    store = EmbeddingStore(model, "tiny", cache=tmp_path, save_every=10**9)
    first = store.get(_texts(5))
    assert np.allclose(first, model.encode(_texts(5), normalize_embeddings=True), atol=1e-5)
    store.save()
    (shard,) = sorted(store.folder.glob("shard-*.npz"))
    written = shard.read_bytes()
    buffer = store._vectors
    store.get(_texts(3, offset=5))
    assert store._vectors is buffer  # room left: no copy of the whole array
    store.save()
    store.save()  # nothing new: no empty shard
    shards = sorted(store.folder.glob("shard-*.npz"))
    assert len(shards) == 2 and shards[0].read_bytes() == written
    with np.load(shards[1]) as saved:
        assert len(saved["keys"]) == 3  # only the new rows

    reopened = EmbeddingStore(model, "tiny", cache=tmp_path)
    assert len(reopened) == 8
    assert np.array_equal(reopened.get(_texts(8)), store.get(_texts(8)))


def test_legacy_whole_file_store_is_read_and_many_shards_are_merged(tmp_path, monkeypatch):
    model = load_embedder(TINY_EMBEDDER)
    old = EmbeddingStore(model, "tiny", cache=tmp_path)
    vectors = old.get(_texts(4))
    legacy = old._legacy
    np.savez(legacy, keys=np.array([EmbeddingStore._key(t) for t in _texts(4)]), vectors=vectors)
    monkeypatch.setattr(EmbeddingStore, "max_shards", 3)
    store = EmbeddingStore(model, "tiny", cache=tmp_path)
    assert len(store) == 4
    for n in range(4):  # four saves: more shards than max_shards
        store.get(_texts(1, offset=10 + n))
        store.save()
    merged = EmbeddingStore(model, "tiny", cache=tmp_path)
    assert len(merged) == 8 and not legacy.exists()
    assert len(sorted(merged.folder.glob("shard-*.npz"))) == 1
    assert np.allclose(merged.get(_texts(4)), vectors)
