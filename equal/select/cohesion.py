"""Does the warm-up do what the paper says — put documents that yield similar QA pairs in the same cluster?

Measured where it can show: with All's QA pairs (every document extracted), each cluster's documents are split
at random into two halves and the optimal-transport distance between the two halves' QA pairs is computed with
one fixed embedder (the untuned one: the same ruler for every clustering). A cluster whose documents yield
similar pairs has a small split-half distance. The clusterings compared are the warm-up-tuned one, the untuned
one (EQUAL w/o warm-up) and a random partition with the tuned one's cluster sizes (the floor any clustering
should beat).
"""

from __future__ import annotations

import random

import numpy as np
import pandas as pd

from equal.embed.warmup import qa_text
from equal.select.reward import ot_distance

RANDOM_PARTITION = "random (same sizes)"


def split_half_distances(pair_vectors: np.ndarray, pair_docs: list[str], doc_cluster: dict[str, int], seed: int = 0,
                         metric: str = "cosine") -> pd.DataFrame:  # fmt: skip
    """One row per cluster with at least two documents that yielded pairs: its documents, pairs, and the OT
    distance between the pairs of a seeded random half of its documents and those of the other half."""
    by_cluster: dict[int, dict[str, list[int]]] = {}
    for i, doc in enumerate(pair_docs):
        by_cluster.setdefault(doc_cluster[doc], {}).setdefault(doc, []).append(i)
    rows = []
    for cluster in sorted(by_cluster):
        docs = sorted(by_cluster[cluster])
        if len(docs) < 2:
            continue
        random.Random(f"{seed}:{cluster}").shuffle(docs)
        half = len(docs) // 2
        first = [i for d in docs[:half] for i in by_cluster[cluster][d]]
        second = [i for d in docs[half:] for i in by_cluster[cluster][d]]
        distance = ot_distance(pair_vectors[first], pair_vectors[second], metric=metric)
        rows.append({"cluster": cluster, "documents": len(docs), "pairs": len(first) + len(second),
                     "split_half_ot": distance})  # fmt: skip
    return pd.DataFrame(rows, columns=["cluster", "documents", "pairs", "split_half_ot"])


def cohesion_table(all_pairs: list[dict], corpus: list[dict], labels: dict[str, np.ndarray], store, seed: int = 0
                   ) -> pd.DataFrame:  # fmt: skip
    """Split-half OT distances of every cluster of each clustering in ``labels`` (name → one label per corpus
    document) and of a random partition with the sizes of ``labels["tuned"]``; ``store`` embeds the QA pairs."""
    pairs = [p for p in all_pairs if p.get("doc_id")]
    vectors = np.asarray(store.get([qa_text(p) for p in pairs]))
    pair_docs = [p["doc_id"] for p in pairs]
    partitions = {name: np.asarray(values) for name, values in labels.items()}
    shuffled = np.array(partitions["tuned"])
    np.random.default_rng(seed).shuffle(shuffled)
    partitions[RANDOM_PARTITION] = shuffled
    frames = []
    for name, values in partitions.items():
        doc_cluster = {d["id"]: int(c) for d, c in zip(corpus, values, strict=True)}
        frame = split_half_distances(vectors, pair_docs, doc_cluster, seed)
        frame.insert(0, "clustering", name)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def cohesion_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per clustering: clusters measured, the pair-weighted mean split-half OT distance (lower: a cluster's
    documents yield more similar pairs) and its ratio to the random partition's."""
    rows = []
    for name, part in table.groupby("clustering", sort=False):
        weighted = float(np.average(part["split_half_ot"], weights=part["pairs"])) if len(part) else float("nan")
        median = float(part["split_half_ot"].median())
        rows.append({"clustering": name, "clusters": len(part), "pairs": int(part["pairs"].sum()),
                     "mean_split_half_ot": weighted, "median_split_half_ot": median})  # fmt: skip
    summary = pd.DataFrame(rows)
    floor = summary.loc[summary["clustering"] == RANDOM_PARTITION, "mean_split_half_ot"]
    summary["vs_random"] = summary["mean_split_half_ot"] / float(floor.iloc[0]) if len(floor) else float("nan")
    return summary


def heldout_retrieval(all_pairs: list[dict], corpus: list[dict], stores: dict[str, object], exclude: set[str]
                      ) -> pd.DataFrame:  # fmt: skip
    """Document retrieval from QA pairs the warm-up never trained on (All's pairs of every document outside
    ``exclude``, the warm-up's documents), per embedder in ``stores`` (name → embedding store), over the whole
    corpus: every such pair, and those whose question paraphrases its document (word overlap below
    :data:`~equal.embed.warmup.PARAPHRASE_OVERLAP`) — where copying the document's words cannot help."""
    from equal.embed.warmup import PARAPHRASE_OVERLAP, lexical_overlap, retrieval_metrics

    text = {d["id"]: d["text"] for d in corpus}
    pairs = [p for p in all_pairs if p.get("doc_id") in text and p["doc_id"] not in exclude]
    paraphrased = [p for p in pairs if lexical_overlap(p["question"], text[p["doc_id"]]) < PARAPHRASE_OVERLAP]
    subsets = {"unseen documents' pairs": pairs, f"paraphrased (word overlap < {PARAPHRASE_OVERLAP:g})": paraphrased}
    doc_ids = [d["id"] for d in corpus]
    rows = []
    for name, store in stores.items():
        doc_vectors = np.asarray(store.get([d["text"] for d in corpus]))
        for subset, chosen in subsets.items():
            if not chosen:
                continue
            qa_vectors = np.asarray(store.get([qa_text(p) for p in chosen]))
            metrics = retrieval_metrics(doc_vectors, doc_ids, qa_vectors, [p["doc_id"] for p in chosen])
            rows.append({"embedder": name, "pairs": subset, "queries": len(chosen), **metrics})
    return pd.DataFrame(rows)
