"""The paper's tables from per-model evaluation rows."""

import numpy as np
import pandas as pd
import pytest

from equal.report.tables import ablation_table, cost_table, main_table, summarize


def _long():
    rows = []
    values = {("Base", 0.0, 0): 1.0, ("EQUAL", 0.05, 0): 0.80, ("EQUAL", 0.05, 1): 0.84, ("Random", 0.05, 0): 0.9,
              ("EQUAL w/o MAB", 0.05, 0): 0.85, ("All", 1.0, 0): 0.88}  # fmt: skip
    for (method, gamma, seed), value in values.items():
        for bench in ("gsm8k", "mbpp"):
            label = {"gsm8k": "GSM8K", "mbpp": "MBPP"}[bench]  # the declaration's label, carried by every row
            rows.append({"method": method, "gamma": gamma, "seed": seed, "benchmark": bench, "label": label,
                         "metric": "bits_per_byte", "value": value, "items": 200})  # fmt: skip
            metric = "exact_match" if bench == "gsm8k" else "pass@1"
            rows.append({"method": method, "gamma": gamma, "seed": seed, "benchmark": bench, "label": label,
                         "metric": metric, "value": value / 10, "items": 8})  # fmt: skip
    return pd.DataFrame(rows)


def test_main_table_rows_cells_and_item_counts():
    table = main_table(summarize(_long()), ["EQUAL", "EQUAL w/o MAB", "Random", "All"])
    assert list(table["model"]) == ["Base", "All", "EQUAL · 5%", "EQUAL w/o MAB · 5%", "Random · 5%"]
    equal = table.set_index("model").loc["EQUAL · 5%"]
    assert equal["GSM8K bpb ↓ (n=200)"] == "0.820 ± 0.028" and equal["seeds"] == 2
    assert equal["GSM8K EM (n=8)"] == "8.2 ± 0.3" and equal["MBPP pass@1 (n=8)"] == "8.2 ± 0.3"


def test_a_profile_without_comparisons_keeps_its_main_table():
    from equal.report.tables import with_differences

    table = main_table(summarize(_long()), ["All"])  # the positive control: All and the base model only
    assert with_differences(table, pd.DataFrame(), [("EQUAL", "Random")]).equals(table)


def test_ablation_table_differences_from_equal():
    table = ablation_table(summarize(_long()), 0.05).set_index("model")
    assert table.loc["EQUAL w/o MAB · 5%", "Δ vs EQUAL"] == round(0.85 - 0.82, 4)
    assert table.loc["EQUAL · 5%", "Δ vs EQUAL"] == 0
    # an ablation evaluated on fewer benchmarks than EQUAL: every row's mean over the benchmarks all rows have
    summary = summarize(_long())
    extra = summary[summary["method"] == "EQUAL"].assign(benchmark="math500", label="MATH-500", mean=0.5)
    table = ablation_table(pd.concat([summary, extra], ignore_index=True), 0.05).set_index("model")
    assert table.loc["EQUAL w/o MAB · 5%", "Δ vs EQUAL"] == round(0.85 - 0.82, 4)
    assert not any("MATH-500" in column for column in table.columns)


def test_cost_table_ratio_to_all():
    runs = pd.DataFrame([
        {"method": "EQUAL", "gamma": 0.05, "documents_extracted": 200, "llm_calls": 210, "tokens": 1e5,
         "extractor_flops": 1.0, "reference_flops": 10.0, "train_flops": 0.0},
        {"method": "All", "gamma": 1.0, "documents_extracted": 2000, "llm_calls": 2100, "tokens": 1e6,
         "extractor_flops": 10.0, "reference_flops": 100.0, "train_flops": 0.0},
    ])  # fmt: skip
    table = cost_table(runs, ["EQUAL", "All"]).set_index("method")
    assert table.loc["EQUAL", "ratio_to_all"] == 0.1 and table.loc["All", "ratio_to_all"] == 1.0


