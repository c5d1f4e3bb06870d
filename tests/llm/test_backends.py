"""Each backend through the extractor: tiny random transformers model, SmolLM2 GGUF in llama.cpp,
and a real OpenAI-compatible server (llama-cpp-python's) on localhost."""

import http.server
import json
import threading
import time

import pytest
from conftest import free_port

from equal.llm.backends import LlamaCppBackend, OpenAIBackend, TransformersBackend, llama_cpp_model_id, make_backend
from equal.llm.cache import CallCache
from equal.llm.extract import DOCUMENT_STATUSES, ExtractionConfig, ExtractionReport, QAExtractor, pairs_records
from equal.llm.ledger import CostLedger
from equal.llm.prompts import extraction_messages, qa_schema
from equal.llm.types import GenerationParams
from equal.weights import build_tiny_chat_model, packaged_gguf

DOCS = [
    {
        "id": "d1",
        "text": "Tom has 3 apples and buys 5 more. He now has 3 + 5 = 8 apples.",
        "source": "s",
        "domain": "math",
    },
    {
        "id": "d2",
        "text": "In Python, len(x) returns the number of items in the list x.",
        "source": "s",
        "domain": "code",
    },
]


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return build_tiny_chat_model()


@pytest.fixture(scope="session")
def smollm():
    return LlamaCppBackend("smollm2-135m-instruct", n_ctx=1024)


def test_transformers_tiny_model_nonsense_never_crashes_and_retries_once(tiny_model_dir, tmp_path):
    backend = TransformersBackend(tiny_model_dir, batch_size=2)
    ledger = CostLedger()
    report = ExtractionReport()
    extractor = QAExtractor(backend, CallCache(tmp_path / "c.sqlite"), ExtractionConfig(max_tokens=16, max_retries=1))
    results = extractor.extract(DOCS, method="Random", ledger=ledger, progress=False, report=report)
    assert [r.status for r in results] == ["malformed", "malformed"]  # random weights write nonsense
    assert all(r.calls == 2 and r.reason for r in results)  # the first call and exactly one retry
    assert report.outcomes["malformed"] == 2 and report.new_calls == 4
    summary = ledger.summary().set_index("method")
    assert summary.loc["Random", "calls"] == 4 and summary.loc["Random", "completion_tokens"] > 0
    assert summary.loc["Random", "flops_model"] == 2 * backend.n_params * summary.loc["Random", "tokens"]


@pytest.mark.slow
def test_second_run_makes_zero_calls(tiny_model_dir, tmp_path):
    backend = TransformersBackend(tiny_model_dir, batch_size=2)
    cache = CallCache(tmp_path / "c.sqlite")
    first, second = ExtractionReport(), ExtractionReport()
    QAExtractor(backend, cache, ExtractionConfig(max_tokens=8)).extract(DOCS, progress=False, report=first)
    ledger = CostLedger()
    QAExtractor(backend, cache, ExtractionConfig(max_tokens=8)).extract(
        DOCS, ledger=ledger, progress=False, report=second
    )
    assert first.new_calls == 4 and second.new_calls == 0 and second.cached_calls == 4
    assert ledger.summary()["tokens"].iloc[0] > 0  # cached answers still charge their original cost
    third = ExtractionReport()
    QAExtractor(backend, cache, ExtractionConfig(max_tokens=9)).extract(DOCS, progress=False, report=third)
    assert third.new_calls == 4  # a changed generation parameter is a new key


def test_long_document_is_truncated_to_the_context(tiny_model_dir, tmp_path):
    backend = TransformersBackend(tiny_model_dir)
    extractor = QAExtractor(backend, CallCache(tmp_path / "c.sqlite"), ExtractionConfig(max_tokens=4, max_retries=0))
    long_doc = {"id": "long", "text": "word " * 20_000}
    (result,) = extractor.extract([long_doc], progress=False)
    assert result.truncated and result.calls == 1


