"""What every selection method reads: the read-only context of a selection stage.

The corpus, its clusterings and embedders, the reference sets, the warm-up, the extractor and the scorers, with the
services built on them (budgets, digests for fingerprints, held-out embeddings, extraction charged to a run's
ledger). A method receives the context (:class:`equal.select.runner.MethodRunner` is one) and nothing else; the
runner adds the scheduling of runs and their store (:mod:`equal.select.store`).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from equal.artifacts import Artifacts
from equal.embed.warmup import qa_text
from equal.errors import ConfigError
from equal.fingerprint import Fingerprint, arrays_digest, records_digest
from equal.llm.extract import DocumentResult, ExtractionReport, QAExtractor, draft_records, pairs_records
from equal.llm.ledger import CostLedger
from equal.select.influence import GradientScorer
from equal.select.perplexity import PerplexityScorer
from equal.select.reward import RewardConfig
from equal.select.rewriting import protected_items


def task_texts(records: list[dict]) -> list[str]:
    """Task items (D_r, held-out slices) as QA texts — question and worked solution — like extracted pairs."""
    return [qa_text({"question": r["question"], "answer": r.get("solution") or r["answer"]}) for r in records]


class DriverLock:
    """Serialises a runner's driver-side work (policies, rewards, embeddings, scorers, files) across threads; a
    thread waiting on extraction workers steps out of it (:meth:`released`), so only extraction overlaps."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._depth = threading.local()

    def __enter__(self) -> DriverLock:
        self._lock.acquire()
        self._depth.n = getattr(self._depth, "n", 0) + 1
        return self

    def __exit__(self, *exc) -> None:
        self._depth.n -= 1
        self._lock.release()

    @contextmanager
    def released(self):
        """Leave the lock entirely (however deeply this thread holds it) for the block, then take it back."""
        held = getattr(self._depth, "n", 0)
        for _ in range(held):
            self._lock.release()
        self._depth.n = 0
        try:
            yield
        finally:
            for _ in range(held):
                self._lock.acquire()
            self._depth.n = held


