"""Profiles: one YAML per scale (smoke, default, full, paper) holding every stage's settings, layered.

A profile file looks like::

    extends: default          # optional: start from another profile and override
    common:                   # read by every stage
      seed: 0
    stages:
      data:                   # the data stage only (equal.config.DataConfig)
        max_documents: 2000

This module reads and layers the YAML files; :mod:`equal.config` types and checks the result.
"""

from __future__ import annotations

import copy
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

import yaml

from equal.errors import ConfigError
from equal.paths import resource_dir

PARAMS_DIR = resource_dir("params")
PROFILES = ("smoke", "default", "pilot", "baselines", "full", "paper")
#: The profile whose settings `equal extract` and `equal select` run (a user's run is the default's, on their data).
DEFAULT_PROFILE = "default"
NOT_PROFILES = ("tasks",)  # params/tasks.yaml declares the target tasks (equal.data.tasks), it is no profile
T = TypeVar("T")
#: Profiles written before sections were named by stage: the old section names and the new.
_RENAMED_SECTIONS = {"01_data_prep": "data", "02_contrastive_training": "warmup", "03_clustering": "clustering",
                     "04_bandit_extraction": "selection", "05_finetuning": "finetuning", "06_evaluation": "evaluation",
                     "07_paper_figures": "figures"}  # fmt: skip


def deep_merge(base: dict, override: dict) -> dict:
    """Return ``base`` updated recursively by ``override`` (neither argument is modified).

    A mapping that names another ``kind`` than the one it overrides (an LLM backend, a policy)
    replaces it whole: parameters of different kinds do not mix.
    """
    merged = copy.deepcopy(base)
    for key, value in override.items():
        other_kind = (
            isinstance(value, dict) and "kind" in value and value.get("kind") != (merged.get(key) or {}).get("kind")
        )
        if isinstance(value, dict) and isinstance(merged.get(key), dict) and not other_kind:
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def profile_path(name_or_path: str | Path, params_dir: Path = PARAMS_DIR) -> Path:
    """The file of a profile given by name (``params/<name>.yaml``) or by path."""
    path = Path(name_or_path)
    return path if path.suffix in (".yaml", ".yml") else params_dir / f"{name_or_path}.yaml"


def load_profile(name_or_path: str | Path, params_dir: Path = PARAMS_DIR) -> dict[str, Any]:
    """Load a profile by name (``params/<name>.yaml``) or path, resolving ``extends`` chains."""
    path = profile_path(name_or_path, params_dir)
    if not path.is_file() or path.stem in NOT_PROFILES:
        known = ", ".join(sorted(p.stem for p in params_dir.glob("*.yaml") if p.stem not in NOT_PROFILES))
        raise ConfigError(f"profile {name_or_path!r} not found ({path}); known profiles: {known}")
    seen: list[Path] = []
    layers: list[dict] = []
    while path is not None:
        if path in seen:
            raise ConfigError(f"profile {path} extends itself (chain: {seen})")
        seen.append(path)
        with open(path, encoding="utf-8") as handle:
            layer = yaml.safe_load(handle) or {}
        if not isinstance(layer, dict):
            raise ConfigError(f"{path}: a profile must be a mapping, got {type(layer).__name__}")
        if "notebooks" in layer:
            raise ConfigError(
                f"{path}: sections are named by stage now: rename 'notebooks' to 'stages' and its sections "
                + ", ".join(f"{old} to {new}" for old, new in _RENAMED_SECTIONS.items())
            )
        unknown = set(layer) - {"extends", "common", "stages", "description", "llm_answers"}
        if unknown:
            raise ConfigError(f"{path}: unknown top-level keys {sorted(unknown)}")
        layers.append(layer)
        parent = layer.get("extends")
        path = params_dir / f"{parent}.yaml" if parent else None
    profile: dict[str, Any] = {"common": {}, "stages": {}}
    for layer in reversed(layers):
        profile = deep_merge(profile, {k: v for k, v in layer.items() if k != "extends"})
    profile["name"] = seen[0].stem
    return profile


def from_namespace(cls: type[T], namespace: dict[str, Any], **overrides: Any) -> T:
    """Build the dataclass ``cls`` from the same-named variables of ``namespace`` (a notebook's
    ``globals()`` after its parameters cell), then ``overrides``; unnamed fields keep their defaults."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    values = {name: namespace[name] for name in names if name in namespace}
    return cls(**{**values, **overrides})


_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}


def cell_parameters(namespace: dict[str, Any]) -> dict[str, Any]:
    """A notebook's parameters as they stand (its ``globals()`` after the parameters cell): every public
    plain value — the record written beside each result table."""
    plain = (str, int, float, bool, list, dict, tuple, type(None))
    return {k: v for k, v in namespace.items()
            if not k.startswith("_") and k not in _IPYTHON_NAMES and isinstance(v, plain)}  # fmt: skip
