"""The README's results block and docs/results.md are what the committed results files say."""

import pytest

from equal.report.readme import update_readme


def test_generated_results_blocks_match_the_committed_results():
    assert update_readme("default", check=True), "run: python -m equal.report.readme (results changed)"


def test_the_baselines_block_matches_the_committed_baselines_results():
    from equal.paths import results_dir

    if not (results_dir("baselines") / "main_table.csv").is_file():
        pytest.skip("results/baselines has not been committed")
    assert update_readme("baselines", check=True), "run: python -m equal.report.readme --profile baselines"


def test_the_module_tables_of_design_md_are_generated_from_the_docstrings():
    """docs/design.md lists every module with its docstring's first sentence (python -m equal.report.modules)."""
    from equal.paths import REPO_ROOT
    from equal.report.modules import END, START, module_tables

    text = (REPO_ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    assert START in text and END in text
    assert text.split(START)[1].split(END)[0].strip() == module_tables().strip(), (
        "docs/design.md is stale: run python -m equal.report.modules"
    )
    assert "`stages`" in module_tables() and "`registry`" in module_tables()


def test_a_planned_verdict_is_summarized_with_its_primary_tests_and_their_mde(tmp_path):
    """Results written by the analysis plan (verdict.csv with a reading) get its tests in the README block."""
    import pandas as pd

    from equal.artifacts import Artifacts
    from equal.report.readme import _verdict_lines

    art = Artifacts.for_profile("mine", tmp_path / "data", tmp_path / "results", tmp_path / "figures")
    art.results.mkdir(parents=True)
    pd.DataFrame([{"benchmark": "gsm8k", "target": "gsm8k", "gate": "slope +0.0100 [...]: holds",
                   "comparisons": "EQUAL vs Random: better (...)", "reading": "EQUAL beats Random but not DSIR",
                   "verdict": "..."}]).to_csv(art.table("verdict"), index=False)  # fmt: skip
    pd.DataFrame([{"benchmark": "gsm8k", "a": "EQUAL", "b": b, "n_a": 5, "n_b": 5, "difference": d, "ci_low": d - 0.01,
                   "ci_high": d + 0.01, "p_holm": p, "called": p < 0.05, "mde": 0.02}
                  for b, d, p in (("Random", -0.03, 0.004), ("DSIR", -0.005, 0.6))]).to_csv(
        art.table("primary_tests"), index=False)  # fmt: skip
    pd.DataFrame([{"benchmark": "gsm8k", "seeds": 5, "this_run": True, "mde": 0.0195},
                  {"benchmark": "gsm8k", "seeds": 20, "this_run": False, "mde": 0.0098}]).to_csv(
        art.table("power"), index=False)  # fmt: skip
    text = "\n".join(_verdict_lines(art))
    assert "EQUAL − Random" in text and "EQUAL − DSIR" in text and "| 0.0200 " in text
    assert "(`power.csv`): gsm8k 0.0195." in text and "0.0098" not in text  # this run's seeds, not a design's
    assert "| yes " in text and "| no " in text
    assert "* **gsm8k**: the gate slope +0.0100 [...]: holds. Reading: EQUAL beats Random but not DSIR." in text
