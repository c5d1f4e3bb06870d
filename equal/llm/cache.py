"""A content-addressed, crash-safe, exactly-once cache of LLM calls in SQLite.

The key hashes everything that determines an answer: backend kind, model identity (name and file
hash or server model), prompt version, generation parameters and the exact messages. Each call
is committed in its own transaction as soon as it returns, so killing the process at any moment
loses at most the calls in flight and never leaves a half-written record (SQLite's journal makes
the commit atomic). Cached rows keep their original token counts and wall time, so a method that
reuses them is still charged their cost.

Exactly once, across processes: :meth:`CallCache.resolve` is the only way the extractor calls a
model. It *claims* every missing key with a lease (one ``BEGIN IMMEDIATE`` transaction, so two
workers cannot both claim a key), calls the model only for the keys it claimed, and waits for the
keys another worker holds instead of paying for them again. The first answer stored for a key is
final (``INSERT OR IGNORE``): a later writer gets the stored answer back. A lease ends when its
answer is stored, when its holder releases it (a failed call), when it expires (``lease_s``,
renewed while the call runs) or — on the same host — as soon as its holder's process is gone, so a
killed worker's documents are taken over at once. Many hosts share one cache through one owner
process (:mod:`equal.scale.cache_actor`), never through a network file system.

A cache object pickles (path and settings only) and reconnects in the process that unpickles it, so
it can be handed to worker processes and Ray actors.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from equal.errors import EqualError
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
);
CREATE TABLE IF NOT EXISTS failed_calls (
    key TEXT NOT NULL,
    backend TEXT NOT NULL,
    model_id TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    stage TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    wall_s REAL NOT NULL,
    error TEXT NOT NULL,
    created TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires REAL NOT NULL
);
"""

COLUMNS = "key, backend, model_id, prompt_version, stage, text, prompt_tokens, completion_tokens, wall_s, finish_reason"


class CacheBusy(EqualError):
    """The cache database stayed locked by other writers beyond every retry."""


