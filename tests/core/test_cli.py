import json
import subprocess
import sys

import pytest


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "equal.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_prepare_data_on_a_user_corpus(tmp_path):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(
        "\n".join(
            json.dumps({"id": i, "text": f"Document {i} explains how fractions of {i} apples work. " * 4})
            for i in range(5)
        )
        + "\n"
    )
    result = run_cli(
        "prepare-data", "--out", str(tmp_path / "out"), "--corpus", str(corpus), "--no-builtin", "--domain", "math"
    )
    assert result.returncode == 0, result.stderr
    assert "5 documents" in result.stdout
    lines = (tmp_path / "out" / "corpus.jsonl").read_text().splitlines()
    assert {json.loads(line)["domain"] for line in lines} == {"math"}


@pytest.mark.slow
def test_bad_record_is_a_one_line_error_naming_the_line(tmp_path):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text('{"text": "fine document text here, long enough to keep around for sure ok"}\n{"text": oops}\n')
    result = run_cli("prepare-data", "--out", str(tmp_path / "out"), "--corpus", str(corpus), "--no-builtin")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == f"error: {corpus}:2: invalid JSON (Expecting value, column 10)"


@pytest.mark.slow
def test_prepare_data_on_a_parquet_folder_with_another_text_field(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "crawl"
    folder.mkdir()
    rows = [
        {"url": f"u{i}", "body": f"Page {i} shows how a for loop sums {i} numbers in Python. " * 4} for i in range(4)
    ]
    pq.write_table(pa.Table.from_pylist(rows), folder / "part-0.parquet")
    result = run_cli("prepare-data", "--out", str(tmp_path / "out"), "--corpus", str(folder), "--no-builtin",
                     "--text-field", "body", "--domain", "code")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "4 documents" in result.stdout
    docs = [json.loads(line) for line in (tmp_path / "out" / "corpus.jsonl").read_text().splitlines()]
    assert {d["source"] for d in docs} == {"crawl"} and all("for loop" in d["text"] for d in docs)
