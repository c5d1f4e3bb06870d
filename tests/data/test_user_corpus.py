"""A user's corpus as JSONL, gzip JSONL, Parquet or a folder of them, with its own text field."""

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from equal.data.reading import ReadContext
from equal.data.sources import parse_user_corpus
from equal.errors import ConfigError, DataFormatError

TEXT = "A document about fractions, decimals and percentages, long enough to keep. " * 3


def write_parquet(path, rows):
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=2)
    return path


def test_a_folder_of_jsonl_gzip_and_parquet_files_with_another_text_field(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.jsonl").write_text(json.dumps({"id": "a1", "body": TEXT, "domain": "math"}) + "\n")
    with gzip.open(folder / "sub" / "b.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"body": TEXT, "title": "B"}) + "\n")
    write_parquet(folder / "c.parquet", [{"id": f"c{i}", "body": TEXT} for i in range(5)])
    (folder / "notes.txt").write_text("ignored")
    docs = list(parse_user_corpus(folder, ReadContext(), text_field="body"))
    assert [d.locator for d in docs] == ["id=a1", "id=c0", "id=c1", "id=c2", "id=c3", "id=c4", "line 1"]
    assert docs[0].domain == "math" and docs[-1].title == "B" and docs[-1].file.endswith("b.jsonl.gz")


def test_bad_parquet_rows_name_the_row_or_are_skipped_and_counted(tmp_path):
    path = write_parquet(tmp_path / "docs.parquet", [{"text": TEXT}, {"text": None}, {"text": "  "}, {"text": TEXT}])
    with pytest.raises(DataFormatError, match=r"docs.parquet:row 2: field 'text' is empty"):
        list(parse_user_corpus(path, ReadContext()))
    ctx = ReadContext(on_error="skip")
    assert len(list(parse_user_corpus(path, ctx))) == 2 and ctx.report.skipped_total == 2
    with pytest.raises(ConfigError, match=r"no column 'body' \(columns: \['text'\]\)"):
        list(parse_user_corpus(path, ReadContext(), text_field="body"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no \.jsonl, \.jsonl\.gz, \.parquet file in this folder"):
        list(parse_user_corpus(tmp_path / "empty", ReadContext()))
