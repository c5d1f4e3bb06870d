"""Every selection method through the real extraction engine (SmolLM2 GGUF in llama.cpp) on real task text."""

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import problem_corpus

from equal.artifacts import Artifacts
from equal.embed.embedding import EmbeddingStore, load_embedder
from equal.embed.warmup import qa_text
from equal.io import read_jsonl, write_jsonl_atomic
from equal.llm.backends import make_backend
from equal.llm.cache import CallCache
from equal.llm.extract import ExtractionConfig, QAExtractor, pairs_records
from equal.llm.ledger import CostLedger
from equal.select.methods import BANDS, METHODS, band_name
from equal.select.runner import MethodRunner
from equal.weights import TINY_EMBEDDER

pytestmark = pytest.mark.slow  # real models, servers or whole pipelines: make test, not make test-fast


@pytest.fixture(scope="module")
def world(builtin_splits, tmp_path_factory):
    """24 real documents (GSM8K and MBPP problems with solutions) in 4 clusters, a real warm-up of 4."""
    targets = builtin_splits
    corpus = problem_corpus(targets, 12)
    labels = np.array([0, 1] * 6 + [2, 3] * 6)
    distances = np.full((4, 4), 2.0) - 2.0 * np.eye(4)
    distances[0, 1] = distances[1, 0] = 0.1
    root = tmp_path_factory.mktemp("methods")
    backend = make_backend({"kind": "llama_cpp", "model": "smollm2-135m-instruct", "n_parallel": 4, "n_ctx": 1024})
    cache = root / "calls.sqlite"
    extractor = QAExtractor(backend, CallCache(cache), ExtractionConfig(max_pairs=1, max_tokens=48))
    warm_ledger = CostLedger(root / "warmup.jsonl")
    warm_docs = [corpus[0], corpus[13]]
    warm_pairs = pairs_records(
        extractor.extract(warm_docs, "EQUAL (warm-up)", warm_ledger, progress=False), warm_docs, "w"
    )
    store = EmbeddingStore(load_embedder(TINY_EMBEDDER), "tiny", cache=root / "emb")
    policies = {
        "EQUAL": {"name": "ucb"},
        "EQUAL w/o warm-up": {"name": "ucb"},
        "EQUAL (authors' code)": {"name": "ucb", "alpha": 0.001, "count_offset": 1, "reward_mode": "per_pull",
                                  "share_threshold": 0.2},
        "Uniform": {"name": "round_robin"},
    }  # fmt: skip

    def setup(out: str, **overrides) -> MethodRunner:
        options = dict(
            corpus=corpus, labels={"tuned": labels, "untuned": labels},
            distances={"tuned": distances, "untuned": distances},
            stores={"tuned": store, "untuned": store}, references={"math": targets["gsm8k_train"][100:110]},
            extractor=extractor, policies=policies, artifacts=Artifacts("test", root / out, root / "r", root / "f"),
            warmup_pairs=warm_pairs,
            warmup_ledger=[json.loads(line) for line in (root / "warmup.jsonl").read_text().splitlines()],
            docs_per_pull=1, arms_per_round=2, progress=False,
        )  # fmt: skip
        return MethodRunner(**{**options, **overrides})

    return {"setup": setup, "cache": cache, "corpus": corpus, "extractor": extractor, "warm": warm_docs,
            "labels": labels, "distances": distances, "policies": policies, "targets": targets}  # fmt: skip


def cached_calls(path) -> int:
    import sqlite3

    with sqlite3.connect(path) as connection:
        return connection.execute("SELECT COUNT(*) FROM calls").fetchone()[0]


