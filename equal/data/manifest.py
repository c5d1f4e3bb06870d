"""The raw-data manifest: which files exist, where they come from, and their sha256.

``MANIFEST.json`` (in the raw-data folder) lists every source with its upstream repository,
commit, licence and files. We verify each file's sha256 before parsing anything; a missing file
can be downloaded from its upstream URL when a network is there (``fetch_missing=True``).
"""

from __future__ import annotations

import hashlib
import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from equal.errors import ChecksumError, DataFormatError
from equal.fingerprint import file_digest
from equal.io import atomic_open
from equal.progress import tqdm


@dataclass(frozen=True)
class RawFile:
    """One file of a source, as the manifest describes it."""

    local_path: str  # relative to the raw-data folder, e.g. "raw/gsm8k/train.jsonl"
    sha256: str
    bytes: int
    upstream_repo: str
    upstream_commit: str
    upstream_path: str
    kind: str = "data"  # "data", "license_or_readme" or "table_of_contents"
    items: int | None = None

    @property
    def upstream_url(self) -> str:
        """Raw-download URL of the exact upstream blob (GitHub repositories only)."""
        repo = self.upstream_repo.rstrip("/").removeprefix("https://github.com/")
        return f"https://raw.githubusercontent.com/{repo}/{self.upstream_commit}/{self.upstream_path}"


@dataclass(frozen=True)
class Source:
    """One source of the manifest: a target task or a corpus component."""

    name: str
    role: str  # "target_task" or "corpus"
    domain: str  # "math", "code" or "general"
    license: str
    format: str
    files: tuple[RawFile, ...] = field(repr=False)

    @property
    def data_files(self) -> list[RawFile]:
        """The files holding records (not licences or tables of contents)."""
        return [f for f in self.files if f.kind == "data"]

    def file(self, kind: str) -> RawFile | None:
        """The first file of the given kind, if any."""
        return next((f for f in self.files if f.kind == kind), None)


def load_manifest(raw_dir: Path) -> dict[str, Source]:
    """Read ``<raw_dir>/MANIFEST.json`` into ``{source name: Source}``."""
    path = raw_dir / "MANIFEST.json"
    if not path.is_file():
        raise ChecksumError(
            f"no MANIFEST.json in {raw_dir}: point raw_data_dir (or $EQUAL_RAW_DATA_DIR) at the "
            "folder that holds MANIFEST.json and raw/"
        )
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, exc.lineno, f"invalid JSON ({exc.msg})") from exc
    sources: dict[str, Source] = {}
    for index, entry in enumerate(entries):
        try:
            upstreams = entry["upstream"]
            default_repo = upstreams[0]["repository"]
            commits = {u["repository"]: u["commit"] for u in upstreams}
            files = tuple(
                RawFile(
                    local_path=f["local_path"],
                    sha256=f["sha256"].lower(),
                    bytes=int(f["bytes"]),
                    upstream_repo=f.get("upstream_repo", default_repo),
                    upstream_commit=commits.get(f.get("upstream_repo", default_repo), upstreams[0]["commit"]),
                    upstream_path=f["upstream_path"],
                    kind=f.get("kind", "data"),
                    items=f.get("items"),
                )
                for f in entry["files"]
            )
            sources[entry["name"]] = Source(
                name=entry["name"],
                role=entry["role"],
                domain=entry["domain"],
                license=entry.get("license", ""),
                format=entry.get("format", ""),
                files=files,
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise DataFormatError(path, f"source #{index}", f"malformed manifest entry ({exc!r})") from exc
    return sources


def source_url(raw_file: RawFile, mirror_url: str | None = None) -> str:
    """Where to download a file: ``<mirror_url>/<local_path>`` for a mirror, else its upstream URL."""
    return f"{mirror_url.rstrip('/')}/{raw_file.local_path}" if mirror_url else raw_file.upstream_url


def download(raw_file: RawFile, destination: Path, mirror_url: str | None = None, timeout: float = 60.0) -> None:
    """Download one file, verify its sha256, and move it into place atomically."""
    url = source_url(raw_file, mirror_url)
    with urllib.request.urlopen(url, timeout=timeout) as response:
        payload = response.read()
    actual = hashlib.sha256(payload).hexdigest()
    if actual != raw_file.sha256:
        raise ChecksumError(f"{url}: downloaded file has sha256 {actual}, manifest says {raw_file.sha256}")
    with atomic_open(destination, "wb") as handle:
        handle.write(payload)


def verify_sources(
    raw_dir: Path,
    sources: list[Source],
    fetch_missing: bool = False,
    progress: bool = True,
    mirror_url: str | None = None,
) -> int:
    """Check every file of ``sources`` against its manifest sha256; return the number checked.

    A missing file is downloaded (from ``mirror_url`` if given, else from its upstream repository at
    the pinned commit) when ``fetch_missing`` is true, otherwise (or when
    the download fails) a :class:`ChecksumError` names it. All problems are collected and
    reported together, so one run shows every file that needs attention.
    """
    files = [f for source in sources for f in source.files]
    problems: list[str] = []
    for raw_file in tqdm(files, desc="sha256", unit="file", disable=not progress, leave=False):
        path = raw_dir / raw_file.local_path
        if not path.is_file():
            if not fetch_missing:
                problems.append(f"{path}: missing (set fetch_missing=True to download it from upstream)")
                continue
            try:
                download(raw_file, path, mirror_url)
            except (OSError, ChecksumError) as exc:
                url = source_url(raw_file, mirror_url)
                problems.append(f"{path}: missing, and the download from {url} failed: {exc}")
                continue
        actual = file_digest(path)
        if actual != raw_file.sha256:
            problems.append(f"{path}: sha256 {actual} does not match the manifest ({raw_file.sha256})")
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  … and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ChecksumError(f"{len(problems)} raw data file(s) failed verification:\n  {shown}{more}")
    return len(files)
