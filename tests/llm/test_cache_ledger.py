import pytest

from equal.llm.cache import CallCache, call_key
from equal.llm.ledger import CallRecord, CostLedger
from equal.llm.types import Completion, GenerationParams

MESSAGES = [{"role": "user", "content": "Document: 2 + 2 = 4"}]


def test_cache_hit_miss_and_persistence(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    key = call_key("llama_cpp", "m@abc", "v1", GenerationParams(), MESSAGES)
    assert cache.get(key) is None
    cache.put(key, Completion('{"pairs": []}', 10, 5, 0.5), "llama_cpp", "m@abc", "v1", "extract")
    cache.close()
    reopened = CallCache(tmp_path / "c.sqlite")
    assert reopened.get(key) == Completion('{"pairs": []}', 10, 5, 0.5, "stop")
    assert len(reopened) == 1


def test_failed_calls_are_not_cached(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    cache.put("k", Completion("", 0, 0, 1.0, "error", "Timeout"), "openai", "m", "v1", "extract")
    assert cache.get("k") is None


@pytest.mark.parametrize(
    "change",
    [
        {"backend": "openai"},
        {"model_id": "m@def"},
        {"prompt_version": "v2"},
        {"params": GenerationParams(max_tokens=10)},
        {"params": GenerationParams(seed=1)},
        {"messages": [{"role": "user", "content": "Document: 2 + 2 = 5"}]},
    ],
)
def test_every_ingredient_changes_the_key(change):
    base = {
        "backend": "llama_cpp",
        "model_id": "m@abc",
        "prompt_version": "v1",
        "params": GenerationParams(),
        "messages": MESSAGES,
    }
    assert call_key(**base) != call_key(**{**base, **change})
    assert call_key(**base) == call_key(**dict(base))


def test_ledger_sums_and_flops(tmp_path):
    ledger = CostLedger(tmp_path / "ledger.jsonl", reference_params=72e9)
    for doc, cached in (("d1", False), ("d1", False), ("d2", True)):
        ledger.add(CallRecord("EQUAL", doc, "extract", "llama_cpp", "m", 500_000_000, 300, 100, 2.0, cached, "ok"))
    ledger.add(CallRecord("Random", "d3", "extract", "llama_cpp", "m", 500_000_000, 200, 50, 1.0, False, "ok"))
    summary = ledger.summary().set_index("method")
    assert summary.loc["EQUAL", "documents"] == 2 and summary.loc["EQUAL", "calls"] == 3
    assert summary.loc["EQUAL", "tokens"] == 1200
    assert summary.loc["EQUAL", "flops_model"] == 2 * 500_000_000 * 1200
    assert summary.loc["EQUAL", "flops_reference"] == 2 * 72e9 * 1200  # cached calls still charged
    assert summary.loc["EQUAL", "new_calls"] == 2 and summary.loc["EQUAL", "new_wall_s"] == 4.0
    assert summary.loc["Random", "tokens"] == 250
    assert len((tmp_path / "ledger.jsonl").read_text().splitlines()) == 4


def test_a_key_asked_twice_in_one_batch_is_paid_once_and_counted_once(tmp_path):
    from equal.llm.cache import CallMeta

    cache = CallCache(tmp_path / "c.sqlite")
    paid = []

    def call(positions):
        for position in positions:
            paid.append(position)
            yield position, Completion(f"answer {position}", 3, 2, 0.1)

    answers = cache.resolve(["k1", "k2", "k1"], call, CallMeta("llama_cpp", "m@1", "v", "refine"))
    assert paid == [0, 1] and len(cache) == 2
    assert [cached for _, cached in answers] == [False, False, True]  # the repeat is served, not paid
    assert answers[2][0].text == answers[0][0].text
