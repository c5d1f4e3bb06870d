"""One runner for every selection method: same budget, extractor, cache, ledger, read-back and resume.

:class:`MethodRunner` is the selection stage's scheduler. It is a :class:`~equal.select.context.SelectionContext`
(what every method reads) that fingerprints each run, reads a finished one back from its
:class:`~equal.select.store.RunStore` or makes it, and runs several at once where the extractor allows.

A finished run is read back only when its fingerprint — the content of the corpus, the clustering,
D_r and the warm-up, the extractor, prompt version and decoding, the policy and reward — equals the
one the current inputs give; otherwise the folder is stale, it says which parts changed, and the
run is redone (the LLM cache answers the calls already paid for). An unfinished bandit run with the
same fingerprint resumes from its round log.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from equal.artifacts import Artifacts
from equal.errors import ConfigError
from equal.fingerprint import Fingerprint, fingerprint
from equal.llm.extract import PAIRS_VERSION, ExtractionReport, QAExtractor
from equal.llm.ledger import CallRecord, CostLedger
from equal.select.context import SelectionContext, task_texts
from equal.select.influence import GradientScorer
from equal.select.loop import ClusterPool
from equal.select.methods import Method, RunRequest, gamma_label, get_method
from equal.select.perplexity import PerplexityScorer
from equal.select.reward import RewardConfig
from equal.select.signals import cluster_oracle_rewards
from equal.select.store import MethodRun, RunStore
from equal.select.summary import RunSummary

__all__ = ["MethodRun", "MethodRunner", "task_texts"]


def _gradient_scorer(model: str, warmup_pairs: list[dict]) -> GradientScorer:
    scorer = GradientScorer(model)
    scorer.prepare(warmup_pairs)
    return scorer


@dataclass
class MethodRunner(SelectionContext):
    """The selection stage's scheduler over its context: build it from a profile's files with :meth:`from_artifacts`,
    then :meth:`run` one method or :meth:`run_many`."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.store = RunStore(self.artifacts, self.log)
        self._folder_locks: dict[Path, threading.Lock] = {}
        self._folder_locks_guard = threading.Lock()

    @classmethod
    def from_artifacts(
        cls,
        artifacts: Artifacts,
        extractor: QAExtractor,
        targets: list[str],
        policies: dict[str, dict],
        reward: dict | None = None,
        perplexity_model: str | None = None,
        influence_model: str | None = None,
        embedding_device: str | None = None,
        **options,
    ) -> MethodRunner:
        """A runner over a profile's files: corpus (01), warm-up and embedders (02), clusterings (03); the
        embedders run on ``embedding_device`` (default: the GPU when there is one)."""
        from equal.data.tasks import select_tasks
        from equal.embed.embedding import EmbeddingStore, load_embedder

        select_tasks(artifacts.load_tasks(), targets)  # each target declared, with a reference set
        info = artifacts.load_embedder_info()
        clusterings = {name: artifacts.load_clustering(name) for name in ("tuned", "untuned")}
        warm_pairs, warm_ledger = artifacts.load_warmup()
        stores = {
            "tuned": EmbeddingStore(load_embedder(str(info.tuned), embedding_device), info.tuned_identity),
            "untuned": EmbeddingStore(load_embedder(info.base, embedding_device), info.base_identity),
        }
        return cls(
            corpus=artifacts.load_corpus(),
            labels={name: c.labels for name, c in clusterings.items()},
            distances={name: c.w2 for name, c in clusterings.items()},
            stores=stores,
            references={t: artifacts.load_reference(t) for t in targets},
            extractor=extractor,
            policies=policies,
            artifacts=artifacts,
            warmup_pairs=warm_pairs,
            warmup_ledger=warm_ledger,
            perplexity=PerplexityScorer(perplexity_model) if perplexity_model else None,
            influence=_gradient_scorer(influence_model, warm_pairs) if influence_model else None,
            reward_config=RewardConfig(**(reward or {})),
            **options,
        )

    def pool_sizes(self, method: str) -> np.ndarray:
        """Candidate documents per cluster a method starts from (the warm-up's excluded where it uses it)."""
        spec = get_method(method)
        excluded = self.warmup_mask() if spec.uses_warmup else None
        return ClusterPool(self.labels[spec.clustering], self.n_clusters, 0, excluded).sizes()

    def budget_table(self, gammas: list[float]) -> pd.DataFrame:
        """Per budget: documents, clusters, pulls per cluster and rounds."""
        k = self.n_clusters
        return pd.DataFrame([{"γ": gamma_label(g), "budget (documents)": self.budget(g), "clusters": k,
                              "documents per pull": self.docs_per_pull, "clusters per round": self.arms_per_round,
                              "pulls per cluster (mean)": self.budget(g) / self.docs_per_pull / k,
                              "rounds (about)": int(np.ceil(self.budget(g) / self.docs_per_pull / self.arms_per_round))}
                             for g in gammas])  # fmt: skip

    def cluster_oracles(self, all_pairs: list[dict], targets: list[str]) -> dict[tuple[str, str], np.ndarray]:
        """Each cluster's OT reward if all of its documents were extracted (from All's pairs),
        per (target, clustering): the values regret is measured against."""
        oracles = {}
        for target in targets:
            for name in ("tuned", "untuned"):
                doc_cluster = {d["id"]: int(c) for d, c in zip(self.corpus, self.labels[name], strict=True)}
                reference = self.stores[name].get(self.reference_texts(target))
                oracles[target, name] = cluster_oracle_rewards(
                    all_pairs, doc_cluster, self.n_clusters, reference, self.stores[name], self.reward_config
                )
        return oracles

    # ------------------------------------------------------------------ fingerprints and folders
    def folder(self, method: str, target: str, gamma: float, seed: int) -> Path:
        """Where a run's files live (All does not depend on target, γ or seed)."""
        return self.store.folder(method, target, gamma, seed)

    def fingerprint(self, method: str, target: str, gamma: float, seed: int) -> Fingerprint:
        """Content fingerprint of a run: everything its QA set and costs depend on."""
        spec = get_method(method)
        parts: dict = {
            "method": spec.name,
            "kind": spec.kind,
            "corpus": self._digests["corpus"],
            "extractor": self.extractor.backend.model_id,
            "answers": getattr(self.extractor.cache, "identity", ""),  # local calls or a profile's shipped answers
            "extraction": self.extractor.config,
            "prompt_version": self.extractor.config.prompt_version,
            "refinement": self.extractor.refinement_identity,
            "pairs_version": PAIRS_VERSION,
        }
        if not spec.shared:
            parts |= {"target": target, "gamma": gamma, "seed": seed}
        if spec.uses_warmup:
            parts |= {"warmup": self._digests["warmup"], "include_warmup_pairs": self.include_warmup_pairs}
        request = RunRequest(target, gamma, seed, Path(), Fingerprint("", {}))
        return fingerprint(**parts, **spec.fingerprint_parts(self, request))

    # ------------------------------------------------------------------ running
    def run_many(self, jobs: list[tuple[str, str, float, int]], parallel: int = 1) -> list[MethodRun]:
        """Run (or read back) every ``(method, target, γ, seed)``; with ``parallel`` > 1, that many at once on
        threads whose extraction overlaps (it needs an extractor callable from several threads: the Ray
        executor's). Results are those of one-by-one runs; only which run paid a call shared by two (``cached`` in
        their ledgers) can differ."""
        if parallel <= 1 or len(jobs) <= 1:
            return [self.run(*job) for job in jobs]
        if not getattr(self.extractor, "thread_safe", False):
            raise ConfigError("parallel runs need an extractor that several threads can call (the Ray executor: "
                              "llm.executor kind ray); the local extractor makes one call at a time")  # fmt: skip
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="run") as pool:
            return list(pool.map(lambda job: self.run(*job), jobs))

    def _folder_lock(self, folder: Path) -> threading.Lock:
        with self._folder_locks_guard:
            return self._folder_locks.setdefault(folder, threading.Lock())

    def run(self, method: str, target: str, gamma: float, seed: int) -> MethodRun:
        """Run one method (or read back its finished run with the same fingerprint)."""
        spec = get_method(method)
        folder = self.folder(method, target, gamma, seed)
        folder_lock = self._folder_lock(folder)
        with self._driver.released():  # one run per folder at a time; never wait for it inside the driver lock
            folder_lock.acquire()
        try:
            with self._driver:
                previous = self._report
                previous_drafts = getattr(self._state, "drafts", None)
                try:
                    request = RunRequest(target, gamma, seed, folder, self.fingerprint(method, target, gamma, seed))
                    return self._run(spec, method, request)
                finally:
                    self._state.report = previous  # a nested run (All inside Perplexity) keeps its own report
                    self._state.drafts = previous_drafts
        finally:
            folder_lock.release()

    def _run(self, spec: Method, method: str, request: RunRequest) -> MethodRun:
        target, gamma, seed = request.target, request.gamma, request.seed
        finished = self.store.read_back(spec, request)
        if finished is not None:
            return finished
        folder = request.folder  # stamped with the run's fingerprint by read_back
        tick = time.perf_counter()
        ledger = CostLedger(folder / "ledger.jsonl")
        warm_pairs: list[dict] = []
        if spec.uses_warmup:
            for row in self.warmup_ledger:
                # charged again, but not made again by this run: cached=True keeps new_calls honest
                ledger.add(CallRecord(**{**row, "method": method, "stage": f"warmup-{row['stage']}", "cached": True}))
            if self.include_warmup_pairs:
                labels = self.labels[spec.clustering]
                # the warm-up refines every kind (it aligns the embedder); a training set takes only the kinds kept
                kinds = self.extractor.refiner.config.kinds if getattr(self.extractor, "refiner", None) else None
                warm_pairs = [{**p, "method": method, "cluster": int(labels[self._index[p["doc_id"]]]), "round": -1}
                              for p in self.warmup_pairs if p["doc_id"] in self._index
                              and (kinds is None or p.get("kind") in kinds)]  # fmt: skip
        self._state.report = ExtractionReport()  # this run's extraction outcomes (replayed rounds count again)
        self._state.drafts = []
        selection = spec.select(self, request, ledger)
        pairs = selection.pairs
        if selection.pulls is None:  # provenance like the bandit's: the document's (tuned) cluster, no round
            tuned = self.labels.get("tuned")  # none where the runner has no clustering (equal select's Random, All)
            pairs = [
                {
                    **p,
                    "cluster": int(tuned[self._index[p["doc_id"]]])
                    if tuned is not None and p["doc_id"] in self._index
                    else None,
                    "round": None,
                }
                for p in pairs
            ]  # fmt: skip  (Rewriting's pairs come from no document)
        pairs = warm_pairs + pairs
        domains = [self.corpus[i]["domain"] for i in selection.indices]
        if spec.uses_warmup:
            domains += [self.corpus[self._index[d]]["domain"] for d in sorted(self._warmup_docs) if d in self._index]
        costs = ledger.summary().to_dict("records")[0] if ledger.records else {}
        summary = RunSummary(
            fingerprint=request.fingerprint.digest,
            method=method,
            target=target,
            gamma=gamma,
            seed=seed,
            budget=self.budget(gamma),
            warmup_documents=len(self._warmup_docs) if spec.uses_warmup else 0,
            warmup_pairs_included=bool(warm_pairs),
            pairs=len(pairs),
            llm_calls=int(costs.get("calls", 0)),
            tokens=int(costs.get("tokens", 0)),
            flops_model=float(costs.get("flops_model", 0.0)),
            flops_reference=float(costs.get("flops_reference", 0.0)),
            new_llm_calls=int(costs.get("new_calls", 0)),
            wall_s=round(time.perf_counter() - tick, 2),
            loop_documents=len(selection.indices),
            documents_by_domain=dict(sorted(Counter(domains).items())),
            degenerate_pairs_dropped=self._report.degenerate_pairs,
            token_limit_documents=self._report.token_limit_documents,
            draft_pairs=self._report.draft_pairs,
            refinement=dict(sorted(self._report.refinement.items())),
            quality_gate_dropped=dict(sorted(self._report.gate_dropped.items())),
            details=selection.details,
        )
        ledger.write_summary(folder / "ledger_summary.json", {"method": method})
        for cache in (*self.stores.values(), self.perplexity):  # vectors and scores computed by this run (gradient
            # features are written as they are computed)
            if hasattr(cache, "save"):
                cache.save()
        self.store.write(folder, pairs, self._state.drafts, selection.pulls, summary)
        return MethodRun(method, target, gamma, seed, pairs, summary, selection.pulls, folder)
