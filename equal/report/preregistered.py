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
from statsmodels.stats.multitest import multipletests

from equal.report.stats import ALPHA, mde_over_seeds, quantile_slope, seed_level_comparison, seed_means, seeds_for_mde
from equal.select.methods import quantile_name

#: EQUAL's primary comparisons, in the plan's order: the paper's baseline, then the domain-matched controls
PRIMARY_CONTROLS = ("Random", "Domain filter", "DSIR", "Random in domain")
#: the controls that pick the target's domain without OT or a bandit
DOMAIN_CONTROLS = ("Domain filter", "DSIR", "Random in domain")
KIND_COLUMNS = {"problem": "kind_problem_pairs", "code": "kind_code_pairs", "concept": "kind_concept_pairs"}


def primary_tests(items: pd.DataFrame, benchmarks: list[str], gamma: float, methods: list[str],
                  alpha: float = ALPHA, seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """EQUAL against each of :data:`PRIMARY_CONTROLS` that ``methods`` holds, on each benchmark (each target's own):
    Welch over selection means with Holm's correction over that benchmark's comparisons (``p_holm``, ``called``),
    permutation p beside it. Comparisons without two selections on a side are listed with NaN p and never called."""
    rows = []
    for bench in benchmarks:
        found = [seed_level_comparison(items, ("EQUAL", gamma), (control, gamma), bench, seed=seed)
                 for control in PRIMARY_CONTROLS if control in methods]  # fmt: skip
        found = [row for row in found if row]
        testable = [row for row in found if math.isfinite(row["p_welch"])]
        if testable:
            reject, corrected, _, _ = multipletests([row["p_welch"] for row in testable], alpha=alpha, method="holm")
            for row, p, called in zip(testable, corrected, reject, strict=True):
                row.update(p_holm=float(p), called=bool(called))
        for row in found:
            row.setdefault("p_holm", math.nan)
            row.setdefault("called", False)
            row.pop("significant", None)  # uncorrected: the plan calls on Holm's p only
            rows.append(row)
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
        slopes.append(slope)
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
        needed = seeds_for_mde(pooled, target_mde)
        now = min(len(s) for s in spreads)
        for n in sorted({*seeds, now, needed}):
            mde = mde_over_seeds(pooled, n)
            rows.append({"benchmark": bench, "seeds": n, "this_run": n == now, "seed_mean_std": pooled, "mde": mde,
                         "target_mde": target_mde, "meets_target": bool(mde <= target_mde),
                         "seeds_needed": needed})  # fmt: skip
    return pd.DataFrame(rows)


def plan_verdict(tests: pd.DataFrame, gate: pd.DataFrame, benchmarks: list[str], bench_target: dict[str, str],
                 lower_is_better: bool = True) -> pd.DataFrame:  # fmt: skip
    """One row per benchmark: the gate's outcome, each primary comparison in words, and the plan's reading of them
    ("What each outcome means" in docs/experiment.md)."""
    sign = -1.0 if lower_is_better else 1.0  # improvement = sign × difference
    rows = []
    for bench in benchmarks:
        mine = tests[tests["benchmark"] == bench] if len(tests) else tests
        slope = gate[gate["benchmark"] == bench].to_dict("records") if len(gate) else []
        if slope:
            s = slope[0]
            holds = bool(s["rises_with_distance"])
            gate_text = (f"slope {s['slope']:+.4f} bpb per quantile [{s['ci_low']:+.4f}, {s['ci_high']:+.4f}] over "
                         f"{s['points']} selections: {'holds' if holds else 'fails'}")  # fmt: skip
        else:
            holds, gate_text = None, "not tested (no in-domain quantile was trained)"
        words, called_better, called_worse = [], set(), set()
        for r in mine.itertuples():
            if not math.isfinite(r.p_holm):
                words.append(f"vs {r.b}: {r.difference:+.4f}, no test ({r.n_a} vs {r.n_b} selections)")
                continue
            interval = f"{r.difference:+.4f} [{r.ci_low:+.4f}, {r.ci_high:+.4f}], Holm p {r.p_holm:.3g}"
            if r.called:
                better = sign * r.difference > 0
                (called_better if better else called_worse).add(r.b)
                words.append(f"vs {r.b}: {'better' if better else 'worse'} ({interval})")
            else:
                words.append(f"vs {r.b}: no difference called ({interval})")
        comparisons = "EQUAL " + "; ".join(words) if words else "no EQUAL comparison"
        domain_beaten = [c for c in DOMAIN_CONTROLS if c in called_better]
        domain_tested = [c for c in DOMAIN_CONTROLS if c in set(mine["b"])] if len(mine) else []
        if holds is False:
            reading = ("the gate fails: OT distance does not predict a better model inside the domain, so the "
                       "comparisons are reported but not read as the claim")  # fmt: skip
        elif called_worse:
            reading = f"a negative result: EQUAL is worse than {', '.join(sorted(called_worse))}"
        elif "Random" in called_better and domain_tested and not domain_beaten:
            reading = ("EQUAL beats Random but no domain control: its gain is a domain filter's, not a benefit of OT "
                       "and the bandit")  # fmt: skip
        elif domain_beaten:
            beaten = ", ".join(domain_beaten)
            reading = f"EQUAL beats the domain control(s) {beaten}: the claim's second half holds here"
        elif len(mine) and not called_better:
            reading = "no difference called: a null at this design's minimum detectable effect"
        else:
            reading = "EQUAL beats Random; no domain control was trained to tell it from a domain filter"
        if holds is None and len(mine):
            reading += " (the gate was not tested)"
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
