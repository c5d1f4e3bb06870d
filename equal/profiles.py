"""Profiles: one YAML per scale (smoke, default, full, paper) holding every notebook's parameters.

A profile file looks like::

    extends: default          # optional: start from another profile and override
    common:                   # passed to every notebook
      seed: 0
    notebooks:
      01_data_prep:           # passed to notebooks/01_data_prep.ipynb only
        max_documents: 2000

Parameters of a notebook = ``common`` deep-merged with its own section, plus ``profile``.
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
        unknown = set(layer) - {"extends", "common", "notebooks", "description", "llm_answers"}
        if unknown:
            raise ConfigError(f"{path}: unknown top-level keys {sorted(unknown)}")
        layers.append(layer)
        parent = layer.get("extends")
        path = params_dir / f"{parent}.yaml" if parent else None
    profile: dict[str, Any] = {"common": {}, "notebooks": {}}
    for layer in reversed(layers):
        profile = deep_merge(profile, {k: v for k, v in layer.items() if k != "extends"})
    profile["name"] = seen[0].stem
    return profile


def notebook_parameters(profile: dict[str, Any], notebook: str) -> dict[str, Any]:
    """Parameters papermill passes to ``notebook`` (its stem, e.g. ``01_data_prep``)."""
    params = deep_merge(profile.get("common") or {}, (profile.get("notebooks") or {}).get(notebook) or {})
    params["profile"] = profile["name"]
    return params


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


def extraction_settings(name: str = DEFAULT_PROFILE) -> tuple[dict, dict, dict]:
    """A profile's extractor, extraction and refinement settings (notebook 04's): what ``equal extract`` and
    ``equal select`` run unless an option overrides one (one source with the notebooks)."""
    params = notebook_parameters(load_profile(name), "04_bandit_extraction")
    return dict(params["llm"]), dict(params["extraction"]), dict(params.get("refinement") or {})
