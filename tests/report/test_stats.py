"""Paired bootstrap intervals, variance components, power and the verdict (equal.report.stats)."""

import math

import numpy as np
import pandas as pd
import pytest

from equal.report.stats import (
    minimum_detectable_effect,
    model_matrix,
    paired_bootstrap,
    power_table,
    variance_components,
)

N_ITEMS = 60


def _items(method: str, seeds: list[int], shift: float, rng: np.random.Generator, train_seeds=(None,),
           selection_noise: float = 0.0, training_noise: float = 0.0) -> list[dict]:  # fmt: skip
    """Bits-per-byte items: a per-item difficulty shared by every model (seeded once), plus the method's shift and
    each replicate's own noise."""
    difficulty = np.random.default_rng(123).uniform(0.5, 1.0, N_ITEMS)
    weights = np.random.default_rng(456).integers(50, 400, N_ITEMS)
    rows = []
    for seed in seeds:
        selection = rng.normal(0, selection_noise)
        for train_seed in train_seeds:
            offset = selection + rng.normal(0, training_noise) + shift
            bpb = difficulty + offset + rng.normal(0, 0.05, N_ITEMS)
            model = f"{method} · seed {seed}" + ("" if train_seed is None else f" · train {train_seed}")
            rows += [{"model": model, "method": method, "gamma": 0.05, "seed": seed,
                      "train_seed": seed if train_seed is None else train_seed, "benchmark": "gsm8k",
                      "metric": "bits_per_byte", "item": i, "value": bpb[i] * weights[i], "weight": weights[i]}
                     for i in range(N_ITEMS)]  # fmt: skip
    return rows


def test_a_real_difference_gets_an_interval_without_zero_and_no_difference_one_with_it():
    rng = np.random.default_rng(0)
    items = pd.DataFrame(_items("EQUAL", range(5), -0.05, rng, selection_noise=0.005)
                         + _items("Random", range(5), 0.0, rng, selection_noise=0.005)
                         + _items("Uniform", range(5), 0.0, rng, selection_noise=0.005))  # fmt: skip
    better = paired_bootstrap(items, ("EQUAL", 0.05), ("Random", 0.05), "gsm8k", n_boot=500)
    assert better["difference"] == pytest.approx(-0.05, abs=0.01)
    assert better["ci_high"] < 0 and better["excludes_zero"] and better["n_a"] == better["n_b"] == 5
    same = paired_bootstrap(items, ("Uniform", 0.05), ("Random", 0.05), "gsm8k", n_boot=500)
    assert same["ci_low"] < 0 < same["ci_high"] and not same["excludes_zero"]
    assert paired_bootstrap(items, ("EQUAL", 0.05), ("Random", 0.05), "gsm8k", n_boot=500) == better  # seeded
    assert paired_bootstrap(items, ("All", 0.05), ("Random", 0.05), "gsm8k") == {}  # no such models


def test_variance_components_separate_selection_from_fine_tuning_seeds():
    rng = np.random.default_rng(1)
    items = pd.DataFrame(_items("Random", range(6), 0.0, rng, train_seeds=(0, 1), selection_noise=0.03,
                                training_noise=0.003))  # fmt: skip
    parts = variance_components(items, "Random", 0.05, "gsm8k")
    assert parts["models"] == 12 and parts["items"] == N_ITEMS
    assert parts["selection_std"] > 3 * parts["fine_tuning_std"]
    assert parts["item_std"] == pytest.approx(0.05, rel=0.3)  # the per-item noise put in
    assert parts["seed_std"] < parts["replicate_std"]


def test_variance_components_of_independent_replicates_each_with_its_own_seeds():
    # The default's design: each replicate's fine-tuning seed follows its selection seed, so no seed is shared and
    # the replicate spread is the plain std of the models' metric (no selection / fine-tuning split).
    rng = np.random.default_rng(2)
    items = pd.DataFrame(_items("Random", range(5), 0.0, rng, selection_noise=0.02))
    parts = variance_components(items, "Random", 0.05, "gsm8k")
    values, weights, _ = model_matrix(items, "Random", 0.05, "gsm8k")
    per_model = values.sum(axis=1) / weights.sum(axis=1)
    assert parts["models"] == 5
    assert parts["replicate_std"] == pytest.approx(float(np.std(per_model, ddof=1)))
    assert 0 < parts["seed_std"] < parts["replicate_std"]
    assert "fine_tuning_std" not in parts and "selection_std" not in parts
    mde = minimum_detectable_effect(parts["seed_std"], parts["item_std"], 5, N_ITEMS)
    assert math.isfinite(mde) and mde > 0


