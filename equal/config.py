"""The typed configuration tree: one dataclass per stage, loaded from a profile's sections named by stage.

A profile (``params/<name>.yaml``, layered by :mod:`equal.profiles`) holds a ``common`` section, read by every
stage, and one section per stage under ``stages``::

    common:     {seed: 0, llm: {...}, extraction: {...}, refinement: {...}, targets: [gsm8k], ...}
    stages:
      data:        {max_documents: 1000, ...}       # DataSettings
      warmup:      {embedder: all-MiniLM-L6-v2, ...}  # WarmupSettings
      clustering:  {k_values: [6, 8], ...}          # ClusteringSettings
      selection:   {docs_per_pull: 1, ...}          # SelectionSettings
      finetuning:  {finetune: {...}, runs: [...]}   # FinetuningSettings
      evaluation:  {evaluation: {...}}              # EvaluationSettings
      figures:     {}                               # FiguresSettings

:func:`load_config` returns a :class:`Config` whose every key was checked against the dataclass's type hints; an
unknown or missing key, or a value of the wrong type, is a :class:`~equal.errors.ConfigError` naming the profile
file, the key and the type expected. The dataclasses hold no defaults: every value comes from a profile (the default
profile is the root the others extend), so no setting is written twice. :func:`stage_parameters` gives a stage's
flat parameters (``common`` merged with the stage's section), what papermill passes to the notebook that tells the
stage's story; a notebook names its stage in its metadata (``metadata.equal.stage``), so no library code names a
notebook file.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from equal.errors import ConfigError
from equal.profiles import DEFAULT_PROFILE, PARAMS_DIR, load_profile, profile_path

#: A mapping of settings handed whole to the component that validates it (an LLM backend, a fine-tuning regime).
Options = dict[str, Any]


@dataclass(frozen=True)
class CommonSettings:
    """What every stage reads: the seed, the folders, the LLM and what the experiment selects and trains."""

    seed: int
    raw_data_dir: str | None  # None: $EQUAL_RAW_DATA_DIR, else ../shared/data
    data_dir: str | None  # None: data/<profile>
    results_dir: str | None  # None: results/<profile>
    figures_dir: str | None  # None: paper_figures/<profile>
    llm: Options  # the extractor (and its ``refiner``): equal.llm.backends
    extraction: Options  # equal.llm.extract.ExtractionConfig
    refinement: Options  # equal.llm.refine.RefinementConfig
    targets: list[str]
    gammas: list[float]
    seeds: list[int]
    methods: list[str]
    base_model: str


@dataclass(frozen=True)
class DataSettings:
    """Stage ``data``: the corpus (sources, quotas, dedup, decontamination) and the target tasks' splits."""

    sources: list[str] | None
    user_corpus: list[Options]
    max_documents: int | None
    source_quotas: dict[str, float] | None
    max_files_per_source: int | None
    min_unit_chars: int
    max_unit_chars: int
    min_keep_chars: int
    max_document_chars: int
    dedup_threshold: float
    dedup_num_perm: int
    dedup_shingle_words: int
    decontam_ngram: int
    tasks: Options
    tokenizer: str
    on_error: typing.Literal["raise", "skip"]
    fetch_missing: bool
    mirror_url: str | None
    force: bool


@dataclass(frozen=True)
class WarmupSettings:
    """Stage ``warmup``: the random warm-up extraction and the contrastive alignment of the embedder."""

    embedder: str
    warmup_fraction: float
    holdout_fraction: float
    range_min: int
    range_max: int
    num_negatives: int
    temperature: float
    learning_rate: float
    epochs: int
    batch_size: int
    tsne_documents: int


@dataclass(frozen=True)
class ClusteringSettings:
    """Stage ``clustering``: k-means over the aligned embeddings and the clusters' W2 distances."""

    k_values: list[int]
    k: int | None
    min_clusters: int
    max_clusters: int | None
    algorithm: typing.Literal["auto", "sklearn", "minibatch", "faiss"]
    w2_only_below: float | None


@dataclass(frozen=True)
class SelectionSettings:
    """Stage ``selection``: the bandit's rounds, its reward and policies, and the baselines' scorers."""

    docs_per_pull: int
    arms_per_round: int
    include_warmup_pairs: bool
    parallel_runs: int
    reward: Options
    policies: dict[str, Options]
    perplexity_model: str
    show_round: int | None
    sample_pairs: int


@dataclass(frozen=True)
class FinetuningSettings:
    """Stage ``finetuning``: the training regime and which selections are trained."""

    finetune: Options
    runs: list[Options]
    reference_control: bool


@dataclass(frozen=True)
class EvaluationSettings:
    """Stage ``evaluation``: the benchmarks, their items and the design's provenance."""

    evaluation: Options
    design_chosen_from: str | None
    # methods whose target models are also evaluated on the target domain's other benchmarks (MATH-500, HumanEval);
    # every other method's only on its target's own benchmark, which the tests use (null: every method on all)
    secondary_benchmarks_for: list[str] | None


@dataclass(frozen=True)
class FiguresSettings:
    """Stage ``figures``: the paper's figures and tables (no settings of its own)."""


