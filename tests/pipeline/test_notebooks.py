"""The notebooks, executed headlessly through papermill in the smoke profile."""

import json

import nbformat
import pandas as pd
import pytest
from conftest import SmokeAnswers

from equal.pipeline import NotebookFailed, numbered_notebooks, run_profile
from equal.profiles import load_profile

pytestmark = pytest.mark.slow  # real models, servers or whole pipelines: make test, not make test-fast


@pytest.mark.notebook
def test_the_whole_pipeline_runs_in_smoke_profile(tmp_path):
    answers = SmokeAnswers()
    overrides = {"data_dir": str(tmp_path / "data"), "figures_dir": str(tmp_path / "figures")}
    info = run_profile("smoke", overrides=overrides, results_override=tmp_path / "results", log_output=False)
    answers.assert_none_paid("the smoke pipeline")
    assert list(info["notebooks"]) == [nb.stem for nb in numbered_notebooks()] and len(info["notebooks"]) == 7
    for name, record in info["notebooks"].items():
        assert record["status"] == "ok" and record["wall_time_s"] > 0, name
    results = tmp_path / "results"
    run_info = json.loads((results / "run_info.json").read_text())
    assert run_info["profile"] == "smoke" and run_info["seed"] == 0
    assert "pandas" in run_info["packages"] and "commit" in run_info["git"]
    stages = run_info["notebooks"]["04_bandit_extraction"]["stages_s"]  # per-stage times of every notebook
    assert stages["The stage: *All* once, then every method, target, budget and seed"] > 0
    assert (results / "notebooks" / "01_data_prep.ipynb").is_file()
    stats = (results / "corpus_stats.csv").read_text()
    assert "(all)" in stats and "contaminated" in stats
    assert json.loads((results / "corpus_stats.meta.json").read_text())["parameters"]["max_documents"] == 120
    figures = {p.name for p in (tmp_path / "figures").iterdir()}
    for name in (
        "corpus_composition",
        "warmup_alignment",
        "elbow",
        "clusters",
        "bandit_curves",
        "bandit_pulls",
        "selection_cost_quality",
        "selection_domains",
        "finetune_losses",
        "downstream_bpb_vs_cost",
        "downstream_accuracy_vs_cost",
        "ablations",
        "link_ot_vs_bpb",
        "comparisons",
        "warmup_cohesion",
        "bands",
        "quantiles",
    ):
        assert {f"{name}.png", f"{name}.pdf"} <= figures
    retrieval = (results / "warmup_retrieval.csv").read_text().splitlines()
    assert retrieval[0].startswith("model,pairs,held_out_pairs") and 3 <= len(retrieval) <= 5  # per model × subset
    cohesion = pd.read_csv(results / "warmup_cohesion_summary.csv").set_index("clustering")
    assert {"tuned", "untuned", "random (same sizes)"} <= set(cohesion.index)
    assert cohesion.loc["random (same sizes)", "vs_random"] == 1.0
    quality = pd.read_csv(results / "pair_quality.csv").set_index("stage")  # before and after refinement
    assert list(quality.index) == ["extracted (drafts)", "refined and gated (trained on)"]
    assert (quality["documents"] == 120).all() and quality["all_checks_pass_share"].between(0, 1).all()
    outcomes = pd.read_csv(results / "refinement_outcomes.csv")  # every draft refined once (smoke: one attempt)
    assert outcomes["drafts"].sum() == quality.loc["extracted (drafts)", "pairs"]
    heldout = pd.read_csv(results / "warmup_heldout_retrieval.csv")
    assert set(heldout["embedder"]) == {"warm-up tuned", "untuned"} and (heldout["queries"] > 0).all()
    summary = (results / "clustering_summary.csv").read_text()
    assert "warm-up tuned" in summary and "untuned (no warm-up)" in summary
    for slug in ("tuned", "untuned"):
        assert (tmp_path / "data" / f"clusters_{slug}.npz").is_file()
    table = pd.read_csv(results / "selection_table.csv")
    methods = load_profile("smoke")["common"]["methods"]
    assert list(table["method"]) == methods  # every method of the profile, in its order, for the one target and γ
    assert (table.loc[table["method"] != "All", "seeds"] == 2).all()
    runs = pd.read_csv(results / "selection_runs.csv")
    bandit = runs[runs["method"] == "EQUAL"]
    assert (bandit["loop_documents"] == 24).all() and (bandit["warmup_documents"] == 18).all()
    assert runs["ot_heldout"].notna().all() and (runs["ot_heldout"] > 0).all()
    curves = pd.read_csv(results / "selection_curves.csv")
    assert (curves.groupby(["method", "seed"])["regret"].diff().dropna() >= -1e-9).all()  # regret never decreases
    # 05: a model per target — EQUAL, its ablations, Random on seed 0, EQUAL, Random and the domain controls on both
    # seeds, the in-domain quantiles, the distance bands, the D_r control — and All once; the same regime for all
    trained = pd.read_csv(results / "finetune_runs.csv")
    planned = [
        ("EQUAL", 0),
        ("EQUAL", 1),
        ("Random", 0),
        ("Random", 1),
        ("EQUAL w/o warm-up", 0),
        ("EQUAL w/o MAB", 0),
        ("EQUAL w/o exploration", 0),
        *((control, s) for control in ("Domain filter", "DSIR", "Random in domain") for s in (0, 1)),
        *((f"In-domain quantile {q}", s) for q in range(1, 5) for s in (0, 1)),
        *((f"Distance band {b}", 0) for b in range(1, 6)),
    ]
    expected = ["All · 100%", "D_r (control) · gsm8k"] + [f"{m} · gsm8k · 20% · seed {s}" for m, s in planned]
    assert sorted(trained["model"]) == sorted(expected)
    assert (trained["steps"] == 2).all() and (trained["pairs"] > 0).all()
    control = trained.set_index("method").loc["D_r (control)"]
    assert control["pairs"] == 20 and control["documents_extracted"] == 0  # the 20 D_r problems, nothing extracted
    assert (trained["method"] == "All").sum() == 1
    # 06: the base model and All on every task, each target's models on its benchmarks (GSM8K, MATH-500)
    evaluated = pd.read_csv(results / "eval_runs.csv")
    assert set(evaluated["model"]) == {"Base", *trained["model"]}
    per_model = evaluated.groupby("model")["benchmark"].agg(set)
    assert per_model["Base"] == per_model["All · 100%"] == {"gsm8k", "math500", "mbpp", "humaneval"}
    # EQUAL, Random and the D_r control also on MATH-500 (secondary_benchmarks_for), every other model on GSM8K only
    secondary = {"EQUAL", "Random", "D_r (control)"}
    own = {r.model: {"gsm8k", "math500"} if r.method in secondary else {"gsm8k"} for r in trained.itertuples()}
    assert all(per_model[m] == own[m] for m in trained["model"] if m != "All · 100%")
    assert len(evaluated) == 2 * 8 + sum(2 * len(own[m]) for m in trained["model"] if m != "All · 100%")
    items = pd.read_csv(results / "eval_items.csv.gz")
    assert set(items["model"]) == set(evaluated["model"]) and (items["weight"] > 0).all()
    again = items[items["metric"] == "bits_per_byte"].groupby(["model", "benchmark"]).sum(numeric_only=True)
    recomputed = (again["value"] / again["weight"]).rename("value").reset_index()  # items add up to the metric
    merged = evaluated[evaluated["metric"] == "bits_per_byte"].merge(recomputed, on=["model", "benchmark"])
    assert len(merged) == (evaluated["metric"] == "bits_per_byte").sum()
    assert (merged["value_x"] - merged["value_y"]).abs().max() < 1e-6
    bpb = evaluated[evaluated["metric"] == "bits_per_byte"]["value"]
    assert (bpb > 0).all() and bpb.nunique() > 1  # real log-likelihoods that differ between models
    main = pd.read_csv(results / "main_table.csv")
    assert list(main["model"][:3]) == ["Base", "D_r (control)", "All"] and "GSM8K bpb ↓ (n=6)" in main.columns
    assert set(pd.read_csv(results / "ablation_table.csv")["model"]) == {
        "EQUAL · 20%", "EQUAL w/o warm-up · 20%", "EQUAL w/o MAB · 20%", "EQUAL w/o exploration · 20%"}  # fmt: skip
    link = pd.read_csv(results / "link.csv")  # every trained selection × the math benchmarks (the target's domain)
    linked = [m for m in trained["model"] if not m.startswith("D_r") and m != "All · 100%"]  # D_r: no selection
    expected = sum(len(own[m]) for m in linked) + 2  # All: on GSM8K and MATH-500, both of the gsm8k target
    assert set(link["benchmark"]) == {"gsm8k", "math500"} and len(link) == expected
    assert set(pd.read_csv(results / "link_correlation.csv")["benchmark"]) == {"gsm8k", "math500"}
    comparisons = pd.read_csv(results / "comparisons.csv")
    assert {("EQUAL", "Random"), ("EQUAL", "All")} <= set(zip(comparisons["a"], comparisons["b"], strict=True))
    assert comparisons.dropna(subset=["ci_low"]).eval("ci_low <= difference <= ci_high").all()
    assert comparisons.loc[comparisons["b"] == "All", "ci_low"].isna().all()  # one selection: no seed-level interval
    tests = pd.read_csv(results / "primary_tests.csv")  # the analysis plan's four comparisons, Holm-corrected
    assert list(tests["b"]) == ["Random", "Domain filter", "DSIR", "Random in domain"]
    assert (tests["n_a"] == 2).all() and (tests["p_holm"].dropna() >= tests["p_welch"].dropna()).all()
    slope = pd.read_csv(results / "quantile_gate.csv").iloc[0]  # the gate: two selections per quantile here
    assert slope["points"] == 8 and slope["complete"] and slope["ci_low"] <= slope["slope"] <= slope["ci_high"]
    assert set(pd.read_csv(results / "quantiles.csv")["quantile"]) == {1, 2, 3, 4}
    assert "EQUAL − Random (95 % CI)" in set(main["model"])
    assert not pd.read_csv(results / "power.csv").empty
    # the distance-band test: five bands with intervals, ρ and the gate, which the verdict uses
    bands = pd.read_csv(results / "bands.csv")
    assert list(bands["order"]) == [1, 2, 3, 4, 5] and (bands["ci_low"] <= bands["ci_high"]).all()
    assert bands["distance_mean"].is_monotonic_increasing  # band 1 nearest
    gate = pd.read_csv(results / "band_gate.csv").iloc[0]
    assert -1 <= gate["spearman_rho"] <= 1 and gate["rho_ci_low"] <= gate["rho_ci_high"]
    verdict = pd.read_csv(results / "verdict.csv").iloc[0]
    assert verdict["gate"].startswith("slope ") and (": holds" in verdict["gate"] or ": fails" in verdict["gate"])
    assert verdict["comparisons"].startswith("EQUAL vs Random: ") and "Reading: " in verdict["verdict"]
    costs = pd.read_csv(results / "cost_table.csv").set_index("model")
    assert costs.loc["All", "total / All (72B)"] == 1.0 and costs.loc["EQUAL · 20%", "total / All (72B)"] < 1.0
    # 07 redrew the figures from results/ only: its executed notebook exists and nothing failed
    assert (results / "notebooks" / "07_paper_figures.ipynb").is_file()

    # A reader changes k in 03 and re-runs 03-04: the bandits over the new clusters recompute (from the LLM cache),
    # the runs that do not depend on the clustering are read back, and nothing reads a stale run.
    run_profile("smoke", only=["03", "04"], overrides={**overrides, "k": 4}, results_override=results, log_output=False)
    assert (pd.read_csv(results / "clustering_summary.csv")["k"] == 4).all()
    assert pd.read_csv(results / "selection_curves.csv")["arm"].max() <= 3
    rerun = pd.read_csv(results / "selection_runs.csv")
    same = runs["method"].isin(["Random", "All"])  # every bandit (untuned clusters too) uses the new k
    pd.testing.assert_frame_equal(runs[same].reset_index(drop=True), rerun[same].reset_index(drop=True))
    output = nbformat.read(results / "notebooks" / "04_bandit_extraction.ipynb", as_version=4)
    printed = "".join(o.get("text", "") for c in output.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "new LLM calls: 0" in printed


def test_failing_notebook_stops_the_run_and_shows_the_error(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    for (name, source), stage in zip((("01_fails.ipynb", "x = 1\n1 / 0"), ("02_never.ipynb", "open('ran', 'w')")),
                                     ("data", "warmup"), strict=True):  # fmt: skip
        nb = nbformat.v4.new_notebook()
        nb.metadata["equal"] = {"stage": stage}
        params = nbformat.v4.new_code_cell("profile = 'x'")
        params.metadata["tags"] = ["parameters"]
        nb.cells = [params, nbformat.v4.new_code_cell(source)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, folder / name)
    with pytest.raises(NotebookFailed, match=r"01_fails\.ipynb failed in cell .*ZeroDivisionError"):
        run_profile("smoke", results_override=tmp_path / "results", notebooks_dir=folder, log_output=False)
    assert not (folder / "ran").exists()
    run_info = json.loads((tmp_path / "results" / "run_info.json").read_text())
    assert run_info["notebooks"]["01_fails"]["status"].startswith("failed: ZeroDivisionError")
