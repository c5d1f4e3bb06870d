"""Statistics of the downstream comparison: selection-seed tests, bootstrap intervals, seed variance and power.

The input is the item table of notebook 06 (``eval_items.csv.gz``): one row per model × benchmark × item with
``value`` and ``weight`` such that a model's metric over any set of items is sum(value) / sum(weight) (bits and
bytes for bits per byte, the 0/1 score and 1 otherwise), and the model's method, γ, selection seed and
fine-tuning seed.

* :func:`seed_means` / :func:`seed_level_test` / :func:`seed_level_comparison` — selection seeds as the unit: the
  difference of two methods' means over selection-seed means, Welch's interval and p and a permutation p (what
  notebook 06 reports); :func:`random_split_calibration` checks them on Random-vs-Random splits;
  :func:`mde_over_seeds` / :func:`seeds_for_mde` — their power; :func:`quantile_slope` — the gate's slope.
* :func:`paired_bootstrap` — the difference of two methods' mean metric with a 95 % interval, resampling the
  evaluation items (the same draw for both methods: the comparison is paired over items) and each method's seed
  replicates (independently: the seeds of two methods share nothing).
* :func:`variance_components` — how much a model's metric moves with the selection seed, the fine-tuning seed
  and the particular item (per-item noise), from replicate models of one method.
* :func:`minimum_detectable_effect` / :func:`power_table` — the smallest true difference between two methods that
  a design with ``n`` seed replicates per method and ``m`` items detects with 80 % power at α = 0.05 (two-sided
  Welch-style t approximation): MDE = (t₁₋α/₂ + t₁₋β) · √(2 (σ²_seed + σ²_item / m) / n).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
POWER = 0.8
MIN_SEEDS = 5  # selection seeds per arm the analysis plan never goes below
MODEL_KEYS = ["model", "method", "gamma", "seed", "train_seed"]


def model_matrix(items: pd.DataFrame, method: str, gamma: float, benchmark: str, metric: str = "bits_per_byte"
                 ) -> tuple[np.ndarray, np.ndarray, list[str]]:  # fmt: skip
    """(values, weights, model names): one row per replicate model of ``method`` at ``gamma`` on ``benchmark``,
    one column per item (the item order is shared by every model of the benchmark)."""
    part = items[(items["method"] == method) & (items["benchmark"] == benchmark) & (items["metric"] == metric)]
    if method not in ("Base", "All") and not method.startswith("D_r"):
        part = part[np.isclose(part["gamma"], gamma)]
    if part.empty:
        return np.zeros((0, 0)), np.zeros((0, 0)), []
    values = part.pivot_table(index="model", columns="item", values="value", aggfunc="first").sort_index(axis=1)
    weights = part.pivot_table(index="model", columns="item", values="weight", aggfunc="first").sort_index(axis=1)
    if values.isna().any().any():
        raise ValueError(f"{method} on {benchmark}: the models were not evaluated on the same items")
    return values.to_numpy(float), weights.to_numpy(float), list(values.index)


def _metric_rows(values: np.ndarray, weights: np.ndarray, counts: np.ndarray | None = None) -> np.ndarray:
    """Each model's metric over the items, each item counted ``counts`` times (all once by default)."""
    counts = np.ones(values.shape[1]) if counts is None else counts
    return (values @ counts) / (weights @ counts)


