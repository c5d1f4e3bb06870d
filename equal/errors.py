"""Exceptions that tell the user exactly which input is wrong and how."""

from __future__ import annotations

from pathlib import Path


class EqualError(Exception):
    """Base class of every error raised on purpose by `equal`."""


class DataFormatError(EqualError):
    """A record of an input file cannot be parsed.

    The message always names the file, the line (or record) and the problem, e.g.
    ``data/docs.jsonl:17: invalid JSON (Expecting ',' delimiter: column 12)``.
    """

    def __init__(self, path: str | Path, line: int | str | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")


class ChecksumError(EqualError):
    """A raw data file is missing or its sha256 differs from the manifest."""


class ConfigError(EqualError):
    """A profile or parameter value is invalid."""
