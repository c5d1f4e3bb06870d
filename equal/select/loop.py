"""The selection loop shared by every cluster policy: choose clusters → sample → extract → reward.

One round: the policy picks up to ``arms_per_round`` available clusters; each gets its next
``docs_per_pull`` unseen documents (a seeded order fixed per cluster); ``pull`` extracts them (the
whole round in one batch, so the LLM backend's batching is used); ``reward`` scores each pulled
cluster (cumulatively or for this pull only, as the policy says); the policy is updated. The loop
stops when the document budget is spent or every cluster is exhausted.

Checkpoint and resume: each finished round is appended (flushed and fsynced) to a JSONL log whose
first line fingerprints the run's parameters. A resumed run replays the logged rounds — the same
seeded choices, the extraction answered by the LLM cache, so no paid call is repeated — checks
that they match the log, then carries on. Its results are identical to an uninterrupted run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from equal.errors import ConfigError, EqualError
from equal.io import write_text_atomic
from equal.progress import tqdm
from equal.select.policies import BanditPolicy

PullFunction = Callable[[int, list[tuple[int, np.ndarray]]], list[list]]
RewardFunction = Callable[[int, Sequence, bool], float]


class ResumeMismatch(EqualError):
    """A selection log does not match the run that tries to resume from it."""


@dataclass(frozen=True)
class LoopConfig:
    """Budget and batch shape of the loop."""

    budget: int  # documents the loop may extract (γ·|D_c|)
    docs_per_pull: int = 1  # m: documents sampled per chosen cluster
    arms_per_round: int = 1  # clusters chosen per round (the authors' code: the top 50)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.budget < 0 or self.docs_per_pull < 1 or self.arms_per_round < 1:
            raise ConfigError(f"bad loop configuration {self}")


@dataclass
class Pull:
    """One pull: which cluster, which documents, how many items came back, the reward."""

    round: int
    arm: int
    docs: list[int]
    n_items: int
    reward: float


@dataclass
class SelectionRun:
    """The outcome of a loop: every pull, every item with its round and cluster, and why it stopped."""

    pulls: list[Pull] = field(default_factory=list)
    items: list[tuple[int, int, object]] = field(default_factory=list)  # (round, arm, item)
    spent: int = 0
    stop_reason: str = ""
    resumed_rounds: int = 0

    def pulls_frame(self) -> pd.DataFrame:
        """One row per pull (docs as a count)."""
        rows = [{"round": p.round, "arm": p.arm, "docs": len(p.docs), "items": p.n_items, "reward": p.reward}
                for p in self.pulls]  # fmt: skip
        return pd.DataFrame(rows, columns=["round", "arm", "docs", "items", "reward"])

    @property
    def documents(self) -> list[int]:
        """Every extracted document index, in extraction order."""
        return [d for p in self.pulls for d in p.docs]


class ClusterPool:
    """The unseen documents of each cluster, in an order fixed by the seed."""

    def __init__(self, labels: np.ndarray, n_arms: int, seed: int, excluded: np.ndarray | None = None) -> None:
        labels = np.asarray(labels)
        order = np.random.default_rng([seed, 0x5E1EC7]).permutation(len(labels))
        if excluded is not None:
            order = order[~np.asarray(excluded, dtype=bool)[order]]
        order = order[np.argsort(labels[order], kind="stable")]  # grouped by cluster, random within
        self.docs = order
        self.starts = np.searchsorted(labels[order], np.arange(n_arms))
        self.ends = np.searchsorted(labels[order], np.arange(n_arms), side="right")
        self.cursors = self.starts.copy()

    @property
    def available(self) -> np.ndarray:
        """Clusters that still have unseen documents."""
        return self.cursors < self.ends

    def sizes(self) -> np.ndarray:
        """Candidate documents per cluster (before any pull)."""
        return self.ends - self.starts

    def take(self, arm: int, n: int) -> np.ndarray:
        """The next ``n`` unseen documents of ``arm`` (fewer if it runs out)."""
        start = self.cursors[arm]
        stop = min(start + n, self.ends[arm])
        self.cursors[arm] = stop
        return self.docs[start:stop]


def _read_log(path: Path, fingerprint: dict) -> list[dict]:
    """Finished rounds from a log (a torn last line — a crash mid-write — is dropped)."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        return []
    try:
        header = json.loads(lines[0])
    except json.JSONDecodeError as exc:
        raise ResumeMismatch(f"{path}:1: unreadable header ({exc}); delete the file to start again") from exc
    if header.get("fingerprint") != fingerprint:
        raise ResumeMismatch(
            f"{path}: written by a run with other parameters ({header.get('fingerprint')} ≠ {fingerprint}); "
            "delete it or choose another output folder"
        )
    rounds = []
    for number, line in enumerate(lines[1:], start=2):
        try:
            rounds.append(json.loads(line))
        except json.JSONDecodeError:
            if number != len(lines):
                raise ResumeMismatch(f"{path}:{number}: corrupt line in the middle of the log") from None
            write_text_atomic(path, "\n".join(lines[:-1]) + "\n")  # later rounds must not follow the torn line
    return rounds


