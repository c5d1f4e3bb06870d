"""Cheap quality signals of an extracted QA set, and the bandit's regret against cluster oracles.

Signals (issue 5, before any fine-tuning): the OT distance of the set to a *held-out* slice of the
target task (never D_r, which the bandit optimised), the share of pairs from target-domain
documents, the number of pairs, and distinct-n diversity. Distances use the base (untuned)
embedder, so that no method is judged by the embedder it was tuned with.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from equal.embed.warmup import qa_text
from equal.fingerprint import records_digest
from equal.select.reward import OTReward, RewardConfig, ot_distance
from equal.select.summary import BandDetails

_WORD = re.compile(r"\w+", re.UNICODE)


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Distinct n-grams over all n-grams of the texts (lower-cased words); 0 for no n-gram."""
    total, seen = 0, set()
    for text in texts:
        words = _WORD.findall(text.lower())
        grams = list(zip(*(words[i:] for i in range(n)), strict=False))
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def quality_signals(pairs: list[dict], heldout: np.ndarray, store, target_domain: str) -> dict[str, float]:
    """OT distance to the held-out target slice (cosine, exact), target-domain share, pairs, distinct-2."""
    texts = [qa_text(p) for p in pairs]
    if not texts:
        return {"pairs": 0, "ot_heldout": float("nan"), "target_share": float("nan"), "distinct_2": 0.0}
    distance = ot_distance(store.get(texts), heldout, metric="cosine", solver="emd")
    share = float(np.mean([p.get("domain") == target_domain for p in pairs]))
    return {"pairs": len(pairs), "ot_heldout": distance, "target_share": share, "distinct_2": distinct_n(texts)}


def cluster_oracle_rewards(
    all_pairs: list[dict], doc_cluster: dict[str, int], n_arms: int, reference: np.ndarray, store, config: RewardConfig
) -> np.ndarray:
    """Each cluster's reward if every one of its documents were extracted (from the All run's pairs).

    This is the value the bandit tries to find; regret is measured against it.
    """
    reward = OTReward(reference, config)
    by_arm: dict[int, list[str]] = {}
    for pair in all_pairs:
        arm = doc_cluster.get(pair["doc_id"])
        if arm is not None:
            by_arm.setdefault(arm, []).append(qa_text(pair))
    return np.array([reward(arm, store.get(by_arm.get(arm, [])), False) for arm in range(n_arms)])


def regret_curve(pulls: pd.DataFrame, oracle: np.ndarray, pool_sizes: np.ndarray) -> pd.DataFrame:
    """Per pull: the oracle value of the pulled cluster and the cumulative (pseudo-)regret.

    Regret of a pull = oracle value of the best cluster that still had unseen documents at that
    pull − oracle value of the pulled cluster (an exhausted cluster cannot be blamed for not being
    pulled).
    """
    remaining = pool_sizes.astype(np.int64).copy()
    rows, total = [], 0.0
    for step, pull in enumerate(pulls.itertuples(index=False)):
        best = float(np.max(np.where(remaining > 0, oracle, -np.inf)))
        value = float(oracle[pull.arm])
        total += best - value
        rows.append({"pull": step + 1, "round": pull.round, "arm": pull.arm, "oracle": value, "regret": total})
        remaining[pull.arm] -= pull.docs
    return pd.DataFrame(rows, columns=["pull", "round", "arm", "oracle", "regret"])


SIGNALS = ("pairs", "ot_heldout", "target_share", "distinct_2")
COSTS = ("loop_documents", "warmup_documents", "documents_extracted", "llm_calls", "tokens", "flops_reference")


