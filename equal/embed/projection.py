"""2-D projections for figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.manifold import TSNE


def tsne_2d(*blocks: np.ndarray, seed: int = 0) -> np.ndarray:
    """One t-SNE (cosine metric) over the stacked blocks of vectors, so they share a plane."""
    x = np.vstack([b for b in blocks if len(b)])
    perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
    return TSNE(n_components=2, metric="cosine", init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)


def alignment_coordinates(
    corpus: list[dict], qa_pairs: list[dict], models: list[tuple[str, object, str]], n_documents: int, seed: int = 0
) -> pd.DataFrame:
    """t-SNE coordinates of documents and QA pairs under each model (the paper's alignment picture).

    ``models``: (label, SentenceTransformer, identity) — e.g. the base and the warm-up-tuned embedder;
    ``qa_pairs``: records with ``qa`` (the embedded text) and ``domain``; ``n_documents`` documents are
    drawn evenly from the three domains with ``seed``. One row per point: model, kind, domain, x, y.
    """
    from equal.embed.embedding import embed_texts

    sample = pd.DataFrame(corpus).sample(frac=1.0, random_state=seed).groupby("domain").head(n_documents // 3)
    qa_frame = pd.DataFrame(qa_pairs)
    rows = []
    for label, model, identity in models:
        doc_v = embed_texts(model, sample["text"].tolist(), identity)
        qa_v = embed_texts(model, qa_frame["qa"].tolist(), identity) if len(qa_frame) else doc_v[:0]
        xy = tsne_2d(doc_v, qa_v, seed=seed)
        kinds = ["document"] * len(doc_v) + ["qa"] * len(qa_v)
        domains = sample["domain"].tolist() + (qa_frame["domain"].tolist() if len(qa_frame) else [])
        rows.append(pd.DataFrame({"model": label, "kind": kinds, "domain": domains, "x": xy[:, 0], "y": xy[:, 1]}))
    return pd.concat(rows, ignore_index=True)