@dataclass
class SelectionContext:
    """Everything the methods share: corpus, clusterings, embedders, reference sets, extractor, scorers.

    ``labels``/``distances``/``stores`` are keyed by clustering (``"tuned"``, ``"untuned"``); ``references`` by
    target: the D_r records. Read-only during runs, apart from the caches of its embedders and scorers and the
    per-thread extraction report of the run in progress.
    """

    corpus: list[dict]
    labels: dict[str, np.ndarray]
    distances: dict[str, np.ndarray]
    stores: dict[str, object]
    references: dict[str, list[dict]]
    extractor: QAExtractor
    policies: dict[str, dict]
    artifacts: Artifacts
    warmup_pairs: list[dict] = field(default_factory=list)
    warmup_ledger: list[dict] = field(default_factory=list)
    perplexity: PerplexityScorer | None = None
    influence: GradientScorer | None = None  # prepared with the warm-up's pairs (its LoRA warm-up set)
    reward_config: RewardConfig = field(default_factory=RewardConfig)
    docs_per_pull: int = 1
    arms_per_round: int = 1
    include_warmup_pairs: bool = True
    progress: bool = True
    log: bool = True  # say when a stale run is redone, and why

    def __post_init__(self) -> None:
        self._index = {d["id"]: i for i, d in enumerate(self.corpus)}
        self._warmup_docs = {row["doc_id"] for row in self.warmup_ledger}  # one row per call, naming its document
        self._digests = {
            "corpus": records_digest(self.corpus),
            "warmup": records_digest([*self.warmup_pairs, *self.warmup_ledger]),
        }
        self._clustering_digests: dict[str, str] = {}
        self._protected: list[tuple[str, str]] | None = None
        self._heldout: dict[str, np.ndarray] = {}  # held-out items' embeddings per target (distance bands)
        self._state = threading.local()  # the extraction report of the run this thread is making
        self._driver = DriverLock()

    @property
    def _report(self) -> ExtractionReport | None:
        return getattr(self._state, "report", None)

    def budget(self, gamma: float) -> int:
        """γ·|D_c| documents (at least one)."""
        return max(1, round(gamma * len(self.corpus)))

    def reference_texts(self, target: str) -> list[str]:
        """D_r as QA texts (question + worked solution), embedded like extracted pairs."""
        if target not in self.references:
            raise ConfigError(f"no reference set for target {target!r}; have {sorted(self.references)}")
        return task_texts(self.references[target])

    def policy_config(self, method: str) -> dict:
        """The policy parameters of a bandit method (from the profile's ``policies``)."""
        if method not in self.policies:
            raise ConfigError(f"no policy configured for {method!r}; configured: {sorted(self.policies)}")
        return self.policies[method]

    def reference_digest(self, target: str) -> str:
        """Content digest of D_r of ``target``."""
        if target not in self.references:
            raise ConfigError(f"no reference set for target {target!r}; have {sorted(self.references)}")
        return records_digest(self.references[target])

    def protected_items(self) -> list[tuple[str, str]]:
        """(id, text) of every evaluation item of the profile (read once): what generated pairs must not overlap."""
        if self._protected is None:
            self._protected = protected_items(self.artifacts)
        return self._protected

    def target_domain(self, target: str) -> str | None:
        """The declared domain of ``target`` (None when the profile has no task declarations, as in unit tests)."""
        try:
            return self.artifacts.load_tasks()[target].domain
        except (FileNotFoundError, ConfigError, KeyError):
            return None

    def heldout_embeddings(self, target: str) -> np.ndarray:
        """The target's held-out items (never D_r) embedded with the base embedder, as the quality signals are."""
        if target not in self._heldout:
            self._heldout[target] = self.stores["untuned"].get(task_texts(self.artifacts.load_heldout(target)))
        return self._heldout[target]

    def heldout_digest(self, target: str) -> str:
        """Content digest of the target's held-out items."""
        return records_digest(self.artifacts.load_heldout(target))

    def influence_identity(self) -> str:
        """The gradient scorer's identity: base model, warm-up pairs, configuration ('' when there is none)."""
        return self.influence.identity if self.influence is not None else ""

    def perplexity_identity(self) -> str:
        """The perplexity scorer's model identity ('' when there is none)."""
        return self.perplexity.identity if self.perplexity is not None else ""

    def clustering_digest(self, name: str) -> str:
        """Content digest of a clustering's labels and W2 distances."""
        if name not in self._clustering_digests:
            self._clustering_digests[name] = arrays_digest({"labels": self.labels[name], "w2": self.distances[name]})
        return self._clustering_digests[name]

    def warmup_mask(self) -> np.ndarray:
        """Documents already extracted by the warm-up (never candidates for the methods that use it)."""
        mask = np.zeros(len(self.corpus), dtype=bool)
        for doc_id in self._warmup_docs:
            if doc_id in self._index:
                mask[self._index[doc_id]] = True
        return mask

    def extract(self, method: str, indices: list[int], ledger: CostLedger, progress: bool | None = None) -> list[dict]:
        """Extract QA pairs from corpus documents ``indices``, charging ``ledger``; one record per pair."""
        docs = [self.corpus[i] for i in indices]
        show = self.progress if progress is None else progress
        report = self._report
        with self._driver.released():  # other runs' driver work goes on while this one waits on the workers
            results = self.extractor.extract(docs, method=method, ledger=ledger, progress=show, report=report)
        self._keep_drafts(results, method)
        return pairs_records(results, docs, method)

    def _keep_drafts(self, results: list[DocumentResult], method: str) -> None:
        """Add the results' pairs before refinement and the quality gate to the run's drafts (drafts.jsonl)."""
        drafts = getattr(self._state, "drafts", None)
        if drafts is not None:
            drafts.extend({**d, "method": method} for d in draft_records(results))

    def refine_generated(self, method: str, pairs: list[dict], ledger: CostLedger) -> list[dict]:
        """Refine and gate pairs that come from no document (Rewriting's, written from D_r) exactly as extracted
        pairs are — the same refiner, prompt, verification and quality gate, counted in the run's report and
        drafts — so every method's set is made fit for tuning alike. Each pair keeps its own fields (``doc_id``,
        ``seed_item``); the refiner is shown no document."""
        docs = [{"id": p["doc_id"], "text": ""} for p in pairs]
        results = [DocumentResult(p["doc_id"], [{"question": p["question"], "answer": p["answer"]}], "ok",
                                  hit_limit=bool(p.get("hit_token_limit"))) for p in pairs]  # fmt: skip
        with self._driver.released():
            self.extractor.finish(docs, results, method, ledger)
        if self._report is not None:
            for result in results:
                self._report.add(result)
        self._keep_drafts(results, method)
        # the refined question and answer over the generated ones; a pair the refiner did not touch has no
        # hit_token_limit of its own but its result's
        return [{**pair, **finished, "hit_token_limit": bool(finished.get("hit_token_limit", result.hit_limit))}
                for pair, result in zip(pairs, results, strict=True) for finished in result.pairs]  # fmt: skip

    @property
    def n_clusters(self) -> int:
        """k of the (tuned) clustering."""
        return int(self.labels["tuned"].max()) + 1

    # a method builds on other methods' runs (Avg-sim filters All's pairs): the runner that schedules runs provides
    def fingerprint(self, method: str, target: str, gamma: float, seed: int) -> Fingerprint:
        """The content fingerprint of a run (provided by :class:`equal.select.runner.MethodRunner`)."""
        raise NotImplementedError("a selection context runs no method: use equal.select.runner.MethodRunner")

    def run(self, method: str, target: str, gamma: float, seed: int) -> Any:
        """Run (or read back) another method's run (provided by :class:`equal.select.runner.MethodRunner`)."""
        raise NotImplementedError("a selection context runs no method: use equal.select.runner.MethodRunner")
