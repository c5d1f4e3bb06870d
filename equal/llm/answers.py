"""Shipped LLM answers: the extractor outputs committed results were computed from, as a verified archive.

llama.cpp's greedy output is not stable across CPUs, so a cold run on another machine extracts other
QA pairs and every table after notebook 01 moves. Reproducible artifacts ship their expensive
generated data instead: :func:`export_answers` writes every cached answer of one extractor and prompt
version to a compact, deterministic ``.jsonl.gz`` (sorted by call key, gzip without a timestamp), and
the profile names it with its sha256. :func:`open_answers` verifies the digest and loads it into a
cache file of its own (``answers-<digest>.sqlite``), which the pipeline then hands to every notebook:
same answers, same tables, on any machine. ``make reproduce FRESH=1`` extracts from scratch instead
(the ordinary cache, separate output folders) and ``scripts/compare_results.py`` compares the two.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

from equal.errors import ChecksumError, ConfigError
from equal.fingerprint import file_digest
from equal.io import atomic_open
from equal.llm.cache import CallCache

COLUMNS = ("key", "backend", "model_id", "prompt_version", "stage", "text", "prompt_tokens", "completion_tokens",
           "wall_s", "finish_reason")  # fmt: skip


def export_answers(cache_path: str | Path, out_path: str | Path, model_id: str, prompt_version: str,
                   also: list[tuple[str, str]] = ()) -> dict:  # fmt: skip
    """Write every cached answer of ``model_id`` under ``prompt_version`` — and of each further ``(model_id,
    prompt_version)`` in ``also``, e.g. the refiner's under its refinement prompt — to ``out_path`` (deterministic
    gzip JSONL, sorted by key); return the number of answers and the archive's sha256."""
    cache_path = Path(cache_path)
    if not cache_path.is_file():
        raise ConfigError(f"{cache_path}: no LLM cache to export")
    sources = [(model_id, prompt_version), *also]
    rows: dict[str, tuple] = {}
    with sqlite3.connect(cache_path) as db:
        for source_model, version in sources:
            found = db.execute(
                f"SELECT {', '.join(COLUMNS)} FROM calls WHERE model_id = ? AND prompt_version = ?",
                (source_model, version),
            ).fetchall()
            if not found:
                raise ConfigError(f"{cache_path}: no cached answer of {source_model} under prompt {version}")
            rows.update({row[0]: row for row in found})
    with atomic_open(out_path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as handle:
        for key in sorted(rows):
            handle.write((json.dumps(dict(zip(COLUMNS, rows[key], strict=True)), ensure_ascii=False) + "\n").encode())
    return {"answers": len(rows), "sha256": file_digest(Path(out_path)), "model_id": model_id,
            "prompt_version": prompt_version, "also": [list(source) for source in also]}  # fmt: skip


def open_answers(archive: str | Path, sha256: str, cache_dir: str | Path) -> Path:
    """Verify ``archive`` against ``sha256`` and return a cache file holding exactly its answers
    (built once per digest, atomically)."""
    archive = Path(archive)
    if not archive.is_file():
        raise ConfigError(f"{archive}: the profile's LLM answers are missing (or run with FRESH=1 to re-extract)")
    actual = file_digest(archive)
    if actual != sha256:
        raise ChecksumError(f"{archive}: sha256 {actual} differs from the profile's {sha256}; refusing to use it")
    target = Path(cache_dir) / f"answers-{sha256[:16]}.sqlite"
    if target.is_file():
        return target
    building = target.with_suffix(".building")
    for leftover in (building, Path(f"{building}-wal"), Path(f"{building}-shm")):
        leftover.unlink(missing_ok=True)
    rows = []
    with gzip.open(archive, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                row = json.loads(line)
                rows.append(tuple(row[c] for c in COLUMNS))
            except (json.JSONDecodeError, KeyError) as exc:
                raise ChecksumError(f"{archive}:{number}: unreadable answer ({exc})") from exc
    cache = CallCache(building)
    cache.insert_missing(rows)
    cache.close()  # the last connection closing checkpoints the WAL into the file
    for leftover in (Path(f"{building}-wal"), Path(f"{building}-shm")):
        leftover.unlink(missing_ok=True)
    building.replace(target)
    return target