@pytest.mark.slow
def test_llama_cpp_smollm_json_grammar(smollm, tmp_path):
    assert smollm.model_id.startswith("smollm2-135m-instruct@") and smollm.n_params > 100_000_000
    extractor = QAExtractor(smollm, CallCache(tmp_path / "c.sqlite"), ExtractionConfig(max_pairs=1, max_tokens=48))
    report = ExtractionReport()
    results = extractor.extract(DOCS, ledger=CostLedger(), progress=False, report=report)
    # What a real model writes differs between CPUs (llama.cpp's kernels do): any documented outcome but a
    # backend error is legitimate (48 tokens may cut the JSON, which repair handles; a pair may repeat itself)
    assert all(r.status in DOCUMENT_STATUSES and r.status != "error" for r in results)
    assert report.documents == 2 and 2 <= report.new_calls <= 4  # one call each, one retry at most
    assert sum(report.outcomes.values()) == 2
    # a cached replay gives the same results, byte for byte, and pays nothing
    again = ExtractionReport()
    replay = QAExtractor(smollm, CallCache(tmp_path / "c.sqlite"), ExtractionConfig(max_pairs=1, max_tokens=48))
    replayed = replay.extract(DOCS, ledger=CostLedger(), progress=False, report=again)
    assert again.new_calls == 0 and [(r.status, r.pairs) for r in replayed] == [(r.status, r.pairs) for r in results]


def test_packaged_qwen_extractor_is_assembled_and_verified():
    path = packaged_gguf("qwen2.5-coder-0.5b-instruct")
    assert path.stat().st_size == 491_400_064
    assert path.with_name(path.name + ".sha256").read_text().startswith("1d9614638d18")


@pytest.fixture(scope="module")
def llama_server(llama_servers):  # one replica (the two are session-wide: conftest)
    return llama_servers[0]


@pytest.mark.slow
def test_openai_backend_against_a_real_server(llama_server, tmp_path):
    backend = make_backend(
        {
            "kind": "openai",
            "base_url": llama_server,
            "model": "smollm2",
            "concurrency": 2,
            "n_params": 134_515_008,
            "context_length": 1024,
        }
    )
    ledger = CostLedger()
    results = QAExtractor(
        backend, CallCache(tmp_path / "c.sqlite"), ExtractionConfig(max_pairs=1, max_tokens=48)
    ).extract(DOCS, method="EQUAL", ledger=ledger, progress=False)
    assert all(r.status != "error" for r in results), [r.reason for r in results]
    calls = ledger.frame()
    assert (calls["prompt_tokens"] > 0).all() and (calls["completion_tokens"] > 0).all()
    records = pairs_records(results, DOCS, "EQUAL")
    assert all(r["doc_id"] in {"d1", "d2"} and r["method"] == "EQUAL" for r in records)


def test_unreachable_server_is_an_error_result_not_a_crash(tmp_path):
    backend = OpenAIBackend(f"http://127.0.0.1:{free_port()}/v1", "none", timeout=2, max_retries=1, context_length=1024)
    (result,) = QAExtractor(backend, CallCache(tmp_path / "c.sqlite"), ExtractionConfig(max_retries=1)).extract(
        DOCS[:1], progress=False
    )
    assert result.status == "error" and "Connection" in result.reason and result.calls == 2


@pytest.mark.slow
def test_requests_spread_over_two_replicas_and_a_dead_one_is_failed_over(llama_servers, tmp_path):
    docs = [{"id": f"m{i}", "text": f"Sam has {i} pens and buys {i + 2} more: {2 * i + 2} pens."} for i in range(8)]
    dead = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAIBackend([*llama_servers, dead], "smollm2", concurrency=4, max_retries=3, backoff_s=0.05,
                            context_length=1024, timeout=60)  # fmt: skip
    results = QAExtractor(
        backend, CallCache(tmp_path / "c.sqlite"), ExtractionConfig(max_pairs=1, max_tokens=32, max_retries=0)
    ).extract(docs, progress=False)
    assert all(r.status != "error" for r in results), [r.reason for r in results]
    served = backend.served()
    assert served[dead] == 0 and all(served[url] >= 1 for url in llama_servers), served
    assert sum(served.values()) == len(docs)