def test_minimum_detectable_effect_shrinks_with_seeds_and_items_and_meets_a_quarter_of_the_control():
    assert minimum_detectable_effect(0.01, 0.1, 5, 200) > minimum_detectable_effect(0.01, 0.1, 10, 200)
    assert minimum_detectable_effect(0.01, 0.3, 5, 100) > minimum_detectable_effect(0.01, 0.3, 5, 800)
    # large-sample limit: (1.96 + 0.84) · sqrt(2 σ² / n)
    assert minimum_detectable_effect(0.01, 0.0, 2000, 100) == pytest.approx(2.80 * 0.01 * math.sqrt(2 / 2000), rel=0.01)
    table = power_table({"benchmark": "gsm8k", "seed_std": 0.01, "item_std": 0.2}, 0.1, [3, 5, 10], [100, 400])
    assert len(table) == 6
    assert table.loc[(table["seeds"] == 10) & (table["items"] == 400), "meets_quarter"].item()
    assert not table.loc[(table["seeds"] == 3) & (table["items"] == 100), "meets_quarter"].item()


@pytest.mark.slow
def test_the_band_curve_sees_a_metric_that_rises_with_distance_and_the_gate_needs_both_conditions():
    from equal.report.bands import band_curve, link_gate

    rng = np.random.default_rng(7)
    bands = [f"Distance band {b}" for b in range(1, 6)]
    rising = pd.DataFrame([row for b, name in enumerate(bands) for row in _items(name, [0, 1], 0.02 * b, rng,
                                                                                  selection_noise=0.002)])  # fmt: skip
    runs = pd.DataFrame({"method": bands, "band_distance_mean": [0.5, 0.6, 0.7, 0.8, 0.9]})
    table, rho = band_curve(rising, runs, bands, "gsm8k", 0.05, n_boot=300)
    assert list(table["band"]) == bands and (table["models"] == 2).all()
    assert (table["ci_low"] <= table["mean"]).all() and (table["mean"] <= table["ci_high"]).all()
    assert table["distance_mean"].tolist() == [0.5, 0.6, 0.7, 0.8, 0.9]
    assert rho["spearman_rho"] == pytest.approx(1.0) and rho["rho_ci_low"] > 0 and rho["rho_excludes_zero"]
    assert link_gate({"difference": -0.03}, rho, mde=0.01)["passes"]
    assert not link_gate({"difference": -0.005}, rho, mde=0.01)["passes"]  # nearest band within the MDE
    flat = pd.DataFrame([row for name in bands for row in _items(name, [0, 1], 0.0, rng, selection_noise=0.002)])
    _, flat_rho = band_curve(flat, runs, bands, "gsm8k", 0.05, n_boot=300)
    assert flat_rho["rho_ci_low"] < 0 < flat_rho["rho_ci_high"]
    gate = link_gate({"difference": -0.03}, flat_rho, mde=0.01)
    assert gate["nearest_beats_random"] and not gate["curve_rises"] and not gate["passes"]


def test_the_seed_level_test_is_welch_and_a_permutation_over_seed_means():
    from scipy import stats

    from equal.report.stats import seed_level_test

    a, b = np.array([0.70, 0.72, 0.69, 0.71, 0.73]), np.array([0.74, 0.75, 0.73, 0.76, 0.72])
    result = seed_level_test(a, b)
    welch = stats.ttest_ind(a, b, equal_var=False)
    assert result["p_welch"] == pytest.approx(welch.pvalue) and result["difference"] == pytest.approx(-0.03)
    assert result["ci_low"] < result["difference"] < result["ci_high"] < 0
    arrangements = result["p_permutation"] * 252  # exact: a share of the C(10, 5) = 252 splits of the ten seeds
    assert arrangements == pytest.approx(round(arrangements)) and 0 < result["p_permutation"] < 0.1
    assert math.isnan(seed_level_test(a[:1], b)["p_welch"])  # one seed: no test


def test_seed_means_average_the_fine_tuning_seeds_of_one_selection():
    from equal.report.stats import seed_means

    rng = np.random.default_rng(0)
    items = pd.DataFrame(_items("Random", [0, 1, 2], 0.0, rng, train_seeds=(0, 1), selection_noise=0.05))
    means = seed_means(items, "Random", 0.05, "gsm8k")
    assert list(means.index) == [0, 1, 2]  # three replicates, not six models
    values, weights, _ = model_matrix(items, "Random", 0.05, "gsm8k")
    per_model = (values.sum(axis=1) / weights.sum(axis=1))[:2]  # seed 0's two models
    assert means.loc[0] == pytest.approx(per_model.mean())


