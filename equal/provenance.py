"""What produced a result: parameters, seeds, package versions, git commit, machine.

Written beside every result file (``<table>.meta.json``) and, per profile run, in
``results/<profile>/run_info.json``.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from equal.paths import REPO_ROOT

#: Packages whose versions are repeated in every result's sidecar (run_info.json lists all).
KEY_PACKAGES = (
    "equal",
    "numpy",
    "pandas",
    "datasketch",
    "tokenizers",
    "lxml",
    "beautifulsoup4",
    "torch",
    "matplotlib",
    "seaborn",
    "papermill",
)


def package_versions(names: tuple[str, ...] | None = None) -> dict[str, str]:
    """Installed versions of ``names`` (all installed distributions when None)."""
    if names is None:
        return dict(sorted((d.metadata["Name"], d.version) for d in metadata.distributions() if d.metadata["Name"]))
    versions = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_state() -> dict[str, str | bool | None]:
    """Commit hash of the working tree and whether it has uncommitted changes outside results."""

    def run(*args: str) -> str | None:
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
            ).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None

    status = run("status", "--porcelain", "--", ".", ":!results", ":!paper_figures")
    return {"commit": run("rev-parse", "HEAD"), "dirty": bool(status) if status is not None else None}


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity mask where the platform has one (``taskset``, a container's
    cpuset, a test worker pinned to one core), else every CPU. What thread pools should be sized to: threads beyond
    it only wait for one another."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # no affinity masks here (macOS, Windows)
        return os.cpu_count() or 1


def cpu_model() -> str:
    """The CPU's model name and vendor (``/proc/cpuinfo``; the platform's processor elsewhere): llama.cpp's and
    BLAS's kernels differ between CPUs, so a result says which one computed it."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return platform.processor() or "unknown"
    fields = dict(line.split(":", 1) for line in info.splitlines()[:40] if ":" in line)
    name = fields.get("model name\t", fields.get("model name", "")).strip() or platform.processor() or "unknown"
    vendor = fields.get("vendor_id\t", fields.get("vendor_id", "")).strip()
    return f"{name} ({vendor})" if vendor else name


def environment() -> dict:
    """Python, platform, CPU model and count (those this process may use)."""
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpu": cpu_model(),
            "cpus": usable_cpus()}  # fmt: skip


def now() -> str:
    """Current UTC time, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def portable_path(path: str | Path) -> str:
    """A path relative to the repository when it is inside it or beside it (``../shared/data``)."""
    path = Path(path).resolve()
    if path.is_relative_to(REPO_ROOT.parent):
        return os.path.relpath(path, REPO_ROOT)
    return str(path)


def sidecar(parameters: dict) -> dict:
    """Metadata to store beside a result file (paths in ``parameters`` made repository-relative)."""
    parameters = {k: portable_path(v) if isinstance(v, Path) else v for k, v in parameters.items()}
    return {
        "created": now(),
        "parameters": parameters,
        "seed": parameters.get("seed"),
        "git": git_state(),
        "packages": package_versions(KEY_PACKAGES),
        "environment": environment(),
    }
