"""Shared fixtures: the real raw-data folder (../shared/data) and its manifest."""

from __future__ import annotations

import pytest

from equal.data.manifest import load_manifest
from equal.paths import raw_data_dir


@pytest.fixture(scope="session")
def raw_dir():
    path = raw_data_dir()
    assert (path / "MANIFEST.json").is_file(), f"the real data must be at {path} (set EQUAL_RAW_DATA_DIR)"
    return path


@pytest.fixture(scope="session")
def manifest(raw_dir):
    return load_manifest(raw_dir)


@pytest.fixture(scope="session")
def builtin_tasks(raw_dir):
    """Every split of the four built-in benchmarks as params/tasks.yaml declares them: ``{task: {split: items}}``."""
    from equal.data.tasks import declared_tasks, load_task
    from equal.paths import REPO_ROOT

    return {name: load_task(spec, raw_dir, REPO_ROOT) for name, spec in declared_tasks().items()}


@pytest.fixture(scope="session")
def builtin_splits(builtin_tasks):
    """The same splits keyed ``<task>_<split>`` (``gsm8k_train``, ``mbpp_test``, ...)."""
    return {f"{task}_{split}": items for task, splits in builtin_tasks.items() for split, items in splits.items()}
