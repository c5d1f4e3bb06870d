"""Shipped LLM answers: a deterministic archive, verified by digest, that answers every call it holds."""

import gzip
import json

import pytest

from equal.errors import ChecksumError, ConfigError
from equal.llm.answers import export_answers, open_answers
from equal.llm.cache import CallCache
from equal.llm.types import Completion


def filled_cache(path, model_id="m@1", prompt="qa-extract-v1", n=5) -> CallCache:
    cache = CallCache(path)
    for i in range(n):
        cache.put(f"key{i:02d}", Completion(f'{{"pairs": [{i}]}}', 10 + i, 5, 0.5, "stop"), "llama_cpp", model_id,
                  prompt, "extract")  # fmt: skip
    cache.put("other", Completion("x", 1, 1, 0.1), "llama_cpp", "another@2", prompt, "extract")
    return cache


def test_export_is_deterministic_and_holds_only_the_extractor_and_prompt(tmp_path):
    filled_cache(tmp_path / "calls.sqlite").close()
    first = export_answers(tmp_path / "calls.sqlite", tmp_path / "a.jsonl.gz", "m@1", "qa-extract-v1")
    again = export_answers(tmp_path / "calls.sqlite", tmp_path / "b.jsonl.gz", "m@1", "qa-extract-v1")
    assert first["answers"] == 5 and first["sha256"] == again["sha256"]
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()
    with pytest.raises(ConfigError, match="no cached answer"):
        export_answers(tmp_path / "calls.sqlite", tmp_path / "c.jsonl.gz", "m@1", "qa-extract-v9")


def test_opened_answers_serve_every_call_and_a_tampered_archive_is_refused(tmp_path):
    source = filled_cache(tmp_path / "calls.sqlite")
    done = export_answers(tmp_path / "calls.sqlite", tmp_path / "a.jsonl.gz", "m@1", "qa-extract-v1")
    cache_path = open_answers(tmp_path / "a.jsonl.gz", done["sha256"], tmp_path / "answers")
    assert cache_path.name == f"answers-{done['sha256'][:16]}.sqlite"
    shipped = CallCache(cache_path)
    assert len(shipped) == 5 and shipped.identity.startswith("answers-")
    for i in range(5):
        assert shipped.get(f"key{i:02d}") == source.get(f"key{i:02d}")
    assert shipped.get("other") is None
    assert open_answers(tmp_path / "a.jsonl.gz", done["sha256"], tmp_path / "answers") == cache_path  # built once

    lines = gzip.decompress((tmp_path / "a.jsonl.gz").read_bytes()).decode().splitlines()
    (tmp_path / "t.jsonl.gz").write_bytes(gzip.compress(("\n".join(lines[:-1]) + "\n").encode(), mtime=0))
    with pytest.raises(ChecksumError, match="differs from the profile"):
        open_answers(tmp_path / "t.jsonl.gz", done["sha256"], tmp_path / "answers")
    with pytest.raises(ConfigError, match="missing"):
        open_answers(tmp_path / "none.jsonl.gz", done["sha256"], tmp_path / "answers")


@pytest.mark.slow
def test_the_pipeline_hands_the_answers_to_the_notebooks_and_fresh_runs_elsewhere(tmp_path, monkeypatch):
    from equal import pipeline
    from equal.paths import ENV_LLM_CACHE

    filled_cache(tmp_path / "calls.sqlite").close()
    done = export_answers(tmp_path / "calls.sqlite", tmp_path / "a.jsonl.gz", "m@1", "qa-extract-v1")
    monkeypatch.setattr(pipeline, "cache_dir", lambda: tmp_path / "cache")
    seen = {}

    def fake_run(profile, source, only, overrides, notebooks_dir, log_output, answers):
        seen.update(env=pipeline.os.environ.get(ENV_LLM_CACHE), overrides=overrides, answers=answers)
        return {}

    monkeypatch.setattr(pipeline, "_run_notebooks", fake_run)
    default = pipeline.load_profile("default")  # a whole profile: run_profile checks every key before it starts
    monkeypatch.setattr(pipeline, "load_profile", lambda name: {**default, "name": "p",
                        "llm_answers": {"file": str(tmp_path / "a.jsonl.gz"), "sha256": done["sha256"]}})  # fmt: skip
    monkeypatch.delenv(ENV_LLM_CACHE, raising=False)
    pipeline.run_profile("p")
    assert seen["env"] == str(seen["answers"]) and seen["answers"].name.startswith("answers-")
    assert ENV_LLM_CACHE not in pipeline.os.environ  # restored after the run
    pipeline.run_profile("p", fresh_extraction=True)
    assert seen["env"] is None and seen["answers"] is None
    assert seen["overrides"]["results_dir"].endswith("results/p-fresh")
    assert seen["overrides"]["data_dir"].endswith("data/p-fresh")


