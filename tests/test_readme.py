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
