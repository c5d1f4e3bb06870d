"""LLM backends behind one protocol (:class:`equal.llm.types.LLMBackend`).

* :class:`LlamaCppBackend` — in-process GGUF through llama-cpp-python; JSON answers constrained by a
  grammar compiled from the schema; the shared instruction prefix is reused from the KV cache.
* :class:`TransformersBackend` — any local causal-LM folder; batched generation; no grammar (answers
  go through repair and one retry instead).
* :class:`OpenAIBackend` — any OpenAI-compatible server (vLLM, llama.cpp server, Ollama, OpenAI)
  through the ``openai`` client: concurrent requests, timeouts, retries with exponential backoff,
  structured output through ``response_format``.

Errors never escape :meth:`chat`: a failed request comes back as a :class:`Completion` with
``error`` set, and the extractor records it.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from equal.errors import ConfigError
from equal.fingerprint import files_digest
from equal.llm.types import BATCHED_SUFFIX, Completion, GenerationParams, Messages
from equal.provenance import usable_cpus
from equal.registry import Registry
from equal.weights import resolve_gguf


def _error(start: float, exc: BaseException) -> Completion:
    return Completion("", 0, 0, time.perf_counter() - start, "error", f"{type(exc).__name__}: {exc}")


class LlamaCppBackend:
    """A GGUF model in this process (llama-cpp-python), one sequence at a time."""

    kind = "llama_cpp"
    batch_size = 1

    def __init__(
        self,
        model: str,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_batch: int = 512,
        seed: int = 0,
    ) -> None:
        from llama_cpp import Llama

        path, identity = resolve_gguf(model)
        self.path = path
        self._llm = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads or usable_cpus(),
            n_batch=n_batch,
            seed=seed,
            verbose=False,
        )
        self.model_id = identity
        self.n_params = int(self._llm._model.n_params())
        self.context_length = n_ctx

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` (no BOS)."""
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to ``max_tokens`` tokens."""
        tokens = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        if len(tokens) <= max_tokens:
            return text
        return self._llm.detokenize(tokens[:max_tokens]).decode("utf-8", errors="ignore")

    def chat(self, batch: list[Messages], params: GenerationParams) -> list[Completion]:
        """One completion per conversation, JSON-constrained when ``params.json_schema`` is set."""
        results = []
        for messages in batch:
            start = time.perf_counter()
            try:
                response = self._llm.create_chat_completion(
                    messages=messages,
                    max_tokens=params.max_tokens,
                    temperature=params.temperature,
                    top_p=params.top_p,
                    seed=params.seed,
                    repeat_penalty=params.repeat_penalty,
                    response_format=(
                        {"type": "json_object", "schema": params.json_schema} if params.json_schema else None
                    ),
                )
                usage = response["usage"]
                choice = response["choices"][0]
                results.append(
                    Completion(
                        choice["message"]["content"] or "",
                        usage["prompt_tokens"],
                        usage["completion_tokens"],
                        time.perf_counter() - start,
                        choice.get("finish_reason") or "stop",
                    )
                )
            except Exception as exc:  # a bad request must not stop a run of thousands
                results.append(_error(start, exc))
        return results


class TransformersBackend:
    """A local causal LM folder (transformers), generating a batch at a time on CPU or GPU."""

    kind = "transformers"

    def __init__(self, model_dir: str | Path, batch_size: int = 4, device: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model_dir = Path(model_dir)
        if not (model_dir / "config.json").is_file():
            raise ConfigError(f"{model_dir} is not a transformers model folder (no config.json)")
        self._torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.tokenizer.padding_side = "left"  # generation continues from the right end of every row
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).to(self.device).eval()
        weights = [p for p in model_dir.iterdir() if p.suffix in (".safetensors", ".bin")]
        self.model_id = f"{model_dir.name}@{files_digest([*weights, model_dir / 'config.json'])}"
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.context_length = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self.batch_size = batch_size

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` (no special tokens)."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to ``max_tokens`` tokens."""
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return text if len(ids) <= max_tokens else self.tokenizer.decode(ids[:max_tokens])

    def chat(self, batch: list[Messages], params: GenerationParams) -> list[Completion]:
        """Generate for the whole batch at once (left-padded); the batch's time is shared equally."""
        start = time.perf_counter()
        try:
            prompts = [self.tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m in batch]
            encoded = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            encoded = encoded.to(self.device)
            self._torch.manual_seed(params.seed)
            sample = params.temperature > 0
            with self._torch.no_grad():
                output = self.model.generate(
                    **encoded,
                    max_new_tokens=params.max_tokens,
                    do_sample=sample,
                    temperature=params.temperature if sample else None,
                    top_p=params.top_p if sample else None,
                    repetition_penalty=params.repeat_penalty if params.repeat_penalty != 1.0 else None,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
        except Exception as exc:
            return [_error(start, exc) for _ in batch]
        wall = (time.perf_counter() - start) / len(batch)
        generated = output[:, encoded["input_ids"].shape[1] :]
        results = []
        for row, mask in zip(generated, encoded["attention_mask"], strict=True):
            ids = row.tolist()
            eos = self.tokenizer.eos_token_id
            finished = eos in ids
            ids = ids[: ids.index(eos)] if finished else ids
            ids = [i for i in ids if i != self.tokenizer.pad_token_id]
            results.append(
                Completion(
                    self.tokenizer.decode(ids, skip_special_tokens=True),
                    int(mask.sum()),
                    len(ids) + int(finished),
                    wall,
                    "stop" if finished else "length",
                )
            )
        return results


RESPONSE_FORMATS = ("json_schema", "json_object", "guided_json", "none")


def stream_answers(backend, requests: list[Messages], positions: list[int], params: GenerationParams):
    """Answer ``requests[p]`` for each ``p`` in ``positions``, yielding ``(p, completion)`` as each arrives: from the
    backend's own ``stream`` where it has one (a window of requests in flight), else batch by batch."""
    if hasattr(backend, "stream"):
        for index, completion in backend.stream([requests[p] for p in positions], params):
            yield positions[index], completion
        return
    size = max(1, backend.batch_size)
    for start in range(0, len(positions), size):
        chunk = positions[start : start + size]
        yield from zip(chunk, backend.chat([requests[p] for p in chunk], params), strict=True)


class _Replica:
    """One server of an OpenAI-compatible deployment, with the requests it has in flight."""

    def __init__(self, client, url: str) -> None:
        self.client, self.url = client, url
        self.in_flight = 0
        self.served = 0  # requests answered
        self.failures = 0  # consecutive failures: a failing replica is tried last


class OpenAIBackend:
    """Any OpenAI-compatible chat server — or several replicas of one — with a window of requests in flight.

    ``base_url`` is one URL or a list (e.g. the vLLM replicas of a deployment); each request goes to the replica
    with the fewest requests in flight (failing replicas last). ``concurrency`` requests are in flight at any
    moment across the whole batch — a new one starts as soon as any finishes, never chunk by chunk. A failed
    request (connection error, timeout, 429, 5xx) is retried up to ``max_retries`` times on another replica
    after an exponential backoff with jitter; other errors, and the last failure, come back as error results.

    ``response_format`` is ``"json_schema"`` (OpenAI structured outputs; vLLM, recent llama.cpp),
    ``"json_object"`` (JSON mode, plus the schema for llama-cpp-python's server), ``"guided_json"``
    (older vLLM servers: ``extra_body={"guided_json": schema}``) or ``"none"``.
    """

    kind = "openai"

    def __init__(
        self,
        base_url: str | list[str],
        model: str,
        api_key: str | None = None,
        concurrency: int = 4,
        timeout: float = 120.0,
        max_retries: int = 3,
        n_params: int = 0,
        context_length: int = 8192,
        response_format: str = "json_object",
        batch_size: int | None = None,
        backoff_s: float = 0.5,
    ) -> None:
        from openai import OpenAI

        if response_format not in RESPONSE_FORMATS:
            raise ConfigError(f"response_format must be one of {RESPONSE_FORMATS}, got {response_format!r}")
        urls = [base_url] if isinstance(base_url, str) else list(base_url)
        if not urls:
            raise ConfigError("base_url: give at least one server URL")
        key = api_key or os.environ.get("OPENAI_API_KEY") or "not-needed"
        # Retries are ours (they move to another replica); the client makes one attempt.
        self._replicas = [_Replica(OpenAI(base_url=u, api_key=key, timeout=timeout, max_retries=0), u) for u in urls]
        self._pick_lock = threading.Lock()
        self.model = model
        self.model_id = f"openai:{model}"  # the served model, whichever replica answers
        self.n_params = n_params
        self.context_length = context_length
        self.concurrency = max(1, concurrency)
        # documents the extractor hands over at once; ``concurrency`` of them are in flight
        self.batch_size = batch_size or max(16, 4 * self.concurrency)
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.response_format = response_format

    def served(self) -> dict[str, int]:
        """Requests answered so far by each replica (URL → count)."""
        with self._pick_lock:
            return {replica.url: replica.served for replica in self._replicas}

    def count_tokens(self, text: str) -> int:
        """Estimated tokens (no tokenizer client-side): one per 3 characters, deliberately high."""
        return len(text) // 3 + 1

    def truncate(self, text: str, max_tokens: int) -> str:
        """``text`` cut to about ``max_tokens`` tokens (3 characters each)."""
        return text[: max_tokens * 3]

    def _constraint(self, schema: dict | None) -> dict:
        """Keyword arguments of ``chat.completions.create`` that constrain the output to ``schema``."""
        if schema is None or self.response_format == "none":
            return {}
        if self.response_format == "json_schema":
            return {"response_format": {"type": "json_schema", "json_schema": {"name": "qa_pairs", "schema": schema}}}
        if self.response_format == "guided_json":
            return {"extra_body": {"guided_json": schema}}
        return {"response_format": {"type": "json_object", "schema": schema}}

    def _acquire(self) -> _Replica:
        with self._pick_lock:
            replica = min(self._replicas, key=lambda r: (r.failures > 0, r.in_flight, r.failures))
            replica.in_flight += 1
            return replica

    def _finish(self, replica: _Replica, ok: bool) -> None:
        with self._pick_lock:
            replica.in_flight -= 1
            replica.served += int(ok)
            replica.failures = 0 if ok else replica.failures + 1

    def _request(self, client, messages: Messages, params: GenerationParams) -> Completion:
        start = time.perf_counter()
        kwargs = self._constraint(params.json_schema)
        if params.repeat_penalty != 1.0:  # not in the OpenAI API; vLLM and llama.cpp servers read it here
            kwargs["extra_body"] = {**kwargs.get("extra_body", {}), "repetition_penalty": params.repeat_penalty}
        response = client.chat.completions.create(
            model=self.model,
            messages=messages,
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
            **kwargs,
        )
        choice = response.choices[0]
        usage = response.usage
        return Completion(
            choice.message.content or "",
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
            time.perf_counter() - start,
            choice.finish_reason or "stop",
        )

    def _one(self, messages: Messages, params: GenerationParams) -> Completion:
        import openai

        retryable = (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError,
                     openai.InternalServerError)  # fmt: skip
        start = time.perf_counter()
        for attempt in range(self.max_retries + 1):
            replica = self._acquire()
            try:
                completion = self._request(replica.client, messages, params)
            except retryable as exc:
                self._finish(replica, ok=False)
                if attempt == self.max_retries:
                    return _error(start, exc)
                time.sleep(self.backoff_s * 2**attempt * (1 + random.random()))  # jitter spreads the retries
                continue
            except Exception as exc:  # a request the server rejects: record it, do not crash the run
                self._finish(replica, ok=False)
                return _error(start, exc)
            self._finish(replica, ok=True)
            return completion
        raise AssertionError("unreachable")

    def stream(self, batch: list[Messages], params: GenerationParams):
        """Yield ``(index, completion)`` as answers arrive, ``concurrency`` requests in flight."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self._one, messages, params): index for index, messages in enumerate(batch)}
            for future in as_completed(futures):
                yield futures[future], future.result()

    def chat(self, batch: list[Messages], params: GenerationParams) -> list[Completion]:
        """The whole batch, in order (``concurrency`` requests in flight)."""
        answers: list[Completion | None] = [None] * len(batch)
        for index, completion in self.stream(batch, params):
            answers[index] = completion
        return answers  # type: ignore[return-value]


def _decodes_batched(spec: dict) -> bool:
    """Whether :func:`make_backend` builds the batched llama.cpp backend for ``spec``."""
    return spec.get("kind") == "llama_cpp" and spec.get("n_parallel", 1) > 1


def llama_cpp_model_id(spec: dict) -> str:
    """The model id under which a ``llama_cpp`` backend built from ``spec`` (as :func:`make_backend` builds it) keys
    its cached answers, without loading the model."""
    identity = resolve_gguf(spec["model"])[1]
    return identity + BATCHED_SUFFIX if _decodes_batched(spec) else identity


#: Backends by kind; batched llama.cpp (n_parallel > 1) is its own entry, imported when first used
BACKENDS: Registry = Registry("backend")
BACKENDS.register("llama_cpp", LlamaCppBackend)
BACKENDS.register(f"llama_cpp{BATCHED_SUFFIX}", "equal.llm.llama_batch:LlamaCppBatchBackend")
BACKENDS.register("transformers", TransformersBackend)
BACKENDS.register("openai", OpenAIBackend)


def make_backend(spec: dict):
    """Build a backend from a parameter mapping: ``{"kind": "llama_cpp" | "transformers" | "openai", ...}``.

    ``llama_cpp`` with ``n_parallel > 1`` decodes that many documents together
    (:class:`~equal.llm.llama_batch.LlamaCppBatchBackend`, the fast path on CPU).
    """
    batched = _decodes_batched(spec)
    spec = dict(spec)
    kind = spec.pop("kind", None)
    spec.pop("executor", None)  # where the calls run (equal.llm.extract.make_extractor), not how the engine is built
    spec.pop("refiner", None)  # the refinement's own backend (equal.llm.extract.make_refiner)
    if kind not in BACKENDS or BATCHED_SUFFIX in str(kind):
        kinds = [name for name in BACKENDS if BATCHED_SUFFIX not in name]
        raise ConfigError(f"backend kind must be one of {kinds}, got {kind!r}")
    if kind == "llama_cpp" and not batched:
        spec.pop("n_parallel", None)
    return BACKENDS.build(f"{kind}{BATCHED_SUFFIX}" if batched else kind, **spec)