class _SlowFirstServer(http.server.ThreadingHTTPServer):
    """An OpenAI-protocol endpoint whose first request takes 1 s and the others 50 ms; logs when each ends."""

    daemon_threads = True

    def __init__(self) -> None:
        self.finished: list[tuple[int, float]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _SlowFirstHandler)


class _SlowFirstHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        number = int(body["messages"][-1]["content"])
        time.sleep(1.0 if number == 0 else 0.05)
        with self.server.lock:
            self.server.finished.append((number, time.monotonic()))
        answer = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                  "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": str(number)}}],
                  "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}  # fmt: skip
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_a_slow_request_does_not_hold_back_the_window():
    """Two requests in flight, six to make: the five fast ones all finish while the slow first one runs (chunks
    of two would wait for it before starting the third)."""
    server = _SlowFirstServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        backend = OpenAIBackend(f"http://127.0.0.1:{server.server_address[1]}/v1", "m", concurrency=2)
        answers = backend.chat([[{"role": "user", "content": str(i)}] for i in range(6)], GenerationParams())
    finally:
        server.shutdown()
    assert [a.text for a in answers] == [str(i) for i in range(6)]  # in request order
    assert [number for number, _ in server.finished][-1] == 0


@pytest.mark.slow
def test_batched_llama_cpp_shares_the_prefix_and_keeps_json_valid(tmp_path):
    backend = make_backend({"kind": "llama_cpp", "model": "smollm2-135m-instruct", "n_parallel": 3, "n_ctx": 1024})
    assert backend.model_id.endswith("/batched") and backend.batch_size == 3
    # export-answers names the same id without loading the model (the default profile decodes batched)
    spec = {"kind": "llama_cpp", "model": "smollm2-135m-instruct"}
    assert llama_cpp_model_id({**spec, "n_parallel": 3}) == backend.model_id
    assert llama_cpp_model_id(spec) == backend.model_id.removesuffix("/batched")
    texts = [d["text"] for d in DOCS] + ["The French Revolution began in 1789 with the storming of the Bastille."]
    params = GenerationParams(max_tokens=200, json_schema=qa_schema(1))
    completions = backend.chat([extraction_messages(t, 1) for t in texts], params)
    assert all(c.error is None for c in completions), [c.error for c in completions]
    for completion in completions:
        assert completion.prompt_tokens > 0 and completion.completion_tokens > 0
        if completion.finish_reason == "stop":  # the grammar forces the schema's shape
            answer = json.loads(completion.text)
            assert set(answer) == {"pairs"} and len(answer["pairs"]) <= 1
    # The instruction (system prompt + task) is evaluated once and kept for the next group.
    instruction = backend.count_tokens("Write up to 1 question-answer pairs that the document below supports.")
    assert len(backend._prefix) > instruction
    # where the time went: the shared prefix read once, so fewer prompt tokens read than the prompts hold
    read = backend.stats["prefix_tokens"] + backend.stats["prompt_tokens"]
    assert 0 < read < sum(c.prompt_tokens for c in completions)
    assert backend.stats["steps"] > 0 and backend.stats["step_tokens"] >= backend.stats["steps"]
    (again,) = backend.chat([extraction_messages(texts[0], 1)], params)
    assert again.error is None and again.prompt_tokens == completions[0].prompt_tokens


@pytest.mark.slow
def test_batched_backend_through_the_extractor(tmp_path):
    backend = make_backend({"kind": "llama_cpp", "model": "smollm2-135m-instruct", "n_parallel": 2, "n_ctx": 1024})
    extractor = QAExtractor(backend, CallCache(tmp_path / "c.sqlite"), ExtractionConfig(max_pairs=1, max_tokens=64))
    report = ExtractionReport()
    results = extractor.extract(DOCS, ledger=CostLedger(), progress=False, report=report)
    assert report.documents == 2 and all(r.status != "error" for r in results)


