"""Reading raw files defensively: every problem names its file and line, or is skipped and counted.

``on_error="raise"`` (the default) stops at the first bad record with a :class:`DataFormatError`;
``on_error="skip"`` skips it and counts the reason in a :class:`ParseReport`.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from equal.errors import ConfigError, DataFormatError

ON_ERROR_CHOICES = ("raise", "skip")


@dataclass
class ParseReport:
    """What happened to the records of one source."""

    records: int = 0  # records (problems, posts, pages, ...) parsed into documents
    skipped: Counter = field(default_factory=Counter)  # reason -> count of records skipped
    truncated: int = 0  # documents cut to max_document_chars
    examples: list[str] = field(default_factory=list)  # first few skip messages, for the report

    @property
    def skipped_total(self) -> int:
        """Number of records skipped for any reason."""
        return sum(self.skipped.values())


@dataclass
class ReadContext:
    """Error policy and bookkeeping shared by the parsers of one source."""

    on_error: str = "raise"
    max_document_chars: int = 1_000_000
    report: ParseReport = field(default_factory=ParseReport)

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR_CHOICES:
            raise ConfigError(f"on_error must be one of {ON_ERROR_CHOICES}, got {self.on_error!r}")

    def problem(self, path: str | Path, line: int | str | None, problem: str, reason: str) -> None:
        """Raise a :class:`DataFormatError`, or count the record as skipped for ``reason``."""
        error = DataFormatError(path, line, problem)
        if self.on_error == "raise":
            raise error
        self.report.skipped[reason] += 1
        if len(self.report.examples) < 5:
            self.report.examples.append(str(error))

    def skip(self, reason: str) -> None:
        """Count a record that is well-formed but holds nothing to use (e.g. an empty document)."""
        self.report.skipped[reason] += 1

    def limit(self, text: str) -> str:
        """Cut a pathologically large document to ``max_document_chars`` (counted)."""
        if len(text) > self.max_document_chars:
            self.report.truncated += 1
            return text[: self.max_document_chars]
        return text


def decode_utf8(data: bytes, path: str | Path, ctx: ReadContext, line: int | None = None) -> str | None:
    """Decode bytes as UTF-8 (BOM allowed); on failure report the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad_line = (line or 1) + data[: exc.start].count(b"\n")
        ctx.problem(path, bad_line, f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})", "non_utf8")
        return None


def read_text_file(path: Path, ctx: ReadContext) -> str | None:
    """Whole file as text, or None when it is not UTF-8 and errors are skipped."""
    return decode_utf8(path.read_bytes(), path, ctx)


def iter_jsonl(path: Path, ctx: ReadContext, opener=open) -> Iterator[tuple[int, dict]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSONL file."""
    with opener(path, "rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            text = decode_utf8(raw, path, ctx, line=line_no)
            if text is None:
                continue
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                ctx.problem(path, line_no, f"invalid JSON ({exc.msg}, column {exc.colno})", "invalid_json")
                continue
            if not isinstance(obj, dict):
                ctx.problem(path, line_no, f"expected a JSON object, got {type(obj).__name__}", "not_an_object")
                continue
            yield line_no, obj


def require_str(
    obj: dict, key: str, path: Path, line: int | str, ctx: ReadContext, required: bool = True
) -> str | None:
    """``obj[key]`` as a stripped string; a missing/empty/non-string required field is a problem."""
    value = obj.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    if required:
        what = (
            "missing"
            if key not in obj
            else ("empty" if isinstance(value, str) or value is None else f"a {type(value).__name__}, not a string")
        )
        ctx.problem(path, line, f"field {key!r} is {what}", f"bad_field_{key}" if what != "empty" else "empty")
    return None