@pytest.mark.slow
def test_the_link_pairs_each_model_with_its_training_sets_distance_and_correlates_them():
    from equal.report.link import link_correlations, link_table, target_of_benchmark

    targets = target_of_benchmark({"gsm8k": "math", "math500": "math", "mbpp": "code"}, ["gsm8k"])
    assert targets == {"gsm8k": "gsm8k", "math500": "gsm8k"}  # mbpp has no target of its domain here
    two = target_of_benchmark({"a": "math", "b": "math", "math500": "math"}, ["a", "b"])
    assert two == {"a": "a", "b": "b"}  # a target is its own benchmark; math500 has two candidates: left out
    selection = pd.DataFrame({"method": ["EQUAL", "EQUAL", "Random", "All"], "target": ["gsm8k"] * 4,
                              "gamma": [0.05, 0.05, 0.05, 0.05], "seed": [0, 1, 0, 0],
                              "ot_heldout": [0.30, 0.35, 0.50, 0.45]})  # fmt: skip
    evaluated = pd.DataFrame({"model": ["EQUAL 0", "EQUAL 1", "Random 0", "All", "Base", "EQUAL 0"],
                              "method": ["EQUAL", "EQUAL", "Random", "All", "Base", "EQUAL"],
                              "gamma": [0.05, 0.05, 0.05, 1.0, 0.0, 0.05], "seed": [0, 1, 0, 0, 0, 0],
                              "benchmark": ["gsm8k"] * 5 + ["mbpp"], "metric": ["bits_per_byte"] * 6,
                              "value": [0.70, 0.72, 0.80, 0.78, 0.9, 0.5]})  # fmt: skip
    link = link_table(selection, evaluated, targets)
    assert list(link["model"]) == ["EQUAL 0", "EQUAL 1", "Random 0", "All"]  # Base and the targetless mbpp row out
    assert list(link["ot_heldout"]) == [0.30, 0.35, 0.50, 0.45]  # All matched whatever its γ
    (row,) = link_correlations(link).to_dict("records")
    assert row["models"] == row["selections"] == 4 and row["pearson_r"] > 0.9
    assert row["r_ci_low"] < row["pearson_r"] < row["r_ci_high"]
    assert row["slope"] > 0 and row["spearman_rho"] == 1.0
    assert np.isnan(row["answer_chars_r"]) and link["answer_chars_median"].isna().all()  # no training table given
    # with notebook 05's table: each model's median answer length, and how bits per byte follow it
    training = pd.DataFrame({"model": ["EQUAL 0", "EQUAL 1", "Random 0", "All"],
                             "answer_chars_median": [40.0, 30.0, 200.0, 150.0]})  # fmt: skip
    link = link_table(selection, evaluated, targets, training)
    assert list(link["answer_chars_median"]) == [40.0, 30.0, 200.0, 150.0]
    (row,) = link_correlations(link).to_dict("records")
    assert row["answer_chars_r"] > 0.5 and 0 <= row["answer_chars_p"] <= 1  # here: longer answers, worse models
    from equal.report.figures import link_figure

    figure = link_figure(link, link_correlations(link))
    assert len(figure.axes) == 2 and "r = " in figure.axes[1].get_title()  # a second row: bpb on answer length


def test_cost_figures_show_a_method_that_reads_no_document():
    from equal.report.figures import cost_quality, downstream_vs_cost

    table = pd.DataFrame({"target": "gsm8k", "gamma": 0.05, "method": ["EQUAL", "Random", "All", "Rewriting"],
                          "documents_extracted": [100, 50, 1000, 0], "ot_heldout_mean": [0.7, 0.8, 0.79, 0.5],
                          "ot_heldout_std": 0.01})  # fmt: skip
    costs = table[["method", "gamma", "documents_extracted"]]
    summary = pd.DataFrame({"method": table["method"], "gamma": 0.05, "benchmark": "gsm8k", "label": "GSM8K",
                            "metric": "bits_per_byte", "mean": [0.69, 0.68, 0.74, 0.76], "std": 0.01})  # fmt: skip
    for figure in (cost_quality(table), downstream_vs_cost(summary, costs, ("bits_per_byte",), "bpb")):
        ax = figure.axes[0]
        drawn = sorted(float(x) for line in ax.get_lines() for x in line.get_xdata())
        assert drawn[0] == 0 and ax.get_xlim()[0] <= 0 < ax.get_xlim()[1]  # Rewriting is on the axis, at 0


