"""A content-addressed, crash-safe cache of LLM calls in SQLite.

The key hashes everything that determines an answer: backend kind, model identity (name and file
hash or server model), prompt version, generation parameters and the exact messages. Each call
is committed in its own transaction as soon as it returns, so killing the process at any moment
loses at most the call in flight and never leaves a half-written record (SQLite's journal makes
the commit atomic). Cached rows keep their original token counts and wall time, so a method that
reuses them is still charged their cost.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

from equal.llm.types import Completion, GenerationParams, Messages

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model_id TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    stage TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    wall_s REAL NOT NULL,
    finish_reason TEXT NOT NULL,
    created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)
"""


def call_key(backend: str, model_id: str, prompt_version: str, params: GenerationParams, messages: Messages) -> str:
    """sha256 over everything that determines the answer."""
    payload = json.dumps(
        {"backend": backend, "model": model_id, "prompt": prompt_version, "params": params.key(), "messages": messages},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class CallCache:
    """``get``/``put`` completions by key; safe to share between threads of one process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)

    def get(self, key: str) -> Completion | None:
        """The cached completion for ``key``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT text, prompt_tokens, completion_tokens, wall_s, finish_reason FROM calls WHERE key = ?", (key,)
            ).fetchone()
        return None if row is None else Completion(*row)

    def put(
        self, key: str, completion: Completion, backend: str, model_id: str, prompt_version: str, stage: str
    ) -> None:
        """Store a completion (committed immediately). Failed calls are never cached."""
        if completion.error is not None:
            return
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO calls (key, backend, model_id, prompt_version, stage, text, prompt_tokens, "
                "completion_tokens, wall_s, finish_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    backend,
                    model_id,
                    prompt_version,
                    stage,
                    completion.text,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                    completion.wall_s,
                    completion.finish_reason,
                ),
            )

    def insert_missing(self, rows: list[tuple]) -> int:
        """Add rows (the columns of ``calls`` up to ``finish_reason``) whose key is not cached yet; return how many."""
        with self._lock:
            before = self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR IGNORE INTO calls (key, backend, model_id, prompt_version, stage, text, prompt_tokens, "
                "completion_tokens, wall_s, finish_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._db.execute("COMMIT")
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] - before

    @property
    def identity(self) -> str:
        """Which answers this cache holds, for fingerprints: its file name (``calls`` or ``answers-<digest>``)."""
        return self.path.stem

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()