def test_selection_variance_makes_the_bootstrap_overconfident_and_the_seed_level_test_calibrated():
    """Random against Random: halves of one method's seeds differ only by chance. With selection variance much
    larger than item noise, resampling the seeds as if they were many rejects often; Welch over seed means near α."""
    from equal.report.stats import random_split_calibration

    rejects = {"welch_rejects": 0, "bootstrap_rejects": 0, "permutation_rejects": 0}
    splits = 0
    for draw in range(6):
        items = pd.DataFrame(_items("Random", list(range(6)), 0.0, np.random.default_rng(draw), selection_noise=0.03))
        table = random_split_calibration(items, "Random", 0.05, "gsm8k", n_boot=300)
        splits += len(table)
        for key in rejects:
            rejects[key] += int(table[key].sum())
    assert splits == 60  # C(6, 3) / 2 splits per draw
    assert rejects["welch_rejects"] / splits <= 0.15
    assert rejects["bootstrap_rejects"] / splits > 0.05 and rejects["bootstrap_rejects"] > rejects["welch_rejects"]
    assert rejects["permutation_rejects"] == 0  # 3 seeds a side: its smallest two-sided p is 0.1
    assert set(table["smallest_permutation_p"]) == {0.1}


def test_seeds_for_an_mde_grow_with_the_spread_of_seed_means():
    from equal.report.stats import seeds_for_mde

    assert seeds_for_mde(0.005, 0.010) < seeds_for_mde(0.010, 0.010) < seeds_for_mde(0.014, 0.010)
    assert seeds_for_mde(0.0138, 0.010) == 31  # the committed default's Random on GSM8K, 5 seeds
    assert seeds_for_mde(1.0, 0.010, most=50) == 51


def test_the_quantile_slope_sees_a_rise_with_distance_and_counts_each_selection_once():
    from equal.report.stats import quantile_slope

    rows = []
    for q in range(1, 5):  # farther quantiles 0.02 worse each; three selections each
        rows += _items(f"Q{q}", [0, 1, 2], 0.02 * q, np.random.default_rng(q), selection_noise=0.005)
    items = pd.DataFrame(rows)
    fit = quantile_slope(items, [f"Q{q}" for q in range(1, 5)], "gsm8k", 0.05)
    assert fit["points"] == 12 and fit["quantiles"] == 4
    assert fit["ci_low"] < 0.02 < fit["ci_high"] and fit["rises_with_distance"]
    flat = pd.DataFrame([r for q in range(1, 5) for r in _items(f"Q{q}", [0, 1, 2], 0.0, np.random.default_rng(q),
                                                                  selection_noise=0.02)])  # fmt: skip
    assert not quantile_slope(flat, [f"Q{q}" for q in range(1, 5)], "gsm8k", 0.05)["rises_with_distance"]
    assert quantile_slope(items, ["Q1"], "gsm8k", 0.05) == {}


# ---------------------------------------------------------------------------- the pre-registered analysis
def _arms(shifts: dict[str, float], seeds: int = 6, selection_noise: float = 0.004) -> pd.DataFrame:
    rows = []
    for k, (method, shift) in enumerate(shifts.items()):
        rng = np.random.default_rng(10 + k)
        rows += _items(method, list(range(seeds)), shift, rng, selection_noise=selection_noise)
    return pd.DataFrame(rows)


