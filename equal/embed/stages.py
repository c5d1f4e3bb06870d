"""Stages 02 (warm-up) and 03 (clustering) as functions: what notebooks 02 and 03 run and ``equal select`` runs for
one target, one implementation for both. The notebooks add the story, tables and figures around them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from equal.artifacts import Artifacts
from equal.embed.clustering import Clustering, choose_k, cluster_documents, elbow
from equal.embed.embedding import embed_texts, embedder_identity, load_embedder
from equal.embed.warmup import WarmupConfig, run_warmup, sample_documents, warmup_training_pairs
from equal.errors import ConfigError
from equal.io import write_jsonl_atomic
from equal.llm.extract import ExtractionReport, QAExtractor, pairs_records, with_every_kind
from equal.llm.ledger import CostLedger

WARMUP_METHOD = "EQUAL (warm-up)"  # the name the warm-up's calls are charged under
#: The two clusterings, by key (file names, the runner) and by label (tables and figures)
CLUSTERINGS = {"tuned": "warm-up tuned", "untuned": "untuned (no warm-up)"}


@dataclass
class WarmupStage:
    """What the warm-up made: its documents, extraction results and training pairs, the tuned embedder, the
    retrieval check before and after, and the stage's times."""

    documents: list[dict]
    results: list
    pairs: list[dict]
    tuned: object
    retrieval: pd.DataFrame
    summary: dict
    report: ExtractionReport
    ledger: CostLedger
    timings: dict = field(default_factory=dict)

    @property
    def documents_per_minute(self) -> float:
        """Extraction speed of the calls this run paid for (0 when every answer came from the cache)."""
        seconds = self.timings.get("extraction_s", 0.0)
        return len(self.documents) / (seconds / 60) if self.report.new_calls and seconds else 0.0


def warmup_stage(art: Artifacts, corpus: list[dict], extractor: QAExtractor, config: WarmupConfig, embedder: str,
                 candidate_docs: list[dict] | None = None, device: str | None = None,
                 progress: bool = True) -> WarmupStage:  # fmt: skip
    """Extract a seeded ``config.fraction`` of the corpus (charged as the warm-up), fine-tune ``embedder`` so a
    document lies near its pairs, and save the pairs, the ledger and the tuned embedder where stage 03 reads them.
    ``candidate_docs`` are the documents a held-out pair searches in the retrieval check (default: the warm-up's)."""
    timings = {}
    tick = time.perf_counter()
    documents = sample_documents(corpus, config.fraction, config.seed)
    ledger, report = CostLedger(art.warmup_ledger_file), ExtractionReport()
    # every kind of pair: the alignment needs pairs about their documents, not answers verified for training
    results = with_every_kind(extractor).extract(documents, method=WARMUP_METHOD, ledger=ledger, progress=progress,
                                                 report=report)  # fmt: skip
    write_jsonl_atomic(art.warmup_pairs_file, pairs_records(results, documents, WARMUP_METHOD))
    ledger.write_summary(art.warmup_dir / "ledger_summary.json",
                         {"report": report.as_dict(), "model": extractor.backend.model_id})  # fmt: skip
    timings["extraction_s"] = round(time.perf_counter() - tick, 1)
    tick = time.perf_counter()
    pairs = warmup_training_pairs(results, documents)
    if not pairs:
        raise ConfigError(
            f"the warm-up's {len(documents)} documents yielded no QA pair: the extractor "
            f"({extractor.backend.model_id}) answers nothing usable; outcomes {dict(report.outcomes)}"
        )
    identity = embedder_identity(embedder)
    tuned, retrieval, summary = run_warmup(load_embedder(embedder, device), identity, documents, pairs, config,
                                           art.tuned_embedder_dir, progress=progress,
                                           candidate_docs=candidate_docs)  # fmt: skip
    art.save_embedder_info(embedder, identity, art.tuned_embedder_dir, summary)
    timings["finetune_s"] = round(time.perf_counter() - tick, 1)
    return WarmupStage(documents, results, pairs, tuned, retrieval, summary, report, ledger, timings)


@dataclass
class ClusteringStage:
    """Both clusterings (of the tuned and the untuned embeddings) with the elbow that chose k."""

    embeddings: dict[str, np.ndarray]
    knee: int
    curve: pd.DataFrame
    k: int
    clusterings: dict[str, Clustering]  # by key: tuned, untuned
    timings: dict = field(default_factory=dict)


def clustering_stage(art: Artifacts, corpus: list[dict], k_values: list[int], k: int | None, min_clusters: int,
                     max_clusters: int | None, seed: int = 0, algorithm: str = "auto",
                     w2_only_below: float | None = None, device: str | None = None,
                     progress: bool = True) -> ClusteringStage:  # fmt: skip
    """Embed the corpus with the tuned and the untuned embedder (stage 02's), choose k at the elbow of the tuned
    embeddings (or take ``k``) within ``[min_clusters, max_clusters]``, cluster both and save them for stage 04."""
    info = art.load_embedder_info()
    texts, domains = [d["text"] for d in corpus], [d["domain"] for d in corpus]
    timings = {}
    tick = time.perf_counter()
    embeddings = {
        "tuned": embed_texts(load_embedder(str(info.tuned), device), texts, info.tuned_identity, progress=progress),
        "untuned": embed_texts(load_embedder(info.base, device), texts, info.base_identity, progress=progress),
    }
    timings["embed_s"] = round(time.perf_counter() - tick, 1)
    tick = time.perf_counter()
    candidates = [c for c in k_values if c < len(texts)] or [max(1, len(texts) - 1)]
    knee, curve = elbow(embeddings["tuned"], candidates, seed=seed, algorithm=algorithm)
    chosen = choose_k(knee, k, min_clusters, max_clusters, len(texts))
    timings["elbow_s"] = round(time.perf_counter() - tick, 1)
    tick = time.perf_counter()
    clusterings = {}
    for key, x in embeddings.items():
        clustering = cluster_documents(CLUSTERINGS[key], x, domains, chosen, seed=seed, algorithm=algorithm,
                                       w2_only_below=w2_only_below)  # fmt: skip
        clustering.save(art.clustering_file(key))
        clusterings[key] = clustering
    timings["cluster_s"] = round(time.perf_counter() - tick, 1)
    return ClusteringStage(embeddings, knee, curve, chosen, clusterings, timings)
