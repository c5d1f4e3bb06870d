"""Where things live: the repository, the raw data, the prepared data, results and figures.

Every location can be overridden, by parameter first and by environment variable second, so
the same code runs on the embedded data, on a user's own corpus and inside tests.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Environment variables that override the default locations.
ENV_RAW_DATA = "EQUAL_RAW_DATA_DIR"
ENV_DATA = "EQUAL_DATA_DIR"
ENV_CACHE = "EQUAL_CACHE_DIR"
ENV_LLM_CACHE = "EQUAL_LLM_CACHE"  # set by the pipeline to a profile's shipped answers (equal.llm.answers)


def from_repo_root(folder: str | Path | None) -> str | Path | None:
    """``folder`` anchored at the repository root when it is relative (None and absolute folders stay as given):
    how a profile's folders are read, whatever the working directory of the notebook or command."""
    if folder is None or Path(folder).expanduser().is_absolute():
        return folder
    return REPO_ROOT / folder


def raw_data_dir(override: str | Path | None = None) -> Path:
    """Folder holding ``MANIFEST.json`` and ``raw/``: parameter, $EQUAL_RAW_DATA_DIR, ../shared/data."""
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get(ENV_RAW_DATA):
        return Path(os.environ[ENV_RAW_DATA]).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "data").resolve()


def data_dir(profile: str, override: str | Path | None = None) -> Path:
    """Git-ignored folder for the prepared data of a profile (corpus, reference sets, targets)."""
    if override:
        return Path(override).expanduser().resolve()
    base = Path(os.environ[ENV_DATA]).expanduser() if os.environ.get(ENV_DATA) else REPO_ROOT / "data"
    return (base / profile).resolve()


def cache_dir(override: str | Path | None = None) -> Path:
    """Git-ignored folder for caches shared by every profile (models, embeddings, LLM answers)."""
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser().resolve()
    return (REPO_ROOT / ".cache").resolve()


def llm_cache_path(override: str | Path | None = None) -> Path:
    """The SQLite cache of LLM calls: parameter, $EQUAL_LLM_CACHE, else <cache>/llm/calls.sqlite."""
    if override:
        return Path(override).expanduser().resolve()
    if os.environ.get(ENV_LLM_CACHE):
        return Path(os.environ[ENV_LLM_CACHE]).expanduser().resolve()
    return cache_dir() / "llm" / "calls.sqlite"


def results_dir(profile: str, override: str | Path | None = None) -> Path:
    """Folder of a profile's tables and run metadata (``results/<profile>``)."""
    return Path(override).expanduser().resolve() if override else REPO_ROOT / "results" / profile


def figures_dir(profile: str, override: str | Path | None = None) -> Path:
    """Folder of a profile's figures (``paper_figures/<profile>``)."""
    return Path(override).expanduser().resolve() if override else REPO_ROOT / "paper_figures" / profile


def resource_dir(name: str) -> Path:
    """``params`` or ``tasks``: the checkout's folder when running from one, else the copy shipped in the
    package (``equal.resources.<name>``), so a ``pip install`` outside the checkout still finds them."""
    local = REPO_ROOT / name
    if local.is_dir():
        return local
    return Path(__file__).resolve().parent / "resources" / name