def call_key(backend: str, model_id: str, prompt_version: str, params: GenerationParams, messages: Messages) -> str:
    """sha256 over everything that determines the answer."""
    payload = json.dumps(
        {"backend": backend, "model": model_id, "prompt": prompt_version, "params": params.key(), "messages": messages},
        sort_keys=True,
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CallMeta:
    """What is stored beside each answer (not part of the key: the key already hashes it)."""

    backend: str
    model_id: str
    prompt_version: str
    stage: str


def worker_identity() -> str:
    """``host:pid:token`` of this process: the owner named in the leases it takes."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _owner_gone(owner: str) -> bool:
    """True when ``owner`` names a process of this host that no longer exists (other hosts: never known here)."""
    host, _, rest = owner.partition(":")
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(rest.partition(":")[0]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


#: ``call(positions)`` answers the requests at those positions, yielding ``(position, completion)`` as each
#: answer arrives (any order), so every answer is stored the moment it exists.
CallFunction = Callable[[list[int]], Iterable[tuple[int, Completion]]]


class CallCache:
    """Exactly-once answers by key; safe to share between threads, processes (one host) and pickling."""

    def __init__(self, path: str | Path, lease_s: float = 600.0, busy_timeout_s: float = 300.0) -> None:
        self.path = Path(path)
        self.lease_s = lease_s
        self.busy_timeout_s = busy_timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connect()

    # ------------------------------------------------------------------ connection (per process)
    def _connect(self) -> None:
        self._pid = os.getpid()
        self.owner = worker_identity()
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            self.path, check_same_thread=False, isolation_level=None, timeout=min(30.0, self.busy_timeout_s)
        )
        self._retrying(lambda: self._db.execute("PRAGMA journal_mode=WAL"))
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._retrying(lambda: self._db.executescript(SCHEMA))

    def __getstate__(self) -> dict:
        return {"path": self.path, "lease_s": self.lease_s, "busy_timeout_s": self.busy_timeout_s}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._connect()

    def _conn(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:  # a forked child never shares its parent's connection or leases
            self._connect()
        return self._db

    def _retrying(self, operation):
        """Run ``operation``; a database still locked after SQLite's own wait (up to 30 s) is retried with backoff up to
        ``busy_timeout_s``, then :class:`CacheBusy` names the file."""
        deadline, delay = time.monotonic() + self.busy_timeout_s, 0.05
        while True:
            try:
                return operation()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise CacheBusy(f"{self.path}: database still locked after {self.busy_timeout_s:.0f} s "
                                    f"({exc}); another process holds a long write") from exc  # fmt: skip
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    @contextmanager
    def _transaction(self):
        """One write transaction that takes the database's write lock at once (no lost updates between readers)."""
        with self._lock:
            db = self._conn()
            self._retrying(lambda: db.execute("BEGIN IMMEDIATE"))
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # ------------------------------------------------------------------ reads and writes
    def get(self, key: str) -> Completion | None:
        """The cached completion for ``key``, or None."""
        return self.get_many([key]).get(key)

    def get_many(self, keys: list[str]) -> dict[str, Completion]:
        """The cached completions of those ``keys`` that have one."""
        found: dict[str, Completion] = {}
        with self._lock:
            db = self._conn()
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                rows = self._retrying(
                    lambda chunk=chunk: db.execute(
                        "SELECT key, text, prompt_tokens, completion_tokens, wall_s, finish_reason FROM calls "
                        f"WHERE key IN ({','.join('?' * len(chunk))})",
                        chunk,
                    ).fetchall()
                )
                found.update({row[0]: Completion(*row[1:]) for row in rows})
        return found

    def put(
        self, key: str, completion: Completion, backend: str, model_id: str, prompt_version: str, stage: str,
        owner: str | None = None,
    ) -> Completion:  # fmt: skip
        """Store a completion unless the key already has one — the first answer stored is final — and end the
        key's lease; return the stored answer. Failed calls are never cached (their lease is released)."""
        owner = owner or self.owner
        with self._transaction() as db:
            db.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (key, owner))
            if completion.error is not None:  # paid (perhaps) but never served: counted in paid(), not cached
                db.execute(
                    "INSERT INTO failed_calls (key, backend, model_id, prompt_version, stage, prompt_tokens, "
                    "completion_tokens, wall_s, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key, backend, model_id, prompt_version, stage, completion.prompt_tokens,
                     completion.completion_tokens, completion.wall_s, str(completion.error)),
                )  # fmt: skip
                return completion
            inserted = db.execute(
                f"INSERT OR IGNORE INTO calls ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, backend, model_id, prompt_version, stage, completion.text, completion.prompt_tokens,
                 completion.completion_tokens, completion.wall_s, completion.finish_reason),
            ).rowcount  # fmt: skip
            if inserted:
                return completion
            row = db.execute(
                "SELECT text, prompt_tokens, completion_tokens, wall_s, finish_reason FROM calls WHERE key = ?", (key,)
            ).fetchone()
        return Completion(*row)

    def insert_missing(self, rows: list[tuple]) -> int:
        """Add rows (the columns of ``calls`` up to ``finish_reason``) whose key is not cached yet; return how many."""
        with self._transaction() as db:
            before = db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
            db.executemany(f"INSERT OR IGNORE INTO calls ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0] - before

    # ------------------------------------------------------------------ leases
    def claim(self, keys: list[str], owner: str | None = None) -> tuple[dict[str, Completion], list[str], list[str]]:
        """In one transaction, for each key: its stored answer, or a lease for ``owner`` (claimed), or — when a live
        lease of another owner holds it — nothing yet (waiting). Returns ``(answers, claimed, waiting)``."""
        owner = owner or self.owner
        now = time.time()
        answers, claimed, waiting = {}, [], []
        with self._transaction() as db:
            for key in keys:
                row = db.execute(
                    "SELECT text, prompt_tokens, completion_tokens, wall_s, finish_reason FROM calls WHERE key = ?",
                    (key,),
                ).fetchone()
                if row is not None:
                    answers[key] = Completion(*row)
                    continue
                lease = db.execute("SELECT owner, expires FROM leases WHERE key = ?", (key,)).fetchone()
                if lease is not None and lease[0] != owner and lease[1] > now and not _owner_gone(lease[0]):
                    waiting.append(key)
                    continue
                expires = now + self.lease_s
                db.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?)", (key, owner, expires))
                claimed.append(key)
        return answers, claimed, waiting

    def renew(self, keys: list[str], owner: str | None = None) -> None:
        """Extend ``owner``'s leases on ``keys`` by ``lease_s`` from now (a long call keeps its claim)."""
        owner = owner or self.owner
        with self._transaction() as db:
            db.executemany(
                "UPDATE leases SET expires = ? WHERE key = ? AND owner = ?",
                [(time.time() + self.lease_s, key, owner) for key in keys],
            )

    def release(self, keys: list[str], owner: str | None = None) -> None:
        """Drop ``owner``'s leases on ``keys`` (calls that will not be made after all)."""
        owner = owner or self.owner
        with self._transaction() as db:
            db.executemany("DELETE FROM leases WHERE key = ? AND owner = ?", [(key, owner) for key in keys])

    def resolve(self, keys: list[str], call: CallFunction, meta: CallMeta, poll_s: float = 0.1) -> list[
        tuple[Completion, bool]]:  # fmt: skip
        """Answer every key exactly once across all workers sharing this cache: stored answers are read, claimed
        keys are called (``call``) and stored as they arrive, keys in flight elsewhere are waited for. Returns
        ``(completion, cached)`` per key, ``cached`` False only for the calls this worker paid for."""
        return resolve_with(self, keys, call, meta, poll_s)

    # ------------------------------------------------------------------ about
    @property
    def identity(self) -> str:
        """Which answers this cache holds, for fingerprints: its file name (``calls`` or ``answers-<digest>``)."""
        return self.path.stem

    def paid(self) -> dict:
        """Every call this cache has paid for, per stage: answers stored and calls that failed (made, not served),
        with their tokens and model seconds. What a cost report counts as paid."""
        query = ("SELECT stage, COUNT(*), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), "
                 "COALESCE(SUM(wall_s), 0) FROM {} GROUP BY stage")  # fmt: skip
        stages: dict[str, dict] = {}
        with self._lock:
            db = self._conn()
            for table, kind in (("calls", "calls"), ("failed_calls", "failed_calls")):
                for stage, n, prompt, completion, wall in self._retrying(lambda t=table: db.execute(
                        query.format(t)).fetchall()):  # fmt: skip
                    row = stages.setdefault(stage, {"calls": 0, "failed_calls": 0, "prompt_tokens": 0,
                                                    "completion_tokens": 0, "model_wall_s": 0.0})  # fmt: skip
                    row[kind] += n
                    row["prompt_tokens"] += prompt
                    row["completion_tokens"] += completion
                    row["model_wall_s"] = round(row["model_wall_s"] + wall, 1)
        total = {key: sum(row[key] for row in stages.values()) for key in
                 ("calls", "failed_calls", "prompt_tokens", "completion_tokens")}  # fmt: skip
        return {
            **total,
            "tokens": total["prompt_tokens"] + total["completion_tokens"],
            "model_wall_s": round(sum(row["model_wall_s"] for row in stages.values()), 1),
            "by_stage": stages,
        }

    def __len__(self) -> int:
        with self._lock:
            return self._retrying(lambda: self._conn().execute("SELECT COUNT(*) FROM calls").fetchone()[0])

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()