@pytest.mark.slow
def test_the_cohesion_figure_is_the_same_file_on_every_run(tmp_path):
    """Its strip plot jitters the points: seeded, a re-run writes the same PNG (and leaves numpy's state alone)."""
    from equal.report.figures import cohesion_figure, save_figure

    table = pd.DataFrame({"clustering": ["tuned"] * 4 + ["random (same sizes)"] * 4,
                          "split_half_ot": [0.02, 0.03, 0.025, 0.04, 0.03, 0.05, 0.035, 0.045]})  # fmt: skip
    np.random.seed(123)
    expected_next = np.random.random()
    np.random.seed(123)
    first = save_figure(cohesion_figure(table), tmp_path / "a", "cohesion")[0].read_bytes()
    assert np.random.random() == expected_next
    assert save_figure(cohesion_figure(table), tmp_path / "b", "cohesion")[0].read_bytes() == first


def test_models_sharing_a_training_set_are_one_point_of_the_link():
    """A distance band's two fine-tuning seeds train on one selection (notebook 04's ``training_set`` id): the
    correlation counts it once, at the mean of its models."""
    from equal.report.link import link_correlations, link_table
    from equal.select.signals import training_set_id

    pairs = [{"question": "q1", "answer": "a1"}, {"question": "q2", "answer": "a2"}]
    assert training_set_id(pairs) == training_set_id(pairs[::-1]) != training_set_id(pairs[:1])  # order-free
    selection = pd.DataFrame({"method": ["Band 1", "Band 1", "Band 2", "Band 3"], "target": "gsm8k", "gamma": 0.05,
                              "seed": [0, 1, 0, 0], "ot_heldout": [0.3, 0.3, 0.4, 0.5],
                              "training_set": ["b1", "b1", "b2", "b3"]})  # fmt: skip
    evaluated = pd.DataFrame({"model": ["B1 s0", "B1 s1", "B2", "B3"], "gamma": 0.05,
                              "method": ["Band 1", "Band 1", "Band 2", "Band 3"], "seed": [0, 1, 0, 0],
                              "benchmark": "gsm8k", "metric": "bits_per_byte",
                              "value": [0.60, 0.64, 0.70, 0.80]})  # fmt: skip
    link = link_table(selection, evaluated, {"gsm8k": "gsm8k"})
    assert list(link["selection"]) == ["b1", "b1", "b2", "b3"]
    (row,) = link_correlations(link).to_dict("records")
    assert row["selections"] == 3 and row["models"] == 4
    expected = np.polyfit([0.3, 0.4, 0.5], [0.62, 0.70, 0.80], 1)[0]  # band 1 at the mean of its two models
    assert row["slope"] == pytest.approx(expected)


def test_tables_without_training_set_ids_still_count_a_distance_band_once():
    from equal.report.link import link_correlations, link_table

    selection = pd.DataFrame({"method": ["Distance band 1", "Distance band 1", "Random", "Random"], "target": "gsm8k",
                              "gamma": 0.05, "seed": [0, 1, 0, 1], "ot_heldout": [0.3, 0.3, 0.5, 0.55]})  # fmt: skip
    evaluated = pd.DataFrame({"model": ["B s0", "B s1", "R s0", "R s1"], "gamma": 0.05, "seed": [0, 1, 0, 1],
                              "method": ["Distance band 1", "Distance band 1", "Random", "Random"],
                              "benchmark": "gsm8k", "metric": "bits_per_byte",
                              "value": [0.6, 0.62, 0.7, 0.75]})  # fmt: skip
    link = link_table(selection, evaluated, {"gsm8k": "gsm8k"})
    assert link["selection"].nunique() == 3  # the band's two seeds share a selection; Random's seeds do not
    assert link_correlations(link).iloc[0]["selections"] == 3
