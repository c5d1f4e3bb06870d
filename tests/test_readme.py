"""The README's results block and docs/results.md are what the committed results files say."""

from equal.report.readme import update_readme


def test_generated_results_blocks_match_the_committed_results():
    assert update_readme("default", check=True), "run: python -m equal.report.readme (results changed)"
