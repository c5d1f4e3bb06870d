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