def test_budgets_warm_up_charges_and_outputs(world):
    setup = world["setup"]("budgets")
    warm_ids = {d["id"] for d in world["warm"]}
    equal = setup.run("EQUAL", "math", 0.25, 0)
    assert setup.budget(0.25) == 6
    s = equal.summary
    assert s.loop_documents == 6 and s.warmup_documents == 2 and s.documents_extracted == 8
    assert not warm_ids & {p["doc_id"] for p in equal.pairs if p["round"] >= 0}  # warm-up docs never re-drawn
    ledger = read_jsonl(equal.folder / "ledger.jsonl")
    assert {r["doc_id"] for r in ledger if r["stage"].startswith("warmup")} == warm_ids
    assert len(equal.pulls) == 6 and (equal.folder / "rounds.jsonl").is_file()
    assert all(p["method"] == "EQUAL" for p in equal.pairs)
    alone = setup.run("EQUAL w/o warm-up", "math", 0.25, 0).summary
    assert alone.warmup_documents == 0 and alone.documents_extracted == 6
    random = setup.run("Random", "math", 0.25, 1).summary
    assert random.documents_extracted == 6 and random.warmup_documents == 0
    everything = setup.run("All", "math", 0.25, 0).summary
    assert everything.documents_extracted == 24
    avg = setup.run("Avg-sim", "math", 0.25, 0)
    assert avg.summary.pairs == min(s.pairs, everything.pairs)
    assert avg.summary.llm_calls == everything.llm_calls and avg.summary.new_llm_calls == 0
    uniform = setup.run("Uniform", "math", 0.25, 0)
    assert sorted(uniform.pulls["arm"].value_counts().tolist()) == [1, 1, 2, 2]
    assert setup.run("Uniform", "math", 0.25, 0).summary == uniform.summary  # read back, not re-run
    assert set(METHODS) >= {"EQUAL", "Random", "All", "Uniform", "Avg-sim", "Perplexity-MAB", "Oracle (extracted)"}
    # the extracted oracle: the budget from the clusters with the best oracle reward, All's calls from the cache
    oracle = setup.run("Oracle (extracted)", "math", 0.25, 0)
    rewards = setup.cluster_oracles(setup.run("All", "math", 0.25, 0).pairs, ["math"])["math", "tuned"]
    assert oracle.summary.loop_documents == 6 and oracle.summary.new_llm_calls == 0
    assert oracle.summary.details.oracle_clusters == sorted(
        np.argsort(-rewards, kind="stable")[:1].tolist()
    )  # 6 fit in one
    assert {world["labels"][i] for i in range(24) if world["corpus"][i]["id"] in {p["doc_id"] for p in oracle.pairs}} \
        <= set(oracle.summary.details.oracle_clusters)  # fmt: skip


def test_distance_bands_rank_documents_by_their_pairs_distance_to_held_out_items(world):
    setup = world["setup"]("bands")
    write_jsonl_atomic(setup.artifacts.heldout_file("math"), world["targets"]["gsm8k_train"][120:140])
    everything = setup.run("All", "math", 0.25, 0)
    with_pairs = {p["doc_id"] for p in everything.pairs}
    bands = [setup.run(band_name(b), "math", 0.25, 0) for b in range(1, BANDS + 1)]
    size = min(setup.budget(0.25), len(with_pairs))
    for band in bands:
        s = band.summary
        assert s.loop_documents == size and s.new_llm_calls == 0  # All's calls, from the cache
        assert s.details.ranked_documents == len(with_pairs)
    means = [b.summary.details.band_distance_mean for b in bands]
    # band 1 nearest, band 5 farthest; how many documents keep a pair depends on what SmolLM2 writes on this CPU:
    # with no more than one band's worth, every band is the same set
    if len(with_pairs) > size:
        assert means == sorted(means) and means[0] < means[-1]
    else:
        assert len(set(means)) == 1
    starts = [b.summary.details.band_rank_start for b in bands]
    assert starts[0] == 0 and starts[-1] == len(with_pairs) - size  # spread over the whole ranking
    # the same documents on another seed (seeds replicate fine-tuning only), a new held-out slice recomputes
    assert setup.run(band_name(1), "math", 0.25, 1).summary.details.band_distance_mean == means[0]


def test_an_interrupted_method_resumes_without_repeating_calls_and_matches_a_straight_run(world, monkeypatch):
    extractor = world["extractor"]
    original = extractor.extract
    state = {"batches": 0}

    def dies_on_the_fourth_round(docs, *args, **kwargs):
        state["batches"] += 1
        if state["batches"] == 4:
            raise KeyboardInterrupt("killed")
        return original(docs, *args, **kwargs)

    interrupted = world["setup"]("resume")
    monkeypatch.setattr(extractor, "extract", dies_on_the_fourth_round)
    with pytest.raises(KeyboardInterrupt):
        interrupted.run("EQUAL (authors' code)", "math", 0.5, 3)
    monkeypatch.setattr(extractor, "extract", original)
    folder = interrupted.folder("EQUAL (authors' code)", "math", 0.5, 3)
    assert not (folder / "summary.json").exists()
    assert len((folder / "rounds.jsonl").read_text().splitlines()) == 1 + 3
    before = cached_calls(world["cache"])
    resumed = world["setup"]("resume").run("EQUAL (authors' code)", "math", 0.5, 3)
    assert resumed.summary.details.resumed_rounds == 3
    assert resumed.summary.new_llm_calls == cached_calls(world["cache"]) - before  # only the unfinished rounds
    straight = world["setup"]("straight").run("EQUAL (authors' code)", "math", 0.5, 3)
    assert straight.summary.new_llm_calls == 0
    assert straight.pairs == resumed.pairs
    assert straight.pulls.equals(resumed.pulls)
    assert resumed.summary.loop_documents == 12