def paired_bootstrap(items: pd.DataFrame, a: tuple[str, float], b: tuple[str, float], benchmark: str,
                     metric: str = "bits_per_byte", n_boot: int = 2000, seed: int = 0) -> dict:  # fmt: skip
    """Mean metric of method ``a`` minus that of ``b`` (each ``(method, γ)``) on ``benchmark``, with its 95 %
    percentile interval: items resampled once per draw for both (paired), each side's replicates resampled on
    their own. A side with one model contributes item noise only. Empty dict when either side has no model."""
    va, wa, models_a = model_matrix(items, *a, benchmark, metric)
    vb, wb, models_b = model_matrix(items, *b, benchmark, metric)
    if not models_a or not models_b:
        return {}
    if va.shape[1] != vb.shape[1]:
        raise ValueError(f"{a[0]} and {b[0]} were evaluated on different numbers of {benchmark} items")
    rng = np.random.default_rng(seed)
    n_items = va.shape[1]
    diffs = np.empty(n_boot)
    for i in range(n_boot):
        counts = np.bincount(rng.integers(0, n_items, n_items), minlength=n_items).astype(float)
        rows_a = _metric_rows(va, wa, counts)[rng.integers(0, len(models_a), len(models_a))]
        rows_b = _metric_rows(vb, wb, counts)[rng.integers(0, len(models_b), len(models_b))]
        diffs[i] = rows_a.mean() - rows_b.mean()
    observed = _metric_rows(va, wa).mean() - _metric_rows(vb, wb).mean()
    low, high = np.percentile(diffs, [2.5, 97.5])
    return {"benchmark": benchmark, "metric": metric, "a": a[0], "b": b[0], "n_a": len(models_a),
            "n_b": len(models_b), "items": n_items, "difference": float(observed), "ci_low": float(low),
            "ci_high": float(high), "excludes_zero": bool(low > 0 or high < 0)}  # fmt: skip


def variance_components(items: pd.DataFrame, method: str, gamma: float, benchmark: str,
                        metric: str = "bits_per_byte") -> dict:  # fmt: skip
    """Spread of ``method``'s replicate models on ``benchmark``.

    * ``replicate_std`` — std of the models' metric on these items: what an independent seed replicate (its own
      selection and fine-tuning seed) varies by;
    * ``fine_tuning_std`` / ``selection_std`` — its two sources, where selection seeds were crossed with
      fine-tuning seeds (the variance pilot): the within-selection-seed variance, and the variance of the
      selection-seed means beyond it; there, ``replicate_std`` is their sum (models that share a selection
      seed are not independent replicates);
    * ``item_std`` — per-item noise: the std across models of one item's score (bits per byte of that item)
      after each model's overall level is removed, averaged over items (weighted by bytes); it enters a
      replicate's variance divided by the number of items;
    * ``seed_std`` — the replicate spread without that item noise (what more items cannot reduce).
    """
    values, weights, models = model_matrix(items, method, gamma, benchmark, metric)
    if len(models) < 2:
        return {}
    per_model = pd.Series(_metric_rows(values, weights), index=models)
    replicate_var = float(per_model.var(ddof=1))
    residual = values / weights - per_model.to_numpy()[:, None]  # each item's metric beyond its model's level
    item_var = float(np.mean(residual.var(axis=0, ddof=1) * (weights.mean(axis=0) / weights.mean()) ** 2))
    n_items = values.shape[1]
    extra = {}
    seeds = items[items["model"].isin(models)].drop_duplicates("model").set_index("model").loc[models]
    grouped = per_model.groupby(seeds["seed"].to_numpy())
    # Crossed only where a selection seed has several fine-tuning seeds (the pilot); where each replicate has its
    # own pair of seeds (the default) the models are independent replicates and their variance is the answer.
    if (grouped.size() > 1).any() and seeds["train_seed"].nunique() > 1:
        within = float(grouped.var(ddof=1).mean())
        per_selection = float(grouped.size().mean())
        between = max(float(grouped.mean().var(ddof=1)) - within / per_selection, 0.0)
        extra = {"fine_tuning_std": math.sqrt(within), "selection_std": math.sqrt(between)}
        replicate_var = within + between  # an independent replicate draws both seeds afresh
    seed_var = max(replicate_var - item_var / n_items, 0.0)
    return {"method": method, "benchmark": benchmark, "models": len(models), "items": n_items,
            "mean": float(per_model.mean()), "replicate_std": math.sqrt(replicate_var),
            "item_std": math.sqrt(item_var), "seed_std": math.sqrt(seed_var), **extra}  # fmt: skip


