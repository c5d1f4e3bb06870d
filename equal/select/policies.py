"""Bandit policies over clusters, in the scikit-learn style (parameters in ``__init__``, state in ``*_``).

Every policy keeps the same statistics per arm (cluster): ``pulls_`` (T_j), and a value R_j that is
either the latest reward of the arm (``reward_mode="cumulative"``: the loop scores everything
extracted from the cluster so far, the paper) or the mean of its per-pull rewards
(``"per_pull"``: the authors' code). ``select`` returns the top-``n`` available arms by the
policy's score; arms never pulled come first (every arm is tried once), and ties are broken by
the round's seeded generator, so a run is a pure function of its seed.

The policies are a few lines each and are checked against worked examples (and the fixed-α UCB
against MABWiser's ``UCB1``) in ``tests/select/test_policies.py``; MABWiser itself has neither the paper's
decaying α, nor replaced (cumulative) arm values, nor reward sharing.
"""

from __future__ import annotations

import numpy as np

from equal.errors import ConfigError
from equal.registry import Registry

REWARD_MODES = ("cumulative", "per_pull")


class BanditPolicy:
    """Arm statistics, top-n selection and updates; subclasses define :meth:`scores`."""

    name = "policy"

    def __init__(self, reward_mode: str = "cumulative") -> None:
        self.reward_mode = reward_mode

    def start(self, n_arms: int, distances: np.ndarray | None = None) -> BanditPolicy:
        """Reset the statistics for ``n_arms`` arms (``distances``: cluster-to-cluster, for sharing)."""
        if self.reward_mode not in REWARD_MODES:
            raise ConfigError(f"reward_mode must be one of {REWARD_MODES}, got {self.reward_mode!r}")
        self.n_arms_ = n_arms
        self.distances_ = distances
        self.pulls_ = np.zeros(n_arms, dtype=np.int64)
        self.reward_sum_ = np.zeros(n_arms)
        self.reward_count_ = np.zeros(n_arms, dtype=np.int64)
        self.latest_ = np.zeros(n_arms)
        return self

    @property
    def values_(self) -> np.ndarray:
        """R_j: the latest (cumulative) reward, or the mean per-pull reward (0 for an arm with none)."""
        if self.reward_mode == "cumulative":
            return self.latest_.copy()
        return np.divide(self.reward_sum_, self.reward_count_, out=np.zeros(self.n_arms_), where=self.reward_count_ > 0)

    def scores(self, available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """The selection score of every arm (higher is pulled first)."""
        raise NotImplementedError

    def select(self, available: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """The ``n`` best available arms (fewer if fewer are available), best first."""
        available = np.asarray(available, dtype=bool)
        scores = np.asarray(self.scores(available, rng), dtype=np.float64).copy()
        scores[self.pulls_ == 0] = np.inf  # try every arm once before trusting any score
        scores[~available] = -np.inf
        order = np.lexsort((rng.random(self.n_arms_), -scores))  # score first, a seeded coin for ties
        chosen = order[: min(n, int(available.sum()))]
        return chosen[available[chosen]]

    def update(self, arm: int, reward: float) -> None:
        """Record the reward of one pull of ``arm``."""
        self.pulls_[arm] += 1
        self._credit(arm, reward)

    def _credit(self, arm: int, reward: float) -> None:
        self.latest_[arm] = reward
        self.reward_sum_[arm] += reward
        self.reward_count_[arm] += 1


class UCB(BanditPolicy):
    """DS_j = R_j + α·sqrt(2·ln ΣT / (T_j + count_offset)).

    * EQUAL as in the paper: ``alpha="decay"`` (α = 1 / (ΣT + 1)), ``count_offset=0``,
      ``reward_mode="cumulative"``.
    * EQUAL as in the authors' code: ``alpha=0.001``, ``count_offset=1``, ``reward_mode="per_pull"``,
      ``share_threshold=0.2`` — each pull's reward is also credited to the value of every cluster
      whose distance to the pulled one is below the threshold (its pull count is unchanged: its
      documents were not extracted).
    """

    name = "ucb"

    def __init__(
        self,
        alpha: float | str = "decay",
        count_offset: int = 0,
        reward_mode: str = "cumulative",
        share_threshold: float | None = None,
    ) -> None:
        super().__init__(reward_mode)
        self.alpha = alpha
        self.count_offset = count_offset
        self.share_threshold = share_threshold

    def start(self, n_arms: int, distances: np.ndarray | None = None) -> UCB:
        super().start(n_arms, distances)
        if self.alpha != "decay" and not isinstance(self.alpha, int | float):
            raise ConfigError(f"alpha must be 'decay' or a number, got {self.alpha!r}")
        if self.share_threshold is not None:
            if distances is None:
                raise ConfigError("reward sharing needs the cluster-to-cluster distances")
            if self.reward_mode != "per_pull":
                raise ConfigError("reward sharing credits per-pull rewards: use reward_mode='per_pull'")
        return self

    def exploration_weight(self) -> float:
        """α for the current total number of pulls."""
        total = int(self.pulls_.sum())
        return 1.0 / (total + 1) if self.alpha == "decay" else float(self.alpha)

    def scores(self, available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        total = int(self.pulls_.sum())
        counts = self.pulls_ + self.count_offset
        bonus = np.zeros(self.n_arms_)
        if total > 1:
            ok = counts > 0
            bonus[ok] = np.sqrt(2.0 * np.log(total) / counts[ok])
        return self.values_ + self.exploration_weight() * bonus

    def update(self, arm: int, reward: float) -> None:
        super().update(arm, reward)
        if self.share_threshold is not None:
            neighbours = np.flatnonzero(self.distances_[arm] < self.share_threshold)
            for other in neighbours[neighbours != arm]:
                self._credit(int(other), reward)


class Greedy(UCB):
    """Always the best value so far: EQUAL without its exploration term (the "w/o exploration" ablation)."""

    name = "greedy"

    def __init__(self, reward_mode: str = "cumulative") -> None:
        super().__init__(alpha=0.0, reward_mode=reward_mode)


class StaticRanking(BanditPolicy):
    """One-shot OT ranking (the "w/o MAB" ablation): every cluster is pulled once, scored once,
    and the rest of the budget goes down that fixed ranking; later rewards change nothing."""

    name = "static"

    def start(self, n_arms: int, distances: np.ndarray | None = None) -> StaticRanking:
        super().start(n_arms, distances)
        self.ranking_: np.ndarray | None = None
        return self

    def scores(self, available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.ranking_ is None and (self.pulls_[available] > 0).all():
            self.ranking_ = self.values_  # the first full pass is the only evidence ever used
        return self.values_ if self.ranking_ is None else self.ranking_


class ThompsonSampling(BanditPolicy):
    """Gaussian Thompson sampling: R_j + N(0, prior_std² / T_j), drawn from the round's generator."""

    name = "thompson"

    def __init__(self, prior_std: float = 0.05, reward_mode: str = "cumulative") -> None:
        super().__init__(reward_mode)
        self.prior_std = prior_std

    def scores(self, available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        spread = self.prior_std / np.sqrt(np.maximum(self.pulls_, 1))
        return self.values_ + rng.normal(size=self.n_arms_) * spread


class EpsilonGreedy(BanditPolicy):
    """Each slot of a round: a random available arm with probability ε, else the best remaining one."""

    name = "epsilon_greedy"

    def __init__(self, epsilon: float = 0.1, reward_mode: str = "cumulative") -> None:
        super().__init__(reward_mode)
        self.epsilon = epsilon

    def scores(self, available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.values_

    def select(self, available: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        ranked = list(super().select(available, n=int(np.sum(available)), rng=rng))
        chosen: list[int] = []
        while ranked and len(chosen) < n:
            pick = int(rng.integers(len(ranked))) if rng.random() < self.epsilon else 0
            chosen.append(ranked.pop(pick))
        return np.asarray(chosen, dtype=np.int64)


class RoundRobin(BanditPolicy):
    """The Uniform baseline: the least-pulled clusters first, ties in seeded random order; no reward used."""

    name = "round_robin"

    def scores(self, available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return -self.pulls_.astype(np.float64)


POLICIES: Registry = Registry("policy")
for _policy in (UCB, Greedy, StaticRanking, ThompsonSampling, EpsilonGreedy, RoundRobin):
    POLICIES.register(_policy.name, _policy)


def make_policy(spec: dict) -> BanditPolicy:
    """A policy from ``{"name": ..., **parameters}`` (the form used in params/*.yaml)."""
    spec = dict(spec)
    name = spec.pop("name", None)
    return POLICIES.build(name, **spec)