GRID = [("EQUAL", 0), ("EQUAL w/o warm-up", 0), ("EQUAL (authors' code)", 0), ("Random", 0), ("All", 0)]


def run_grid(runner) -> dict[str, object]:
    return {method: runner.run(method, "math", 0.25, seed) for method, seed in GRID}


def recomputed(runs) -> set[str]:
    return {name for name, run in runs.items() if not run.reused}


def test_run_fingerprints_recompute_exactly_the_runs_whose_inputs_changed(world):
    setup = world["setup"]
    first = run_grid(setup("fingerprints"))
    assert recomputed(first) == {m for m, _ in GRID}
    before = cached_calls(world["cache"])
    again = run_grid(setup("fingerprints"))  # unchanged inputs: everything is read back, no LLM call
    assert recomputed(again) == set() and cached_calls(world["cache"]) == before
    assert all(again[m].pairs == first[m].pairs for m in again)

    # k changes (the tuned clustering gets other labels): the bandits over it, not Random, All or w/o warm-up
    other_k = np.array([0, 1, 2] * 4 + [0, 1, 2] * 4)
    three = np.full((3, 3), 2.0) - 2.0 * np.eye(3)
    changed = run_grid(setup("fingerprints", labels={"tuned": other_k, "untuned": world["labels"]},
                             distances={"tuned": three, "untuned": world["distances"]}))  # fmt: skip
    assert recomputed(changed) == {"EQUAL", "EQUAL (authors' code)"}
    assert set(changed["EQUAL"].pulls["arm"]) <= {0, 1, 2}
    assert recomputed(run_grid(setup("fingerprints"))) == {"EQUAL", "EQUAL (authors' code)"}  # and back again

    # a policy parameter: only that method
    policies = {**world["policies"], "EQUAL": {"name": "ucb", "alpha": 0.5}}
    assert recomputed(run_grid(setup("fingerprints", policies=policies))) == {"EQUAL"}
    run_grid(setup("fingerprints"))

    # the reference set D_r: every method whose reward reads it
    references = {"math": world["targets"]["gsm8k_train"][110:120]}
    assert recomputed(run_grid(setup("fingerprints", references=references))) == {
        "EQUAL", "EQUAL w/o warm-up", "EQUAL (authors' code)"}  # fmt: skip
    run_grid(setup("fingerprints"))

    # the prompt version: every run (their QA pairs come from another prompt, through new LLM calls)
    other = world["extractor"]
    other = QAExtractor(other.backend, other.cache, replace(other.config, prompt_version="qa-extract-v2"))
    assert recomputed(run_grid(setup("fingerprints", extractor=other))) == {m for m, _ in GRID}
    run_grid(setup("fingerprints"))

    # the corpus content at the same length: every run
    corpus = [dict(d) for d in world["corpus"]]
    corpus[5]["text"] = corpus[5]["text"][::-1]  # same documents, same length, other content
    assert recomputed(run_grid(setup("fingerprints", corpus=corpus))) == {m for m, _ in GRID}


def test_a_stale_run_says_what_changed(world, capsys):
    setup = world["setup"]
    setup("stale").run("Random", "math", 0.25, 0)
    corpus = [dict(d) for d in world["corpus"]]
    corpus[0]["title"] = "another title"
    rerun = setup("stale", corpus=corpus, log=True).run("Random", "math", 0.25, 0)
    assert not rerun.reused
    assert "inputs changed (corpus)" in capsys.readouterr().out


def test_every_round_of_a_bandit_replays_from_its_log(world):
    from equal.select.explain import explain_round

    runner = world["setup"]("budgets")
    for method in ("EQUAL", "EQUAL (authors' code)"):
        run = runner.run(method, "math", 0.25, 0)
        for step in range(run.summary.details.rounds):
            why = explain_round(runner.policy_config(method), run.pulls, runner.pool_sizes(method), step, 0,
                                runner.arms_per_round, runner.distances["tuned"])  # fmt: skip
            assert why["chosen"].sum() == len(run.pulls[run.pulls["round"] == step])
            assert (why["chosen"] == why["logged"]).all(), (method, step)