def minimum_detectable_effect(seed_std: float, item_std: float, n_seeds: int, n_items: int,
                              alpha: float = ALPHA, power: float = POWER) -> float:  # fmt: skip
    """The smallest true difference between two methods with ``n_seeds`` replicates each, evaluated on the same
    ``n_items`` items, that a two-sided test at ``alpha`` detects with probability ``power``."""
    df = max(2 * n_seeds - 2, 1)
    multiplier = stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)
    return float(multiplier * math.sqrt(2 * (seed_std**2 + item_std**2 / n_items) / n_seeds))


def power_table(components: dict, control_effect: float, seeds: list[int], item_counts: list[int]) -> pd.DataFrame:
    """MDE of an EQUAL − Random comparison for each design (seeds × items) from measured ``components``
    (:func:`variance_components`), against a quarter of the D_r control's effect (``control_effect``: base
    metric minus control metric) — the largest MDE at which a selection effect of plausible size is visible."""
    rows = []
    for n in seeds:
        for m in item_counts:
            mde = minimum_detectable_effect(components["seed_std"], components["item_std"], n, m)
            ratio = mde / control_effect if control_effect else float("nan")
            rows.append({"benchmark": components["benchmark"], "seeds": n, "items": m, "mde": mde,
                         "control_effect": control_effect, "mde_over_control_effect": ratio,
                         "meets_quarter": bool(mde <= control_effect / 4)})  # fmt: skip
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------- selection seeds as the unit
def seed_means(items: pd.DataFrame, method: str, gamma: float, benchmark: str,
               metric: str = "bits_per_byte") -> pd.Series:  # fmt: skip
    """``method``'s metric on ``benchmark`` per *selection seed*: each model's metric over every item, averaged over
    the fine-tuning seeds of one selection seed (models that share a selection are not independent replicates).

    Each selection seed is an independent draw of the method's whole outcome — its selection and a fine-tuning run
    with its own seed — whether or not two seeds happen to select the same documents: a method whose selection
    does not depend on the seed (DSIR's top-k on this corpus, a distance band, EQUAL w/o MAB) has replicates that
    differ by fine-tuning only, which is all the randomness its outcome has."""
    values, weights, models = model_matrix(items, method, gamma, benchmark, metric)
    if not models:
        return pd.Series(dtype=float)
    per_model = pd.Series(_metric_rows(values, weights), index=models)
    selection = items[items["model"].isin(models)].drop_duplicates("model").set_index("model").loc[models, "seed"]
    return per_model.groupby(selection.to_numpy()).mean()


def seed_level_test(a_means: np.ndarray, b_means: np.ndarray, alpha: float = ALPHA, exact_limit: int = 20000,
                    seed: int = 0) -> dict:  # fmt: skip
    """Mean of ``a`` minus mean of ``b`` over selection-seed means, each seed one replicate: Welch's t interval
    and p (:func:`scipy.stats.ttest_ind`, unequal variances) and a two-sided permutation p of the difference of
    means (:func:`scipy.stats.permutation_test`: exact when the arrangements number at most ``exact_limit``, else
    that many seeded resamples). With fewer than two seeds on a side neither exists (NaN)."""
    a, b = np.asarray(a_means, float), np.asarray(b_means, float)
    out = {
        "n_a": len(a),
        "n_b": len(b),
        "difference": float(a.mean() - b.mean()) if len(a) and len(b) else math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "df": math.nan,
        "p_welch": math.nan,
        "p_permutation": math.nan,
        "mde": math.nan,
    }
    if len(a) < 2 or len(b) < 2:
        return out
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # no spread on either side (identical or not): Welch's p would be
        return out  # meaningless, not tiny or 1 — untestable, as the analysis plan reads it
    welch = stats.ttest_ind(a, b, equal_var=False)
    interval = welch.confidence_interval(1 - alpha)
    permutation = stats.permutation_test(
        (a, b), lambda x, y: np.mean(x) - np.mean(y), permutation_type="independent", alternative="two-sided",
        n_resamples=exact_limit, rng=np.random.default_rng(seed))  # fmt: skip
    return {
        **out,
        "ci_low": float(interval.low),
        "ci_high": float(interval.high),
        "df": float(welch.df),
        "p_welch": float(welch.pvalue),
        "p_permutation": float(permutation.pvalue),
        "mde": welch_mde(float(a.std(ddof=1)), len(a), float(b.std(ddof=1)), len(b), alpha),
    }


