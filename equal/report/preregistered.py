"""The pre-registered analysis of docs/experiment.md ("Analysis plan for the re-run"), as functions.

Selection seeds are the unit: every test is over selection-seed means (:func:`equal.report.stats.seed_means`, a seed's
fine-tuning runs averaged first). Per target, on its own benchmark:

* :func:`primary_tests` — EQUAL against Random, Domain filter, DSIR and Random in domain: Welch's interval and p and
  the permutation p (:func:`equal.report.stats.seed_level_comparison`), a difference *called* where Welch's p is
  below α after Holm's correction over the target's comparisons (:func:`statsmodels.stats.multitest.multipletests`);
* :func:`quantile_gate` — the link inside the domain: the slope of bits per byte on in-domain quantile number (1 =
  nearest to the target) over every selection, with its t interval (:func:`equal.report.stats.quantile_slope`),
  and per quantile what its training sets hold (pair kinds, answer length);
* :func:`seed_level_power` — the minimum detectable difference of a Welch test over seed means for each number of
  seeds, from the two arms' measured seed-mean spread (``power.csv``);
* :func:`plan_verdict` — the sentence each outcome deserves, as the plan words it.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from equal.report.stats import (
    ALPHA,
    MIN_SEEDS,
    mde_over_seeds,
    quantile_slope,
    seed_level_comparison,
    seed_level_test,
    seed_means,
    seeds_for_mde,
)
from equal.select.methods import quantile_name

#: EQUAL's primary comparisons, in the plan's order: the paper's baseline, then the domain-matched controls
PRIMARY_CONTROLS = ("Random", "Domain filter", "DSIR", "Random in domain")
#: the controls that pick the target's domain without OT or a bandit
DOMAIN_CONTROLS = ("Domain filter", "DSIR", "Random in domain")
#: the gate is tested only when every quantile has this many selections (the plan: 3 each); fewer is "not tested"
MIN_SELECTIONS_PER_QUANTILE = 2
KIND_COLUMNS = {"problem": "kind_problem_pairs", "code": "kind_code_pairs", "concept": "kind_concept_pairs"}


def primary_tests(items: pd.DataFrame, benchmarks: list[str], gamma: float, methods: list[str],
                  alpha: float = ALPHA, seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """EQUAL against each of :data:`PRIMARY_CONTROLS`, on each benchmark where EQUAL was evaluated (each target's own):
    Welch over selection-seed means (its own MDE beside it) with Holm's correction over that benchmark's comparisons
    (``p_holm``, ``called``; ``holm_family``: always the four), permutation p beside it. A comparison without two
    selection seeds on a side, or with no spread on either, or whose control ``methods`` lacks or no model of it
    was evaluated, is listed with NaN p, never called, and still counted in the family (as p = 1: the plan corrects
    over its four comparisons, not over those that happened to be testable)."""
    rows = []
    for bench in benchmarks:
        equal_means = seed_means(items, "EQUAL", gamma, bench)
        if equal_means.empty:
            continue
        found = []
        for control in PRIMARY_CONTROLS:
            row = seed_level_comparison(items, ("EQUAL", gamma), (control, gamma), bench, seed=seed) \
                if control in methods else {}  # fmt: skip
            # a control not run (or never evaluated) is a comparison with no seeds on its side: no test
            found.append(row or {"benchmark": bench, "metric": "bits_per_byte", "a": "EQUAL", "b": control,
                                 **seed_level_test(equal_means.to_numpy(), np.array([]))})  # fmt: skip
        p_values = [row["p_welch"] if math.isfinite(row["p_welch"]) else 1.0 for row in found]
        reject, corrected, _, _ = multipletests(p_values, alpha=alpha, method="holm")
        for row, p, called in zip(found, corrected, reject, strict=True):
            testable = math.isfinite(row["p_welch"])
            row.pop("p_welch_below_alpha_uncorrected", None)  # the plan calls on Holm's p only
            rows.append({**row, "p_holm": float(p) if testable else math.nan, "called": bool(called and testable),
                         "holm_family": len(found)})  # fmt: skip
    return pd.DataFrame(rows)


def quantile_gate(items: pd.DataFrame, training_runs: pd.DataFrame, benchmarks: list[str], bench_target: dict[str, str],
                  gamma: float, quantiles: int = 4) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """The gate per benchmark (:func:`equal.report.stats.quantile_slope` over in-domain quantiles 1 … ``quantiles``:
    slope, interval, ``rises_with_distance``); per benchmark and quantile, the selections trained, the mean and
    spread of their bits per byte, and what their training sets hold (notebook 05's ``training_runs``: pairs,
    median answer length, share of problem / code / concept pairs); and the slope's points, one per selection.
    Empty where no quantile was trained."""
    names = [quantile_name(q) for q in range(1, quantiles + 1)]
    slopes, rows, points = [], [], []
    for bench in benchmarks:
        slope = quantile_slope(items, names, bench, gamma)
        if not slope:
            continue
        counts = [len(seed_means(items, name, gamma, bench)) for name in names]
        means = [seed_means(items, name, gamma, bench).mean() for name in names]
        known = [(q, m) for q, m in enumerate(means, start=1) if m == m]
        sensitivity = {}
        if len(known) >= 3:  # the quantiles' selections share their quantile's documents: 4 pools, not 12 draws
            fit = stats.linregress(*np.array(known, dtype=float).T)
            half = stats.t.ppf(1 - ALPHA / 2, len(known) - 2) * fit.stderr
            sensitivity = {"slope_of_means": float(fit.slope), "means_ci_low": float(fit.slope - half),
                           "means_ci_high": float(fit.slope + half)}  # fmt: skip
        complete = min(counts) >= MIN_SELECTIONS_PER_QUANTILE
        slopes.append({**slope, "selections_per_quantile": ",".join(map(str, counts)), "complete": complete,
                       **sensitivity})  # fmt: skip
        for q, name in enumerate(names, start=1):
            means = seed_means(items, name, gamma, bench)
            points += [{"benchmark": bench, "quantile": q, "selection": str(selection), "bits_per_byte": float(v)}
                       for selection, v in means.items()]  # fmt: skip
            runs = training_runs[(training_runs["method"] == name) & (training_runs["target"] == bench_target[bench])]
            pairs = runs["pairs"].sum() if len(runs) else 0
            kinds = {f"{kind}_share": float(runs[column].sum() / pairs) if pairs and column in runs else math.nan
                     for kind, column in KIND_COLUMNS.items()}  # fmt: skip
            rows.append({"benchmark": bench, "quantile": q, "selections": len(means),
                         "bits_per_byte_mean": float(means.mean()) if len(means) else math.nan,
                         "bits_per_byte_std": float(means.std(ddof=1)) if len(means) > 1 else math.nan,
                         "pairs_mean": float(runs["pairs"].mean()) if len(runs) else math.nan,
                         "answer_chars_median": float(runs["answer_chars_median"].median()) if len(runs) else math.nan,
                         **kinds})  # fmt: skip
    return pd.DataFrame(slopes), pd.DataFrame(rows), pd.DataFrame(points)


def seed_level_power(items: pd.DataFrame, benchmarks: list[str], gamma: float, seeds: list[int],
                     target_mde: float = 0.010, arms: tuple = ("EQUAL", "Random")) -> pd.DataFrame:  # fmt: skip
    """Per benchmark and number of selection seeds per arm: the minimum detectable difference of a two-sided Welch
    test over seed means (80 % power, α = 0.05; :func:`equal.report.stats.mde_over_seeds`) from the pooled spread of
    ``arms``' seed means measured here, against ``target_mde``; and the seeds that meet it
    (:func:`equal.report.stats.seeds_for_mde`). Benchmarks where an arm has fewer than two selections are left out."""
    rows = []
    for bench in benchmarks:
        spreads = [seed_means(items, arm, gamma, bench) for arm in arms]
        if min(len(s) for s in spreads) < 2:
            continue
        pooled = float(np.sqrt(np.mean([s.std(ddof=1) ** 2 for s in spreads])))
        needed = max(MIN_SEEDS, seeds_for_mde(pooled, target_mde))  # the plan: at least 5
        now = min(len(s) for s in spreads)
        for n in sorted({*seeds, now, needed}):
            mde = mde_over_seeds(pooled, n)
            rows.append({"benchmark": bench, "seeds": n, "this_run": n == now, "seed_mean_std": pooled, "mde": mde,
                         "target_mde": target_mde, "meets_target": bool(mde <= target_mde),
                         "seeds_needed": needed})  # fmt: skip
    return pd.DataFrame(rows)


def _gate_words(slope: dict | None) -> tuple[bool | None, str]:
    """Whether the gate holds (None: not tested) and how to say it."""
    if not slope:
        return None, "not tested (no in-domain quantile was trained)"
    text = (f"slope {slope['slope']:+.4f} bpb per quantile [{slope['ci_low']:+.4f}, {slope['ci_high']:+.4f}] over "
            f"{slope['points']} selections")  # fmt: skip
    if not slope.get("complete", True):
        return None, f"{text}: not tested (selections per quantile {slope['selections_per_quantile']}; the plan: 3)"
    if slope["rises_with_distance"]:
        return True, f"{text}: holds"
    if slope["ci_high"] < 0:
        return False, f"{text}: fails (closer to the target is worse)"
    return False, f"{text}: fails (inconclusive: the interval includes 0)"


def plan_verdict(tests: pd.DataFrame, gate: pd.DataFrame, benchmarks: list[str], bench_target: dict[str, str],
                 lower_is_better: bool = True) -> pd.DataFrame:  # fmt: skip
    """One row per benchmark: the gate's outcome, each primary comparison in words, and the plan's reading of them
    ("What each outcome means" in docs/experiment.md). A difference is called on Holm's p (better and worse alike);
    the claim's second half needs EQUAL called better than Random, Domain filter *and* DSIR (Random in domain is a
    reference); a comparison that could not be tested is never read as a null; a negative result is always said."""
    sign = -1.0 if lower_is_better else 1.0  # improvement = sign × difference
    rows = []
    for bench in benchmarks:
        mine = tests[tests["benchmark"] == bench] if len(tests) else pd.DataFrame()
        slopes = gate[gate["benchmark"] == bench].to_dict("records") if len(gate) else []
        holds, gate_text = _gate_words(slopes[0] if slopes else None)
        words, better, worse, untested, nulls = [], [], [], [], []
        for r in mine.itertuples():
            if not math.isfinite(r.p_holm):
                untested.append(r.b)
                words.append(f"vs {r.b}: not run" if r.n_b == 0 else
                             f"vs {r.b}: {r.difference:+.4f}, no test ({r.n_a} vs {r.n_b} seeds)")  # fmt: skip
                continue
            interval = f"{r.difference:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}], Holm p {r.p_holm:.3g}"
            if r.called:
                (better if sign * r.difference > 0 else worse).append(r.b)
                words.append(f"vs {r.b}: {'better' if sign * r.difference > 0 else 'worse'} ({interval})")
            else:
                nulls.append(f"{r.b} (MDE {r.mde:.4f})")
                words.append(f"vs {r.b}: no difference called ({interval}; MDE {r.mde:.4f})")
        comparisons = "EQUAL " + "; ".join(words) if words else "no EQUAL comparison"
        claim_controls = [c for c in PRIMARY_CONTROLS if c != "Random in domain"]
        tested = (set(mine["b"]) if len(mine) else set()) - set(untested)
        if not words or len(untested) == len(words):
            reading = "nothing to read: no primary comparison could be tested"
        elif holds is not True:  # every reading of the claim is conditional on the gate holding
            reading = (
                "the gate fails: training sets closer to the target (OT distance) are not shown to make "
                "better models inside the domain, so the comparisons are reported but not read as the claim"
                if holds is False
                else "the gate was not tested: without it the design cannot say that OT distance predicts a better "
                "model inside the domain, so the comparisons are reported but not read as the claim"
            )
        elif set(claim_controls) <= set(better):
            reading = "EQUAL beats Random, Domain filter and DSIR: the claim's second half holds here"
        elif "Random" in better:
            unbeaten = [c for c in DOMAIN_CONTROLS[:2] if c in tested and c not in better]
            reading = (
                f"EQUAL beats Random but not {' or '.join(unbeaten)}: its gain is not shown to exceed a domain filter's"
                if unbeaten
                else "EQUAL beats Random; no domain control was tested against it"
            )
        elif better:
            reading = f"EQUAL beats {', '.join(better)} but not Random"
        elif not worse:
            reading = ("no difference called: absence of evidence at this run's minimum detectable effects ("
                       + ", ".join(nulls) + "), not evidence of no effect")  # fmt: skip
        else:
            reading = "no gain called"
        if worse:
            reading += f"; negative result: EQUAL is worse than {', '.join(worse)}"
        if untested and len(untested) < len(words):
            reading += f"; not testable: {', '.join(untested)}"
        rows.append({"benchmark": bench, "target": bench_target.get(bench), "gate": gate_text,
                     "comparisons": comparisons, "reading": reading})  # fmt: skip
    return pd.DataFrame(rows)


def run_mde(power: pd.DataFrame, verdict: pd.DataFrame) -> dict[str, float]:
    """The minimum detectable effect of a run's own seeds per benchmark, as its result files hold it: ``power.csv``'s
    ``this_run`` rows (:func:`seed_level_power`), or ``verdict.csv``'s ``mde`` in results written before the plan."""
    if "this_run" in power:
        mine = power[power["this_run"]]
        return dict(zip(mine["benchmark"], mine["mde"], strict=True))
    return dict(zip(verdict["benchmark"], verdict["mde"], strict=True)) if "mde" in verdict else {}
