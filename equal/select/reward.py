"""The optimal-transport reward: how close a set of QA embeddings is to the reference set D_r.

Convention (used everywhere in `equal`): **higher reward = closer to D_r**. The OT distance W
between the uniform empirical distributions of the two embedding sets is computed with POT —
``ot.emd2`` (exact, default) or ``ot.sinkhorn2`` (entropic, ``reg``) — over a cost matrix of
``1 − cosine`` (the paper) or Euclidean distance (the authors' code). The reward is then
``1 − W − offset`` (``"one_minus"``, the authors' code uses offset 0.12) or ``−W`` (``"negative"``).
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class RewardConfig:
    """How a set of QA embeddings is turned into a reward (every choice the paper leaves open)."""

    metric: str = "cosine"  # paper: 1 − cosine; authors' code: Euclidean
    solver: str = "emd"  # exact; "sinkhorn" for the entropic approximation
    reg: float = 0.05  # Sinkhorn regularisation
    convention: str = "one_minus"  # reward = 1 − W − offset; "negative": −W
    offset: float = 0.0  # authors' code: 0.12
    empty_distance: float = 1.0  # a cluster whose pulls gave no QA pair counts as this far from D_r

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("metric", self.metric, METRICS),
            ("solver", self.solver, SOLVERS),
            ("convention", self.convention, CONVENTIONS),
        ):
            if value not in allowed:
                raise ConfigError(f"reward {name} must be one of {allowed}, got {value!r}")


class OTReward:
    """Per-arm OT reward against a fixed reference set, with the cost rows of each arm cached.

    ``reward(arm, new, cumulative=True)`` scores everything extracted from ``arm`` so far (the
    paper); ``cumulative=False`` scores only the new embeddings of this pull (the authors' code).
    Cost rows (item × reference) are computed once per item, so a cumulative reward costs one
    OT solve on cached costs, not a new cost matrix over the arm's whole history.
    """

    def __init__(self, reference: np.ndarray, config: RewardConfig | None = None) -> None:
        if len(reference) == 0:
            raise ValueError("the reference set D_r is empty")
        self.reference = np.asarray(reference, dtype=np.float64)
        self.config = config or RewardConfig()
        self._rows: dict[int, list[np.ndarray]] = {}
        self._b = np.full(len(self.reference), 1.0 / len(self.reference))

    def distance_from_costs(self, costs: np.ndarray) -> float:
        """OT distance of uniform weights over the rows of a (items × reference) cost matrix."""
        if len(costs) == 0:
            return self.config.empty_distance
        a = np.full(len(costs), 1.0 / len(costs))
        if self.config.solver == "emd":
            return float(ot.emd2(a, self._b, costs))
        return float(ot.sinkhorn2(a, self._b, costs, self.config.reg))

    def __call__(self, arm: int, new: np.ndarray, cumulative: bool = True) -> float:
        """The reward of ``arm`` after a pull that produced the embeddings ``new`` (possibly none)."""
        rows = cost_matrix(new, self.reference, self.config.metric) if len(new) else np.empty((0, len(self._b)))
        if cumulative:
            self._rows.setdefault(arm, []).append(rows)
            rows = np.vstack(self._rows[arm])
        distance = self.distance_from_costs(rows)
        return reward_from_distance(distance, self.config.convention, self.config.offset)
