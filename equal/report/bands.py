"""The distance-band test of the link the method assumes: bits per byte against the distance of the training set.

EQUAL assumes that a training set closer (by OT, to the target) makes a better target model. The distance bands of
notebook 04 (:class:`~equal.select.methods.BandMethod`) rank the corpus by each document's distance to held-out
target items and take ``BANDS`` equal-sized bands from the nearest to the farthest; notebook 05 trains one model per
band and seed. Here, per benchmark:

* :func:`band_curve` — each band's mean metric over its seed replicates with a 95 % bootstrap interval (items
  resampled once per draw for every band, so the bands are compared on the same items; each band's replicates
  resampled on their own), its mean document distance, and Spearman's ρ between band order and metric with an
  interval from the same draws. The method needs ρ > 0 (bits per byte rise with distance);
* :func:`link_gate` — the verdict's gate: the nearest band beats Random by more than the minimum detectable effect
  **and** ρ's interval lies above 0. If it fails, no selection by this distance can be expected to win here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from equal.report.stats import _metric_rows, model_matrix


def band_curve(items: pd.DataFrame, runs: pd.DataFrame, bands: list[str], benchmark: str, gamma: float,
               metric: str = "bits_per_byte", n_boot: int = 2000, seed: int = 0
               ) -> tuple[pd.DataFrame, dict]:  # fmt: skip
    """(one row per band: mean, interval, replicates, mean document distance; the ρ summary) on ``benchmark``.

    ``runs`` is notebook 04's ``selection_runs`` table (for each band's ``band_distance_mean``); ``bands`` are
    the band methods, nearest first. Bands without a model are left out; ρ needs three bands."""
    matrices = []
    for band in bands:
        values, weights, models = model_matrix(items, band, gamma, benchmark, metric)
        if models:
            matrices.append((band, values, weights, models))
    if not matrices:
        return pd.DataFrame(), {}
    n_items = matrices[0][1].shape[1]
    if any(v.shape[1] != n_items for _, v, _, _ in matrices):
        raise ValueError(f"the distance bands were evaluated on different numbers of {benchmark} items")
    rng = np.random.default_rng(seed)
    draws = np.empty((n_boot, len(matrices)))
    for i in range(n_boot):
        counts = np.bincount(rng.integers(0, n_items, n_items), minlength=n_items).astype(float)
        for j, (_, values, weights, models) in enumerate(matrices):
            rows = _metric_rows(values, weights, counts)
            draws[i, j] = rows[rng.integers(0, len(models), len(models))].mean()
    order = np.arange(1, len(matrices) + 1)
    rhos = np.array([stats.spearmanr(order, row).statistic for row in draws]) if len(matrices) >= 3 else None
    distance = {}
    if "band_distance_mean" in runs.columns:
        mine = runs[runs["method"].isin(bands)]
        if "gamma" in mine.columns:  # a band's documents depend on the budget
            mine = mine[np.isclose(mine["gamma"], gamma)]
        distance = mine.groupby("method")["band_distance_mean"].mean().to_dict()
    rows = []
    for j, (band, values, weights, models) in enumerate(matrices):
        low, high = np.percentile(draws[:, j], [2.5, 97.5])
        rows.append({"benchmark": benchmark, "metric": metric, "band": band, "order": j + 1,
                     "distance_mean": distance.get(band), "models": len(models), "items": n_items,
                     "mean": float(_metric_rows(values, weights).mean()), "ci_low": float(low),
                     "ci_high": float(high)})  # fmt: skip
    table = pd.DataFrame(rows)
    summary = {"benchmark": benchmark, "metric": metric, "bands": len(matrices)}
    if rhos is not None:
        rho = float(stats.spearmanr(order, table["mean"]).statistic)
        low, high = np.nanpercentile(rhos, [2.5, 97.5])
        summary |= {"spearman_rho": rho, "rho_ci_low": float(low), "rho_ci_high": float(high),
                    "rho_excludes_zero": bool(low > 0 or high < 0)}  # fmt: skip
    return table, summary


def link_gate(nearest_vs_random: dict, rho: dict, mde: float, lower_is_better: bool = True) -> dict:
    """Whether this design can test the claim: the nearest band improves on Random by more than ``mde``, and the
    metric worsens with the band's distance (ρ's interval above 0 for bits per byte, below 0 for accuracies)."""
    sign = -1.0 if lower_is_better else 1.0
    gain = sign * nearest_vs_random["difference"] if nearest_vs_random else float("nan")
    nearest_ok = bool(nearest_vs_random) and gain > mde
    rises = "rho_ci_low" in rho and (rho["rho_ci_low"] > 0 if lower_is_better else rho["rho_ci_high"] < 0)
    return {"nearest_gain": gain, "nearest_beats_random": nearest_ok, "curve_rises": bool(rises),
            "passes": nearest_ok and bool(rises)}  # fmt: skip


def band_references(summary: pd.DataFrame, gamma: float, benchmarks: list[str]) -> pd.DataFrame:
    """Random's (at ``gamma``) and the base model's mean bits per byte per benchmark: the band figure's lines."""
    part = summary[(summary["metric"] == "bits_per_byte") & summary["benchmark"].isin(benchmarks)
                   & (((summary["method"] == "Random") & np.isclose(summary["gamma"].fillna(-1), gamma))
                      | (summary["method"] == "Base"))]  # fmt: skip
    return part[["benchmark", "method", "mean"]].reset_index(drop=True)
