"""Compare two runs' result tables: what differs, by how much, and whether it stays within the seed spread.

Typical use: the committed results (computed from the shipped LLM answers) against a run that
re-extracted on another machine (``make reproduce FRESH=1`` → ``results/default-fresh``)::

    python scripts/compare_results.py results/default results/default-fresh

Every CSV present in both folders is compared cell by cell (numbers with a tolerance, text exactly).
Tables that carry a seed spread are also judged against it: ``selection_table`` (``<signal>_mean`` vs
``<signal>_std``) and ``eval_summary`` (``mean`` vs the largest ``std`` of that benchmark and metric).
A difference within ``spread`` × that std is what another draw of seeds would give.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

KEYS = {  # rows are matched on these columns where a table has them
    "selection_table": ["target", "gamma", "method"],
    "eval_summary": ["method", "gamma", "benchmark", "metric"],
}
SIGNALS = ("pairs", "ot_heldout", "target_share", "distinct_2")


def compare_table(a: pd.DataFrame, b: pd.DataFrame, rtol: float = 1e-9) -> dict:
    """Cell-by-cell comparison: identical or not, largest numeric difference and the column it is in."""
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return {"identical": False, "note": f"shape {a.shape} vs {b.shape} or other columns", "max_abs_diff": np.nan,
                "column": ""}  # fmt: skip
    worst, where, text_differs = 0.0, "", []
    for column in a.columns:
        x, y = a[column], b[column]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            diff = np.abs(x.to_numpy(float) - y.to_numpy(float))
            diff = np.where(np.isnan(x.to_numpy(float)) & np.isnan(y.to_numpy(float)), 0.0, diff)
            scale = np.maximum(np.abs(x.to_numpy(float)), 1e-12)
            if np.nanmax(diff, initial=0.0) > worst and np.any(diff > rtol * scale):
                worst, where = float(np.nanmax(diff)), column
        elif not x.astype(str).equals(y.astype(str)):
            text_differs.append(column)
    identical = worst == 0.0 and not text_differs
    note = f"text differs in {text_differs}" if text_differs else ""
    return {"identical": identical, "note": note, "max_abs_diff": worst, "column": where}


def within_spread(name: str, a: pd.DataFrame, b: pd.DataFrame, spread: float = 2.0) -> pd.DataFrame:
    """Rows of a seeded table whose mean moved more than ``spread`` × the seed std (of ``a``)."""
    keys = KEYS[name]
    merged = a.merge(b, on=keys, suffixes=("", "_other"))
    rows = []
    if name == "selection_table":
        for signal in SIGNALS:
            delta = (merged[f"{signal}_mean_other"] - merged[f"{signal}_mean"]).abs()
            std = merged[f"{signal}_std"].where(merged["seeds"] > 1)
            rows.append(merged[keys].assign(signal=signal, delta=delta, seed_std=std))
    else:
        std = merged.groupby(["benchmark", "metric"])["std"].transform("max")
        rows.append(merged[keys].assign(signal="value", delta=(merged["mean_other"] - merged["mean"]).abs(),
                                        seed_std=std))  # fmt: skip
    out = pd.concat(rows, ignore_index=True)
    out["delta_over_std"] = out["delta"] / out["seed_std"]
    # no spread to compare with (one seed, or std 0): only an unchanged value is within it
    unknown = out["delta_over_std"].isna() | np.isinf(out["delta_over_std"])
    out["within_spread"] = np.where(unknown, out["delta"] == 0, out["delta_over_std"] <= spread)
    return out


def compare_runs(reference: Path, other: Path, spread: float = 2.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(per-table comparison, per-row seed-spread check) of two results folders."""
    tables, spreads = [], []
    for path in sorted(Path(reference).glob("*.csv")):
        twin = Path(other) / path.name
        if not twin.is_file():
            tables.append({"table": path.stem, "identical": False, "note": "missing in the other run"})
            continue
        a, b = pd.read_csv(path), pd.read_csv(twin)
        tables.append({"table": path.stem, **compare_table(a, b)})
        if path.stem in KEYS:
            spreads.append(within_spread(path.stem, a, b, spread).assign(table=path.stem))
    spread_rows = pd.concat(spreads, ignore_index=True) if spreads else pd.DataFrame()
    return pd.DataFrame(tables), spread_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", type=Path, help="e.g. results/default (committed)")
    parser.add_argument("other", type=Path, help="e.g. results/default-fresh")
    parser.add_argument("--spread", type=float, default=2.0, help="allowed difference in seed standard deviations")
    args = parser.parse_args(argv)
    tables, rows = compare_runs(args.reference, args.other, args.spread)
    print(tables.to_markdown(index=False))
    if len(rows):
        outside = rows[~rows["within_spread"]]
        print(f"\n{len(rows) - len(outside)} of {len(rows)} seeded means within {args.spread:g} seed std; outside:")
        print(outside.to_markdown(index=False) if len(outside) else "(none)")
        rows.to_csv(args.other / "comparison_spread.csv", index=False)
    tables.to_csv(args.other / "comparison_tables.csv", index=False)
    print(f"\nwritten: {args.other / 'comparison_tables.csv'}" + (", comparison_spread.csv" if len(rows) else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