def selection_table(per_run: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Mean and standard deviation over seeds of every signal, per (target, γ, method), methods in order.

    ``per_run``: one row per run with target, gamma, method, seed, the cost columns and the signals.
    """
    grouped = per_run.groupby(["target", "gamma", "method"], sort=False)
    table = grouped[list(COSTS)].mean().round(1)
    table["seeds"] = grouped["seed"].nunique()
    for signal in SIGNALS:
        table[f"{signal}_mean"] = grouped[signal].mean()
        table[f"{signal}_std"] = grouped[signal].std(ddof=1).fillna(0.0)
    table = table.reset_index()
    table["order"] = table["method"].map({m: i for i, m in enumerate(methods)})
    return table.sort_values(["target", "gamma", "order"]).drop(columns="order").reset_index(drop=True)


def format_selection_table(table: pd.DataFrame) -> pd.DataFrame:
    """A readable copy: ``mean ± std`` strings, γ as a percentage."""
    out = table[["target", "gamma", "method", "seeds", "documents_extracted", "llm_calls", "tokens"]].copy()
    out["gamma"] = [f"{g * 100:g}%" for g in out["gamma"]]
    out["documents_extracted"] = out["documents_extracted"].round().astype(int)
    out["llm_calls"] = out["llm_calls"].round().astype(int)
    out["tokens"] = out["tokens"].round().astype(int)
    for signal, digits in (("pairs", 0), ("ot_heldout", 4), ("target_share", 3), ("distinct_2", 3)):
        out[signal] = [
            f"{m:.{digits}f} ± {s:.{digits}f}"
            for m, s in zip(table[f"{signal}_mean"], table[f"{signal}_std"], strict=True)
        ]
    return out


def training_set_id(pairs: list[dict]) -> str:
    """A short digest of a QA set's questions and answers, in any order: runs with the same id train the same
    model data (a distance band's or a deterministic method's seeds, All's targets), so they are one selection,
    not several, when selection seeds are the unit of inference (:func:`equal.report.stats.seed_means`)."""
    texts = sorted([p.get("question", ""), p.get("answer", "")] for p in pairs)
    return records_digest([{"qa": qa} for qa in texts])[:12]


def selection_runs_table(runs: list, heldout: dict[str, np.ndarray], store, domains: dict[str, str]) -> pd.DataFrame:
    """One row per method run: its costs, the quality signals of its QA set and the set's id
    (:func:`training_set_id`).

    ``heldout[target]``: embeddings (by ``store``, the base embedder) of the target's held-out items;
    ``domains[target]``: the corpus domain expected to serve the target (its declaration's ``domain``).
    """
    rows = []
    for run in runs:
        signals = quality_signals(run.pairs, heldout[run.target], store, domains[run.target])
        details = run.summary.details
        band = (
            {"band": details.band, "band_distance_mean": details.band_distance_mean}
            if isinstance(details, BandDetails)
            else {}
        )  # fmt: skip  (distance bands)
        common = {k: getattr(run.summary, k) for k in ("method", "target", "gamma", "seed", *COSTS)}
        rows.append({**common, **signals, "training_set": training_set_id(run.pairs), **band})
    return pd.DataFrame(rows)


def oracle_table(oracles: dict[tuple[str, str], np.ndarray]) -> pd.DataFrame:
    """Long form of :func:`cluster_oracle_rewards` per (target, clustering)."""
    return pd.DataFrame([{"target": t, "clustering": c, "cluster": j, "oracle_reward": float(v)}
                         for (t, c), values in oracles.items() for j, v in enumerate(values)])  # fmt: skip


def regret_curves(runs: list, oracles: dict[tuple[str, str], np.ndarray], pool_sizes, spec_of) -> pd.DataFrame:
    """Per pull of every bandit run: observed reward (OT methods), oracle value of the pulled cluster, regret.

    ``pool_sizes(method)`` gives the candidate documents per cluster the method started from, ``spec_of(method)``
    the method (:func:`equal.select.methods.get_method`: its clustering and reward).
    """
    curves = []
    for run in runs:
        if run.pulls is None or not len(run.pulls):
            continue
        spec = spec_of(run.method)
        curve = regret_curve(run.pulls, oracles[run.target, spec.clustering], pool_sizes(run.method))
        curve["reward"] = run.pulls["reward"].to_numpy() if getattr(spec, "reward", "") == "ot" else np.nan
        curves.append(curve.assign(method=run.method, target=run.target, gamma=run.gamma, seed=run.seed))
    columns = ["pull", "round", "arm", "oracle", "regret", "reward", "method", "target", "gamma", "seed"]
    return pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=columns)


def domain_shares(runs: list, target: str, gamma: float) -> pd.DataFrame:
    """Share of each method's extracted documents (warm-up included) by domain, mean over seeds."""
    rows = []
    for run in runs:
        if run.target == target and run.gamma == gamma:
            counts = run.summary.documents_by_domain
            total = sum(counts.values())
            rows += [
                {"method": run.method, "seed": run.seed, "domain": d, "share": n / total} for d, n in counts.items()
            ]
    if not rows:
        return pd.DataFrame(columns=["method", "domain", "share"])
    return pd.DataFrame(rows).groupby(["method", "domain"], sort=False)["share"].mean().reset_index()
