"""The link the method relies on, measured: does a training set closer to the target make a better target model?

EQUAL's bandit rewards clusters whose QA pairs are close (optimal transport) to the reference set. That only
helps if sets closer to the target make better models. :func:`link_table` pairs, for every fine-tuned model and
benchmark, the OT distance of the model's training set to held-out items of the benchmark's target
(``ot_heldout`` of notebook 04's selection run) with the model's bits per byte on that benchmark (notebook 06);
:func:`link_correlations` gives the correlation per benchmark. The method assumes a *positive* correlation
(lower distance, lower bits per byte). Beside it, the median answer length of each training set
(``answer_chars_median`` of notebook 05's ``finetune_runs``) and its correlation with bits per byte: a confound
the distance does not see (a set of target-like questions with terse answers teaches a model to stop short of the
worked solutions the metric scores).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

LINK_COLUMNS = ["model", "method", "gamma", "seed", "benchmark", "target", "selection", "ot_heldout",
                "answer_chars_median", "bits_per_byte"]  # fmt: skip


def selection_key(run) -> str:
    """The selection a model was trained on: its run's ``training_set`` id (notebook 04), or, in tables written
    before that column, the run's method, target, γ and seed — without the seed for All and the distance bands,
    whose selections do not depend on it (two seeds of another method that chose the same documents are still
    counted twice there)."""
    from equal.errors import ConfigError
    from equal.select.methods import get_method

    training_set = getattr(run, "training_set", None)
    if isinstance(training_set, str) and training_set:
        return training_set
    if run.method == "All":
        return f"All|{run.target}"
    try:
        seedless = get_method(run.method).kind == "band"
    except ConfigError:  # a method this version does not know: keep the seed
        seedless = False
    return f"{run.method}|{run.target}|{run.gamma:g}" + ("" if seedless else f"|{run.seed}")


def target_of_benchmark(domains: dict[str, str], targets: list[str]) -> dict[str, str]:
    """Each benchmark's target: itself when it is a target, else the one target of its domain (``domains``: task →
    domain); a benchmark with none, or several, is left out."""
    mapping = {}
    for task, domain in domains.items():
        same = [t for t in targets if domains.get(t) == domain]
        if task in targets:
            mapping[task] = task
        elif len(same) == 1:
            mapping[task] = same[0]
    return mapping


def link_table(
    selection_runs: pd.DataFrame,
    eval_runs: pd.DataFrame,
    benchmark_targets: dict[str, str],
    training_runs: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per fine-tuned model × benchmark: the selection it was trained on (:func:`selection_key`), that
    training set's ``ot_heldout`` for the benchmark's target, the median length of its answers (from
    ``training_runs``, notebook 05's table; NaN without it) and its bits per byte. Models without a selection
    (Base, the D_r control) have no row; All matches its one run."""
    bpb = eval_runs[eval_runs["metric"] == "bits_per_byte"]
    answer_chars = {}
    if training_runs is not None and "answer_chars_median" in training_runs:
        answer_chars = dict(zip(training_runs["model"], training_runs["answer_chars_median"], strict=True))
    rows = []
    for r in bpb.itertuples(index=False):
        target = benchmark_targets.get(r.benchmark)
        if target is None:
            continue
        runs = selection_runs[(selection_runs["method"] == r.method) & (selection_runs["target"] == target)]
        if r.method != "All":  # All does not depend on γ or the seed
            runs = runs[(runs["gamma"] == r.gamma) & (runs["seed"] == r.seed)]
        if runs.empty:
            continue
        run = next(runs.itertuples(index=False))
        rows.append({"model": r.model, "method": r.method, "gamma": r.gamma, "seed": r.seed, "benchmark": r.benchmark,
                     "target": target, "selection": selection_key(run), "ot_heldout": float(run.ot_heldout),
                     "bits_per_byte": r.value,
                     "answer_chars_median": answer_chars.get(r.model, float("nan"))})  # fmt: skip
    return pd.DataFrame(rows, columns=LINK_COLUMNS)


def _pearson(x: np.ndarray, y: np.ndarray):
    """scipy's Pearson result, or None where there are fewer than 3 points or either side is constant."""
    return stats.pearsonr(x, y) if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0 else None


def per_selection(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`link_table` with one row per benchmark and selection: models trained on the same selection (a
    band's fine-tuning seeds, All's) averaged, so that each selection counts once."""
    grouped = table.groupby(["benchmark", "selection"], sort=False)
    out = grouped.agg(
        method=("method", "first"),
        models=("model", "size"),
        ot_heldout=("ot_heldout", "mean"),
        answer_chars_median=("answer_chars_median", "mean"),
        bits_per_byte=("bits_per_byte", "mean"),
    )
    return out.reset_index()


def link_correlations(table: pd.DataFrame) -> pd.DataFrame:
    """Per benchmark, over selections (:func:`per_selection`; a selection's models averaged, since models that
    share a training set are not independent points): selections and models, Pearson r with its 95 % confidence
    interval and p-value, Spearman ρ, and the least-squares slope (bits per byte per unit of OT distance); the
    method assumes r > 0. Then the same Pearson r and p-value for the training sets' median answer length
    (``answer_chars_r``: negative where longer answers make a better model)."""
    rows = []
    for bench, part in per_selection(table).groupby("benchmark", sort=False):
        row = {"benchmark": bench, "selections": len(part), "models": int(part["models"].sum())}
        x, y = part["ot_heldout"].to_numpy(float), part["bits_per_byte"].to_numpy(float)
        if pearson := _pearson(x, y):
            low, high = pearson.confidence_interval(0.95)
            row |= {"pearson_r": float(pearson.statistic), "r_ci_low": float(low), "r_ci_high": float(high),
                    "p_value": float(pearson.pvalue), "spearman_rho": float(stats.spearmanr(x, y).statistic),
                    "slope": float(np.polyfit(x, y, 1)[0])}  # fmt: skip
        known = part.dropna(subset=["answer_chars_median"])
        if by_length := _pearson(known["answer_chars_median"].to_numpy(float), known["bits_per_byte"].to_numpy(float)):
            row |= {"answer_chars_r": float(by_length.statistic), "answer_chars_p": float(by_length.pvalue)}
        rows.append(row)
    columns = ["benchmark", "selections", "models", "pearson_r", "r_ci_low", "r_ci_high", "p_value", "spearman_rho",
               "slope", "answer_chars_r", "answer_chars_p"]  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=columns)
