"""The paper's tables from per-model evaluation rows: main results, costs, ablations.

Input is the long table notebook 06 writes (``eval_runs.csv``: one row per model × task with
method, γ, seed, benchmark, metric, value, items) and the fine-tuning/cost rows of notebook 05.
Means and standard deviations are over selection seeds; a row's ``n`` says how many.
"""

from __future__ import annotations

import pandas as pd

from equal.select.methods import ABLATIONS, gamma_label
from equal.train.plan import REFERENCE_CONTROL

BASE = "Base"
METRIC_LABELS = {"bits_per_byte": "bpb ↓", "exact_match": "EM", "pass@1": "pass@1", "acc": "acc"}


def benchmark_labels(frame: pd.DataFrame) -> dict[str, str]:
    """Benchmark name → the label tables show (the ``label`` column, else the name), in order of appearance."""
    labels = frame["label"] if "label" in frame.columns else frame["benchmark"]
    return dict(zip(frame["benchmark"], labels, strict=True))


def row_label(method: str, gamma: float) -> str:
    """``"EQUAL · 5%"``; Base and All carry no budget."""
    return method if method in (BASE, "All", REFERENCE_CONTROL) else f"{method} · {gamma_label(gamma)}"


def summarize(long: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and number of seeds per method, γ, benchmark and metric (the numeric main table)."""
    grouped = long.groupby(["method", "gamma", "benchmark", "metric"], sort=False)
    summary = grouped["value"].agg(["mean", "std", "count"]).reset_index()
    summary["items"] = grouped["items"].first().to_numpy()
    if "label" in long.columns:
        summary["label"] = grouped["label"].first().to_numpy()
    return summary.rename(columns={"count": "n_seeds"})


def _cell(mean: float, std: float, n: int, metric: str) -> str:
    scale, digits = (1.0, 3) if metric == "bits_per_byte" else (100.0, 1)
    text = f"{mean * scale:.{digits}f}"
    return text + (f" ± {std * scale:.{digits}f}" if n > 1 and pd.notna(std) else "")


def main_table(summary: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Methods × tasks (the paper's table 1): ``mean ± std`` over seeds; bpb ×1, accuracies in %."""
    order = {m: i for i, m in enumerate([BASE, *methods])}
    labels = benchmark_labels(summary)
    rows = []
    for (method, gamma), part in summary.groupby(["method", "gamma"], sort=False):
        row = {"model": row_label(method, gamma), "seeds": int(part["n_seeds"].max())}
        for bench in labels:
            for metric in METRIC_LABELS:
                hit = part[(part["benchmark"] == bench) & (part["metric"] == metric)]
                if len(hit):
                    r = hit.iloc[0]
                    label = f"{labels[bench]} {METRIC_LABELS[metric]} (n={int(r['items'])})"
                    row[label] = _cell(r["mean"], r["std"], int(r["n_seeds"]), metric)
        group = {BASE: 0, REFERENCE_CONTROL: 1, "All": 2}.get(method, 3)
        rows.append(((group, gamma, order.get(method, 99)), row))
    rows.sort(key=lambda item: item[0])
    return pd.DataFrame([row for _, row in rows])


def with_differences(table: pd.DataFrame, comparisons: pd.DataFrame, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """The main table with one row per ``(a, b)`` pair: the difference of mean bits per byte, a − b, with its 95 %
    interval (``comparisons``: :func:`equal.report.analysis.compare` rows, selection seeds as the unit) in each
    benchmark's bits-per-byte column. No comparison (a profile without both sides): the table as it is."""
    if comparisons.empty or not {"a", "b"} <= set(comparisons.columns):
        return table
    rows = []
    for a, b in pairs:
        row = {"model": f"{a} − {b} (95 % CI)"}
        for r in comparisons[(comparisons["a"] == a) & (comparisons["b"] == b)].itertuples():
            column = next((c for c in table.columns if c.startswith(f"{r.label} {METRIC_LABELS['bits_per_byte']}")),
                          None)  # fmt: skip
            if column:  # a side with one selection (All) has no seed-level interval
                interval = f" [{r.ci_low:+.3f}, {r.ci_high:+.3f}]" if r.ci_low == r.ci_low else " (one selection)"
                row[column] = f"{r.difference:+.3f}{interval}"
        if len(row) > 1:
            rows.append(row)
    return pd.concat([table, pd.DataFrame(rows)], ignore_index=True) if rows else table


def ablation_table(summary: pd.DataFrame, gamma: float) -> pd.DataFrame:
    """EQUAL against its ablations at one γ: bits per byte per benchmark and the change from EQUAL, over the
    benchmarks every row was evaluated on (a profile may evaluate the ablations on their target's own only)."""
    bpb = summary[(summary["metric"] == "bits_per_byte") & (summary["gamma"] == gamma)]
    wide = bpb.pivot_table(index="method", columns="benchmark", values="mean")
    names = [m for m in ("EQUAL", *ABLATIONS) if m in wide.index]
    wide = wide.loc[names].dropna(axis=1) if names else wide  # the same benchmarks in every row's mean
    labels = benchmark_labels(summary)
    rows = []
    for name in names:
        row = {"model": row_label(name, gamma)}
        for bench in wide.columns:
            row[f"{labels[bench]} bpb ↓"] = round(float(wide.loc[name, bench]), 4)
        row["mean bpb ↓"] = round(float(wide.loc[name].mean()), 4)
        row["Δ vs EQUAL"] = (
            round(float(wide.loc[name].mean() - wide.loc["EQUAL"].mean()), 4) if "EQUAL" in wide.index else None
        )
        rows.append(row)
    # a profile without ablation models (the variance pilot) still writes a table with its header
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["model", "mean bpb ↓", "Δ vs EQUAL"])


def cost_table(runs: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Extraction and training cost of every method and γ (mean over selection seeds), and its ratio to All.

    ``runs`` is :func:`equal.train.plan.method_costs`'s table (``method_costs.csv``): one row per method × γ ×
    selection seed over both targets, with the extraction cost of all its targets' sets together (distinct calls;
    the columns of :func:`equal.train.plan.extraction_cost`) and ``train_flops``, the training FLOPs of all its
    models.
    """
    columns = ["documents_extracted", "llm_calls", "tokens", "extractor_flops", "reference_flops", "train_flops"]
    runs = runs[runs["method"] != REFERENCE_CONTROL]  # extracts nothing: not a selection method
    table = runs.groupby(["method", "gamma"], sort=False)[columns].mean().reset_index()
    table["total_flops_72b"] = table["reference_flops"] + table["train_flops"]
    everything = table[table["method"] == "All"]
    reference = float(everything["total_flops_72b"].iloc[0]) if len(everything) else None
    table["ratio_to_all"] = table["total_flops_72b"] / reference if reference else float("nan")
    order = {m: i for i, m in enumerate(methods)}
    table = table.sort_values(["gamma", "method"], key=lambda col: col.map(order) if col.name == "method" else col)
    table.insert(0, "model", [row_label(m, g) for m, g in zip(table["method"], table["gamma"], strict=True)])
    return table.reset_index(drop=True)


def format_cost_table(table: pd.DataFrame) -> pd.DataFrame:
    """Readable units: thousands of tokens, PFLOPs (10^15), ratio with two decimals."""
    out = table[["model", "method", "gamma", "documents_extracted", "llm_calls"]].copy()
    out["documents_extracted"] = out["documents_extracted"].round().astype(int)
    out["llm_calls"] = out["llm_calls"].round().astype(int)
    out["tokens (k)"] = (table["tokens"] / 1e3).round(1)
    out["extraction PFLOPs (ours)"] = (table["extractor_flops"] / 1e15).round(3)
    out["extraction PFLOPs (72B)"] = (table["reference_flops"] / 1e15).round(2)
    out["training PFLOPs"] = (table["train_flops"] / 1e15).round(3)
    out["total / All (72B)"] = table["ratio_to_all"].round(3)
    return out


def metric_resolution(summary: pd.DataFrame) -> pd.DataFrame:
    """Does the small-scale metric resolve anything? Bits per byte of the base model against tuned models.

    One row per model with several seeds (and the D_r control) per benchmark: the drop from the base
    model and that drop over the seed spread (the model's own std; for a model trained once, the
    largest seed std of any method on that benchmark).
    """
    bpb = summary[summary["metric"] == "bits_per_byte"]
    base = bpb[bpb["method"] == BASE].set_index("benchmark")["mean"]
    spread = bpb[bpb["n_seeds"] > 1].groupby("benchmark")["std"].max()  # the largest seed spread of any method
    rows = []
    for r in bpb[(bpb["n_seeds"] > 1) | (bpb["method"] == REFERENCE_CONTROL)].itertuples():
        std = r.std if r.n_seeds > 1 else spread.get(r.benchmark, float("nan"))
        rows.append({"model": r.method if r.n_seeds == 1 else f"{r.method} · {r.gamma * 100:g}%",
                     "benchmark": r.benchmark, "base_bpb": base[r.benchmark], "tuned_bpb": r.mean,
                     "drop": base[r.benchmark] - r.mean, "seed_std": std,
                     "drop_over_std": (base[r.benchmark] - r.mean) / std if std > 0 else float("inf")})  # fmt: skip
    return pd.DataFrame(rows)