def _append(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def run_loop(
    policy: BanditPolicy,
    labels: np.ndarray,
    config: LoopConfig,
    pull: PullFunction,
    reward: RewardFunction,
    n_arms: int | None = None,
    distances: np.ndarray | None = None,
    excluded: np.ndarray | None = None,
    log_path: str | Path | None = None,
    fingerprint: dict | None = None,
    progress: bool = True,
    description: str = "select",
) -> SelectionRun:
    """Run the selection loop to the end of the budget (resuming from ``log_path`` when it exists).

    ``pull(round, [(arm, doc_indices), ...])`` returns the items (QA pairs, or anything the reward
    understands) of each assignment; ``reward(arm, new_items, cumulative)`` scores the arm.
    ``excluded`` marks documents that are never candidates (e.g. the warm-up's, already extracted).
    """
    n_arms = int(n_arms if n_arms is not None else np.max(labels) + 1)
    policy.start(n_arms, distances)
    pool = ClusterPool(labels, n_arms, config.seed, excluded)
    cumulative = policy.reward_mode == "cumulative"
    fingerprint = {"seed": config.seed, "budget": config.budget, "docs_per_pull": config.docs_per_pull,
                   "arms_per_round": config.arms_per_round, **(fingerprint or {})}  # fmt: skip
    log = Path(log_path) if log_path else None
    logged = _read_log(log, fingerprint) if log else []
    if log and not logged:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(json.dumps({"fingerprint": fingerprint}) + "\n", encoding="utf-8")

    run = SelectionRun(resumed_rounds=len(logged))
    bar = tqdm(total=config.budget, desc=description, unit="doc", disable=not progress)
    round_index = 0
    while True:
        if run.spent >= config.budget:
            run.stop_reason = "budget"
            break
        available = pool.available
        if not available.any():
            run.stop_reason = "exhausted"
            break
        rng = np.random.default_rng([config.seed, round_index])
        arms = policy.select(available, config.arms_per_round, rng)
        assignments: list[tuple[int, np.ndarray]] = []
        left = config.budget - run.spent
        for arm in arms:
            docs = pool.take(int(arm), min(config.docs_per_pull, left))
            if len(docs):
                assignments.append((int(arm), docs))
                left -= len(docs)
            if left == 0:
                break
        results = pull(round_index, assignments)
        pulls = []
        for (arm, docs), items in zip(assignments, results, strict=True):
            value = float(reward(arm, items, cumulative))
            policy.update(arm, value)
            pulls.append(Pull(round_index, arm, [int(d) for d in docs], len(items), value))
            run.items.extend((round_index, arm, item) for item in items)
        record = {"round": round_index, "pulls": [{"arm": p.arm, "docs": p.docs, "reward": p.reward} for p in pulls]}
        if round_index < len(logged):
            if logged[round_index]["pulls"] != record["pulls"]:
                raise ResumeMismatch(f"{log}: round {round_index} replays differently from the log")
        elif log:
            _append(log, record)
        run.pulls.extend(pulls)
        spent = sum(len(p.docs) for p in pulls)
        run.spent += spent
        bar.update(spent)
        bar.set_postfix(
            round=round_index, best_arm=int(np.argmax(np.where(policy.pulls_ > 0, policy.values_, -np.inf)))
        )
        round_index += 1
    bar.close()
    return run
