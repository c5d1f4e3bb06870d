"""The typed configuration tree: every shipped profile types, and a wrong key or value is named with its file."""

import pytest
import yaml

from equal.config import STAGES, ClusteringSettings, Config, load_config, stage_parameters
from equal.errors import ConfigError
from equal.paths import REPO_ROOT
from equal.profiles import PROFILES, load_profile


def test_every_shipped_profile_types():
    for name in PROFILES:
        config = load_config(name)
        assert isinstance(config, Config) and config.profile == name
        assert isinstance(config.clustering, ClusteringSettings)
    smoke, default = load_config("smoke"), load_config("default")
    assert (smoke.data.max_documents, default.data.max_documents) == (120, 1000)
    assert smoke.data.decontam_ngram == default.data.decontam_ngram  # inherited from default
    assert load_config("full").clustering.max_clusters is None
    assert default.selection.policies["EQUAL"]["name"] == "ucb"


def test_stage_parameters_are_common_under_the_stage():
    profile = load_profile("default")
    params = stage_parameters(profile, "clustering")
    assert params["profile"] == "default" and params["seed"] == 0  # common
    assert params["k_values"] == load_config("default").clustering.k_values
    with pytest.raises(ConfigError, match="unknown stage 'clusters'"):
        stage_parameters(profile, "clusters")


def _profile(tmp_path, body: dict) -> str:
    for name in ("default", "tasks"):  # the real profiles, to extend
        (tmp_path / f"{name}.yaml").write_text((REPO_ROOT / "params" / f"{name}.yaml").read_text())
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump({"extends": "default", **body}))
    return "mine"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"stages": {"clustering": {"k": "twelve"}}},
            r"mine\.yaml: stages\.clustering\.k: expected an integer or null",
        ),
        ({"stages": {"clustering": {"kk": 3}}}, r"clustering: unknown key\(s\) \['kk'\] \(known: k_values, k,"),
        ({"stages": {"clusters": {}}}, r"unknown stages \['clusters'\] under 'stages'"),
        ({"stages": {"data": {"on_error": "ignore"}}}, r"stages\.data\.on_error: expected one of 'raise', 'skip'"),
        ({"common": {"seeds": [0, "1"]}}, r"common\.seeds: expected a list \(each an integer\), got \[0, '1'\]"),
        ({"stages": {"warmup": {"epochs": True}}}, r"stages\.warmup\.epochs: expected an integer, got True"),
    ],
)
def test_a_wrong_key_or_value_names_the_file_the_key_and_the_type(tmp_path, body, message):
    name = _profile(tmp_path, body)
    with pytest.raises(ConfigError, match=message):
        load_config(name, params_dir=tmp_path)


def test_a_number_where_a_float_is_asked_is_one():
    assert load_config("default").warmup.learning_rate == 5.0e-5
    assert isinstance(load_config("default").clustering.k_values, list)


def test_a_profile_with_notebook_sections_is_told_how_to_rename_them(tmp_path):
    (tmp_path / "old.yaml").write_text("extends: default\nnotebooks:\n  03_clustering: {k: 8}\n")
    (tmp_path / "default.yaml").write_text((REPO_ROOT / "params" / "default.yaml").read_text())
    with pytest.raises(ConfigError, match=r"old\.yaml: .*rename 'notebooks' to 'stages'.*03_clustering to clustering"):
        load_profile("old", params_dir=tmp_path)


def test_no_library_code_names_a_notebook_file():
    """Renaming a notebook cannot break `equal select`: the library reads stages, never notebook names (the profile
    loader's message for old profiles aside)."""
    import re

    pattern = re.compile(r"\b0[1-7]_[a-z]+")
    offenders = [f"{path.relative_to(REPO_ROOT)}:{n}" for path in (REPO_ROOT / "equal").rglob("*.py")
                 for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if pattern.search(line) and path.name != "profiles.py"]  # fmt: skip
    assert not offenders, offenders
    assert list(STAGES) == ["data", "warmup", "clustering", "selection", "finetuning", "evaluation", "figures"]


def test_overrides_change_a_few_settings_for_one_run_and_are_checked():
    config = load_config("smoke", stage="clustering", overrides={"k": 5, "data_dir": "/tmp/elsewhere"})
    assert (config.clustering.k, config.common.data_dir) == (5, "/tmp/elsewhere")
    assert load_config("smoke").clustering.k is None  # the profile itself is unchanged
    with pytest.raises(ConfigError, match=r"for stage clustering: unknown key\(s\) \['kk'\]"):
        load_config("smoke", stage="clustering", overrides={"kk": 5})
    with pytest.raises(ConfigError, match=r"stages\.clustering\.k: expected an integer or null, got 'five'"):
        load_config("smoke", stage="clustering", overrides={"k": "five"})
    with pytest.raises(ConfigError, match="need the stage they apply to"):
        load_config("smoke", overrides={"k": 5})


def test_a_run_hands_each_notebook_the_overrides_its_stage_reads():
    from equal.errors import EqualError
    from equal.pipeline import stage_overrides

    run = {"k": 4, "data_dir": "/tmp/d"}
    assert stage_overrides(run, "clustering") == run
    assert stage_overrides(run, "selection") == {"data_dir": "/tmp/d"}  # k is clustering's: not passed to 04
    with pytest.raises(EqualError, match=r"overrides \['kk'\]: no stage has such a setting"):
        stage_overrides({"kk": 1}, "data")


def test_recorded_parameters_are_the_profile_common_and_the_stage():
    from equal.config import recorded_parameters

    record = recorded_parameters(load_config("default"), "clustering")
    assert record["profile"] == "default" and record["seed"] == 0 and record["k_values"] == [6, 8, 10, 12, 16, 20, 30]
