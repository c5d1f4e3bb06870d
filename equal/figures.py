"""Figures: one consistent style, saved as PNG and PDF, drawn from result tables only."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: papermill and CI have no display
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

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