def test_primary_tests_correct_for_four_comparisons_and_the_verdict_tells_a_domain_filter_from_ot():
    from equal.report.preregistered import plan_verdict, primary_tests, quantile_gate

    # EQUAL 0.03 better than Random, as good as the domain controls
    items = _arms({"EQUAL": 0.0, "Random": 0.03, "Domain filter": 0.0, "DSIR": 0.001, "Random in domain": 0.0})
    methods = ["EQUAL", "Random", "Domain filter", "DSIR", "Random in domain"]
    tests = primary_tests(items, ["gsm8k"], 0.05, methods)
    assert list(tests["b"]) == ["Random", "Domain filter", "DSIR", "Random in domain"]
    assert (tests["p_holm"] >= tests["p_welch"]).all() and (tests["p_holm"] <= 1).all()
    assert tests.set_index("b")["called"].to_dict() == {"Random": True, "Domain filter": False, "DSIR": False,
                                                       "Random in domain": False}  # fmt: skip
    training = pd.DataFrame(columns=["method", "target", "pairs", "answer_chars_median"])
    rising = pd.DataFrame([r for q in range(1, 5) for r in _items(
        f"In-domain quantile {q}", [0, 1, 2], 0.02 * q, np.random.default_rng(q), selection_noise=0.004)])  # fmt: skip
    gate, per_quantile, points = quantile_gate(rising, training, ["gsm8k"], {"gsm8k": "gsm8k"}, 0.05)
    assert bool(gate["rises_with_distance"].iloc[0]) and list(per_quantile["selections"]) == [3, 3, 3, 3]
    assert len(points) == 12 and points.groupby("quantile")["bits_per_byte"].mean().is_monotonic_increasing
    from equal.report.figures import quantile_figure

    figure = quantile_figure(per_quantile, gate, points, {"gsm8k": "GSM8K"})
    assert "slope" in figure.axes[0].get_title() and len(figure.axes[0].collections) >= 1
    (row,) = plan_verdict(tests, gate, ["gsm8k"], {"gsm8k": "gsm8k"}).to_dict("records")
    assert "holds" in row["gate"] and "domain filter's" in row["reading"]
    assert "vs Random: better" in row["comparisons"] and "vs DSIR: no difference called" in row["comparisons"]
    # the same comparisons behind a failed gate are not read as the claim
    flat = pd.DataFrame([r for q in range(1, 5) for r in _items(
        f"In-domain quantile {q}", [0, 1, 2], 0.0, np.random.default_rng(q), selection_noise=0.004)])  # fmt: skip
    gate, _, _ = quantile_gate(flat, training, ["gsm8k"], {"gsm8k": "gsm8k"}, 0.05)
    (row,) = plan_verdict(tests, gate, ["gsm8k"], {"gsm8k": "gsm8k"}).to_dict("records")
    assert "fails" in row["gate"] and row["reading"].startswith("the gate fails")
    # EQUAL better than every control: the claim's second half
    better = _arms({"EQUAL": 0.0, "Random": 0.03, "Domain filter": 0.03, "DSIR": 0.03, "Random in domain": 0.03})
    better_tests = primary_tests(better, ["gsm8k"], 0.05, methods)
    (row,) = plan_verdict(better_tests, _HOLDING, ["gsm8k"], {"gsm8k": "gsm8k"}).to_dict("records")
    assert "second half holds" in row["reading"]
    # ... but only behind a gate that holds: untested, the same comparisons are not read as the claim either
    (row,) = plan_verdict(better_tests, pd.DataFrame(), ["gsm8k"], {"gsm8k": "gsm8k"}).to_dict("records")
    assert row["reading"].startswith("the gate was not tested") and "second half" not in row["reading"]


_HOLDING = pd.DataFrame([{"benchmark": "gsm8k", "slope": 0.01, "ci_low": 0.004, "ci_high": 0.016, "points": 12,
                          "rises_with_distance": True, "complete": True}])  # fmt: skip


def _reading(shifts: dict[str, float], gate: pd.DataFrame | None = None) -> str:
    from equal.report.preregistered import plan_verdict, primary_tests

    tests = primary_tests(_arms(shifts), ["gsm8k"], 0.05, list(shifts))
    return plan_verdict(tests, _HOLDING if gate is None else gate, ["gsm8k"], {"gsm8k": "gsm8k"}).iloc[0][
        "reading"]  # fmt: skip


def test_the_verdict_reads_each_outcome_as_the_plan_says():
    # beating only the reference arm (Random in domain) is not the claim
    reference = _reading({"EQUAL": 0.0, "Random": 0.0, "Domain filter": 0.0, "DSIR": 0.0, "Random in domain": 0.03})
    assert "second half" not in reference and reference.startswith("EQUAL beats Random in domain but not Random")
    # a negative result is always said, even beside a gain
    mixed = _reading({"EQUAL": 0.0, "Random": 0.03, "Domain filter": 0.0, "DSIR": -0.03, "Random in domain": 0.0})
    assert "not Domain filter or DSIR" in mixed and "negative result: EQUAL is worse than DSIR" in mixed
    # a null names the minimum detectable effects it was blind below
    null = _reading({"EQUAL": 0.0, "Random": 0.0, "Domain filter": 0.0, "DSIR": 0.0, "Random in domain": 0.0})
    assert null.startswith("no difference called: absence of evidence") and "Random (MDE 0.0" in null
    # a failed gate is read as such, and a negative result still said
    failed = pd.DataFrame([{"benchmark": "gsm8k", "slope": -0.001, "ci_low": -0.01, "ci_high": 0.008, "points": 12,
                            "rises_with_distance": False, "complete": True}])  # fmt: skip
    text = _reading({"EQUAL": 0.0, "Random": -0.03, "Domain filter": 0.0, "DSIR": 0.0, "Random in domain": 0.0}, failed)
    assert text.startswith("the gate fails") and "worse than Random" in text
    # too few selections per quantile: not tested, not "fails"
    from equal.report.preregistered import _gate_words

    holds, words = _gate_words({**failed.iloc[0].to_dict(), "complete": False, "selections_per_quantile": "1,1,1,1"})
    assert holds is None and "not tested" in words