def test_perplexity_methods_charge_their_scoring_and_keep_the_most_predictable_pairs(world, tmp_path):
    from equal.select.perplexity import PerplexityScorer
    from equal.weights import TINY_CHAT_MODEL

    scorer = PerplexityScorer(TINY_CHAT_MODEL, cache=tmp_path / "ppl")
    policies = {**world["policies"], "Perplexity-MAB": {"name": "ucb"}}
    setup = world["setup"]("perplexity", perplexity=scorer, policies=policies)
    everything = setup.run("All", "math", 0.25, 0)
    matched = setup.run("EQUAL", "math", 0.25, 0).summary.pairs
    kept = setup.run("Perplexity", "math", 0.25, 0)
    assert kept.summary.pairs == min(matched, everything.summary.pairs)  # EQUAL's budget in pairs
    nll = {(p["doc_id"], p["question"]): -p["perplexity"] for p in kept.pairs}
    others = [p for p in everything.pairs if (p["doc_id"], p["question"]) not in nll]
    if others:  # nothing left out scores better than what was kept
        assert max(nll.values()) <= min(scorer.score([qa_text(p) for p in others])) + 1e-9
    ledger = read_jsonl(kept.folder / "ledger.jsonl")
    scored = [r for r in ledger if r["stage"] == "score-perplexity"]
    assert len(scored) == everything.summary.pairs and all(r["reference"] == "base" for r in scored)
    # it pays All's LLM calls and, on top, the base model's forward passes (no extra LLM call)
    assert kept.summary.llm_calls == everything.summary.llm_calls and kept.summary.new_llm_calls == 0
    assert kept.summary.flops_reference >= everything.summary.flops_reference
    if everything.summary.pairs:  # scoring pairs costs forward passes (how many pairs SmolLM2 gives varies by CPU)
        assert kept.summary.flops_reference > everything.summary.flops_reference
    assert setup.run("Perplexity", "math", 0.25, 0).summary == kept.summary  # read back: deterministic
    bandit = setup.run("Perplexity-MAB", "math", 0.25, 0)
    charged = [r for r in read_jsonl(bandit.folder / "ledger.jsonl") if r["stage"] == "score-perplexity"]
    pulled = [p for p in bandit.pairs if p.get("round", -1) >= 0]
    assert len(charged) == len(pulled)  # every pulled pair scored once, and charged


def test_llm_scoring_rates_every_pair_through_the_cache_and_keeps_the_best(world):
    setup = world["setup"]("llm-scoring")
    everything = setup.run("All", "math", 0.25, 0)
    matched = setup.run("EQUAL", "math", 0.25, 0).summary.pairs
    before = cached_calls(world["cache"])
    scored = setup.run("LLM-scoring", "math", 0.25, 0)
    rated = [r for r in read_jsonl(scored.folder / "ledger.jsonl") if r["stage"] == "rate"]
    assert len(rated) == everything.summary.pairs  # one rating call per pair of All, charged as an LLM call
    assert scored.summary.llm_calls == everything.summary.llm_calls + len(rated)
    assert cached_calls(world["cache"]) == before + len(rated)  # the ratings are cached like extraction calls
    assert scored.summary.pairs == min(matched, everything.summary.pairs)
    assert 0 <= scored.summary.details.malformed_ratings <= len(rated)  # a tiny model's nonsense is counted, not fatal
    kept = {p["llm"] for p in scored.pairs}
    assert all(0 <= r <= 5 for r in kept)
    again = world["setup"]("llm-scoring-again").run("LLM-scoring", "math", 0.25, 0)  # a fresh folder, same cache
    assert again.summary.new_llm_calls == 0 and again.pairs == scored.pairs  # nothing paid twice, same choice