def welch_mde(std_a: float, n_a: int, std_b: float, n_b: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference a two-sided Welch test of these two arms detects with ``power``: (t₁₋α/₂ +
    t_power) · √(s_a²/n_a + s_b²/n_b) at the Welch–Satterthwaite df — a comparison's own MDE, which differs from the
    pooled :func:`mde_over_seeds` where one arm barely varies (a method whose selection ignores the seed)."""
    va, vb = std_a**2 / n_a, std_b**2 / n_b
    if va + vb == 0:
        return math.nan
    df = (va + vb) ** 2 / (va**2 / max(n_a - 1, 1) + vb**2 / max(n_b - 1, 1))
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * math.sqrt(va + vb))


def seed_level_comparison(items: pd.DataFrame, a: tuple[str, float], b: tuple[str, float], benchmark: str,
                          metric: str = "bits_per_byte", seed: int = 0) -> dict:  # fmt: skip
    """:func:`seed_level_test` of two methods (each ``(method, γ)``) on ``benchmark``; empty when a side has no
    model."""
    ma, mb = seed_means(items, *a, benchmark, metric), seed_means(items, *b, benchmark, metric)
    if ma.empty or mb.empty:
        return {}
    result = seed_level_test(ma.to_numpy(), mb.to_numpy(), seed=seed)
    # uncorrected: the pre-registered calls correct over each target's comparisons (preregistered.primary_tests)
    return {"benchmark": benchmark, "metric": metric, "a": a[0], "b": b[0], **result,
            "p_welch_below_alpha_uncorrected": bool(result["p_welch"] < ALPHA)}  # fmt: skip


def random_split_calibration(items: pd.DataFrame, method: str, gamma: float, benchmark: str,
                             metric: str = "bits_per_byte", n_boot: int = 1000, seed: int = 0,
                             max_splits: int = 50) -> pd.DataFrame:  # fmt: skip
    """How often a test calls two halves of *one* method's seeds different (splits of its selection seeds into two
    groups of sizes ⌊n/2⌋ and ⌈n/2⌉): the false-positive rates of Welch's test over seed means, of the
    permutation test and of the item-and-seed bootstrap (:func:`paired_bootstrap`) on the same splits, which should
    be near α for a calibrated test. One row per split: every split while they number at most ``max_splits``,
    else a seeded sample of that many distinct splits (20 seeds have 92,378 splits, each a 20,000-resample
    permutation test and a bootstrap: hours). The permutation test cannot reject with few seeds (its smallest p
    is 2 / C(n, ⌊n/2⌋): 0.2 for 5 seeds), so its row says little until the halves hold ~4 seeds each."""
    from itertools import combinations

    part = items[(items["method"] == method) & (items["benchmark"] == benchmark) & (items["metric"] == metric)]
    part = part[np.isclose(part["gamma"], gamma)]
    seeds = sorted(part["seed"].unique())
    if len(seeds) < 2:  # nothing to split (a profile without the method, or one seed of it)
        return pd.DataFrame(columns=["method", "benchmark", "half_a", "difference", "p_welch", "p_permutation",
                                     "welch_rejects", "permutation_rejects", "smallest_permutation_p",
                                     "bootstrap_rejects"])  # fmt: skip
    splits = [group for group in combinations(seeds, len(seeds) // 2)
              if len(seeds) % 2 or seeds[0] in group]  # each even split once  # fmt: skip
    if len(splits) > max_splits:
        picked = np.random.default_rng(seed).choice(len(splits), size=max_splits, replace=False)
        splits = [splits[i] for i in sorted(picked)]
    rows = []
    for group in splits:
        labelled = part.assign(method=np.where(part["seed"].isin(group), "half A", "half B"))
        means_a = seed_means(labelled, "half A", gamma, benchmark, metric)
        means_b = seed_means(labelled, "half B", gamma, benchmark, metric)
        test = seed_level_test(means_a.to_numpy(), means_b.to_numpy(), seed=seed)
        boot = paired_bootstrap(labelled, ("half A", gamma), ("half B", gamma), benchmark, metric, n_boot, seed)
        rows.append({"method": method, "benchmark": benchmark, "half_a": ",".join(map(str, group)),
                     "difference": test["difference"], "p_welch": test["p_welch"],
                     "p_permutation": test["p_permutation"],
                     "welch_rejects": bool(test["p_welch"] < ALPHA),
                     "permutation_rejects": bool(test["p_permutation"] < ALPHA),
                     "smallest_permutation_p": 2 / math.comb(len(seeds), len(group)) if len(seeds) % 2
                     else 1 / math.comb(len(seeds) - 1, len(group) - 1),
                     "bootstrap_rejects": bool(boot.get("excludes_zero"))})  # fmt: skip
    return pd.DataFrame(rows)


def mde_over_seeds(seed_mean_std: float, n_seeds: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest true difference a two-sided Welch comparison of two arms with ``n_seeds`` selection seeds each,
    seed means of std ``seed_mean_std``, detects with ``power`` (t quantiles at df = 2n − 2)."""
    df = max(2 * n_seeds - 2, 1)
    return float((stats.t.ppf(1 - alpha / 2, df) + stats.t.ppf(power, df)) * seed_mean_std * math.sqrt(2 / n_seeds))


