"""Exact and near-duplicate detection (MinHash LSH from ``datasketch``).

Documents are offered one at a time; the first of a group of (near-)duplicates is kept and the
later ones are reported as duplicates, so the result depends only on the order of offering.
"""

from __future__ import annotations

import hashlib
import re

from datasketch import MinHash, MinHashLSH

_WORD = re.compile(r"\w+")


def normalized_words(text: str) -> list[str]:
    """Lower-cased word tokens (Unicode letters, digits, underscore)."""
    return _WORD.findall(text.lower())


class Deduplicator:
    """Stateful filter: :meth:`check` says ``"exact"``, ``"near"`` or ``None`` (new) per document.

    Parameters
    ----------
    threshold:
        Estimated Jaccard similarity of word shingles above which two documents are near-duplicates.
    num_perm:
        Number of MinHash permutations (precision of the Jaccard estimate).
    shingle_size:
        Words per shingle.
    seed:
        Seed of the MinHash permutations.
    """

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, shingle_size: int = 3, seed: int = 1) -> None:
        self.threshold = threshold
        self.num_perm = num_perm
        self.shingle_size = shingle_size
        self.seed = seed
        self.exact_: set[str] = set()
        self.lsh_ = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self._template = MinHash(num_perm=num_perm, seed=seed)

    def _minhash(self, words: list[str]) -> MinHash:
        k = self.shingle_size
        shingles = {" ".join(words[i : i + k]) for i in range(max(1, len(words) - k + 1))}
        minhash = self._template.copy()
        minhash.update_batch([s.encode("utf-8") for s in shingles])
        return minhash

    def check(self, key: str, text: str) -> str | None:
        """Return ``"exact"``/``"near"`` if ``text`` duplicates an earlier document, else register it."""
        words = normalized_words(text)
        digest = hashlib.sha1(" ".join(words).encode("utf-8")).hexdigest()
        if digest in self.exact_:
            return "exact"
        minhash = self._minhash(words)
        if self.lsh_.query(minhash):
            return "near"
        self.exact_.add(digest)
        self.lsh_.insert(key, minhash)
        return None