#: The stages in pipeline order, each with the dataclass of its section.
STAGES: dict[str, type] = {
    "data": DataSettings,
    "warmup": WarmupSettings,
    "clustering": ClusteringSettings,
    "selection": SelectionSettings,
    "finetuning": FinetuningSettings,
    "evaluation": EvaluationSettings,
    "figures": FiguresSettings,
}


@dataclass(frozen=True)
class Config:
    """A profile, typed: its ``common`` settings and one configuration per stage."""

    profile: str
    description: str
    common: CommonSettings
    data: DataSettings
    warmup: WarmupSettings
    clustering: ClusteringSettings
    selection: SelectionSettings
    finetuning: FinetuningSettings
    evaluation: EvaluationSettings
    figures: FiguresSettings
    llm_answers: Options | None  # the shipped answers archive: {file, sha256}


def load_config(name_or_path: str | Path, params_dir: Path = PARAMS_DIR, stage: str | None = None,
                overrides: dict[str, Any] | None = None) -> Config:  # fmt: skip
    """The typed configuration of a profile (``params/<name>.yaml`` or a path), every key checked.

    ``overrides`` change a few settings for one run (a notebook's parameters cell, a test, ``make reproduce`` writing
    elsewhere): each key names a setting of ``stage``'s section or of ``common`` and replaces its value whole; an
    unknown key or a value of the wrong type is an error like a profile's."""
    profile = load_profile(name_or_path, params_dir)
    source = profile_path(name_or_path, params_dir)
    if overrides:
        if stage not in STAGES:
            raise ConfigError(f"overrides {sorted(overrides)} need the stage they apply to ({', '.join(STAGES)})")
        section = _names(STAGES[stage])
        unknown = sorted(set(overrides) - stage_keys(stage))
        if unknown:
            raise ConfigError(f"overrides of {source} for stage {stage}: unknown key(s) {unknown} (known: "
                              f"{', '.join(sorted(stage_keys(stage)))})")  # fmt: skip
        profile = copy.deepcopy(profile)
        for key, value in overrides.items():
            where = profile.setdefault("stages", {}).setdefault(stage, {}) if key in section else profile["common"]
            where[key] = value
    return config_from_profile(profile, source)


def config_from_profile(profile: dict[str, Any], source: str | Path | None = None) -> Config:
    """Type and check a loaded profile (the mapping of :func:`equal.profiles.load_profile`); ``source`` names it
    in errors."""
    where = str(source or f"profile {profile.get('name')!r}")
    unknown = set(profile.get("stages") or {}) - set(STAGES)
    if unknown:
        raise ConfigError(f"{where}: unknown stages {sorted(unknown)} under 'stages' (known: {', '.join(STAGES)})")
    sections = {"common": _build(CommonSettings, profile.get("common") or {}, f"{where}: common")}
    for stage, cls in STAGES.items():
        section = (profile.get("stages") or {}).get(stage) or {}
        sections[stage] = _build(cls, section, f"{where}: stages.{stage}")
    return Config(profile=profile["name"], description=profile.get("description", ""),
                  llm_answers=profile.get("llm_answers"), **sections)  # fmt: skip


def recorded_parameters(config: Config, stage: str) -> dict[str, Any]:
    """The settings a stage ran with, flat (``profile``, then ``common``, then the stage's own): the record written
    beside every result table the stage writes."""
    own = dataclasses.asdict(getattr(config, stage))
    return {"profile": config.profile, **dataclasses.asdict(config.common), **own}


def stage_parameters(profile: dict[str, Any], stage: str) -> dict[str, Any]:
    """A loaded profile's flat settings for ``stage`` (:func:`recorded_parameters` of its typed tree): what the
    pipeline records for a notebook and what scripts read."""
    if stage not in STAGES:
        raise ConfigError(f"unknown stage {stage!r} (known: {', '.join(STAGES)})")
    return recorded_parameters(config_from_profile(profile), stage)


def stage_keys(stage: str) -> set[str]:
    """The settings ``stage`` reads: those of its own section and of ``common``."""
    return _names(CommonSettings) | _names(STAGES[stage])


def _names(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def extraction_settings(name: str = DEFAULT_PROFILE) -> tuple[Options, Options, Options]:
    """A profile's extractor, extraction and refinement settings: what ``equal extract`` and ``equal select`` run
    unless an option overrides one (one source with the notebooks)."""
    common = load_config(name).common
    return dict(common.llm), dict(common.extraction), dict(common.refinement)


def _build(cls: type, section: dict[str, Any], where: str) -> Any:
    if not isinstance(section, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(section).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(section) - set(names))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown} (known: {', '.join(names) or 'none'})")
    missing = [n for n in names if n not in section]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing} (a profile that does not extend default must set them)")
    for name in names:
        if not _matches(section[name], hints[name]):
            raise ConfigError(f"{where}.{name}: expected {_describe(hints[name])}, got {section[name]!r}")
    return cls(**{n: section[n] for n in names})


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if origin is typing.Literal:
        return value in args
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list) and all(_matches(v, args[0]) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(_matches(k, args[0]) and _matches(v, args[1]) for k, v in value.items())
    return isinstance(value, hint)


def _describe(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if hint is type(None):
        return "null"
    if origin is list:
        return f"a list (each {_describe(args[0])})"
    if origin is dict:
        return "a mapping" if args[1] is Any else f"a mapping (each value {_describe(args[1])})"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(hint, str(hint))
