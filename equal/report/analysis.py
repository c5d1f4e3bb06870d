"""Notebook 06's analysis as functions: which models are evaluated on what, the variance of the design, the
distance-band test and the comparisons to make. The pre-registered tests and the verdict are in
:mod:`equal.report.preregistered`. The notebook shows their tables and figures; the functions are tested on their own.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from equal.artifacts import Artifacts
from equal.report.bands import band_curve, link_gate
from equal.report.stats import (
    minimum_detectable_effect,
    paired_bootstrap,
    power_table,
    seed_level_comparison,
    variance_components,
)
from equal.select.methods import ABLATIONS, ORACLE, get_method
from equal.train.plan import REFERENCE_CONTROL, TrainingRun

POWER_SEEDS = [3, 5, 8, 10, 15, 20]  # designs the power table considers: seed replicates per method …
POWER_ITEMS = [100, 200, 400, 800]  # … and evaluation items


def model_roster(art: Artifacts, trained: pd.DataFrame, base_model_dir: str | Path, eval_files: dict[str, Path],
                 bench_target: dict[str, str], secondary_for: list[str] | None = None) -> list[dict]:  # fmt: skip
    """Every model to evaluate: the base model, then each fine-tuned model of notebook 05 (``trained``: its
    ``finetune_runs`` table), with the benchmark files it is evaluated on: its target's benchmarks, every benchmark
    for the base model and All (no target). Where ``secondary_for`` names the methods that get their domain's other
    benchmarks too, every other method's models are evaluated on their target's own benchmark only (the one the
    tests use: a cost saving, decided before any model of a run)."""
    models = [{"model": "Base", "method": "Base", "target": None, "gamma": 0.0, "seed": 0, "train_seed": 0,
               "dir": base_model_dir}]  # fmt: skip
    for r in trained.itertuples():
        target = r.target if isinstance(r.target, str) else None  # All: every target
        run = TrainingRun(r.method, r.gamma, r.seed, target, r.train_seed if r.train_seed != r.seed else None)
        models.append({"model": r.model, "method": r.method, "target": target, "gamma": r.gamma, "seed": r.seed,
                       "train_seed": r.train_seed, "dir": run.model_dir(art)})  # fmt: skip
    for model in models:
        own_only = secondary_for is not None and model["target"] is not None and model["method"] not in secondary_for
        model["files"] = {
            b: f
            for b, f in eval_files.items()
            if model["target"] in (None, bench_target.get(b)) and not (own_only and b != model["target"])
        }
    return models


def power_analysis(items: pd.DataFrame, summary: pd.DataFrame, benchmarks: list[str], gamma: float,
                   method: str = "Random") -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:  # fmt: skip
    """Per benchmark, ``method``'s seed replicates split into seed and item variance, with the D_r control's effect
    (base − control, bits per byte); the power table of designs (seeds × items) against a quarter of that effect;
    and the minimum detectable effect of this run's design. Benchmarks without replicates are left out."""
    components, power_rows, mde = [], [], {}
    for bench in benchmarks:
        parts = variance_components(items, method, gamma, bench)
        if not parts:
            continue
        of = (summary["benchmark"] == bench) & (summary["metric"] == "bits_per_byte")
        base = summary[of & (summary["method"] == "Base")]
        control = summary[of & (summary["method"] == REFERENCE_CONTROL)]
        effect = float(base["mean"].iloc[0] - control["mean"].iloc[0]) if len(base) and len(control) else float("nan")
        components.append({**parts, "control_effect": effect})
        power_rows.append(power_table(parts, effect, POWER_SEEDS, POWER_ITEMS))
        mde[bench] = minimum_detectable_effect(parts["seed_std"], parts["item_std"], parts["models"], parts["items"])
    power = pd.concat(power_rows, ignore_index=True) if power_rows else pd.DataFrame()
    return pd.DataFrame(components), power, mde