def test_export_reads_the_shipped_answers_with_the_calls_runs_added_to_them(tmp_path, monkeypatch):
    """A profile that ships answers exports those (plus calls its runs added, e.g. another profile's ratings on the
    same corpus), not the local cache; the profile file named on the command line records the new archive."""
    from equal import cli, pipeline

    filled_cache(tmp_path / "calls.sqlite").close()
    done = export_answers(tmp_path / "calls.sqlite", tmp_path / "a.jsonl.gz", "m@1", "qa-extract-v1")
    monkeypatch.setattr(pipeline, "cache_dir", lambda: tmp_path / "cache")
    profile = tmp_path / "p.yaml"
    profile.write_text("common: {llm: {kind: llama_cpp, model: m}, extraction: {prompt_version: qa-extract-v1}}\n"
                       f"llm_answers: {{file: {tmp_path / 'a.jsonl.gz'}, sha256: {done['sha256']}}}\n")  # fmt: skip
    shipped = CallCache(pipeline.shipped_answers_cache({"llm_answers": {"file": str(tmp_path / "a.jsonl.gz"),
                                                                        "sha256": done["sha256"]}}))  # fmt: skip
    shipped.put("rating", Completion('{"rating": 4}', 20, 3, 0.2, "stop"), "llama_cpp", "m@1", "qa-extract-v1",
                "rate:qa-rate-v1")  # fmt: skip
    shipped.close()
    assert cli.main(["export-answers", "--profile", str(profile), "--model-id", "m@1",
                     "--out", str(tmp_path / "b.jsonl.gz")]) == 0  # fmt: skip
    lines = gzip.decompress((tmp_path / "b.jsonl.gz").read_bytes()).decode().splitlines()
    keys = [json.loads(line)["key"] for line in lines]
    assert keys == ["key00", "key01", "key02", "key03", "key04", "rating"]  # the local cache has no rating
    text = profile.read_text()
    assert text.count("llm_answers:") == 1 and "b.jsonl.gz" in text and done["sha256"] not in text


def test_export_adds_the_refiners_answers_under_their_own_prompt(tmp_path):
    cache = filled_cache(tmp_path / "calls.sqlite")
    cache.put("refine1", Completion("Question: q\nSolution:\ns", 3, 3, 0.2), "llama_cpp", "refiner@1", "refine-v1",
              "refine")  # fmt: skip
    cache.close()
    done = export_answers(tmp_path / "calls.sqlite", tmp_path / "a.jsonl.gz", "m@1", "qa-extract-v1",
                          also=[("refiner@1", "refine-v1")])  # fmt: skip
    with gzip.open(tmp_path / "a.jsonl.gz", "rt") as handle:
        rows = [json.loads(line) for line in handle]
    assert done["answers"] == 6 and [r["key"] for r in rows] == sorted(r["key"] for r in rows)
    assert {r["stage"] for r in rows} == {"extract", "refine"}
    with pytest.raises(ConfigError, match="no cached answer of refiner@2"):
        export_answers(tmp_path / "calls.sqlite", tmp_path / "b.jsonl.gz", "m@1", "qa-extract-v1",
                       also=[("refiner@2", "refine-v1")])  # fmt: skip
