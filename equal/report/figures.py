"""Figures: one consistent style, saved as PNG and PDF, drawn from result tables only."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: papermill and CI have no display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from equal.report.style import method_colour
from equal.report.tables import benchmark_labels

#: One colour per domain, used by every figure.
DOMAIN_COLORS = {"math": "#4C72B0", "code": "#DD8452", "general": "#55A868", "unknown": "#8C8C8C"}


def apply_style() -> None:
    """The project's figure style (seaborn whitegrid, readable fonts)."""
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 200, "savefig.bbox": "tight", "pdf.fonttype": 42})


def save_figure(fig: plt.Figure, folder: str | Path, name: str, close: bool = True) -> list[Path]:
    """Save ``fig`` as ``<folder>/<name>.png`` and ``.pdf``; return both paths.

    The figure is closed afterwards (notebooks display the saved PNG, so what readers see is the file).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{name}.{ext}" for ext in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
    if close:
        plt.close(fig)
    return paths


def corpus_composition(stats: pd.DataFrame) -> plt.Figure:
    """Three panels from ``corpus_stats``: documents and tokens per source, and what filtering removed."""
    apply_style()
    per_source = stats[stats["source"] != "(all)"].sort_values(["domain", "documents"], ascending=[True, False])
    colors = [DOMAIN_COLORS.get(d, DOMAIN_COLORS["unknown"]) for d in per_source["domain"]]
    fig, axes = plt.subplots(
        1, 3, figsize=(15, 0.32 * len(per_source) + 2.2), gridspec_kw={"width_ratios": [1, 1, 1.1]}
    )
    axes[0].barh(per_source["source"], per_source["documents"], color=colors)
    axes[0].set(title="Documents kept", xlabel="documents")
    axes[1].barh(per_source["source"], per_source["tokens"] / 1e3, color=colors)
    axes[1].set(title="Tokens kept", xlabel="thousand tokens")
    axes[1].set_yticklabels([])
    for ax in axes[:2]:
        ax.invert_yaxis()
    domains = stats[(stats["source"] == "(all)") & (stats["domain"] != "(all)")].set_index("domain")
    reasons = {
        "too short": "too_short",
        "exact duplicate": "exact_duplicates",
        "near duplicate": "near_duplicates",
        "contaminated": "contaminated",
    }
    removed = pd.DataFrame({label: domains[column] for label, column in reasons.items()}).T
    removed = removed[sorted(removed.columns, key=lambda d: list(DOMAIN_COLORS).index(d) if d in DOMAIN_COLORS else 99)]
    # Counts span orders of magnitude (hundreds of stubs, a handful of duplicates): symlog keeps 0 visible.
    removed.plot.barh(ax=axes[2], color=[DOMAIN_COLORS.get(d, DOMAIN_COLORS["unknown"]) for d in removed.columns])
    for container in axes[2].containers:
        axes[2].bar_label(container, fmt="%d", padding=2, fontsize=8)
    axes[2].set_xscale("symlog", linthresh=1)
    axes[2].set_xlim(0, max(10, removed.to_numpy().max()) * 8)
    axes[2].invert_yaxis()
    axes[2].set(title="Units removed, by reason and domain", xlabel="units (symlog scale)", ylabel="")
    axes[2].legend(title="domain", loc="lower right")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for d, c in DOMAIN_COLORS.items() if d in set(per_source["domain"])]
    labels = [d for d in DOMAIN_COLORS if d in set(per_source["domain"])]
    axes[0].legend(handles, labels, title="domain", loc="lower right")
    total = stats[(stats["source"] == "(all)") & (stats["domain"] == "(all)")].iloc[0]
    fig.suptitle(
        f"Prepared corpus: {total['documents']:,} documents, {total['tokens'] / 1e6:.2f} M tokens "
        f"from {len(per_source)} sources",
        fontweight="bold",
    )
    fig.tight_layout()
    return fig


def alignment_figure(coords: pd.DataFrame) -> plt.Figure:
    """t-SNE of documents (dots) and QA pairs (crosses) before and after the warm-up, by domain.

    ``coords`` has columns ``model`` (base / warm-up tuned), ``kind`` (document / qa), ``domain``,
    ``x``, ``y`` — one row per projected text.
    """
    apply_style()
    models = list(dict.fromkeys(coords["model"]))
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 6))
    axes = np.atleast_1d(axes)
    for ax, model in zip(axes, models, strict=True):
        part = coords[coords["model"] == model]
        for (kind, domain), group in part.groupby(["kind", "domain"]):
            ax.scatter(
                group["x"],
                group["y"],
                s=10 if kind == "document" else 28,
                alpha=0.45 if kind == "document" else 0.9,
                marker="o" if kind == "document" else "x",
                color=DOMAIN_COLORS.get(domain, DOMAIN_COLORS["unknown"]),
                label=f"{domain} {kind}",
            )
        ax.set(title=f"{model} embedder", xticks=[], yticks=[])
    axes[0].legend(loc="best", fontsize=8, markerscale=1.5)
    fig.suptitle("Documents (●) and their extracted QA pairs (×), t-SNE", fontweight="bold")
    fig.tight_layout()
    return fig


def elbow_figure(curve: pd.DataFrame, chosen_k: int, knee: int | None = None) -> plt.Figure:
    """k-means inertia against k, with the chosen k (and the elbow, when they differ) marked."""
    apply_style()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(curve["k"], curve["inertia"], marker="o")
    if knee is not None and knee != chosen_k:
        ax.axvline(knee, color="#7F7F7F", linestyle=":", label=f"elbow k = {knee}")
    ax.axvline(chosen_k, color="#D62728", linestyle="--", label=f"chosen k = {chosen_k}")
    ax.set(xlabel="number of clusters k", ylabel="inertia (sum of squared distances)", title="Elbow of k-means")
    ax.legend()
    fig.tight_layout()
    return fig


def clusters_figure(tables: dict[str, pd.DataFrame]) -> plt.Figure:
    """Cluster sizes (coloured by majority domain) and domain purity, one row per clustering."""
    apply_style()
    fig, axes = plt.subplots(
        len(tables), 2, figsize=(13, 3.6 * len(tables)), gridspec_kw={"width_ratios": [2.2, 1]}, squeeze=False
    )
    for row, (name, table) in enumerate(tables.items()):
        ordered = table.sort_values("size", ascending=False).reset_index(drop=True)
        colors = [DOMAIN_COLORS.get(d, DOMAIN_COLORS["unknown"]) for d in ordered["majority_domain"]]
        axes[row, 0].bar(range(len(ordered)), ordered["size"], color=colors)
        axes[row, 0].set(
            title=f"{name}: {len(ordered)} clusters, sizes", xlabel="cluster (by size)", ylabel="documents"
        )
        axes[row, 1].hist(ordered["purity"], bins=np.linspace(0, 1, 11), color="#8DA0CB", edgecolor="white")
        mean = float((ordered["purity"] * ordered["size"]).sum() / ordered["size"].sum())
        axes[row, 1].axvline(mean, color="#D62728", linestyle="--", label=f"size-weighted mean {mean:.2f}")
        axes[row, 1].set(title=f"{name}: domain purity", xlabel="share of the majority domain", ylabel="clusters")
        axes[row, 1].legend(loc="upper left", fontsize=8)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in DOMAIN_COLORS.values()]
    axes[0, 0].legend(handles, list(DOMAIN_COLORS), title="majority domain", fontsize=8)
    fig.tight_layout()
    return fig


def _method_color(name: str) -> str:
    return method_colour(name)  # one colour per method (equal.report.style)


def bandit_curves(curves: pd.DataFrame, title: str) -> plt.Figure:
    """Observed reward per round (mean over seeds) and cumulative regret per pull, one line per method.

    ``curves``: method, seed, pull, round, reward (observed; NaN for rewards on another scale) and
    regret (cumulative, against the cluster oracle).
    """
    apply_style()
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2))
    for method, group in curves.groupby("method", sort=False):
        color = _method_color(method)
        by_round = group.groupby(["seed", "round"])["reward"].mean().groupby("round").mean()
        if by_round.notna().any():
            smooth = by_round.rolling(3, min_periods=1).mean()
            axes[0].plot(
                smooth.index, smooth.values, label=method, color=color, linewidth=2 if method == "EQUAL" else 1.2
            )
        regret = group.groupby("pull")["regret"].agg(["mean", "std"]).fillna(0.0)
        axes[1].plot(regret.index, regret["mean"], label=method, color=color, linewidth=2 if method == "EQUAL" else 1.2)
        axes[1].fill_between(regret.index, regret["mean"] - regret["std"], regret["mean"] + regret["std"],
                             color=color, alpha=0.12, linewidth=0)  # fmt: skip
    axes[0].set(
        title="reward of the pulled clusters (3-round mean)",
        xlabel="round",
        ylabel="OT reward (higher = closer to D_r)",
    )
    axes[1].set(title="cumulative regret against the cluster oracle", xlabel="pull", ylabel="regret (OT reward units)")
    axes[1].legend(fontsize=7, ncol=2, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def pull_heatmap(pulls: pd.DataFrame, oracle: np.ndarray, cluster_domains: list[str], title: str) -> plt.Figure:
    """Documents extracted per cluster (rows, best oracle value on top) and round (columns)."""
    apply_style()
    n_rounds = int(pulls["round"].max()) + 1 if len(pulls) else 1
    grid = np.zeros((len(oracle), n_rounds))
    for row in pulls.itertuples(index=False):
        grid[row.arm, row.round] += row.docs
    order = np.argsort(-oracle, kind="stable")
    fig, ax = plt.subplots(figsize=(min(14, 4 + n_rounds * 0.12), 0.28 * len(oracle) + 1.6))
    image = ax.imshow(grid[order], aspect="auto", cmap="Reds", interpolation="nearest")
    ax.set_yticks(range(len(order)))
    ax.set_yticklabels([f"c{c} · {cluster_domains[c]} · {oracle[c]:.2f}" for c in order], fontsize=7)
    for tick, c in zip(ax.get_yticklabels(), order, strict=True):
        tick.set_color(DOMAIN_COLORS.get(cluster_domains[c], DOMAIN_COLORS["unknown"]))
    ax.set(xlabel="round", ylabel="cluster · majority domain · oracle reward", title=title)
    fig.colorbar(image, ax=ax, label="documents extracted", fraction=0.03)
    fig.tight_layout()
    return fig


def cost_quality(
    table: pd.DataFrame,
    metric: str = "ot_heldout",
    ylabel: str = "OT distance to held-out target items (lower is better)",
) -> plt.Figure:
    """Quality signal against documents extracted, one panel per target, every method and γ.

    ``table``: method, target, gamma, documents_extracted, ``<metric>_mean``, ``<metric>_std``.
    """
    apply_style()
    targets = list(dict.fromkeys(table["target"]))
    fig, axes = plt.subplots(1, len(targets), figsize=(6.5 * len(targets), 4.6), squeeze=False)
    markers = {g: m for g, m in zip(sorted(table["gamma"].unique()), "os^Dv", strict=False)}
    for ax, target in zip(axes[0], targets, strict=True):
        part = table[table["target"] == target]
        for row in part.itertuples(index=False):
            ax.errorbar(
                row.documents_extracted,
                getattr(row, f"{metric}_mean"),
                yerr=getattr(row, f"{metric}_std"),
                marker=markers[row.gamma],
                color=_method_color(row.method),
                markersize=7 if row.method == "EQUAL" else 5,
                linestyle="none",
                capsize=2,
            )
        ax.set_xscale("symlog", linthresh=1)  # linear below 1: a method that reads no document (Rewriting) sits at 0
        ax.set(title=f"target: {target}", xlabel="documents extracted (log scale above 1, warm-up included)",
               ylabel=ylabel)  # fmt: skip
    handles = [
        plt.Line2D([], [], color=_method_color(m), marker="o", linestyle="none") for m in dict.fromkeys(table["method"])
    ]
    handles += [plt.Line2D([], [], color="#444444", marker=mk, linestyle="none") for mk in markers.values()]
    labels = list(dict.fromkeys(table["method"])) + [f"γ = {g * 100:g}%" for g in markers]
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
    return fig


def budget_by_domain(shares: pd.DataFrame, title: str) -> plt.Figure:
    """Share of each method's extracted documents by domain (stacked bars).

    ``shares``: method, domain, share (rows summing to 1 per method).
    """
    apply_style()
    wide = shares.pivot_table(index="method", columns="domain", values="share", fill_value=0.0, sort=False)
    wide = wide[[d for d in DOMAIN_COLORS if d in wide.columns]]
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(wide) + 1.4))
    left = np.zeros(len(wide))
    for domain in wide.columns:
        ax.barh(wide.index, wide[domain], left=left, color=DOMAIN_COLORS[domain], label=domain)
        left += wide[domain].to_numpy()
    ax.invert_yaxis()
    ax.set(xlim=(0, 1), xlabel="share of the documents extracted", title=title)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def nothing_to_show(message: str) -> plt.Figure:
    """A small figure that says why a panel is empty (a profile that measures less than the default)."""
    fig, ax = plt.subplots(figsize=(8.5, 2))
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    return fig


def downstream_vs_cost(summary: pd.DataFrame, costs: pd.DataFrame, metrics: tuple[str, ...], ylabel: str) -> plt.Figure:
    """A downstream metric of the fine-tuned models against extraction cost, one panel per benchmark.

    ``summary``: method, gamma, benchmark, metric, mean, std (``Base`` is drawn as a dashed line);
    ``costs``: method, gamma, documents_extracted. Every method and γ is a point (error bar: seeds).
    """
    apply_style()
    data = summary[summary["metric"].isin(metrics)].merge(costs[["method", "gamma", "documents_extracted"]],
                                                      on=["method", "gamma"], how="left")  # fmt: skip
    labels = benchmark_labels(data)
    benches = list(labels)
    if not benches:
        return nothing_to_show(f"no {ylabel} measured in this profile")
    fig, axes = plt.subplots(1, len(benches), figsize=(4.6 * len(benches), 4.2), squeeze=False)
    gammas = sorted(g for g in data["gamma"].unique() if 0 < g < 1)
    markers = {g: m for g, m in zip(gammas, "os^Dv", strict=False)} | {1.0: "*"}
    scale = 1.0 if "bits_per_byte" in metrics else 100.0
    for ax, bench in zip(axes[0], benches, strict=True):
        part = data[data["benchmark"] == bench]
        for row in part.itertuples(index=False):
            if row.method == "Base" or row.documents_extracted != row.documents_extracted:  # no extraction cost
                style = "--" if row.method == "Base" else ":"
                ax.axhline(row.mean * scale, color="#444444", linestyle=style, linewidth=1)
                continue
            ax.errorbar(row.documents_extracted, row.mean * scale, yerr=(row.std if row.std == row.std else 0) * scale,
                        marker=markers.get(row.gamma, "o"), color=_method_color(row.method),
                        markersize=8 if row.method == "EQUAL" else 5, linestyle="none", capsize=2)  # fmt: skip
        ax.set_xscale("symlog", linthresh=1)  # linear below 1: a method that reads no document (Rewriting) sits at 0
        ax.set(title=labels[bench], xlabel="documents extracted (log above 1)", ylabel=ylabel)
    controls = set(data.loc[data["documents_extracted"].isna(), "method"]) - {"Base"}
    methods = [m for m in dict.fromkeys(data["method"]) if m != "Base" and m not in controls]
    handles = [plt.Line2D([], [], color=_method_color(m), marker="o", linestyle="none") for m in methods]
    handles += [plt.Line2D([], [], color="#444444", marker=markers[g], linestyle="none") for g in gammas]
    handles += [plt.Line2D([], [], color="#444444", linestyle="--")]
    handles += [plt.Line2D([], [], color="#444444", linestyle=":") for _ in sorted(controls)]
    labels = methods + [f"γ = {g * 100:g}%" for g in gammas] + ["base model"] + sorted(controls)
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.tight_layout()
    return fig


def ablation_bars(table: pd.DataFrame) -> plt.Figure:
    """EQUAL and its ablations: bits per byte per benchmark (grouped bars; lower is better)."""
    apply_style()
    columns = [c for c in table.columns if c.endswith("bpb ↓") and not c.startswith("mean")]
    if table.empty or not columns:
        return nothing_to_show("no ablation models in this profile")
    long = table.melt(id_vars="model", value_vars=columns, var_name="benchmark", value_name="bpb")
    long["benchmark"] = long["benchmark"].str.replace(" bpb ↓", "", regex=False)
    fig, ax = plt.subplots(figsize=(8.5, 4))
    palette = {m: _method_color(m.split(" · ")[0]) for m in table["model"]}
    sns.barplot(data=long, x="benchmark", y="bpb", hue="model", palette=palette, ax=ax)
    low, high = long["bpb"].min(), long["bpb"].max()
    ax.set_ylim(low - 0.15 * (high - low + 1e-9), high + 0.1 * (high - low + 1e-9))
    ax.set(xlabel="", ylabel="bits per byte of gold solutions (lower is better)", title="Ablations")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def training_losses(losses: pd.DataFrame) -> plt.Figure:
    """Training loss per step of every fine-tuned model (one line per model, coloured by method)."""
    apply_style()
    fig, ax = plt.subplots(figsize=(8, 4))
    for (model, method), part in losses.groupby(["model", "method"], sort=False):
        ax.plot(part["step"], part["loss"], color=_method_color(method), alpha=0.8,
                linewidth=2 if method == "EQUAL" else 1, label=model)  # fmt: skip
    ax.set(xlabel="step", ylabel="training loss (answer tokens)", title="Fine-tuning")
    ax.legend(fontsize=6, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def link_figure(table: pd.DataFrame, correlations: pd.DataFrame, labels: dict[str, str] | None = None) -> plt.Figure:
    """Bits per byte of every selection (its models averaged: :func:`equal.report.link.per_selection`) against its
    training set's OT distance to held-out target items, one panel per benchmark, with the least-squares line and
    Pearson r (the method assumes a rising line); where the training sets' median answer lengths are known, a second
    row against those."""
    from equal.report.link import per_selection

    apply_style()
    if "selection" in table:  # one point per selection, as the correlations count them
        table = per_selection(table)
    benches = list(dict.fromkeys(table["benchmark"]))
    axes_x = [("ot_heldout", "pearson_r", "OT distance of the training set to held-out target items")]
    if "answer_chars_median" in table and table["answer_chars_median"].notna().any():
        axes_x.append(("answer_chars_median", "answer_chars_r", "median answer length of the training set (chars)"))
    n_cols = max(1, len(benches))
    fig, axes = plt.subplots(len(axes_x), n_cols, figsize=(4.6 * n_cols, 4.2 * len(axes_x)), squeeze=False)
    stats = correlations.set_index("benchmark")
    for row, (column, r_column, xlabel) in zip(axes, axes_x, strict=True):
        for ax, bench in zip(row, benches, strict=False):
            part = table[table["benchmark"] == bench].dropna(subset=[column])
            for method, group in part.groupby("method", sort=False):
                ax.scatter(group[column], group["bits_per_byte"], color=_method_color(method), label=method, s=28)
            title = (labels or {}).get(bench, bench)
            r = stats.loc[bench, r_column] if bench in stats.index and r_column in stats else float("nan")
            if r == r:  # not NaN: enough models to draw the line
                slope, intercept = np.polyfit(part[column], part["bits_per_byte"], 1)
                xs = np.linspace(part[column].min(), part[column].max(), 20)
                ax.plot(xs, slope * xs + intercept, color="#444444", linewidth=1, linestyle="--")
                title += f"  (r = {r:+.2f}, n = {len(part)} selections)"
            ax.set(title=title, xlabel=xlabel, ylabel="bits per byte (lower is better)")
    axes[0][-1].legend(fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def band_figure(bands: pd.DataFrame, rho: pd.DataFrame, references: pd.DataFrame,
                labels: dict[str, str] | None = None) -> plt.Figure:  # fmt: skip
    """The distance-band test: each band's mean bits per byte with its 95 % interval against the band's mean
    document distance to held-out target items, one panel per benchmark, Spearman ρ with its interval in the title;
    ``references`` (``benchmark``, ``method``, ``mean``) draws Random and Base as horizontal lines."""
    apply_style()
    benches = list(dict.fromkeys(bands["benchmark"])) if len(bands) else []
    if not benches:
        return nothing_to_show("no distance band was fine-tuned and evaluated")
    fig, axes = plt.subplots(1, len(benches), figsize=(4.8 * len(benches), 4.2), squeeze=False)
    stats = rho.set_index("benchmark") if len(rho) else pd.DataFrame()
    for ax, bench in zip(axes[0], benches, strict=True):
        part = bands[bands["benchmark"] == bench]
        x = part["distance_mean"].where(part["distance_mean"].notna(), part["order"])
        ax.errorbar(x, part["mean"], yerr=[part["mean"] - part["ci_low"], part["ci_high"] - part["mean"]],
                    fmt="o-", color="#00796b", capsize=3, label="distance bands (1 = nearest)")  # fmt: skip
        for xi, yi, order in zip(x, part["mean"], part["order"], strict=True):
            ax.annotate(str(order), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
        for _, ref in references[references["benchmark"] == bench].iterrows():
            ax.axhline(ref["mean"], color=_method_color(ref["method"]), linestyle="--", linewidth=1,
                       label=ref["method"])  # fmt: skip
        title = (labels or {}).get(bench, bench)
        if bench in stats.index and "spearman_rho" in stats and stats.loc[bench, "spearman_rho"] == stats.loc[
                bench, "spearman_rho"]:  # fmt: skip
            row = stats.loc[bench]
            title += f"\nρ = {row['spearman_rho']:+.2f} [{row['rho_ci_low']:+.2f}, {row['rho_ci_high']:+.2f}]"
        xlabel = "mean OT distance of the band's documents\nto held-out target items"  # 2 lines: side-by-side panels
        ax.set(title=title, xlabel=xlabel, ylabel="bits per byte (lower is better)")
    axes[0][-1].legend(fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def quantile_figure(per_quantile: pd.DataFrame, gate: pd.DataFrame, points: pd.DataFrame,
                    labels: dict[str, str] | None = None) -> plt.Figure:  # fmt: skip
    """The gate (the link inside the target's domain): each selection's bits per byte against its in-domain quantile
    (1 = nearest to the target), each quantile's mean ± std, and the fitted slope with its 95 % interval in the title
    (:func:`equal.report.preregistered.quantile_gate`'s three tables); one panel per benchmark."""
    apply_style()
    benches = list(dict.fromkeys(per_quantile["benchmark"])) if len(per_quantile) else []
    if not benches:
        return nothing_to_show("no in-domain quantile was fine-tuned and evaluated")
    fig, axes = plt.subplots(1, len(benches), figsize=(4.8 * len(benches), 4.2), squeeze=False)
    fits = gate.set_index("benchmark") if len(gate) else pd.DataFrame()
    for ax, bench in zip(axes[0], benches, strict=True):
        mine = points[points["benchmark"] == bench]
        ax.scatter(mine["quantile"], mine["bits_per_byte"], color="#9e9e9e", s=18, label="a selection")
        part = per_quantile[per_quantile["benchmark"] == bench]
        ax.errorbar(part["quantile"], part["bits_per_byte_mean"], yerr=part["bits_per_byte_std"].fillna(0),
                    fmt="o", color="#00796b", capsize=3, label="quantile mean ± std")  # fmt: skip
        title = (labels or {}).get(bench, bench)
        if bench in fits.index:
            fit = fits.loc[bench]
            xs = np.array([part["quantile"].min(), part["quantile"].max()], dtype=float)
            ax.plot(xs, fit["intercept"] + fit["slope"] * xs, color="#444444", linestyle="--", linewidth=1)
            title += f"\nslope {fit['slope']:+.4f} [{fit['ci_low']:+.4f}, {fit['ci_high']:+.4f}] per quantile"
        ax.set_xticks(sorted(part["quantile"].unique()))
        ax.set(title=title, xlabel="in-domain quantile of OT distance to the target (1 = nearest)",
               ylabel="bits per byte (lower is better)")  # fmt: skip
    axes[0][-1].legend(fontsize=7, frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
    fig.tight_layout()
    return fig


def comparison_figure(comparisons: pd.DataFrame, mde: dict[str, float]) -> plt.Figure:
    """Differences of mean bits per byte (first − second) with their 95 % bootstrap intervals, one panel per
    benchmark; the shaded band is ± the minimum detectable effect where it is known (lower is better: a bar left
    of zero means the first method is better)."""
    apply_style()
    benches = list(dict.fromkeys(comparisons["benchmark"])) if len(comparisons) else []
    rows = int(comparisons["benchmark"].value_counts().max()) if len(comparisons) else 0
    fig, axes = plt.subplots(1, max(1, len(benches)), figsize=(4.8 * max(1, len(benches)), 0.45 * max(8, rows) + 1.2),
                             squeeze=False, sharey=True)  # fmt: skip
    banded = False
    for ax, bench in zip(axes[0], benches, strict=False):
        part = comparisons[comparisons["benchmark"] == bench].reset_index(drop=True)
        labels = [f"{a} − {b}" for a, b in zip(part["a"], part["b"], strict=True)]
        y = np.arange(len(part))
        errors = np.vstack([part["difference"] - part["ci_low"], part["ci_high"] - part["difference"]])
        colours = [_method_color(a) for a in part["a"]]
        for i in range(len(part)):
            ax.errorbar(part["difference"][i], y[i], xerr=errors[:, i : i + 1], fmt="o", color=colours[i], capsize=3)
        if bench in mde and mde[bench] == mde[bench]:
            ax.axvspan(-mde[bench], mde[bench], color="#DDDDDD", alpha=0.6)
            banded = True
        ax.axvline(0, color="#444444", linewidth=1)
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))  # a wide range otherwise crowds its tick labels
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        title = part["label"].iloc[0] if "label" in part.columns else bench
        ax.set(title=title, xlabel="Δ bits per byte (negative: first is better)")
    if banded:  # one legend under the panels, where it covers no interval
        band = plt.Rectangle((0, 0), 1, 1, color="#DDDDDD", alpha=0.6)
        fig.legend([band], ["± minimum detectable effect"], loc="lower center", fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.05 if banded else 0, 1, 1))
    return fig


def cohesion_figure(table: pd.DataFrame) -> plt.Figure:
    """Split-half OT distance of every cluster's QA pairs per clustering (lower: a cluster's documents yield more
    similar pairs); the random partition is the floor a useful clustering should beat."""
    apply_style()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    order = list(dict.fromkeys(table["clustering"]))
    sns.boxplot(data=table, x="split_half_ot", y="clustering", order=order, color="#DDDDDD", ax=ax, fliersize=0)
    state = np.random.get_state()  # seaborn jitters the points with numpy's global generator: seeded, the figure
    np.random.seed(0)  # is the same file on every run
    try:
        sns.stripplot(data=table, x="split_half_ot", y="clustering", order=order, size=4, color="#4C72B0", ax=ax)
    finally:
        np.random.set_state(state)
    ax.set(
        xlabel="OT distance between the QA pairs of a cluster's two random halves (lower: more alike)",
        ylabel="",
        title="Do a cluster's documents yield similar QA pairs?",
    )
    fig.tight_layout()
    return fig
