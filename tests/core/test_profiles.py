import pytest

from equal.config import stage_parameters
from equal.errors import ConfigError
from equal.profiles import PROFILES, deep_merge, load_profile


def test_all_profiles_load_and_inherit():
    for name in PROFILES:
        profile = load_profile(name)
        assert profile["name"] == name
        assert profile["common"]["seed"] == 0
    smoke = stage_parameters(load_profile("smoke"), "data")
    default = stage_parameters(load_profile("default"), "data")
    assert smoke["profile"] == "smoke" and smoke["max_documents"] == 120
    assert default["max_documents"] == 1000 and default["source_quotas"]["asdiv"] == 0.10
    assert smoke["decontam_ngram"] == default["decontam_ngram"]  # inherited
    assert stage_parameters(load_profile("full"), "data")["max_documents"] is None


def test_unknown_profile_lists_known_ones():
    known = r"known profiles: baselines, default, full, paper, pilot, pilot-seeds, positive-control, smoke$"
    with pytest.raises(ConfigError, match=known):
        load_profile("nope")
    with pytest.raises(ConfigError, match="not found"):
        load_profile("tasks")  # the task declarations live in params/ but are no profile


def test_bad_profile_keys(tmp_path):
    (tmp_path / "x.yaml").write_text("notebook: {}\n")
    with pytest.raises(ConfigError, match="unknown top-level keys"):
        load_profile("x", params_dir=tmp_path)
    (tmp_path / "loop.yaml").write_text("extends: loop\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_profile("loop", params_dir=tmp_path)


def test_deep_merge_does_not_mutate():
    base = {"a": {"b": 1, "c": 2}}
    assert deep_merge(base, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}
    assert base == {"a": {"b": 1, "c": 2}}


@pytest.mark.slow
def test_a_backend_of_another_kind_replaces_the_inherited_one():
    from equal.llm.backends import make_backend

    paper = stage_parameters(load_profile("paper"), "selection")["llm"]
    assert paper["kind"] == "openai" and "n_parallel" not in paper and "n_ctx" not in paper
    backend = make_backend(paper)  # builds (no call is made until a request)
    assert backend.model_id == "openai:Qwen/Qwen2.5-72B-Instruct"


def test_the_baselines_profile_shares_the_default_folder_and_trains_every_new_baseline(tmp_path):
    from equal.artifacts import Artifacts
    from equal.paths import REPO_ROOT
    from equal.train.plan import plan_runs

    baselines = load_profile("baselines")
    params = stage_parameters(baselines, "finetuning")
    art = Artifacts.for_profile("baselines", params["data_dir"], params["results_dir"], params["figures_dir"])
    assert art.data == Artifacts.for_profile("default").data == REPO_ROOT / "data" / "default"
    assert art.results == REPO_ROOT / "results" / "baselines"  # its own tables
    assert Artifacts.for_profile("x", str(tmp_path)).data == tmp_path  # absolute folders stay as given
    trained = {run.method for run in plan_runs(params["runs"], params["methods"], params["gammas"], params["seeds"],
                                               params["targets"])}  # fmt: skip
    assert {"Perplexity", "Influence", "Influence-MAB", "LLM-scoring", "Rewriting"} <= trained
    assert load_profile("default").get("llm_answers") == baselines.get("llm_answers")  # one set of answers


def test_equal_select_and_extract_run_the_default_profiles_extraction():
    """One source: with no option given, `equal select` / `equal extract` extract and refine as notebook 04 of the
    default profile does; an option overrides only itself."""
    import argparse
    from pathlib import Path

    from equal.config import extraction_settings
    from equal.llm.cli import add_backend_arguments, backend_spec, extraction_spec
    from equal.workflow import SelectConfig, refinement_settings, with_profile_settings

    params = stage_parameters(load_profile("default"), "selection")
    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    args = parser.parse_args([])
    assert extraction_settings() == (params["llm"], params["extraction"], params["refinement"])
    assert extraction_spec(args) == params["extraction"]
    assert backend_spec(args) == {**params["llm"], "seed": 0}
    config = with_profile_settings(SelectConfig(corpus=[], reference=Path("r.jsonl"), out=Path("o")))
    assert (config.llm, config.extraction) == (params["llm"], params["extraction"])
    refinement = refinement_settings(config, [{"question": "q", "solution": "2 + 2 = 4\nThe answer is: 4"}])
    assert {k: v for k, v in refinement.items() if k != "examples_from"} == {
        k: v for k, v in params["refinement"].items() if k != "examples_from"
    }
    overridden = parser.parse_args(["--max-tokens", "64", "--model", "smollm2-135m-instruct"])
    assert extraction_spec(overridden) == {**params["extraction"], "max_tokens": 64}
    assert backend_spec(overridden)["model"] == "smollm2-135m-instruct"
    same = backend_spec(parser.parse_args(["--model", "smollm2-135m-instruct", "--refiner", "same"]))
    assert same["refiner"] is None  # explicit: a merge over a profile naming a refiner keeps it
    named = {**params["llm"], "refiner": {"kind": "llama_cpp", "model": "qwen2.5-coder-1.5b-instruct"}}
    assert deep_merge(named, same)["refiner"] is None
    other = backend_spec(parser.parse_args(["--refiner", "qwen2.5-coder-1.5b-instruct"]))
    assert other["refiner"]["model"] == "qwen2.5-coder-1.5b-instruct" and other["refiner"]["kind"] == "llama_cpp"


def test_refinement_options_of_the_command_line_override_only_themselves():
    import argparse

    from equal.llm.cli import add_backend_arguments, refinement_overrides

    parser = argparse.ArgumentParser()
    add_backend_arguments(parser)
    assert refinement_overrides(parser.parse_args([])) == {}
    given = parser.parse_args(["--refine-votes", "2", "--refine-min-agree", "2", "--refine-program-tokens", "96"])
    assert refinement_overrides(given) == {"votes": 2, "min_agree": 2, "program_tokens": 96}
