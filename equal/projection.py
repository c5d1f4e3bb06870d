"""2-D projections for figures."""

from __future__ import annotations

import numpy as np
from sklearn.manifold import TSNE


def tsne_2d(*blocks: np.ndarray, seed: int = 0) -> np.ndarray:
    """One t-SNE (cosine metric) over the stacked blocks of vectors, so they share a plane."""
    x = np.vstack([b for b in blocks if len(b)])
    perplexity = float(min(30, max(2, (len(x) - 1) // 3)))
    return TSNE(n_components=2, metric="cosine", init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)
