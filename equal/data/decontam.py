"""Decontamination: drop corpus units that share a word n-gram with any evaluation item.

This follows the usual n-gram overlap test (GPT-3 used 13-grams): both sides are lower-cased
word tokens, and a single shared n-gram is enough to flag a unit.
"""

from __future__ import annotations

from collections.abc import Iterable

from equal.data.dedup import normalized_words


def word_ngrams(text: str, n: int) -> set[str]:
    """The set of word n-grams of ``text`` (a text shorter than n words gives its whole text)."""
    words = normalized_words(text)
    if len(words) < n:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


class Decontaminator:
    """Index the n-grams of evaluation items; :meth:`match` finds the items a text overlaps.

    Items shorter than ``n`` words are indexed as their whole text, which only matches a unit
    whose whole text is the same — so a short item cannot flag everything.
    """

    def __init__(self, n: int = 13) -> None:
        self.n = n
        self.index_: dict[str, str] = {}  # n-gram -> id of the first evaluation item holding it

    def fit(self, items: Iterable[tuple[str, str]]) -> Decontaminator:
        """Index ``(item id, text)`` pairs."""
        for item_id, text in items:
            for gram in word_ngrams(text, self.n):
                self.index_.setdefault(gram, item_id)
        return self

    def match(self, text: str) -> str | None:
        """Id of an evaluation item sharing an n-gram with ``text``, or None when it is clean."""
        words = normalized_words(text)
        n = self.n
        for i in range(max(1, len(words) - n + 1)):
            hit = self.index_.get(" ".join(words[i : i + n]))
            if hit is not None:
                return hit
        return None
