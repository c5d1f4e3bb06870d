"""QA extraction from documents: prompt → (cached) LLM call → parse → bounded retry → optional refine.

:class:`QAExtractor` is what every later notebook calls. A malformed answer never stops a run: it
gets one retry (``max_retries``), then the document is recorded as having no QA pairs, with the
reason. Every call goes through the :class:`~equal.llm.cache.CallCache` (so an interrupted run
resumes without repeating a completed call) and into the :class:`~equal.llm.ledger.CostLedger`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from equal.errors import ConfigError
from equal.llm.backends import stream_answers
from equal.llm.cache import CallCache, CallMeta, call_key
from equal.llm.ledger import CallRecord, CostLedger
from equal.llm.parsing import ParsedAnswer, parse_pairs
from equal.llm.prompts import (
    PROMPT_VERSION,
    extraction_messages,
    get_prompt,
    prompt_overhead,
    qa_schema,
    refinement_messages,
)
from equal.llm.quality import without_degenerate
from equal.llm.types import Completion, GenerationParams, Messages
from equal.progress import tqdm


@dataclass(frozen=True)
class ExtractionConfig:
    """Extraction parameters (all of them shape the prompt or the decoding, hence the cache key)."""

    max_pairs: int = 3  # pairs asked per document (a cap keeps CPU extraction affordable)
    max_tokens: int = 320  # completion budget per call
    temperature: float = 0.0
    seed: int = 0
    constrain_json: bool = True  # grammar / JSON mode where the backend supports it
    max_retries: int = 1  # extra calls for a malformed answer
    refine: bool = False  # the paper's second pass (fix format, fill answers, correct errors)
    max_document_tokens: int | None = None  # None: whatever fits the context
    repeat_penalty: float = 1.0  # decoding: > 1 discourages the repetition loops small models fall into
    prompt_version: str = PROMPT_VERSION  # which prompt of equal.llm.prompts.PROMPTS


@dataclass
class DocumentResult:
    """The QA pairs of one document and how they were obtained."""

    doc_id: str
    pairs: list[dict]
    status: str  # ok | repaired | empty | degenerate | malformed | error
    reason: str = ""
    calls: int = 0
    cached_calls: int = 0
    truncated: bool = False  # the document was cut to fit the context
    refined: bool = False
    hit_limit: bool = False  # the call that produced the pairs stopped at the token limit
    degenerate_pairs: int = 0  # pairs dropped for runaway repetition (equal.llm.quality.is_degenerate)


@dataclass
class ExtractionReport:
    """Counts of outcomes over a run, plus throughput of the work actually done."""

    documents: int = 0
    outcomes: Counter = field(default_factory=Counter)
    pairs: int = 0
    new_calls: int = 0
    cached_calls: int = 0
    new_tokens: int = 0
    wall_s: float = 0.0
    degenerate_pairs: int = 0  # dropped: runaway repetition
    token_limit_documents: int = 0  # documents whose answer stopped at the token limit

    @property
    def well_formed_share(self) -> float:
        """Share of documents whose final answer was valid JSON of the expected shape (ok or empty).

        Answers that needed ``json_repair`` (usually cut by the token budget) do not count.
        """
        good = self.outcomes["ok"] + self.outcomes["empty"]
        return good / self.documents if self.documents else 0.0

    def as_dict(self) -> dict:
        """JSON-able form."""
        return {**asdict(self), "outcomes": dict(self.outcomes), "well_formed_share": round(self.well_formed_share, 4)}


#: Bump when the way answers become pairs changes (parsing, dropping degenerate pairs): finished method runs,
#: whose pairs were made the old way, are then recomputed from the cached answers.
PAIRS_VERSION = 2  # 2: pairs with runaway repetition are dropped and counted


class QAExtractor:
    """Extract QA pairs from documents with one backend, one cache and one configuration."""

    def __init__(self, backend, cache: CallCache, config: ExtractionConfig | None = None) -> None:
        self.backend = backend
        self.cache = cache
        self.config = config or ExtractionConfig()
        schema = qa_schema(self.config.max_pairs) if self.config.constrain_json else None
        self._params = GenerationParams(
            max_tokens=self.config.max_tokens,
            temperature=self.config.temperature,
            seed=self.config.seed,
            json_schema=schema,
            repeat_penalty=self.config.repeat_penalty,
        )
        # Room for the document: context minus completion, instruction and a margin for the chat template.
        get_prompt(self.config.prompt_version)  # an unknown version fails here, before any call
        overhead = backend.count_tokens(prompt_overhead(self.config.max_pairs, self.config.prompt_version)) + 64
        room = backend.context_length - self.config.max_tokens - overhead
        if self.config.max_document_tokens:
            room = min(room, self.config.max_document_tokens)
        if room < 32:
            raise ValueError(f"context of {backend.context_length} tokens leaves no room for a document")
        self._doc_budget = room

    # -------------------------------------------------------------- calls

    def _key(self, stage: str, messages: Messages, params: GenerationParams) -> str:
        version = self.config.prompt_version
        return call_key(self.backend.kind, self.backend.model_id, f"{version}/{stage}", params, messages)

    def _calls(self, stage: str, requests: list[Messages], params: GenerationParams) -> list[tuple[Completion, bool]]:
        """Answer each request exactly once across every worker sharing the cache: stored answers are read, the
        rest are called (streamed from the backend, each stored as it arrives) or waited for when another worker
        is already making that call."""
        keys = [self._key(stage, m, params) for m in requests]
        meta = CallMeta(self.backend.kind, self.backend.model_id, self.config.prompt_version, stage)
        return self.cache.resolve(keys, lambda positions: stream_answers(self.backend, requests, positions, params),
                                  meta)  # fmt: skip

    def ask(self, stage: str, requests: list[Messages], params: GenerationParams) -> list[tuple[Completion, bool]]:
        """Answer chat requests other than extraction (e.g. ratings) through this extractor's backend and cache:
        (completion, whether it came from the cache) per request. ``stage`` names the kind of call in its cache
        key (with the prompt version)."""
        return self._calls(stage, requests, params)

    def charge(self, ledger, method: str, doc_id: str, stage: str, completion: Completion, cached: bool,
               status: str) -> None:  # fmt: skip
        """Charge one call to ``ledger`` (nothing when it is None)."""
        self._charge(ledger, method, doc_id, stage, completion, cached, status)

    def _charge(self, ledger, method, doc_id, stage, completion: Completion, cached: bool, status: str) -> None:
        if ledger is not None:
            ledger.add(
                CallRecord(
                    method=method,
                    doc_id=doc_id,
                    stage=stage,
                    backend=self.backend.kind,
                    model_id=self.backend.model_id,
                    n_params=self.backend.n_params,
                    prompt_tokens=completion.prompt_tokens,
                    completion_tokens=completion.completion_tokens,
                    wall_s=round(completion.wall_s, 4),
                    cached=cached,
                    status=status,
                )
            )

    # -------------------------------------------------------------- documents

    def fit_document(self, text: str) -> tuple[str, bool]:
        """The document cut to the context budget, and whether it was cut."""
        cut = self.backend.truncate(text, self._doc_budget)
        return cut, cut != text

    def extract_batch(self, docs: list[dict], method: str, ledger: CostLedger | None = None) -> list[DocumentResult]:
        """Extract the QA pairs of a batch of documents (``{"id", "text"}`` mappings)."""
        fitted = [self.fit_document(d["text"]) for d in docs]
        results = [
            DocumentResult(d["id"], [], "malformed", truncated=cut) for d, (_, cut) in zip(docs, fitted, strict=True)
        ]
        pending = list(range(len(docs)))
        for attempt in range(1 + self.config.max_retries):
            if not pending:
                break
            stage = "extract" if attempt == 0 else "retry"
            # A retry changes the seed and adds a note to the prompt: a different, cacheable call.
            params = self._params if attempt == 0 else replace(self._params, seed=self._params.seed + attempt)
            version = self.config.prompt_version
            requests = [extraction_messages(fitted[i][0], self.config.max_pairs, attempt > 0, version) for i in pending]
            still = []
            for i, (completion, cached) in zip(pending, self._calls(stage, requests, params), strict=True):
                if completion.error is not None:
                    status, answer = "error", ParsedAnswer(reason=completion.error)
                else:
                    answer = parse_pairs(completion.text)
                    status = answer.status
                self._charge(ledger, method, docs[i]["id"], stage, completion, cached, status)
                result = results[i]
                result.calls += 1
                result.cached_calls += int(cached)
                kept = without_degenerate(answer.pairs)
                result.degenerate_pairs = len(answer.pairs) - len(kept)
                if answer.pairs and not kept:  # every pair was a repetition loop: paid for, kept out
                    status, answer.reason = "degenerate", "every pair repeats itself (equal.llm.quality)"
                result.pairs, result.status, result.reason = kept, status, answer.reason
                result.hit_limit = completion.finish_reason == "length"
                if status in ("error", "malformed"):
                    still.append(i)
            pending = still

        if self.config.refine:
            self._refine(docs, fitted, results, method, ledger)
        return results

    def _refine(self, docs, fitted, results: list[DocumentResult], method: str, ledger) -> None:
        todo = [i for i, r in enumerate(results) if r.pairs]
        requests = [refinement_messages(fitted[i][0], results[i].pairs, self.config.prompt_version) for i in todo]
        for i, (completion, cached) in zip(todo, self._calls("refine", requests, self._params), strict=True):
            answer = parse_pairs(completion.text) if completion.error is None else ParsedAnswer(reason=completion.error)
            self._charge(ledger, method, docs[i]["id"], "refine", completion, cached, answer.status)
            results[i].calls += 1
            results[i].cached_calls += int(cached)
            kept = without_degenerate(answer.pairs)
            results[i].degenerate_pairs += len(answer.pairs) - len(kept)
            if kept:  # a failed refinement keeps the first-pass pairs
                results[i].pairs, results[i].refined = kept, True
                results[i].hit_limit = completion.finish_reason == "length"

    def map_batches(self, batches: list[list[dict]], method: str) -> Iterator[tuple[list[DocumentResult], list]]:
        """Extract each batch, yielding its results and the :class:`CallRecord` list of its calls, in batch order
        (here one after the other; :class:`equal.scale.executor.RayExtractor` spreads them over workers)."""
        for batch in batches:
            ledger = CostLedger()
            results = self.extract_batch(batch, method, ledger)
            yield results, ledger.records

    def extract(
        self,
        docs: Iterable[dict],
        method: str = "extraction",
        ledger: CostLedger | None = None,
        progress: bool = True,
        report: ExtractionReport | None = None,
    ) -> list[DocumentResult]:
        """Extract every document, with a progress bar showing docs/s and new tokens/s."""
        docs = list(docs)
        report = report if report is not None else ExtractionReport()
        size = max(1, self.backend.batch_size)
        batches = [docs[offset : offset + size] for offset in range(0, len(docs), size)]
        results: list[DocumentResult] = []
        start = time.perf_counter()
        bar = tqdm(total=len(docs), desc=f"extract [{method}]", unit="doc", disable=not progress)
        run_tokens = 0  # tokens of new (uncached) calls in this run, for the tokens/s display
        for batch, records in self.map_batches(batches, method):
            results.extend(batch)
            for result in batch:
                report.documents += 1
                report.outcomes[result.status] += 1
                report.pairs += len(result.pairs)
                report.degenerate_pairs += result.degenerate_pairs
                report.token_limit_documents += int(result.hit_limit)
                report.new_calls += result.calls - result.cached_calls
                report.cached_calls += result.cached_calls
            for record in records:  # the driver is the ledger's one writer, in document order
                if ledger is not None:
                    ledger.add(record)
            fresh = sum(r.prompt_tokens + r.completion_tokens for r in records if not r.cached)
            report.new_tokens += fresh if ledger is not None else 0
            run_tokens += fresh
            elapsed = time.perf_counter() - start
            bar.update(len(batch))
            bar.set_postfix(
                ok=report.outcomes["ok"] + report.outcomes["repaired"],
                new_tok_s=f"{run_tokens / max(elapsed, 1e-9):.0f}",
            )
        bar.close()
        report.wall_s += time.perf_counter() - start
        return results


def pairs_records(results: list[DocumentResult], docs: list[dict], method: str) -> list[dict]:
    """Flat QA records with provenance (document id, source, domain, pair index) for JSONL output."""
    by_id = {d["id"]: d for d in docs}
    records = []
    for result in results:
        doc = by_id.get(result.doc_id, {})
        for index, pair in enumerate(result.pairs):
            records.append(
                {
                    "method": method,
                    "doc_id": result.doc_id,
                    "pair_index": index,
                    "question": pair["question"],
                    "answer": pair["answer"],
                    "source": doc.get("source"),
                    "domain": doc.get("domain"),
                    "refined": result.refined,
                    "hit_token_limit": result.hit_limit,
                }
            )
    return records


def make_extractor(llm: dict, extraction: dict, seed: int = 0, cache_path: str | Path | None = None) -> QAExtractor:
    """The extractor a profile describes: backend (``llm``), decoding (``extraction``), the shared call cache.

    ``llm["executor"]`` says where the calls run: absent or ``{kind: local}``, in this process; ``{kind: ray,
    workers: N, ...}``, on Ray actors (:class:`equal.scale.executor.RayExtractor`, the ``scale`` extra).
    """
    from equal.llm.backends import make_backend
    from equal.paths import llm_cache_path

    llm = dict(llm)
    executor = dict(llm.pop("executor", None) or {"kind": "local"})
    kind = executor.pop("kind", "local")
    cache = CallCache(llm_cache_path(cache_path))
    config = ExtractionConfig(seed=seed, **extraction)
    if kind == "ray":
        from equal.scale.executor import RayExtractor

        return RayExtractor(llm, cache, config, **executor)
    if kind != "local":
        raise ConfigError(f"llm.executor.kind must be 'local' or 'ray', got {kind!r}")
    return QAExtractor(make_backend(llm), cache, config)