class _Heartbeat:
    """Renews the leases of the calls still open every third of the lease period while a long call runs."""

    def __init__(self, cache, keys: list[str], owner: str) -> None:
        self.cache, self.owner = cache, owner
        self._open = set(keys)
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def done(self, key: str) -> None:
        """``key`` is answered: stop renewing it."""
        with self._guard:
            self._open.discard(key)

    def still_open(self) -> list[str]:
        """Keys claimed and not answered yet."""
        with self._guard:
            return sorted(self._open)

    def _beat(self) -> None:
        while not self._stop.wait(max(self.cache.lease_s / 3, 0.05)):
            keys = self.still_open()
            if keys:
                self.cache.renew(keys, self.owner)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


def resolve_with(cache, keys: list[str], call: CallFunction, meta: CallMeta, poll_s: float = 0.1) -> list[
    tuple[Completion, bool]]:  # fmt: skip
    """:meth:`CallCache.resolve` over any object with ``claim``/``put``/``renew``/``release``, ``owner`` and
    ``lease_s`` (a local :class:`CallCache` or a client of the cache's owner process on another host)."""
    positions: dict[str, list[int]] = {}
    for position, key in enumerate(keys):
        positions.setdefault(key, []).append(position)  # a key asked twice is called once
    answers: list[tuple[Completion, bool] | None] = [None] * len(keys)

    def settle(key: str, completion: Completion, cached: bool) -> None:
        # a key asked twice is paid once: its other positions are served from that answer, as from the cache
        for rank, position in enumerate(positions[key]):
            answers[position] = (completion, cached or rank > 0)

    pending = list(positions)
    while pending:
        stored, claimed, waiting = cache.claim(pending, cache.owner)
        for key, completion in stored.items():
            settle(key, completion, True)
        if claimed:
            first = {positions[key][0]: key for key in claimed}
            heartbeat = _Heartbeat(cache, claimed, cache.owner)
            try:
                with heartbeat:
                    for position, completion in call(sorted(first)):
                        key = first[position]
                        kept = cache.put(key, completion, meta.backend, meta.model_id, meta.prompt_version,
                                         meta.stage, cache.owner)  # fmt: skip
                        heartbeat.done(key)
                        settle(key, kept, False)  # paid for here, even if a lapsed lease let another answer win
            finally:
                unanswered = heartbeat.still_open()
                if unanswered:  # the call stopped early: free what it never answered
                    cache.release(unanswered, cache.owner)
        if waiting and not claimed:
            time.sleep(poll_s)
        pending = waiting
    return answers  # type: ignore[return-value]
