"""Every selection method of the paper — EQUAL, its ablations and the baselines — run the same way.

Each method spends (at most) the same document budget γ·|D_c| through the same extractor, cache
and cost ledger, and writes one folder per (target, γ, method, seed)::

    pairs.jsonl         its QA set, one pair per line, with document id, source, domain, cluster, round
    ledger.jsonl        every LLM call charged to it (cached calls included: cost is what the method
                        would pay on its own); warm-up calls first for the methods that use the warm-up
    rounds.jsonl        the bandit's checkpoint log (bandit methods)
    pulls.csv           one row per pull: round, cluster, documents, pairs, reward (bandit methods)
    summary.json        counts and costs; written last, so its presence means the run is complete

A finished run is read back instead of re-run; an unfinished bandit run resumes from its log.

Methods (the paper's names, used in every table):

=========================  ===========================================================================
EQUAL                      bandit over warm-up-tuned clusters, OT reward, the configured policy
EQUAL (authors' code)      same, with the authors' code's policy (fixed α, count + 1, per-pull
                           reward, reward sharing)
EQUAL w/o warm-up          EQUAL over clusters of the untuned embeddings, no warm-up cost or pairs
EQUAL w/o MAB              one-shot OT ranking of the clusters (each pulled once, then fixed order)
EQUAL w/o exploration      greedy on R (no exploration term)
Thompson sampling          an extra policy: Gaussian Thompson sampling on R
ε-greedy                   an extra policy
Uniform                    round-robin over the (tuned) clusters, no reward
Perplexity-MAB             EQUAL's bandit with the mean perplexity of the pairs under the base model as
                           reward (lower perplexity = higher reward)
Random                     γ·|D_c| documents drawn at random
All                        every document (its cost does not depend on γ or the seed)
Avg-sim                    All's pairs, keeping the ones most similar to D_r (mean cosine), as many
                           as EQUAL extracted at the same γ and seed; costs what All costs
=========================  ===========================================================================
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from equal.errors import ConfigError
from equal.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from equal.llm.extract import QAExtractor, pairs_records
from equal.llm.ledger import CallRecord, CostLedger
from equal.perplexity import PerplexityScorer
from equal.policies import make_policy
from equal.reward import OTReward, RewardConfig
from equal.selection import LoopConfig, run_loop
from equal.warmup import qa_text


@dataclass(frozen=True)
class MethodSpec:
    """The structural part of a method; its policy parameters come from the profile."""

    name: str
    kind: str  # bandit | random | all | avg_sim
    clusters: str = "tuned"  # tuned | untuned: which clustering (and embedder for the reward)
    reward: str = "ot"  # ot | perplexity (bandit methods)
    warmup: bool = True  # the warm-up's documents are charged (and its pairs may join the set)


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("EQUAL", "bandit"),
        MethodSpec("EQUAL (authors' code)", "bandit"),
        MethodSpec("EQUAL w/o warm-up", "bandit", clusters="untuned", warmup=False),
        MethodSpec("EQUAL w/o MAB", "bandit"),
        MethodSpec("EQUAL w/o exploration", "bandit"),
        MethodSpec("Thompson sampling", "bandit"),
        MethodSpec("ε-greedy", "bandit"),
        MethodSpec("Uniform", "bandit"),
        MethodSpec("Perplexity-MAB", "bandit", reward="perplexity"),
        MethodSpec("Random", "random", warmup=False),
        MethodSpec("All", "all", warmup=False),
        MethodSpec("Avg-sim", "avg_sim", warmup=False),
    )
}
ABLATIONS = ("EQUAL w/o warm-up", "EQUAL w/o MAB", "EQUAL w/o exploration")
EMPTY_NLL = 10.0  # nats/token charged to a Perplexity-MAB pull with no pair: worse than any real text


def task_texts(records: list[dict]) -> list[str]:
    """Task items (D_r, held-out slices) as QA texts — question and worked solution — like extracted pairs."""
    return [qa_text({"question": r["question"], "answer": r.get("solution") or r["answer"]}) for r in records]


def slug(name: str) -> str:
    """A folder name for a method."""
    keep = "".join(c.lower() if c.isalnum() else "-" for c in name.replace("ε", "epsilon"))
    return "-".join(part for part in keep.split("-") if part)


def gamma_label(gamma: float) -> str:
    """``0.05`` → ``"5%"`` (for tables and folder names)."""
    return f"{gamma * 100:g}%"


@dataclass
class MethodRun:
    """A finished run of one method: its QA set, pulls (bandit methods) and summary."""

    method: str
    target: str
    gamma: float
    seed: int
    pairs: list[dict]
    summary: dict
    pulls: pd.DataFrame | None = None
    folder: Path | None = None


@dataclass
class SelectionSetup:
    """Everything the methods share: corpus, clusterings, embedders, reference sets, extractor.

    ``labels``/``distances``/``stores`` are keyed by clustering (``"tuned"``, ``"untuned"``);
    ``references`` by target (``"math"``, ``"code"``): the D_r records.
    """

    corpus: list[dict]
    labels: dict[str, np.ndarray]
    distances: dict[str, np.ndarray]
    stores: dict[str, object]
    references: dict[str, list[dict]]
    extractor: QAExtractor
    policies: dict[str, dict]
    out_dir: Path
    warmup_pairs: list[dict] = field(default_factory=list)
    warmup_ledger: list[dict] = field(default_factory=list)
    perplexity: PerplexityScorer | None = None
    reward_config: RewardConfig = field(default_factory=RewardConfig)
    docs_per_pull: int = 1
    arms_per_round: int = 1
    include_warmup_pairs: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        self._index = {d["id"]: i for i, d in enumerate(self.corpus)}
        self._warmup_docs = {row["doc_id"] for row in self.warmup_ledger}  # one row per call, naming its document

    def budget(self, gamma: float) -> int:
        """γ·|D_c| documents (at least one)."""
        return max(1, round(gamma * len(self.corpus)))

    def reference_texts(self, target: str) -> list[str]:
        """D_r as QA texts (question + worked solution), embedded like extracted pairs."""
        if target not in self.references:
            raise ConfigError(f"no reference set for target {target!r}; have {sorted(self.references)}")
        return task_texts(self.references[target])

    def warmup_mask(self) -> np.ndarray:
        """Documents already extracted by the warm-up (never candidates for the methods that use it)."""
        mask = np.zeros(len(self.corpus), dtype=bool)
        for doc_id in self._warmup_docs:
            if doc_id in self._index:
                mask[self._index[doc_id]] = True
        return mask

    # ------------------------------------------------------------------ running

    def folder(self, method: str, target: str, gamma: float, seed: int) -> Path:
        """Where a run's files live (All does not depend on target, γ or seed)."""
        if METHODS[method].kind == "all":
            return self.out_dir / "all"
        return self.out_dir / target / f"gamma{gamma * 100:g}" / slug(method) / f"seed{seed}"

    def run(self, method: str, target: str, gamma: float, seed: int) -> MethodRun:
        """Run one method (or read back its finished run)."""
        if method not in METHODS:
            raise ConfigError(f"unknown method {method!r}; known: {list(METHODS)}")
        spec = METHODS[method]
        folder = self.folder(method, target, gamma, seed)
        fingerprint = self._fingerprint(spec, target, gamma, seed)
        done = folder / "summary.json"
        if done.is_file():
            summary = json.loads(done.read_text(encoding="utf-8"))
            if summary.get("fingerprint") == fingerprint:
                pulls = pd.read_csv(folder / "pulls.csv") if (folder / "pulls.csv").is_file() else None
                pairs = read_jsonl(folder / "pairs.jsonl")
                if spec.kind == "all":  # one run serves every target/γ/seed: label it for the caller
                    summary = {**summary, "target": target, "gamma": gamma, "seed": seed}
                return MethodRun(method, target, gamma, seed, pairs, summary, pulls, folder)
        folder.mkdir(parents=True, exist_ok=True)
        tick = time.perf_counter()
        ledger = CostLedger(folder / "ledger.jsonl")
        warm_pairs: list[dict] = []
        if spec.warmup:
            for row in self.warmup_ledger:
                # charged again, but not made again by this run: cached=True keeps new_calls honest
                ledger.add(CallRecord(**{**row, "method": method, "stage": f"warmup-{row['stage']}", "cached": True}))
            if self.include_warmup_pairs:
                labels = self.labels[spec.clusters]
                warm_pairs = [{**p, "method": method, "cluster": int(labels[self._index[p["doc_id"]]]), "round": -1}
                              for p in self.warmup_pairs if p["doc_id"] in self._index]  # fmt: skip
        pulls = None
        everything = list(range(len(self.corpus)))
        if spec.kind == "bandit":
            pairs, pulls, indices, extra = self._run_bandit(spec, target, gamma, seed, ledger, folder, fingerprint)
        elif spec.kind == "random":
            indices = self._random_documents(gamma, seed)
            pairs, extra = self._extract(spec.name, indices, ledger), {}
        elif spec.kind == "all":
            indices, pairs, extra = everything, self._extract(spec.name, everything, ledger), {}
        else:
            indices, pairs, extra = everything, self._run_avg_sim(target, gamma, seed, ledger), {}
        if spec.kind != "bandit":  # provenance like the bandit's: the document's (tuned) cluster, no round
            tuned = self.labels["tuned"]
            pairs = [{**p, "cluster": int(tuned[self._index[p["doc_id"]]]), "round": None} for p in pairs]
        pairs = warm_pairs + pairs
        domains = [self.corpus[i]["domain"] for i in indices]
        if spec.warmup:
            domains += [self.corpus[self._index[d]]["domain"] for d in sorted(self._warmup_docs) if d in self._index]
        write_jsonl_atomic(folder / "pairs.jsonl", pairs)
        if pulls is not None:
            pulls.to_csv(folder / "pulls.csv", index=False)
        costs = ledger.summary().to_dict("records")[0] if ledger.records else {}
        summary = {
            "fingerprint": fingerprint,
            "method": method,
            "target": target,
            "gamma": gamma,
            "seed": seed,
            "budget": self.budget(gamma),
            "warmup_documents": len(self._warmup_docs) if spec.warmup else 0,
            "warmup_pairs_included": bool(warm_pairs),
            "pairs": len(pairs),
            "llm_calls": int(costs.get("calls", 0)),
            "tokens": int(costs.get("tokens", 0)),
            "flops_model": float(costs.get("flops_model", 0.0)),
            "flops_reference": float(costs.get("flops_reference", 0.0)),
            "new_llm_calls": int(costs.get("new_calls", 0)),
            "wall_s": round(time.perf_counter() - tick, 2),
            "loop_documents": len(indices),
            "documents_by_domain": dict(sorted(Counter(domains).items())),
            **extra,
        }
        summary["documents_extracted"] = summary["loop_documents"] + summary["warmup_documents"]
        ledger.write_summary(folder / "ledger_summary.json", {"method": method})
        for cache in (*self.stores.values(), self.perplexity):  # vectors and scores computed by this run
            if hasattr(cache, "save"):
                cache.save()
        write_json_atomic(done, summary)
        return MethodRun(method, target, gamma, seed, pairs, summary, pulls, folder)

    def _fingerprint(self, spec: MethodSpec, target: str, gamma: float, seed: int) -> dict:
        fields = {
            "method": spec.name,
            "corpus": len(self.corpus),
            "extractor": self.extractor.backend.model_id,
            "extraction": asdict(self.extractor.config),
        }
        if spec.kind == "all":
            return fields
        fields |= {"target": target, "gamma": gamma, "seed": seed, "include_warmup_pairs": self.include_warmup_pairs}
        if spec.kind == "bandit":
            fields |= {
                "policy": self.policies[spec.name],
                "reward": asdict(self.reward_config) if spec.reward == "ot" else "perplexity",
                "docs_per_pull": self.docs_per_pull,
                "arms_per_round": self.arms_per_round,
                "embedder": getattr(self.stores[spec.clusters], "identity", ""),
            }
        return fields

    def _extract(self, method: str, indices: list[int], ledger: CostLedger, progress: bool | None = None) -> list[dict]:
        docs = [self.corpus[i] for i in indices]
        show = self.progress if progress is None else progress
        results = self.extractor.extract(docs, method=method, ledger=ledger, progress=show)
        return pairs_records(results, docs, method)

    def _random_documents(self, gamma: float, seed: int) -> list[int]:
        rng = np.random.default_rng([seed, 0xDA7A])
        chosen = rng.choice(len(self.corpus), size=min(self.budget(gamma), len(self.corpus)), replace=False)
        return sorted(int(i) for i in chosen)

    def _run_avg_sim(self, target: str, gamma: float, seed: int, ledger: CostLedger) -> list[dict]:
        everything = self.run("All", target, gamma, seed)
        keep = self.run("EQUAL", target, gamma, seed).summary["pairs"]
        for row in read_jsonl(everything.folder / "ledger.jsonl"):  # it costs what extracting everything costs
            ledger.add(CallRecord(**{**row, "method": "Avg-sim", "cached": True}))
        store = self.stores["tuned"]
        pairs = everything.pairs
        if not pairs:
            return []
        reference = store.get(self.reference_texts(target))
        similarity = store.get([qa_text(p) for p in pairs]) @ reference.T
        score = similarity.mean(axis=1)
        order = np.argsort(-score, kind="stable")[:keep]
        return [{**pairs[i], "method": "Avg-sim", "avg_sim": round(float(score[i]), 6)} for i in sorted(order)]

    def _run_bandit(self, spec, target, gamma, seed, ledger, folder, fingerprint):
        labels = self.labels[spec.clusters]
        store = self.stores[spec.clusters]
        policy = make_policy(self.policies[spec.name])
        if spec.reward == "ot":
            ot_reward = OTReward(store.get(self.reference_texts(target)), self.reward_config)

            def reward(arm: int, items: list[dict], cumulative: bool) -> float:
                return ot_reward(arm, store.get([qa_text(p) for p in items]), cumulative)

        else:
            if self.perplexity is None:
                raise ConfigError("Perplexity-MAB needs a perplexity scorer (parameter perplexity_model)")
            history: dict[int, list[float]] = {}

            def reward(arm: int, items: list[dict], cumulative: bool) -> float:
                scores = list(self.perplexity.score([qa_text(p) for p in items]))
                if cumulative:
                    scores = history.setdefault(arm, []) + scores
                    history[arm] = scores
                return -float(np.mean(scores)) if scores else -EMPTY_NLL

        def pull(round_index: int, assignments: list[tuple[int, np.ndarray]]) -> list[list[dict]]:
            flat = [int(i) for _, docs in assignments for i in docs]
            records = self._extract(spec.name, flat, ledger, progress=False)
            by_doc: dict[str, list[dict]] = {}
            for record in records:
                by_doc.setdefault(record["doc_id"], []).append(record)
            return [
                [
                    {**r, "cluster": arm, "round": round_index}
                    for i in docs
                    for r in by_doc.get(self.corpus[i]["id"], [])
                ]
                for arm, docs in assignments
            ]

        config = LoopConfig(self.budget(gamma), self.docs_per_pull, self.arms_per_round, seed)
        excluded = self.warmup_mask() if spec.warmup else None
        run = run_loop(
            policy, labels, config, pull, reward,
            n_arms=int(labels.max()) + 1,
            distances=self.distances[spec.clusters],
            excluded=excluded,
            log_path=folder / "rounds.jsonl",
            fingerprint=fingerprint,
            progress=self.progress,
            description=f"{spec.name} · {target} · γ={gamma_label(gamma)} · seed {seed}",
        )  # fmt: skip
        pairs = [item for _, _, item in run.items]
        extra = {
            "rounds": int(run.pulls[-1].round + 1) if run.pulls else 0,
            "pulls": len(run.pulls),
            "stop_reason": run.stop_reason,
            "resumed_rounds": run.resumed_rounds,
        }
        return pairs, run.pulls_frame(), run.documents, extra
