"""The optimal-transport reward: how close a set of QA embeddings is to the reference set D_r.

Convention (used everywhere in `equal`): **higher reward = closer to D_r**. The OT distance W
between the uniform empirical distributions of the two embedding sets is computed with POT —
``ot.emd2`` (exact, default) or ``ot.sinkhorn2`` (entropic, ``reg``) — over a cost matrix of
``1 − cosine`` (the paper) or Euclidean distance (the authors' code). The reward is then
``1 − W − offset`` (``"one_minus"``, the authors' code uses offset 0.12) or ``−W`` (``"negative"``).
"""

from __future__ import annotations

import numpy as np
import ot

from equal.errors import ConfigError

METRICS = ("cosine", "euclidean")
SOLVERS = ("emd", "sinkhorn")
CONVENTIONS = ("one_minus", "negative")


def cost_matrix(x: np.ndarray, y: np.ndarray, metric: str = "cosine") -> np.ndarray:
    """Pairwise transport costs between the rows of ``x`` and ``y``."""
    if metric == "cosine":
        xn = x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)
        yn = y / np.linalg.norm(y, axis=1, keepdims=True).clip(min=1e-12)
        return np.clip(1.0 - xn @ yn.T, 0.0, 2.0).astype(np.float64)
    if metric == "euclidean":
        return ot.dist(x.astype(np.float64), y.astype(np.float64), metric="euclidean")
    raise ConfigError(f"metric must be one of {METRICS}, got {metric!r}")


def ot_distance(x: np.ndarray, y: np.ndarray, metric: str = "cosine", solver: str = "emd", reg: float = 0.05) -> float:
    """OT distance between the uniform distributions on the rows of ``x`` and of ``y``."""
    if len(x) == 0 or len(y) == 0:
        raise ValueError("OT distance needs two non-empty sets of embeddings")
    cost = cost_matrix(x, y, metric)
    a = np.full(len(x), 1.0 / len(x))
    b = np.full(len(y), 1.0 / len(y))
    if solver == "emd":
        return float(ot.emd2(a, b, cost))
    if solver == "sinkhorn":
        return float(ot.sinkhorn2(a, b, cost, reg))
    raise ConfigError(f"solver must be one of {SOLVERS}, got {solver!r}")


def reward_from_distance(distance: float, convention: str = "one_minus", offset: float = 0.0) -> float:
    """Turn an OT distance into a reward where higher means closer to the reference set."""
    if convention == "one_minus":
        return 1.0 - distance - offset
    if convention == "negative":
        return -distance
    raise ConfigError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
