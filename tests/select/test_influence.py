"""LESS-style gradient influence (equal.select.influence) on a tiny model built from a config."""

import numpy as np
import pytest

from equal.llm.ledger import CostLedger
from equal.select.influence import GradientScorer, InfluenceConfig
from equal.weights import TINY_CHAT_MODEL

TARGETS = [
    {"question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
     "solution": "He has 3 + 4 = 7 apples.\nThe answer is: 7"},
    {"question": "A box holds 6 eggs. How many eggs are in 5 boxes?", "solution": "6 * 5 = 30.\nThe answer is: 30"},
]  # fmt: skip
WARMUP = [{"question": f"What is {i} + {i}?", "answer": f"{i} + {i} = {2 * i}.", "doc_id": f"w{i}"} for i in range(4)]


@pytest.fixture(scope="module")
def scorer(tmp_path_factory):
    scorer = GradientScorer(TINY_CHAT_MODEL, InfluenceConfig(dim=64, warmup_epochs=1, batch_size=2),
                            cache=tmp_path_factory.mktemp("influence"))  # fmt: skip
    scorer.prepare(WARMUP)
    return scorer


@pytest.mark.slow
def test_a_pair_that_repeats_the_target_outranks_an_unrelated_one(scorer):
    repeat = {"question": TARGETS[0]["question"], "answer": TARGETS[0]["solution"], "doc_id": "a"}
    unrelated = {"question": "Who painted the ceiling of the Sistine Chapel?",
                 "answer": "Michelangelo painted it between 1508 and 1512.", "doc_id": "b"}  # fmt: skip
    scores = scorer.influence([repeat, unrelated], TARGETS)
    assert scores[0] > scores[1]
    features = scorer.features([repeat, unrelated])
    assert features.shape == (2, 64) and np.allclose(np.linalg.norm(features, axis=1), 1.0)


def test_features_are_cached_and_deterministic(scorer, tmp_path):
    pair = {"question": "What is 10 - 3?", "answer": "10 - 3 = 7.", "doc_id": "c"}
    first = scorer.features([pair])
    assert scorer.known(pair)
    again = GradientScorer(TINY_CHAT_MODEL, scorer.config, cache=scorer._cache_root)  # a new process, same cache
    again.prepare(WARMUP)
    assert again.identity == scorer.identity and again.known(pair)
    np.testing.assert_allclose(again.features([pair]), first)
    other = GradientScorer(TINY_CHAT_MODEL, scorer.config, cache=scorer._cache_root)
    other.prepare(WARMUP[:2])  # other warm-up pairs: other adapters, another identity, nothing reused
    assert other.identity != scorer.identity and not other.known(pair)


def test_gradients_are_charged_as_forward_and_backward_passes_of_the_base_model(scorer):
    ledger = CostLedger()
    pairs = [{"question": "What is 2 * 8?", "answer": "2 * 8 = 16.", "doc_id": "d"}]
    scorer.charge_warmup(ledger, "Influence")
    scorer.charge(ledger, "Influence", pairs)
    rows = ledger.frame()
    assert list(rows["stage"]) == ["influence-warmup"] * 4 + ["score-influence"]
    assert (rows["reference"] == "base").all() and list(rows["flops_factor"]) == [3.0] * 4 + [3.0]
    summary = ledger.summary().iloc[0]
    assert summary["calls"] == 0 and summary["tokens"] == 0  # no LLM call: only FLOPs
    assert summary["flops_reference"] > 0


@pytest.mark.slow
def test_an_interrupted_scoring_keeps_the_gradients_of_finished_batches(scorer, monkeypatch):
    pairs = [{"question": f"What is {i} * 3?", "answer": f"{i} * 3 = {3 * i}.", "doc_id": f"e{i}"} for i in range(70)]
    original = scorer._gradients
    calls = {"n": 0}

    def dies_on_the_second_batch(batch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed")
        return original(batch)

    monkeypatch.setattr(scorer, "_gradients", dies_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        scorer.features(pairs)
    monkeypatch.setattr(scorer, "_gradients", original)
    resumed = GradientScorer(TINY_CHAT_MODEL, scorer.config, cache=scorer._cache_root)  # a new process
    resumed.prepare(WARMUP)
    assert sum(resumed.known(p) for p in pairs) == 64  # the first batch was on disk before the crash
    computed, gradients = [], resumed._gradients
    monkeypatch.setattr(resumed, "_gradients", lambda batch: computed.append(len(batch)) or gradients(batch))
    assert resumed.features(pairs).shape == (70, 64) and computed == [6]  # only the unfinished pairs
    np.testing.assert_allclose(resumed.features(pairs[64:]), scorer.features(pairs[64:]), atol=1e-5)
