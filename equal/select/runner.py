"""One runner for every selection method: same budget, extractor, cache, ledger, read-back and resume.

Each run of a method writes one folder (named by :class:`~equal.artifacts.Artifacts`)::

    run.json            the run's content fingerprint and its parts (written first)
    pairs.jsonl         its QA set, one pair per line, with document id, source, domain, cluster, round
                        (refined pairs also with their draft, reference answer, kind and refinement outcome)
    drafts.jsonl        every pair as extracted, before refinement and the quality gate
    ledger.jsonl        every LLM call charged to it (cached calls included: cost is what the method
                        would pay on its own); warm-up calls first for the methods that use the warm-up
    rounds.jsonl        the bandit's checkpoint log (bandit methods)
    pulls.csv           one row per pull: round, cluster, documents, pairs, reward (bandit methods)
    summary.json        counts and costs; written last, so its presence means the run is complete

A finished run is read back only when its fingerprint — the content of the corpus, the clustering,
D_r and the warm-up, the extractor, prompt version and decoding, the policy and reward — equals the
one the current inputs give; otherwise the folder is stale, it says which parts changed, and the
run is redone (the LLM cache answers the calls already paid for). An unfinished bandit run with the
same fingerprint resumes from its round log.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from equal.artifacts import Artifacts
from equal.embed.warmup import qa_text
from equal.errors import ConfigError
from equal.fingerprint import Fingerprint, arrays_digest, fingerprint, records_digest, reuse_or_reset
from equal.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from equal.llm.extract import (
    PAIRS_VERSION,
    DocumentResult,
    ExtractionReport,
    QAExtractor,
    draft_records,
    pairs_records,
)
from equal.llm.ledger import CallRecord, CostLedger
from equal.select.influence import GradientScorer
from equal.select.loop import ClusterPool
from equal.select.methods import Method, RunRequest, gamma_label, get_method
from equal.select.perplexity import PerplexityScorer
from equal.select.reward import RewardConfig
from equal.select.rewriting import protected_items
from equal.select.signals import cluster_oracle_rewards
from equal.select.summary import RunSummary


def _gradient_scorer(model: str, warmup_pairs: list[dict]) -> GradientScorer:
    scorer = GradientScorer(model)
    scorer.prepare(warmup_pairs)
    return scorer


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
class MethodRun:
    """A finished run of one method: its QA set, pulls (bandit methods) and summary."""

    method: str
    target: str
    gamma: float
    seed: int
    pairs: list[dict]
    summary: RunSummary
    pulls: pd.DataFrame | None = None
    folder: Path | None = None
    reused: bool = False  # read back from a finished run with the same fingerprint

    def ledger(self) -> list[dict]:
        """Every LLM call charged to this run."""
        return read_jsonl(self.folder / "ledger.jsonl") if self.folder else []


@dataclass
class MethodRunner:
    """Everything the methods share: corpus, clusterings, embedders, reference sets, extractor.

    ``labels``/``distances``/``stores`` are keyed by clustering (``"tuned"``, ``"untuned"``);
    ``references`` by target: the D_r records. Build it from a profile's files with :meth:`from_artifacts`.
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
        self._folder_locks: dict[Path, threading.Lock] = {}
        self._folder_locks_guard = threading.Lock()

    @property
    def _report(self) -> ExtractionReport | None:
        return getattr(self._state, "report", None)

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

    # ------------------------------------------------------------------ shared services
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
        spec = get_method(method)
        return self.artifacts.selection_run_dir(method, target, gamma, seed, shared=spec.shared)

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

    def _read_back(self, spec: Method, request: RunRequest) -> MethodRun | None:
        """The finished run in ``request.folder`` when its fingerprint matches (:func:`equal.fingerprint.
        reuse_or_reset`: a stale folder is cleared and said so, an unfinished one kept for the bandit to resume)."""
        folder = request.folder
        label = f"{spec.name} · {request.target} · γ={request.gamma:g} · seed {request.seed}"  # paid calls: cached
        if not reuse_or_reset(folder, request.fingerprint, "summary.json", label, stamp="run.json",
                              log=print if self.log else None):  # fmt: skip
            return None
        done = folder / "summary.json"
        summary = RunSummary.from_json(json.loads(done.read_text(encoding="utf-8")))
        pulls = pd.read_csv(folder / "pulls.csv") if (folder / "pulls.csv").is_file() else None
        if spec.shared:  # one run serves every target/γ/seed: label it for the caller
            summary = summary.for_request(request.target, request.gamma, request.seed)
        return MethodRun(spec.name, request.target, request.gamma, request.seed,
                         read_jsonl(folder / "pairs.jsonl"), summary, pulls, folder, reused=True)  # fmt: skip

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
        finished = self._read_back(spec, request)
        if finished is not None:
            return finished
        folder = request.folder  # stamped with the run's fingerprint by _read_back
        tick = time.perf_counter()
        ledger = CostLedger(folder / "ledger.jsonl")
        warm_pairs: list[dict] = []
        if spec.uses_warmup:
            for row in self.warmup_ledger:
                # charged again, but not made again by this run: cached=True keeps new_calls honest
                ledger.add(CallRecord(**{**row, "method": method, "stage": f"warmup-{row['stage']}", "cached": True}))
            if self.include_warmup_pairs:
                labels = self.labels[spec.clustering]
                warm_pairs = [{**p, "method": method, "cluster": int(labels[self._index[p["doc_id"]]]), "round": -1}
                              for p in self.warmup_pairs if p["doc_id"] in self._index]  # fmt: skip
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
        write_jsonl_atomic(folder / "pairs.jsonl", pairs)
        write_jsonl_atomic(folder / "drafts.jsonl", self._state.drafts)
        if selection.pulls is not None:
            selection.pulls.to_csv(folder / "pulls.csv", index=False)
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
        write_json_atomic(folder / "summary.json", summary.to_json())
        return MethodRun(method, target, gamma, seed, pairs, summary, selection.pulls, folder)
