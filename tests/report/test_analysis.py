"""Notebook 06's analysis as functions (equal.report.analysis): the power of the design, the comparison plan and
the verdict per target, on item tables whose effects are known."""

import numpy as np
import pandas as pd

from equal.report.analysis import ABLATIONS, compare, comparison_plan, power_analysis
from equal.train.plan import REFERENCE_CONTROL


def _items(method: str, seeds: list[int], shift: float, rng: np.random.Generator, selection_noise: float = 0.0,
           n_items: int = 60) -> list[dict]:  # fmt: skip
    """Bits-per-byte items: a per-item difficulty shared by every model, the method's shift, replicate noise."""
    difficulty = np.random.default_rng(123).uniform(0.5, 1.0, n_items)
    rows = []
    for seed in seeds:
        bpb = difficulty + shift + rng.normal(0, selection_noise) + rng.normal(0, 0.05, n_items)
        rows += [{"model": f"{method} · seed {seed}", "method": method, "gamma": 0.05, "seed": seed, "train_seed": seed,
                  "benchmark": "gsm8k", "metric": "bits_per_byte", "item": i, "value": bpb[i] * 100, "weight": 100}
                 for i in range(n_items)]  # fmt: skip
    return rows


def _summary(means: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "benchmark": "gsm8k", "metric": "bits_per_byte", "mean": v}
                         for m, v in means.items()])  # fmt: skip


def test_power_analysis_measures_randoms_replicates_against_the_control():
    rng = np.random.default_rng(0)
    items = pd.DataFrame(_items("Random", [0, 1, 2, 3, 4], 0.0, rng, selection_noise=0.02))
    summary = _summary({"Base": 0.80, REFERENCE_CONTROL: 0.60})
    components, power, mde = power_analysis(items, summary, ["gsm8k", "mbpp"], 0.05)
    assert list(components["control_effect"]) == [0.80 - 0.60]  # mbpp has no replicate: left out
    assert set(mde) == {"gsm8k"} and 0 < mde["gsm8k"] < 0.2
    assert set(power["seeds"]) >= {5, 10} and power["meets_quarter"].dtype == bool


def test_the_comparison_plan_puts_the_claim_first_and_every_baseline_against_equal():
    bands = [f"Distance band {i}" for i in range(1, 6)]
    methods = ["EQUAL", "Random", "All", "Avg-sim", *ABLATIONS, *bands, "Oracle (extracted)"]
    plan = comparison_plan(methods, bands)
    assert plan[:3] == [("EQUAL", "Random"), ("EQUAL", "All"), ("Oracle (extracted)", "Random")]
    assert ("Distance band 1", "Random") in plan and ("Distance band 2", "Random") not in plan
    assert [(a, b) for a, b in plan if a == "EQUAL" and b not in ("Random", "All")] == [("EQUAL", "Avg-sim")]
    assert all((ablation, "EQUAL") in plan for ablation in ABLATIONS)


def test_comparisons_take_selection_seeds_as_the_unit():
    rng = np.random.default_rng(1)
    items = pd.DataFrame(_items("Random", [0, 1, 2], 0.0, rng) + _items("EQUAL", [0, 1, 2], -0.10, rng))
    plan = [("EQUAL", "Random"), ("EQUAL", "All")]
    comparisons = compare(items, plan, ["gsm8k"], {"gsm8k": "GSM8K"}, 0.05)
    assert len(comparisons) == 1  # no All model: that comparison is left out
    (row,) = comparisons.to_dict("records")
    assert row["n_a"] == row["n_b"] == 3 and row["label"] == "GSM8K" and row["items"] == items["item"].nunique()
    assert row["ci_high"] < 0 and 0 <= row["p_welch"] < 0.05


def test_the_roster_evaluates_only_the_named_methods_on_their_domains_second_benchmark(tmp_path):
    from equal.artifacts import Artifacts
    from equal.report.analysis import model_roster

    art = Artifacts.for_profile("mine", tmp_path / "data", tmp_path / "results", tmp_path / "figures")
    trained = pd.DataFrame({"model": ["EQUAL", "DSIR", "All"], "method": ["EQUAL", "DSIR", "All"],
                            "target": ["gsm8k", "gsm8k", None], "gamma": [0.05, 0.05, 1.0], "seed": 0,
                            "train_seed": 0})  # fmt: skip
    files = {b: tmp_path / f"{b}.jsonl" for b in ("gsm8k", "math500", "mbpp")}
    targets = {"gsm8k": "gsm8k", "math500": "gsm8k", "mbpp": "mbpp"}
    roster = {m["model"]: set(m["files"]) for m in model_roster(art, trained, tmp_path, files, targets, ["EQUAL"])}
    assert roster == {"Base": {"gsm8k", "math500", "mbpp"}, "EQUAL": {"gsm8k", "math500"}, "DSIR": {"gsm8k"},
                      "All": {"gsm8k", "math500", "mbpp"}}  # fmt: skip
    everyone = {m["model"]: set(m["files"]) for m in model_roster(art, trained, tmp_path, files, targets)}
    assert everyone["DSIR"] == {"gsm8k", "math500"}  # None: every method on its domain's benchmarks