def band_analysis(items: pd.DataFrame, selection: pd.DataFrame, band_methods: list[str], benchmarks: list[str],
                  bench_target: dict[str, str], gamma: float, mde: dict[str, float], seed: int = 0
                  ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, dict]]:  # fmt: skip
    """The distance-band test per benchmark: each band's bits per byte with its interval and mean OT distance
    (:func:`equal.report.bands.band_curve`), Spearman ρ over the band order, and the gate (the nearest band beats
    Random by more than the MDE and ρ's interval lies above 0). Returns the curves, the per-benchmark statistics and
    the gates by benchmark (empty when no band was trained)."""
    curves, stats, gates = [], [], {}
    for bench in benchmarks:
        runs = selection[selection["target"] == bench_target.get(bench)]
        curve, rho = band_curve(items, runs, band_methods, bench, gamma, seed=seed)
        if curve.empty:
            continue
        nearest = paired_bootstrap(items, (band_methods[0], gamma), ("Random", gamma), bench, seed=seed)
        gate = link_gate(nearest, rho, mde.get(bench, float("nan")))
        curves.append(curve)
        stats.append({**rho, **gate, "mde": mde.get(bench)})
        gates[bench] = {**rho, **gate}
    if not curves:
        return pd.DataFrame(), pd.DataFrame(), {}
    return pd.concat(curves, ignore_index=True), pd.DataFrame(stats), gates


def comparison_plan(methods: list[str], band_methods: list[str]) -> list[tuple[str, str]]:
    """The pairs of methods compared (first − second): the claim (EQUAL vs Random and All), the oracle and the
    controls, each ablation against EQUAL, the nearest distance band against Random, and EQUAL against every other
    method that was fine-tuned (the paper's baselines and the domain-matched controls; not the in-domain quantiles,
    which are compared with one another by the gate)."""
    quantiles = [m for m in methods if get_method(m).kind == "domain_quantile"]
    named = {"EQUAL", "Random", "All", ORACLE, *ABLATIONS, *band_methods, *quantiles}
    return [("EQUAL", "Random"), ("EQUAL", "All"), (ORACLE, "Random"), ("Random", "Base"),
            (REFERENCE_CONTROL, "Base"), *[(ablation, "EQUAL") for ablation in ABLATIONS],
            *[(band, "Random") for band in band_methods[:1]],
            *[("EQUAL", m) for m in methods if m not in named]]  # fmt: skip


def compare(items: pd.DataFrame, plan: list[tuple[str, str]], benchmarks: list[str], titles: dict[str, str],
            gamma: float, seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Every planned comparison on every benchmark, selection seeds as the unit
    (:func:`equal.report.stats.seed_level_comparison`: Welch's 95 % interval and p, permutation p, over selection
    means), with the benchmark's title and item count; pairs with no trained model on a side are left out. A side
    with one selection (All, Base, the D_r control) has a difference but no interval."""
    rows = []
    for bench in benchmarks:
        n_items = items.loc[items["benchmark"] == bench, "item"].nunique()
        for a, b in plan:
            result = seed_level_comparison(items, (a, gamma), (b, gamma), bench, seed=seed)
            if result:
                rows.append({**result, "label": titles[bench], "items": n_items})
    return pd.DataFrame(rows)


def seed_level_analysis(items: pd.DataFrame, plan: list[tuple[str, str]], benchmarks: list[str],
                        primary: list[str], gamma: float, target_mde: float = 0.010,
                        seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """The comparisons with selection seeds as the unit (:func:`equal.report.stats.seed_level_comparison`), the
    calibration of that test and of the item-and-seed bootstrap on Random-vs-Random splits of each ``primary``
    benchmark, and the selection seeds per arm an EQUAL − Random comparison needs for an MDE of ``target_mde``
    there (from the spread of both arms' seed means)."""
    from equal.report.stats import MIN_SEEDS, random_split_calibration, seed_means, seeds_for_mde

    rows = [seed_level_comparison(items, (a, gamma), (b, gamma), bench, seed=seed) for bench in benchmarks
            for a, b in plan]  # fmt: skip
    comparisons = pd.DataFrame([row for row in rows if row])
    calibration = pd.concat([random_split_calibration(items, "Random", gamma, bench, seed=seed) for bench in primary],
                            ignore_index=True)  # fmt: skip
    needed = []
    for bench in primary:
        spreads = {m: seed_means(items, m, gamma, bench).std(ddof=1) for m in ("EQUAL", "Random")}
        pooled = float(np.sqrt(np.mean([s**2 for s in spreads.values()])))
        needed.append({"benchmark": bench, "seeds_now": len(seed_means(items, "Random", gamma, bench)),
                       "seed_mean_std_equal": spreads["EQUAL"], "seed_mean_std_random": spreads["Random"],
                       "pooled_std": pooled, "target_mde": target_mde,
                       "seeds_per_arm": max(MIN_SEEDS, seeds_for_mde(pooled, target_mde))})  # fmt: skip
    return comparisons, calibration, pd.DataFrame(needed)
