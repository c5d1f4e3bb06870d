"""Content fingerprints: the one way every cache decides whether finished work is still valid.

A cache that reads back finished work (prepared data, the tuned embedder, a method run, a
fine-tuned model, an evaluation) keys it by :func:`fingerprint` of *everything* the work depends
on: the content of its input files (:func:`file_digest`, or :func:`arrays_digest` for arrays whose
container is not byte-stable, such as ``.npz``), its parameters, the prompt version and the
identities of the models involved. Change any of them and the key changes; change nothing and it
stays the same across runs and machines.

:func:`fingerprint` keeps its parts (``Fingerprint.parts``) so that a stale cache can say *what*
changed (:func:`changed_parts`), not only that something did.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: sha256 of files already read, keyed by (path, size, mtime): a file is hashed once per process.
_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (memoised on path, size and modification time)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _FILE_DIGESTS[key] = digest.hexdigest()
    return _FILE_DIGESTS[key]


def files_digest(files: list[Path]) -> str:
    """First 16 hex digits of the sha256 over the given files' bytes, in path order: a model's identity in cache
    keys (a GGUF file, a folder's weight files)."""
    digest = hashlib.sha256()
    for path in sorted(files):
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()[:16]


def arrays_digest(arrays: Mapping[str, np.ndarray]) -> str:
    """sha256 of named arrays' names, dtypes, shapes and values (independent of how they were saved)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def _canonical(value: Any) -> Any:
    """JSON-ready form: dataclasses as dicts, paths as their file digest, arrays as their digest."""
    if is_dataclass(value) and not isinstance(value, type):
        return _canonical(asdict(value))
    if isinstance(value, Path):
        return {"file_sha256": file_digest(value)}
    if isinstance(value, np.ndarray):
        return {"array_sha256": arrays_digest({"a": value})}
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return value


@dataclass(frozen=True)
class Fingerprint:
    """A digest of named parts; ``parts`` is the canonical (JSON-ready) form that was hashed."""

    digest: str
    parts: dict[str, Any]

    def __str__(self) -> str:
        return self.digest


def fingerprint(**parts: Any) -> Fingerprint:
    """Fingerprint named parts: parameters, identities, and inputs given as ``Path`` (hashed by content).

    >>> fingerprint(k=20, prompt="qa-extract-v1").digest == fingerprint(prompt="qa-extract-v1", k=20).digest
    True
    """
    canonical = _canonical(parts)
    payload = json.dumps(canonical, sort_keys=True, ensure_ascii=False, default=str)
    return Fingerprint(hashlib.sha256(payload.encode()).hexdigest()[:20], canonical)


def records_digest(records: list[dict]) -> str:
    """Content digest of a list of records (order included)."""
    return fingerprint(records=records).digest


def changed_parts(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> list[str]:
    """Names of the top-level parts that differ between two fingerprints' ``parts`` (all when old is None)."""
    if not old:
        return sorted(new)
    keys = set(old) | set(new)
    return sorted(k for k in keys if json.dumps(old.get(k), sort_keys=True, default=str)
                  != json.dumps(new.get(k), sort_keys=True, default=str))  # fmt: skip


def reuse_or_reset(
    folder: str | Path,
    fp: Fingerprint,
    done: str,
    label: str = "",
    stamp: str = "fingerprint.json",
    log: Callable[[str], None] | None = print,
    clear: Callable[[Path], None] | None = None,
) -> bool:
    """The one cache rule for a folder of finished work: its fingerprint is written first, its ``done`` marker
    last. True when ``folder`` holds finished work for ``fp`` (read it back). Otherwise the folder is ready to
    (re)compute into: one stamped with another fingerprint is cleared, saying which parts changed (``label``
    names the work); one without a stamp (torn, or older than stamps) is cleared; an unfinished one with this
    fingerprint is kept, so the work resumes. ``clear`` replaces removing the whole folder where other work shares
    it (data preparation's folder holds the later stages' files, each under its own fingerprint)."""
    import shutil

    from equal.io import write_json_atomic

    folder = Path(folder)
    stamp_path = folder / stamp
    wipe = clear or shutil.rmtree
    if stamp_path.is_file():
        old = json.loads(stamp_path.read_text(encoding="utf-8"))
        if old.get("fingerprint") == fp.digest:
            return (folder / done).exists()
        if log:
            log(f"{label}: inputs changed ({', '.join(changed_parts(old.get('parts'), fp.parts))}) — recomputing")
        wipe(folder)
    elif folder.exists():
        wipe(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(stamp_path, {"fingerprint": fp.digest, "parts": fp.parts})
    return False
