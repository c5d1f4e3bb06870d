"""The Ray executor on a local 2-CPU cluster: the same rounds, pairs and ledgers as the local extractor, each
call paid once, through the cache file or the cache's owner actor, and with two real llama.cpp servers."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import numpy as np
import pytest
from conftest import problem_corpus

from equal.artifacts import Artifacts
from equal.embed.embedding import EmbeddingStore, load_embedder
from equal.llm.cache import CallCache
from equal.llm.extract import DOCUMENT_STATUSES, ExtractionConfig, QAExtractor
from equal.llm.fake import ScriptedBackend
from equal.select.runner import MethodRunner
from equal.weights import TINY_EMBEDDER

ray = pytest.importorskip(
    "ray", reason="the scale extra is not installed (pip install -e '.[scale]'): Ray path untested"
)

from equal.scale.executor import RayExtractor, start_ray  # noqa: E402  (needs ray)

pytestmark = pytest.mark.slow  # real models, servers or whole pipelines: make test, not make test-fast


@pytest.fixture(scope="module")
def cluster():
    start_ray(num_cpus=2)  # retried when the machine is too busy for Ray's fixed 30 s start-up wait
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def world(builtin_splits, tmp_path_factory):
    """40 real documents (GSM8K and MBPP problems) in 4 clusters, a tiny embedder, D_r from GSM8K train."""
    corpus = problem_corpus(builtin_splits, 20)
    labels = np.array([0, 1] * 10 + [2, 3] * 10)
    distances = np.full((4, 4), 2.0) - 2.0 * np.eye(4)
    store = EmbeddingStore(load_embedder(TINY_EMBEDDER), "tiny", cache=tmp_path_factory.mktemp("emb"))
    return {"corpus": corpus, "labels": labels, "distances": distances, "store": store,
            "references": {"math": builtin_splits["gsm8k_train"][100:110]}}  # fmt: skip


def _runner(world, extractor, root) -> MethodRunner:
    return MethodRunner(
        corpus=world["corpus"], labels={"tuned": world["labels"], "untuned": world["labels"]},
        distances={"tuned": world["distances"], "untuned": world["distances"]},
        stores={"tuned": world["store"], "untuned": world["store"]}, references=world["references"],
        extractor=extractor, policies={"EQUAL w/o warm-up": {"name": "ucb"}},
        artifacts=Artifacts("test", root / "work", root / "results", root / "figures"),
        docs_per_pull=2, arms_per_round=2, progress=False,
    )  # fmt: skip


def _ledger(run) -> list[dict]:
    return run.ledger()


@pytest.mark.parametrize("cache_owner", ["file", "actor"])
def test_ray_rounds_pairs_and_ledgers_equal_the_local_ones(cluster, world, tmp_path, cache_owner):
    spec = {"kind": "scripted", "latency_s": 0.01, "call_log": str(tmp_path / "ray_calls.log"), "batch_size": 1}
    config = ExtractionConfig(max_pairs=1, max_tokens=64)
    local = QAExtractor(
        ScriptedBackend(0.01, tmp_path / "local_calls.log"), CallCache(tmp_path / "a" / "calls.sqlite"), config
    )
    remote = RayExtractor(spec, CallCache(tmp_path / "b" / "calls.sqlite"), config, workers=2, cache_owner=cache_owner)
    try:
        for method in ("EQUAL w/o warm-up", "Random"):
            here = _runner(world, local, tmp_path / "local").run(method, "math", 0.5, 1)
            there = _runner(world, remote, tmp_path / "ray").run(method, "math", 0.5, 1)
            assert there.summary.fingerprint == here.summary.fingerprint
            assert there.pairs == here.pairs and len(here.pairs) == 20
            if here.pulls is not None:
                pd_here, pd_there = here.pulls, there.pulls
                assert pd_there.equals(pd_here)
            assert _ledger(there) == _ledger(here)
        # both workers did work, and every distinct request was paid for exactly once
        paid = (tmp_path / "ray_calls.log").read_text().split("\n")[:-1]
        assert len({line.split()[0] for line in paid}) == 2
        assert len(paid) == len({line.split()[1] for line in paid}) == len(CallCache(tmp_path / "b" / "calls.sqlite"))
    finally:
        remote.shutdown()


def test_ray_workers_on_two_real_llama_servers(cluster, llama_servers, tmp_path):
    """Two workers, each an OpenAI client of two llama.cpp servers (two endpoints of one deployment): the same
    documents, prompts and outcomes as one local client of one server; given the local run's answers, the same
    pairs and charged tokens byte for byte, without a call.

    What the model writes is not compared across servers: each server reuses its previous request's prompt prefix,
    so it evaluates a different suffix, and on some CPUs a greedy near-tie then goes the other way."""
    docs = [{"id": f"m{i}", "text": f"Sam has {i} pens and buys {i + 2} more, so {2 * i + 2} pens."} for i in range(6)]
    spec = {"kind": "openai", "base_url": llama_servers, "model": "smollm2", "concurrency": 2, "batch_size": 2,
            "context_length": 1024, "n_params": 134_515_008}  # fmt: skip
    config = ExtractionConfig(max_pairs=1, max_tokens=32)
    from equal.llm.backends import make_backend
    from equal.llm.ledger import CostLedger

    local_ledger, ray_ledger = CostLedger(), CostLedger()
    local = QAExtractor(
        make_backend({**spec, "base_url": llama_servers[0]}), CallCache(tmp_path / "a" / "calls.sqlite"), config
    )
    here = local.extract(docs, "All", local_ledger, progress=False)
    remote = RayExtractor(spec, CallCache(tmp_path / "b.sqlite"), config, workers=2)
    try:
        there = remote.extract(docs, "All", ray_ledger, progress=False)
    finally:
        remote.shutdown()
    assert [r.doc_id for r in there] == [r.doc_id for r in here]
    assert all(r.status in DOCUMENT_STATUSES and r.status != "error" for r in there)
    first = ["doc_id", "prompt_tokens", "cached"]  # the first call of each document: the same prompt, paid once

    def extract_rows(ledger):
        frame = ledger.frame()
        return frame[frame["stage"] == "extract"][first].reset_index(drop=True)

    assert extract_rows(ray_ledger).equals(extract_rows(local_ledger))
    # with the local run's answers, the Ray run pays nothing and gives the same pairs and charges
    with (
        closing(sqlite3.connect(tmp_path / "a" / "calls.sqlite")) as source,
        closing(sqlite3.connect(tmp_path / "c.sqlite")) as target,
    ):
        source.backup(target)
    replay_ledger = CostLedger()
    replay = RayExtractor(spec, CallCache(tmp_path / "c.sqlite"), config, workers=2)
    try:
        again = replay.extract(docs, "All", replay_ledger, progress=False)
    finally:
        replay.shutdown()
    assert [(r.doc_id, r.pairs, r.status) for r in again] == [(r.doc_id, r.pairs, r.status) for r in here]
    keep = ["doc_id", "stage", "prompt_tokens", "completion_tokens", "status"]
    assert replay_ledger.frame()[keep].equals(local_ledger.frame()[keep])
    assert replay_ledger.frame()["cached"].all()


def test_a_profile_asks_for_the_ray_executor_through_llm_executor(cluster, tmp_path):
    from equal.errors import ConfigError
    from equal.llm.extract import make_extractor

    extractor = make_extractor({"kind": "scripted", "executor": {"kind": "ray", "workers": 1}}, {"max_pairs": 1},
                               cache_path=tmp_path / "calls.sqlite")  # fmt: skip
    try:
        (result,) = extractor.extract([{"id": "d", "text": "Two plus two is four."}], progress=False)
        assert isinstance(extractor, RayExtractor) and result.status == "ok"
    finally:
        extractor.shutdown()
    with pytest.raises(ConfigError, match=r"executor\.kind"):
        make_extractor({"kind": "scripted", "executor": {"kind": "dask"}}, {}, cache_path=tmp_path / "c.sqlite")


def test_ray_data_embeds_the_corpus_into_shards_in_order(cluster, tmp_path):
    from equal.embed.embedding import load_embedder
    from equal.scale.embeddings import embed_corpus

    texts = [f"Document {i}: {i} apples and {i + 1} pears make {2 * i + 1} fruits." for i in range(60)]
    vectors = embed_corpus(texts, TINY_EMBEDDER, "tiny", tmp_path / "emb", workers=2, batch_size=8)
    direct = load_embedder(TINY_EMBEDDER, "cpu").encode(texts, normalize_embeddings=True)
    assert vectors.shape == direct.shape and np.allclose(vectors, direct, atol=1e-5)
    assert len(list((tmp_path / "emb").glob("*.parquet"))) > 1  # sharded output
    again = embed_corpus(texts, TINY_EMBEDDER, "tiny", tmp_path / "emb", workers=2, batch_size=8)
    assert np.array_equal(again, vectors)  # read back from the shards
    changed = embed_corpus(texts[:10], TINY_EMBEDDER, "tiny", tmp_path / "emb", workers=1, batch_size=8)
    assert np.allclose(changed, direct[:10], atol=1e-5)  # another input: recomputed, never mixed


def test_independent_runs_fan_out_on_threads_with_the_results_of_one_by_one_runs(cluster, world, tmp_path):
    spec = {"kind": "scripted", "latency_s": 0.05, "call_log": str(tmp_path / "ray_calls.log"), "batch_size": 1}
    config = ExtractionConfig(max_pairs=1, max_tokens=64)
    jobs = [("EQUAL w/o warm-up", "math", 0.5, 0), ("EQUAL w/o warm-up", "math", 0.5, 1), ("Random", "math", 0.5, 0),
            ("Random", "math", 0.25, 2)]  # fmt: skip
    local = QAExtractor(ScriptedBackend(0.0), CallCache(tmp_path / "a" / "calls.sqlite"), config)
    one_by_one = _runner(world, local, tmp_path / "local").run_many(jobs)
    with pytest.raises(Exception, match="parallel runs need an extractor"):
        _runner(world, local, tmp_path / "local2").run_many(jobs, parallel=2)
    remote = RayExtractor(spec, CallCache(tmp_path / "b" / "calls.sqlite"), config, workers=2)
    try:
        together = _runner(world, remote, tmp_path / "ray").run_many(jobs, parallel=4)
    finally:
        remote.shutdown()
    keep = ["method", "doc_id", "stage", "prompt_tokens", "completion_tokens", "status"]
    for here, there in zip(one_by_one, together, strict=True):
        assert there.pairs == here.pairs and there.summary.fingerprint == here.summary.fingerprint
        assert [{k: r[k] for k in keep} for r in there.ledger()] == [{k: r[k] for k in keep} for r in here.ledger()]
    paid = [line.split()[1] for line in (tmp_path / "ray_calls.log").read_text().split("\n")[:-1]]
    assert len(paid) == len(set(paid))  # runs sharing documents paid for each call once