def test_holm_corrects_over_the_plans_four_comparisons_even_when_one_cannot_be_tested():
    from equal.report.preregistered import primary_tests

    items = _arms({"EQUAL": 0.0, "Random": 0.012, "Domain filter": 0.012, "DSIR": 0.012})
    single = pd.DataFrame(_items("Random in domain", [0], 0.0, np.random.default_rng(3)))  # one seed: no test
    tests = primary_tests(pd.concat([items, single]), ["gsm8k"], 0.05,
                          ["EQUAL", "Random", "Domain filter", "DSIR", "Random in domain"]).set_index("b")  # fmt: skip
    assert (tests["holm_family"] == 4).all() and np.isnan(tests.loc["Random in domain", "p_holm"])
    p = [*sorted(tests["p_welch"].dropna()), 1.0]  # Holm by hand: the k-th smallest × (m − k + 1), running maximum
    by_hand = np.maximum.accumulate([min(1.0, v * (4 - k)) for k, v in enumerate(p)])
    assert sorted(tests["p_holm"].dropna()) == pytest.approx(list(by_hand[:3]))


def test_no_spread_on_either_side_gives_no_p_value_rather_than_a_tiny_one():
    from equal.report.stats import seed_level_test

    result = seed_level_test(np.array([0.70, 0.70, 0.70]), np.array([0.72, 0.72, 0.72]))
    assert result["difference"] == pytest.approx(-0.02) and np.isnan(result["p_welch"]) and np.isnan(result["mde"])


def test_seed_level_power_uses_the_welch_mde_over_seed_means():
    from equal.report.preregistered import seed_level_power
    from equal.report.stats import mde_over_seeds, seed_means

    items = _arms({"EQUAL": 0.0, "Random": 0.0}, seeds=5, selection_noise=0.01)
    table = seed_level_power(items, ["gsm8k"], 0.05, [5, 10, 20])
    now = table[table["this_run"]].iloc[0]
    pooled = np.sqrt(np.mean([seed_means(items, m, 0.05, "gsm8k").std(ddof=1) ** 2 for m in ("EQUAL", "Random")]))
    assert now["seeds"] == 5 and now["mde"] == pytest.approx(mde_over_seeds(pooled, 5))
    assert table["mde"].is_monotonic_decreasing and table["meets_target"].iloc[-1]
    assert table.loc[table["seeds"] == now["seeds_needed"], "meets_target"].item() and now["seeds_needed"] >= 5


def test_a_control_the_run_lacks_still_counts_in_holms_family_and_is_never_read():
    from equal.report.preregistered import plan_verdict, primary_tests

    items = _arms({"EQUAL": 0.0, "Random": 0.03, "Domain filter": 0.0})
    tests = primary_tests(items, ["gsm8k"], 0.05, ["EQUAL", "Random", "Domain filter"]).set_index("b")
    assert list(tests.index) == ["Random", "Domain filter", "DSIR", "Random in domain"]
    assert (tests["holm_family"] == 4).all() and tests.loc[["DSIR", "Random in domain"], "n_b"].eq(0).all()
    assert tests["p_holm"].isna().sum() == 2 and not tests.loc["DSIR", "called"]
    (row,) = plan_verdict(tests.reset_index(), _HOLDING, ["gsm8k"], {"gsm8k": "gsm8k"}).to_dict("records")
    assert "vs DSIR: not run" in row["comparisons"] and "not testable: DSIR, Random in domain" in row["reading"]


def test_the_calibration_samples_a_seeded_subset_of_splits_when_they_are_many():
    from equal.report.stats import random_split_calibration

    items = pd.DataFrame(_items("Random", list(range(6)), 0.0, np.random.default_rng(0), selection_noise=0.01))
    every = random_split_calibration(items, "Random", 0.05, "gsm8k", n_boot=50)
    some = random_split_calibration(items, "Random", 0.05, "gsm8k", n_boot=50, max_splits=4)
    assert len(every) == 10 and len(some) == 4 and some["half_a"].is_unique
    assert set(some["half_a"]) <= set(every["half_a"])
    again = random_split_calibration(items, "Random", 0.05, "gsm8k", n_boot=50, max_splits=4)
    assert list(again["half_a"]) == list(some["half_a"])  # seeded
    assert random_split_calibration(items, "Random", 0.2, "gsm8k").empty  # no seed at that budget: nothing to split