def test_an_interrupted_llm_scoring_resumes_without_repeating_a_rating(world, builtin_splits, monkeypatch):
    references = {"math": builtin_splits["gsm8k_train"][130:140]}  # other examples: ratings nobody asked for yet
    backend = world["extractor"].backend
    chat, state = backend.chat, {"chunks": 0}

    def dies_on_the_second_chunk(requests, params):
        state["chunks"] += 1
        if state["chunks"] == 2:
            raise KeyboardInterrupt("killed")
        return chat(requests, params)

    setup = world["setup"]("llm-scoring-killed", references=references)
    pairs = setup.run("All", "math", 0.25, 0).summary.pairs
    if pairs <= backend.batch_size:  # SmolLM2 kept too few pairs on this CPU for a second chunk of ratings
        pytest.skip(f"All kept {pairs} pairs, one chunk of {backend.batch_size} ratings: nothing to interrupt")
    setup.run("EQUAL", "math", 0.25, 0)
    before = cached_calls(world["cache"])
    monkeypatch.setattr(backend, "chat", dies_on_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        setup.run("LLM-scoring", "math", 0.25, 0)
    monkeypatch.setattr(backend, "chat", chat)
    paid = cached_calls(world["cache"]) - before
    assert 0 < paid < pairs  # the first chunk's ratings were stored as they came
    resumed = world["setup"]("llm-scoring-killed", references=references).run("LLM-scoring", "math", 0.25, 0)
    assert resumed.summary.new_llm_calls == pairs - paid  # only the ratings not yet paid for
    assert cached_calls(world["cache"]) - before == pairs


def test_ratings_are_parsed_strictly():
    from equal.llm.rating import parse_rating, rating_messages

    assert parse_rating('{"rating": 4}') == 4 and parse_rating(' {"rating": 5.0} ') == 5
    for bad in ('{"rating": 7}', '{"rating": "4"}', '{"rating": true}', "4", "", '{"score": 3}', "[1]"):
        assert parse_rating(bad) is None, bad
    messages = rating_messages({"question": "Q?", "answer": "A."}, [{"question": "E?", "solution": "S."}])
    assert "Example 1:\nQuestion: E?\nAnswer: S." in messages[1]["content"] and "Question: Q?" in messages[1]["content"]


def test_influence_methods_charge_warm_up_and_gradients_and_read_back(world, tmp_path):
    from equal.select.influence import GradientScorer, InfluenceConfig
    from equal.weights import TINY_CHAT_MODEL

    setup_probe = world["setup"]("influence")
    scorer = GradientScorer(TINY_CHAT_MODEL, InfluenceConfig(dim=32, warmup_epochs=1, batch_size=2),
                            cache=tmp_path / "influence")  # fmt: skip
    scorer.prepare(setup_probe.warmup_pairs)  # the LoRA warm-up set: the warm-up stage's random pairs
    policies = {**world["policies"], "Influence-MAB": {"name": "ucb"}}
    setup = world["setup"]("influence", influence=scorer, policies=policies)
    everything = setup.run("All", "math", 0.25, 0)
    matched = setup.run("EQUAL", "math", 0.25, 0).summary.pairs
    kept = setup.run("Influence", "math", 0.25, 0)
    assert kept.summary.pairs == min(matched, everything.summary.pairs)
    stages = [r["stage"] for r in read_jsonl(kept.folder / "ledger.jsonl")]
    assert stages.count("score-influence") == everything.summary.pairs
    assert stages.count("score-influence-target") == 10 and "influence-warmup" in stages  # D_r has 10 items here
    assert kept.summary.llm_calls == everything.summary.llm_calls and kept.summary.new_llm_calls == 0
    assert kept.summary.flops_reference >= everything.summary.flops_reference
    if everything.summary.pairs:  # scoring pairs costs forward passes (how many pairs SmolLM2 gives varies by CPU)
        assert kept.summary.flops_reference > everything.summary.flops_reference
    assert setup.run("Influence", "math", 0.25, 0).summary == kept.summary  # read back
    bandit = setup.run("Influence-MAB", "math", 0.25, 0)
    assert bandit.summary.loop_documents == 6 and bandit.summary.warmup_documents == 2
    rows = read_jsonl(bandit.folder / "ledger.jsonl")
    pulled = [p for p in bandit.pairs if p.get("round", -1) >= 0]
    assert sum(r["stage"] == "score-influence" for r in rows) == len(pulled)


def test_rewriting_writes_pairs_from_d_r_within_the_budget_and_resumes_from_the_cache(world):
    setup = world["setup"]("rewriting")
    matched = setup.run("EQUAL", "math", 0.25, 0).summary.pairs
    made = setup.run("Rewriting", "math", 0.25, 0)
    assert made.summary.loop_documents == 0 and made.summary.documents_extracted == 0  # reads no document
    assert made.summary.pairs <= matched  # EQUAL's number of pairs at most
    calls = read_jsonl(made.folder / "ledger.jsonl")
    assert {r["stage"] for r in calls} <= {"rewrite"} and made.summary.llm_calls == len(calls)
    assert bool(calls) == bool(matched)  # it writes pairs when EQUAL kept some (how many varies with the CPU)
    assert made.summary.details.rewriting["calls"] == len(calls)
    again = world["setup"]("rewriting-again").run("Rewriting", "math", 0.25, 0)  # a fresh folder, the same cache
    assert again.summary.new_llm_calls == 0 and again.pairs == made.pairs  # nothing paid twice, same pairs


def test_rewritings_pairs_are_refined_and_gated_like_extracted_ones(world):
    """Refinement is used alike by every method: Rewriting's generated pairs go through the same refiner and
    quality gate as extracted ones, are counted in the run's summary and drafts, and pay their calls once."""
    from equal.llm.refine import PairRefiner, RefinementConfig

    base = world["extractor"]
    refiner = PairRefiner(
        base.backend, base.cache, RefinementConfig(attempts=1, max_tokens=48, on_failure="keep_draft")
    )
    config = replace(base.config, quality_gate="keep")  # a 135M refiner verifies little: keep, and count, it all
    refining = QAExtractor(base.backend, base.cache, config, refiner)
    made = world["setup"]("rewriting-refined", extractor=refining).run("Rewriting", "math", 0.25, 0)
    s = made.summary
    # how many pairs SmolLM2 writes and verifies varies by CPU: the accounting must hold whatever it writes
    assert s.draft_pairs == s.pairs + s.details.rewriting["finish_dropped"]
    assert sum(s.refinement.values()) == s.draft_pairs
    assert len(read_jsonl(made.folder / "drafts.jsonl")) == s.draft_pairs
    assert all(p["refinement"] and "draft_answer" in p and p["seed_item"] for p in made.pairs)
    asked = sum(n for key, n in s.refinement.items() if not key.endswith("/no_reference"))
    stages = [r["stage"] for r in read_jsonl(made.folder / "ledger.jsonl")]
    assert stages.count("refine") == asked  # one call per pair with something to check (attempts=1)
    assert stages.count("rewrite") == s.details.rewriting["calls"]
    again = world["setup"]("rewriting-refined-again", extractor=refining).run("Rewriting", "math", 0.25, 0)
    assert again.summary.new_llm_calls == 0 and again.pairs == made.pairs  # refinement not paid twice


def test_the_domain_matched_controls_extract_the_budget_toward_the_targets_domain(world):
    """Domain filter and DSIR through the runner: the budget's documents, extracted and charged like any method's,
    read back on a re-run; DSIR toward a GSM8K D_r picks word problems (the corpus: 12 of them, 12 MBPP tasks)."""
    setup = world["setup"]("domain")
    for name in ("Domain filter", "DSIR"):
        run = setup.run(name, "math", 0.25, 0)
        assert run.summary.loop_documents == 6 and run.summary.warmup_documents == 0
        assert run.summary.llm_calls >= 6 and all(p["method"] == name for p in run.pairs)
        assert setup.run(name, "math", 0.25, 0).reused
    assert setup.run("DSIR", "math", 0.25, 0).summary.documents_by_domain == {"math": 6}


def test_in_domain_quantiles_cover_the_domains_ranking_with_equal_seeded_selections(world):
    """The link inside the domain: only the target domain's ranked documents, contiguous quantiles over the whole
    ranking, the same size in each, a different random subset per selection seed."""
    from equal.select.methods import quantile_name

    setup = world["setup"]("quantiles")
    write_jsonl_atomic(setup.artifacts.heldout_file("math"), world["targets"]["gsm8k_train"][120:140])
    setup.target_domain = lambda target: "math"  # the fixture declares no tasks: the domain of the "math" target
    everything = setup.run("All", "math", 0.25, 0)
    ranked = {p["doc_id"] for p in everything.pairs if setup.corpus[setup._index[p["doc_id"]]]["domain"] == "math"}
    if len(ranked) < 4:
        pytest.skip(f"SmolLM2 left pairs on {len(ranked)} word problems on this CPU: too few for 4 quantiles")
    runs = [setup.run(quantile_name(q), "math", 0.25, 0) for q in range(1, 5)]
    sizes = {r.summary.loop_documents for r in runs}
    assert len(sizes) == 1 and sizes.pop() >= 1
    assert all(r.summary.documents_by_domain.keys() == {"math"} for r in runs)
    assert all(r.summary.details.ranked_documents == len(ranked) for r in runs)
    starts = [r.summary.details.band_rank_start for r in runs]
    assert starts[0] == 0 and starts == sorted(starts)
    means = [r.summary.details.band_distance_mean for r in runs]
    assert means[0] <= means[-1]
    assert all(r.summary.new_llm_calls == 0 for r in runs)  # All's calls, from the cache
