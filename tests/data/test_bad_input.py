"""Malformed, empty, non-UTF-8 and huge inputs: clear errors naming file and line, or skip + count."""

import gzip
import json

import pytest

from equal.data.corpus import CorpusConfig, prepare_data
from equal.data.reading import ReadContext, iter_jsonl
from equal.data.sources import parse_user_jsonl
from equal.errors import ConfigError, DataFormatError


@pytest.fixture
def bad_jsonl(tmp_path):
    path = tmp_path / "docs.jsonl"
    lines = [
        json.dumps({"id": "ok-1", "text": "A fine document about fractions and decimals. " * 5}).encode(),
        b'{"id": "broken", "text": "missing quote}',
        b"",
        json.dumps({"id": "no-text", "title": "x"}).encode(),
        '{"id": "latin1", "text": "caf\xe9"}'.encode("latin-1"),
        json.dumps(["not", "an", "object"]).encode(),
        json.dumps({"id": "empty", "text": "   "}).encode(),
        json.dumps({"id": "ok-2", "text": "Another fine document about loops in Python. " * 5}).encode(),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_malformed_json_names_file_and_line(bad_jsonl):
    with pytest.raises(DataFormatError) as error:
        list(parse_user_jsonl(bad_jsonl, ReadContext()))
    assert str(error.value).startswith(f"{bad_jsonl}:2: invalid JSON")
    assert error.value.line == 2


def test_each_problem_is_named(bad_jsonl):
    messages = []
    for bad_line in (2, 4, 5, 6, 7):
        lines = bad_jsonl.read_bytes().split(b"\n")
        single = bad_jsonl.with_name(f"one-{bad_line}.jsonl")
        single.write_bytes(lines[bad_line - 1] + b"\n")
        with pytest.raises(DataFormatError) as error:
            list(parse_user_jsonl(single, ReadContext()))
        messages.append(str(error.value).split(": ", 1)[1])
    assert messages[0].startswith("invalid JSON")
    assert messages[1] == "field 'text' is missing"
    assert messages[2].startswith("not valid UTF-8 (byte 0xe9")
    assert messages[3] == "expected a JSON object, got list"
    assert messages[4] == "field 'text' is empty"


def test_skip_mode_counts_every_bad_record(bad_jsonl):
    ctx = ReadContext(on_error="skip")
    docs = list(parse_user_jsonl(bad_jsonl, ctx))
    assert [d.locator for d in docs] == ["id=ok-1", "id=ok-2"]
    assert ctx.report.skipped == {"invalid_json": 1, "bad_field_text": 1, "non_utf8": 1, "not_an_object": 1, "empty": 1}
    assert len(ctx.report.examples) == 5 and all(str(bad_jsonl) in e for e in ctx.report.examples)


def test_non_utf8_line_number_in_gzip(tmp_path):
    path = tmp_path / "x.jsonl.gz"
    with gzip.open(path, "wb") as handle:
        handle.write(b'{"a": 1}\n{"a": 2}\n{"a": "\xff"}\n')
    with pytest.raises(DataFormatError, match=r"x\.jsonl\.gz:3: not valid UTF-8"):
        list(iter_jsonl(path, ReadContext(), opener=gzip.open))


def test_invalid_on_error_value():
    with pytest.raises(ConfigError, match="on_error"):
        ReadContext(on_error="ignore")


@pytest.mark.slow
def test_user_corpus_through_prepare_data_counts_skips_and_handles_huge(tmp_path, raw_dir, bad_jsonl):
    huge = tmp_path / "huge.jsonl"
    huge.write_text(json.dumps({"id": "huge", "text": "y" * 3_000_000}) + "\n")
    config = CorpusConfig(
        raw_dir=raw_dir,
        out_dir=tmp_path / "out",
        sources=[],
        max_documents=None,
        on_error="skip",
        max_document_chars=1_000_000,
        progress=False,
        user_corpus=[
            {"path": str(bad_jsonl), "name": "mine", "domain": "math"},
            {"path": str(huge), "name": "big", "domain": "general"},
        ],
    )
    prepared = prepare_data(config)
    stats = prepared.stats.set_index("source")
    assert stats.loc["mine", "documents"] == 2
    assert stats.loc["mine", "skipped_bad_records"] == 5
    assert stats.loc["big", "truncated_documents"] == 1
    # 1 M characters cut into 2,000-character units, then near-identical units deduplicated to one.
    assert stats.loc["big", "units"] == 500 and stats.loc["big", "documents"] == 1
    assert stats.loc["big", "exact_duplicates"] == 499
    corpus = prepared.corpus()
    assert corpus["text"].str.len().max() <= 2000
    assert set(corpus["domain"]) == {"math", "general"}


@pytest.mark.slow
def test_user_corpus_configuration_errors(tmp_path, raw_dir):
    def config(**spec):
        return CorpusConfig(raw_dir=raw_dir, out_dir=tmp_path / "out", sources=[], user_corpus=[spec], progress=False)

    with pytest.raises(ConfigError, match=r"user_corpus 'web': no file or folder at .*nowhere\.jsonl"):
        prepare_data(config(name="web", path=str(tmp_path / "nowhere.jsonl")))
    with pytest.raises(ConfigError, match="already a source name"):
        prepare_data(config(name="asdiv", path=str(tmp_path / "x.jsonl")))
    with pytest.raises(ConfigError, match="need 'name' and 'path'"):
        prepare_data(config(path="x.jsonl"))