def seeds_for_mde(seed_mean_std: float, target_mde: float, alpha: float = ALPHA, power: float = POWER,
                  most: int = 200) -> int:  # fmt: skip
    """The selection seeds per arm at which :func:`mde_over_seeds` reaches ``target_mde``; ``most`` + 1 when no
    design up to ``most`` seeds does."""
    for n in range(2, most + 1):
        if mde_over_seeds(seed_mean_std, n, alpha, power) <= target_mde:
            return n
    return most + 1


def quantile_slope(items: pd.DataFrame, quantile_methods: list[str], benchmark: str, gamma: float,
                   metric: str = "bits_per_byte", alpha: float = ALPHA) -> dict:  # fmt: skip
    """The link inside the domain: the least-squares slope of ``metric`` on quantile number (1 = nearest to the
    target) over every selection seed's mean of every quantile, with its t interval (:func:`scipy.stats.linregress`;
    each selection seed of each quantile one point, so selection variance is in the interval). Empty when fewer
    than three points."""
    points = [(q, value) for q, method in enumerate(quantile_methods, start=1)
              for value in seed_means(items, method, gamma, benchmark, metric).to_numpy()]  # fmt: skip
    if len(points) < 3 or len({q for q, _ in points}) < 2:
        return {}
    x, y = np.array(points, dtype=float).T
    fit = stats.linregress(x, y)
    half = stats.t.ppf(1 - alpha / 2, len(x) - 2) * fit.stderr
    return {"benchmark": benchmark, "metric": metric, "points": len(x), "quantiles": len(set(x)),
            "slope": float(fit.slope), "ci_low": float(fit.slope - half), "ci_high": float(fit.slope + half),
            "intercept": float(fit.intercept),
            "p": float(fit.pvalue), "rises_with_distance": bool(fit.slope - half > 0)}  # fmt: skip
