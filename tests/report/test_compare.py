"""Comparing two runs' tables: identical tables pass, a moved mean is judged against its seed spread."""

import pandas as pd

from equal.report.compare import compare_runs


def selection(ot_mean: float) -> pd.DataFrame:
    return pd.DataFrame({"target": ["math", "math"], "gamma": [0.05, 0.05], "method": ["EQUAL", "All"],
                         "seeds": [3, 1], "pairs_mean": [10.0, 50.0], "pairs_std": [1.0, 0.0],
                         "ot_heldout_mean": [ot_mean, 0.8], "ot_heldout_std": [0.01, 0.0],
                         "target_share_mean": [0.5, 0.3], "target_share_std": [0.1, 0.0],
                         "distinct_2_mean": [0.6, 0.6], "distinct_2_std": [0.01, 0.0]})  # fmt: skip


def test_identical_runs_and_a_mean_moved_beyond_the_seed_spread(tmp_path):
    for name, ot in (("a", 0.75), ("b", 0.75), ("c", 0.80), ("d", 0.765)):
        (tmp_path / name).mkdir()
        selection(ot).to_csv(tmp_path / name / "selection_table.csv", index=False)
    tables, rows = compare_runs(tmp_path / "a", tmp_path / "b")
    assert tables["identical"].all() and rows["within_spread"].all()
    tables, rows = compare_runs(tmp_path / "a", tmp_path / "c")
    assert not tables["identical"].any() and tables["column"].iloc[0] == "ot_heldout_mean"
    moved = rows[~rows["within_spread"]]
    assert list(moved["signal"]) == ["ot_heldout"]
    assert abs(moved["delta_over_std"].iloc[0] - 5.0) < 1e-6
    _, rows = compare_runs(tmp_path / "a", tmp_path / "d")  # 1.5 std: what other seeds would give
    assert rows["within_spread"].all()
