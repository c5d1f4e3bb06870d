"""A user's own corpus: JSONL (optionally gzip), Parquet, or a folder of them, with a configurable text field.

Each record needs a non-empty text field (``text`` unless told otherwise); ``id``, ``title`` and
``domain`` are used when present. A bad record follows the ``on_error`` rule of the
:class:`~equal.data.reading.ReadContext`: it stops the run naming the file and line (JSONL) or row
(Parquet), or it is skipped and counted.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

from equal.data.reading import ReadContext, iter_jsonl, require_str
from equal.errors import ConfigError

SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")


def corpus_files(path: str | Path) -> list[Path]:
    """The files of a corpus given as one file or a folder (sorted; JSONL, .jsonl.gz and Parquet)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
        if not files:
            raise ConfigError(f"{path}: no {', '.join(SUFFIXES)} file in this folder")
        return files
    if not path.is_file():
        raise ConfigError(f"{path}: no such corpus file or folder")
    if not path.name.endswith(SUFFIXES):
        raise ConfigError(f"{path}: a corpus file must end in one of {SUFFIXES}")
    return [path]


def iter_records(path: Path, ctx: ReadContext) -> Iterator[tuple[str, dict]]:
    """``(locator, record)`` of one corpus file: ``line N`` for JSONL, ``row N`` for Parquet."""
    if path.name.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path)
        row = 0
        for batch in table.iter_batches(batch_size=1024):
            for record in batch.to_pylist():
                row += 1
                yield f"row {row}", record
        return
    opener = gzip.open if path.name.endswith(".gz") else open
    for line_no, obj in iter_jsonl(path, ctx, opener=opener):
        yield f"line {line_no}", obj


def _plain(value):
    """A record's value as JSON can hold it (Parquet gives dates, decimals, bytes)."""
    return json.loads(json.dumps(value, default=str))


def iter_documents(path: str | Path, ctx: ReadContext, text_field: str = "text", id_field: str = "id",
                   source_field: str = "source") -> Iterator[dict]:  # fmt: skip
    """Every usable record of a corpus file or folder: ``text``, ``title``, ``domain``, ``file``, ``locator`` and
    ``metadata`` (the record's other fields, its ``id_field`` and ``source_field`` named ``id`` and ``source``):
    what lets a pair be traced back to the record it came from."""
    for file in corpus_files(path):
        if file.name.endswith(".parquet"):
            import pyarrow.parquet as pq

            columns = pq.ParquetFile(file).schema_arrow.names
            if text_field not in columns:
                raise ConfigError(f"{file}: no column {text_field!r} (columns: {columns}); set the text field")
        for locator, obj in iter_records(file, ctx):
            line = int(locator.split()[1]) if locator.startswith("line") else locator
            text = require_str(obj, text_field, file, line, ctx)
            if text is None:
                continue
            ctx.report.records += 1
            renamed = {id_field: "id", source_field: "source"}
            metadata = {renamed.get(k, k): _plain(v) for k, v in obj.items() if k != text_field}
            record_id = metadata.get("id")
            yield {
                "text": text,
                "title": str(obj.get("title") or ""),
                "domain": obj.get("domain"),
                "file": str(file),
                "locator": f"id={record_id}" if record_id not in (None, "") else locator,
                "metadata": metadata,
            }
