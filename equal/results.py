"""Saving result tables: CSV for machines, Markdown for people, JSON sidecar for provenance."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from equal.io import write_json_atomic, write_text_atomic
from equal.provenance import sidecar

MARKDOWN_MAX_ROWS = 500  # longer tables (per-pull curves, coordinates) get a head in Markdown; the CSV is whole


def save_table(table: pd.DataFrame, path: str | Path, parameters: dict, caption: str = "") -> Path:
    """Write ``path`` (.csv), the same table as .md, and ``<stem>.meta.json`` with the parameters.

    ``caption`` is written above the Markdown table (say which profile, seeds and models). Tables
    longer than ``MARKDOWN_MAX_ROWS`` show their first rows in Markdown and say where the rest is.
    """
    path = Path(path).with_suffix(".csv")
    write_text_atomic(path, table.to_csv(index=False))
    markdown = table.head(MARKDOWN_MAX_ROWS).to_markdown(index=False)
    if len(table) > MARKDOWN_MAX_ROWS:
        markdown += f"\n\n(first {MARKDOWN_MAX_ROWS} of {len(table):,} rows; all of them in {path.name})"
    write_text_atomic(path.with_suffix(".md"), (f"{caption}\n\n" if caption else "") + markdown + "\n")
    write_json_atomic(path.with_suffix(".meta.json"), {"table": path.name, "caption": caption, **sidecar(parameters)})
    return path
