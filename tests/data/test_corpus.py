"""prepare_data end to end on the real files."""

import pandas as pd
import pytest

from equal.config import stage_parameters
from equal.data.corpus import CorpusConfig, prepare_data
from equal.profiles import load_profile

PREP_KEYS = set(CorpusConfig.__dataclass_fields__) - {"raw_dir", "out_dir", "progress", "builtin_tasks"}


@pytest.mark.slow
def test_default_profile_keeps_1000_documents_with_target_style_documents_a_minority(tmp_path, raw_dir):
    params = stage_parameters(load_profile("default"), "data")
    config = CorpusConfig(raw_dir=raw_dir, out_dir=tmp_path, progress=False, **{k: params[k] for k in PREP_KEYS})
    prepared = prepare_data(config)
    corpus = prepared.corpus()
    assert len(corpus) == 1000
    assert set(corpus["domain"]) == {"math", "code", "general"}
    per_source = corpus["source"].value_counts()
    for source, share in config.source_quotas.items():  # a quota is a ceiling, never exceeded
        assert per_source.get(source, 0) <= round(share * 1000), source
    word_problems = per_source[["asdiv", "math_eval_collections", "khan_exercises", "openstax_prealgebra"]].sum()
    # GSM8K-style documents: a minority (16 % since ASDiv rose to 10 % by issue 42's rule, docs/experiment.md)
    assert 50 <= word_problems <= 200
    stats = prepared.stats.set_index("source")
    assert stats.loc["asdiv", "over_quota"] > 0 and stats["share"].between(0, 1).all()
    assert corpus["id"].is_unique
    assert corpus["text"].str.len().max() <= config.max_unit_chars
    assert {"id", "source", "domain", "title", "text", "file", "locator", "n_tokens", "license"} <= set(corpus.columns)
    total = prepared.stats.query("source == '(all)' and domain == '(all)'").iloc[0]
    assert total["documents"] == len(corpus) and total["tokens"] == corpus["n_tokens"].sum()
    for name in ("reference_gsm8k", "reference_mbpp", "heldout_gsm8k", "evaluation/gsm8k", "evaluation/humaneval",
                 "contaminated_units"):  # fmt: skip
        assert prepared.file(f"{name}.jsonl").is_file()
    assert not prepared.file("reference_math500.jsonl").exists()  # a benchmark without a reference set
    assert prepared.meta["tasks"]["gsm8k"] == {"reference": 100, "heldout": 200, "evaluation": 1319, "excluded": 0}


def test_source_quotas_are_checked():
    import pytest

    from equal.data.corpus import source_caps
    from equal.errors import ConfigError

    assert source_caps({"asdiv": 0.04}, 1000, ["asdiv", "conala"]) == {"asdiv": 40}
    assert source_caps(None, 1000, ["asdiv"]) == {}
    assert source_caps({"conala": 0.1}, 100, ["asdiv"], known=["asdiv", "conala"]) == {"conala": 10}  # not used here
    with pytest.raises(ConfigError, match=r"unknown sources \['nope'\]"):
        source_caps({"nope": 0.1}, 1000, ["asdiv"])
    with pytest.raises(ConfigError, match=r"sum to 1\.200"):
        source_caps({"asdiv": 0.6, "conala": 0.6}, 1000, ["asdiv", "conala"])


@pytest.mark.slow
def test_second_run_is_cached_and_identical(tmp_path, raw_dir):
    config = CorpusConfig(
        raw_dir=raw_dir,
        out_dir=tmp_path,
        sources=["asdiv", "conala", "wikitext2"],
        max_documents=150,
        tasks={"gsm8k": {"reference": {"size": 10, "heldout": 10}}, "mbpp": {"reference": {"size": 10, "heldout": 10}}},
        progress=False,
    )
    first = prepare_data(config)
    first_corpus = first.corpus()  # read now: later runs rewrite the same folder
    second = prepare_data(config)
    assert not first.from_cache and second.from_cache
    pd.testing.assert_frame_equal(first_corpus, second.corpus())
    rebuilt = prepare_data(config, force=True)
    assert not rebuilt.from_cache
    pd.testing.assert_frame_equal(first_corpus, rebuilt.corpus())
    other_seed = prepare_data(CorpusConfig(**{**config.__dict__, "seed": 1}))
    assert not other_seed.from_cache
    assert set(other_seed.corpus()["id"]) != set(first_corpus["id"])


def user_only_config(raw_dir, out_dir, corpus, **spec) -> CorpusConfig:
    """Only the given user JSONL corpus, every document kept."""
    return CorpusConfig(
        raw_dir=raw_dir,
        out_dir=out_dir,
        sources=[],
        max_documents=None,
        progress=False,
        user_corpus=[{"path": str(corpus), "name": "web", **spec}],
    )


@pytest.mark.slow
def test_decontamination_removes_planted_test_question(tmp_path, raw_dir, manifest):
    import json

    from equal.io import read_jsonl

    question = read_jsonl(raw_dir / "raw/gsm8k/test.jsonl")[5]["question"]
    planted = tmp_path / "planted.jsonl"
    planted.write_text(
        json.dumps({"id": "leak", "text": f"Homework help forum. Can anyone solve this? {question} Thanks!"})
        + "\n"
        + json.dumps({"id": "clean", "text": "A page about the history of the printing press in Europe. " * 4})
        + "\n"
    )
    config = user_only_config(raw_dir, tmp_path / "out", planted, domain="math")
    prepared = prepare_data(config)
    assert prepared.corpus()["locator"].tolist() == ["id=clean"]
    dropped = read_jsonl(prepared.file("contaminated_units.jsonl"))
    assert [d["matched_item"] for d in dropped] == ["gsm8k-test-5"]


def test_editing_a_user_corpus_invalidates_the_cache(tmp_path, raw_dir):
    import json

    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"text": "First version of a document about integer division. " * 3}) + "\n")
    config = user_only_config(raw_dir, tmp_path / "out", docs)
    assert "First version" in prepare_data(config).corpus()["text"][0]
    docs.write_text(json.dumps({"text": "Second version of a document about integer division. " * 3}) + "\n")
    again = prepare_data(config)
    assert not again.from_cache and "Second version" in again.corpus()["text"][0]