@pytest.mark.slow
def test_refinement_with_a_real_model_is_charged_and_keeps_drafts_by_policy(smollm, tmp_path):
    from equal.llm.refine import PairRefiner, RefinementConfig

    ledger = CostLedger()
    cache = CallCache(tmp_path / "c.sqlite")
    refiner = PairRefiner(smollm, cache, RefinementConfig(attempts=1, max_tokens=48, on_failure="keep_draft"))
    config = ExtractionConfig(max_pairs=1, max_tokens=96, quality_gate="keep")
    results = QAExtractor(smollm, cache, config, refiner).extract(DOCS, method="EQUAL", ledger=ledger, progress=False)
    calls = ledger.frame()
    # whether SmolLM2 writes a usable pair here depends on the CPU's kernels: the accounting must hold either way
    # (tests/llm/test_refine.py checks the refinement of known pairs with a scripted model)
    with_pairs = [r for r in results if r.drafts]
    refined = calls[calls["stage"] == "refine"]
    asked = sum(sum(not o.endswith("no_reference") for o in r.refinement.elements()) for r in with_pairs)
    assert len(refined) == asked  # one call per draft pair that had something to verify against (attempts=1)
    assert all(len(r.pairs) == len(r.drafts) for r in with_pairs)  # keep_draft + gate keep: nothing lost
    assert all(p["refinement"] for r in with_pairs for p in r.pairs)  # each pair says how it was refined


@pytest.mark.slow
def test_a_repeat_penalty_is_in_the_batched_sampler_chain_and_keeps_json_valid():
    import llama_cpp

    from equal.llm.llama_batch import _SequenceSampler

    backend = make_backend({"kind": "llama_cpp", "model": "smollm2-135m-instruct", "n_parallel": 2, "n_ctx": 1024})
    messages = [extraction_messages(d["text"], 1) for d in DOCS]
    plain = backend.chat(messages, GenerationParams(max_tokens=96, json_schema=qa_schema(1)))
    penalised = backend.chat(messages, GenerationParams(max_tokens=96, json_schema=qa_schema(1), repeat_penalty=1.5))
    assert all(c.error is None for c in plain + penalised)

    # the sampler chain applies it (whether it changes this reply depends on the CPU's logits, so not asserted)
    def chain_length(params):
        return llama_cpp.llama_sampler_chain_n(_SequenceSampler(backend, params, 0).chain.sampler)

    assert chain_length(GenerationParams(repeat_penalty=1.5)) == chain_length(GenerationParams()) + 1
    for completion in penalised:
        if completion.finish_reason == "stop":
            assert set(json.loads(completion.text)) == {"pairs"}
    # the cache key names the penalty only when it is set: answers cached before it existed keep their keys
    assert (
        "repeat_penalty" not in GenerationParams().key()
        and GenerationParams(repeat_penalty=1.1).key()["repeat_penalty"]
    )


@pytest.mark.slow
def test_batched_llama_cpp_reads_a_prompt_asked_again_only_once():
    """A refinement's next attempt or vote asks the same prompt again: its cells are kept from the last group."""
    backend = make_backend({"kind": "llama_cpp", "model": "smollm2-135m-instruct", "n_parallel": 2, "n_ctx": 1024})
    messages = [extraction_messages(d["text"], 1) for d in DOCS]
    params = GenerationParams(max_tokens=24)
    first = backend.chat(messages, params)
    read = backend.stats["prompt_tokens"]
    again = backend.chat(messages[::-1], params)  # kept prompts are found by their tokens, not their place
    assert backend.stats["prompt_tokens"] - read == len(messages)  # each last token only, for its logits
    assert [a.text for a in again] == [f.text for f in first][::-1]  # greedy: the same answers from kept cells
    assert backend.stats["kept_tokens"] > 0
    other = extraction_messages("Rivers carry sediment to the sea, where deltas form over thousands of years.", 1)
    read = backend.stats["prompt_tokens"]
    (fresh,) = backend.chat([other], params)  # a new prompt is read past the prefix it shares, and answered
    assert fresh.error is None and backend.stats["prompt_tokens"] - read < fresh.prompt_tokens
    assert backend.chat(messages, params)[0].text == first[0].text  # and the first prompts still answer the same
