"""Corpus embeddings at scale: Ray Data ``map_batches`` with one embedder actor per device, sharded output.

At the paper's 1.46 M documents the corpus embedding is the one step that is neither an LLM call nor cheap on
one CPU. :func:`embed_corpus` streams the texts through a pool of :class:`Embedder` actors (one per GPU, or CPU
actors), writes the vectors as Parquet shards under ``out_dir`` (row number and vector per record), and reads
them back in corpus order. A finished run is recognised by the fingerprint in ``out_dir/_DONE`` (model identity
and texts), so a re-run reads the shards and a changed input recomputes them.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from equal.embed.embedding import load_embedder
from equal.fingerprint import fingerprint
from equal.io import write_text_atomic
from equal.scale.executor import require_ray


class Embedder:
    """A Ray Data callable class: one embedder loaded once per actor, then batch after batch."""

    def __init__(self, model: str, device: str | None, batch_size: int) -> None:
        self.model = load_embedder(model, device)
        self.batch_size = batch_size

    def __call__(self, batch: dict) -> dict:
        vectors = self.model.encode(list(batch["text"]), batch_size=self.batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)  # fmt: skip
        return {"row": batch["row"], "vector": list(vectors.astype(np.float32))}


def embed_corpus(
    texts: list[str],
    model: str,
    identity: str,
    out_dir: str | Path,
    workers: int = 1,
    gpus_per_worker: float = 0.0,
    batch_size: int = 256,
) -> np.ndarray:
    """Normalised float32 embeddings of ``texts`` (rows in order), computed by ``workers`` Ray actors of
    ``model`` (``gpus_per_worker`` > 0 puts each on a GPU) and stored as Parquet shards in ``out_dir``."""
    out_dir = Path(out_dir)
    key = fingerprint(embedder=identity, texts=texts).digest
    done = out_dir / "_DONE"
    if done.is_file() and json.loads(done.read_text(encoding="utf-8")).get("fingerprint") == key:
        return read_shards(out_dir, len(texts))
    if out_dir.exists():
        shutil.rmtree(out_dir)  # another input's shards, or a run cut short: never mixed with this one
    ray = require_ray()
    device = "cuda" if gpus_per_worker > 0 else "cpu"
    dataset = ray.data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)])
    vectors = dataset.map_batches(
        Embedder,
        fn_constructor_args=(model, device, batch_size),
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=workers,
        num_gpus=gpus_per_worker,
    )
    vectors.write_parquet(str(out_dir))
    write_text_atomic(done, json.dumps({"fingerprint": key, "texts": len(texts), "identity": identity}))
    return read_shards(out_dir, len(texts))


def read_shards(out_dir: str | Path, n: int) -> np.ndarray:
    """The vectors of a finished :func:`embed_corpus` run, in row order (checked complete)."""
    import pyarrow.dataset as ds

    table = ds.dataset(str(out_dir), format="parquet").to_table(columns=["row", "vector"])
    rows = table.column("row").to_numpy()
    vectors = np.stack(table.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
    if len(rows) != n or len(np.unique(rows)) != n:
        raise ValueError(f"{out_dir}: {len(rows)} embedded rows for {n} texts; delete the folder to recompute")
    return vectors[np.argsort(rows)]
