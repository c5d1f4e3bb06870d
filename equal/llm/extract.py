"""QA extraction from documents: prompt → (cached) LLM call → parse → bounded retry → refine → quality gate.

:class:`QAExtractor` is what every later notebook calls. A malformed answer never stops a run: it
gets one retry (``max_retries``), then the document is recorded as having no QA pairs, with the
reason. Each pair is then refined and verified (:mod:`equal.llm.refine`, when the extractor has a
refiner), and pairs failing a hard check — degenerate, cut at the token limit, an unverified refined
problem, code that does not parse — are dropped and counted (``quality_gate: keep`` keeps them).
Every call goes through the :class:`~equal.llm.cache.CallCache` (so an interrupted run resumes
without repeating a completed call) and into the :class:`~equal.llm.ledger.CostLedger`.
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
from equal.llm.prompts import PROMPT_VERSION, extraction_messages, get_prompt, prompt_overhead, qa_schema
from equal.llm.quality import hard_check_failures, without_degenerate
from equal.llm.refine import (
    PairRefiner,
    RefinementConfig,
    finished_pair,
    get_refine_prompt,
    outcome_counts,
    pick_examples,
)
from equal.llm.types import Completion, GenerationParams, Messages
from equal.progress import tqdm
from equal.registry import Registry


@dataclass(frozen=True)
class ExtractionConfig:
    """Extraction parameters (all of them shape the prompt or the decoding, hence the cache key)."""

    max_pairs: int = 3  # pairs asked per document (a cap keeps CPU extraction affordable)
    max_tokens: int = 320  # completion budget per call
    temperature: float = 0.0
    seed: int = 0
    constrain_json: bool = True  # grammar / JSON mode where the backend supports it
    max_retries: int = 1  # extra calls for a malformed answer
    max_document_tokens: int | None = None  # None: whatever fits the context
    repeat_penalty: float = 1.0  # decoding: > 1 discourages the repetition loops small models fall into
    prompt_version: str = PROMPT_VERSION  # which prompt of equal.llm.prompts.PROMPTS
    quality_gate: str = "drop"  # drop | keep: pairs failing a hard check (equal.llm.quality.hard_check_failures)

    def __post_init__(self) -> None:
        if self.quality_gate not in ("drop", "keep"):
            raise ConfigError(f"extraction.quality_gate must be 'drop' or 'keep', got {self.quality_gate!r}")


#: How a document's extraction can end (:attr:`DocumentResult.status`): every one a legitimate outcome of a real
#: model's reply, counted, never a crash.
DOCUMENT_STATUSES = ("ok", "repaired", "empty", "degenerate", "malformed", "error")


@dataclass
class DocumentResult:
    """The QA pairs of one document and how they were obtained."""

    doc_id: str
    pairs: list[dict]
    status: str  # one of DOCUMENT_STATUSES
    reason: str = ""
    calls: int = 0
    cached_calls: int = 0
    truncated: bool = False  # the document was cut to fit the context
    refined: bool = False
    hit_limit: bool = False  # the call that produced the pairs stopped at the token limit
    degenerate_pairs: int = 0  # pairs dropped for runaway repetition (equal.llm.quality.is_degenerate)
    drafts: list[dict] = field(default_factory=list)  # every extracted pair before refinement and the gate
    refinement: Counter = field(default_factory=Counter)  # "kind/outcome" of each draft's refinement
    gate_dropped: Counter = field(default_factory=Counter)  # pairs the quality gate dropped, by failed check


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
    draft_pairs: int = 0  # pairs extracted before refinement and the quality gate
    refinement: Counter = field(default_factory=Counter)  # "kind/outcome" per draft pair
    gate_dropped: Counter = field(default_factory=Counter)  # by the hard check that failed

    def add(self, result: DocumentResult) -> None:
        """Count one document's result."""
        self.documents += 1
        self.outcomes[result.status] += 1
        self.pairs += len(result.pairs)
        self.draft_pairs += len(result.drafts)
        self.degenerate_pairs += result.degenerate_pairs
        self.token_limit_documents += int(result.hit_limit)
        self.new_calls += result.calls - result.cached_calls
        self.cached_calls += result.cached_calls
        self.refinement.update(result.refinement)
        self.gate_dropped.update(result.gate_dropped)

    @property
    def well_formed_share(self) -> float:
        """Share of documents whose final answer was valid JSON of the expected shape (ok or empty).

        Answers that needed ``json_repair`` (usually cut by the token budget) do not count.
        """
        good = self.outcomes["ok"] + self.outcomes["empty"]
        return good / self.documents if self.documents else 0.0

    def as_dict(self) -> dict:
        """JSON-able form."""
        return {**asdict(self), "outcomes": dict(self.outcomes), "refinement": dict(sorted(self.refinement.items())),
                "gate_dropped": dict(sorted(self.gate_dropped.items())),
                "well_formed_share": round(self.well_formed_share, 4)}  # fmt: skip


#: Bump when the way answers become pairs changes (parsing, dropping degenerate pairs): finished method runs,
#: whose pairs were made the old way, are then recomputed from the cached answers.
PAIRS_VERSION = 11  # 2: pairs with runaway repetition are dropped and counted; 3: refinement and quality gate;
#                    4: a quantity asked for and answered with a number is a problem to solve (equal.llm.refine);
#                    5: refine-v4 drops a concept "question" that asks nothing (strict_failures: not_a_question);
#                    6: a worked answer must be one of its working's results when it computes any (answer_in_working);
#                    7: a concept answer naming a name or number its document never states is unsupported;
#                    8: the document decides the kind first (a snippet: code; a stated numeric answer: a problem), a
#                    problem's numbers must be its document's, a working must end on its answer, refinement.kinds;
#                    9: a problem whose question states no number is dropped (invented_numbers);
#                    10: code whose functions take nothing or return a constant is dropped (trivial_code);
#                    11: only numbers after a working's last result are read against its answer; a snippet document
#                    may hold several Python blocks (line-anchored fences, no other language)


class QAExtractor:
    """Extract QA pairs from documents with one backend, one cache and one configuration; ``refiner`` (None: no
    refinement) refines and verifies each pair, through its own backend and the same cache."""

    def __init__(self, backend, cache: CallCache, config: ExtractionConfig | None = None,
                 refiner: PairRefiner | None = None) -> None:  # fmt: skip
        self.backend = backend
        self.cache = cache
        self.config = config or ExtractionConfig()
        self.refiner = refiner
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

    @property
    def refinement_identity(self) -> dict | None:
        """What refined pairs depend on besides the drafts (None without refinement): part of run fingerprints."""
        return self.refiner.identity if self.refiner is not None else None

    # -------------------------------------------------------------- calls

    def _calls(self, stage: str, requests: list[Messages], params: GenerationParams, backend=None,
               version: str | None = None) -> list[tuple[Completion, bool]]:  # fmt: skip
        """Answer each request exactly once across every worker sharing the cache: stored answers are read, the
        rest are called (streamed from the backend, each stored as it arrives) or waited for when another worker
        is already making that call. ``backend`` and ``version`` default to the extractor's own."""
        backend = backend or self.backend
        version = version or self.config.prompt_version
        keys = [call_key(backend.kind, backend.model_id, f"{version}/{stage}", params, m) for m in requests]
        meta = CallMeta(backend.kind, backend.model_id, version, stage)
        return self.cache.resolve(keys, lambda positions: stream_answers(backend, requests, positions, params), meta)

    def ask(self, stage: str, requests: list[Messages], params: GenerationParams) -> list[tuple[Completion, bool]]:
        """Answer chat requests other than extraction (e.g. ratings) through this extractor's backend and cache:
        (completion, whether it came from the cache) per request. ``stage`` names the kind of call in its cache
        key (with the prompt version)."""
        return self._calls(stage, requests, params)

    def charge(self, ledger, method: str, doc_id: str, stage: str, completion: Completion, cached: bool,
               status: str) -> None:  # fmt: skip
        """Charge one call to ``ledger`` (nothing when it is None)."""
        self._charge(ledger, method, doc_id, stage, completion, cached, status)

    def _charge(self, ledger, method, doc_id, stage, completion: Completion, cached: bool, status: str,
                backend=None) -> None:  # fmt: skip
        backend = backend or self.backend
        if ledger is not None:
            ledger.add(
                CallRecord(
                    method=method,
                    doc_id=doc_id,
                    stage=stage,
                    backend=backend.kind,
                    model_id=backend.model_id,
                    n_params=backend.n_params,
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
                cut = completion.finish_reason == "length"
                for index, pair in enumerate(answer.pairs):  # a cut answer cuts its last pair only
                    pair["hit_token_limit"] = cut and index == len(answer.pairs) - 1
                kept = without_degenerate(answer.pairs)
                result.degenerate_pairs = len(answer.pairs) - len(kept)
                if answer.pairs and not kept:  # every pair was a repetition loop: paid for, kept out
                    status, answer.reason = "degenerate", "every pair repeats itself (equal.llm.quality)"
                result.pairs, result.status, result.reason = kept, status, answer.reason
                result.hit_limit = completion.finish_reason == "length"
                if status in ("error", "malformed"):
                    still.append(i)
            pending = still

        return self.finish(docs, results, method, ledger)

    def finish(self, docs: list[dict], results: list[DocumentResult], method: str,
               ledger: CostLedger | None = None) -> list[DocumentResult]:  # fmt: skip
        """The second half of extraction: keep each document's pairs as drafts, refine and verify them (when the
        extractor has a refiner), then apply the quality gate; ``results`` are updated in place and returned."""
        for result in results:
            result.drafts = [dict(p) for p in result.pairs]
        if self.refiner is not None:
            self._refine(docs, results, method, ledger)
        for result in results:
            self._gate(result)
        return results

    def _refine(self, docs: list[dict], results: list[DocumentResult], method: str, ledger) -> None:
        """Refine and verify every pair (:class:`~equal.llm.refine.PairRefiner`), charging each call."""
        refiner = self.refiner
        version = refiner.config.prompt_version

        def call(requests, params):
            return self._calls("refine", requests, params, refiner.backend, version)

        rows = refiner.refine([d["text"] for d in docs], [r.pairs for r in results], call)
        for doc, result, row in zip(docs, results, rows, strict=True):
            for item in row:
                for completion, cached in item.records:
                    self._charge(ledger, method, doc["id"], "refine", completion, cached, item.outcome,
                                 refiner.backend)  # fmt: skip
                    result.calls += 1
                    result.cached_calls += int(cached)
            result.refinement.update(outcome_counts(row))
            result.pairs = []
            for item in row:
                if item.pair is not None:
                    accepted = not item.outcome.startswith("kept_draft")
                    pair = finished_pair(item, refiner.backend.model_id)
                    cut = False if accepted else item.draft.get("hit_token_limit", result.hit_limit)
                    result.pairs.append({**pair, "hit_token_limit": cut})
            result.refined = True

    def _gate(self, result: DocumentResult) -> None:
        """Drop (or, with ``quality_gate: keep``, only count) the pairs that fail a hard check."""
        kept = []
        for pair in result.pairs:
            failures = hard_check_failures(pair, bool(pair.get("hit_token_limit", result.hit_limit)))
            for failure in failures:
                result.gate_dropped[failure] += 1
            if not failures or self.config.quality_gate == "keep":
                kept.append(pair)
        if self.config.quality_gate == "drop":
            result.pairs = kept

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
                report.add(result)
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


#: What a refined pair carries beside its question and answer (:func:`equal.llm.refine.finished_pair`).
REFINEMENT_FIELDS = ("draft_question", "draft_answer", "reference_answer", "kind", "refinement", "refine_attempts",
                     "refiner", "program", "votes", "document_answer")  # fmt: skip


def draft_records(results: list[DocumentResult]) -> list[dict]:
    """Every pair as extracted, before refinement and the quality gate (``question``, ``answer``,
    ``hit_token_limit``): the "before" side of the quality table."""
    return [{"hit_token_limit": r.hit_limit, **p, "doc_id": r.doc_id} for r in results for p in r.drafts]


def pairs_records(results: list[DocumentResult], docs: list[dict], method: str) -> list[dict]:
    """Flat QA records with provenance (document id, source, domain, pair index) for JSONL output."""
    by_id = {d["id"]: d for d in docs}
    records = []
    for result in results:
        doc = by_id.get(result.doc_id, {})
        for index, pair in enumerate(result.pairs):
            record = {
                "method": method,
                "doc_id": result.doc_id,
                "pair_index": index,
                "question": pair["question"],
                "answer": pair["answer"],
                "source": doc.get("source"),
                "domain": doc.get("domain"),
                "refined": result.refined,
                "hit_token_limit": bool(pair.get("hit_token_limit", result.hit_limit)),
            }
            # a refined pair's provenance: its draft, the answer it was verified against, its kind and outcome
            record.update({k: pair[k] for k in REFINEMENT_FIELDS if k in pair})
            if doc.get("metadata"):  # a user record's own fields (its id, source, ...): the pair's way back to it
                record["metadata"] = doc["metadata"]
            records.append(record)
    return records


def make_refiner(llm: dict, refinement: dict | None, cache: CallCache, backend=None,
                 load_reference=None) -> PairRefiner | None:  # fmt: skip
    """The refiner a profile describes (None when ``refinement`` is empty or ``enabled: false``).

    ``refinement`` holds :class:`~equal.llm.refine.RefinementConfig`'s fields plus ``examples_from`` (pair kind →
    the target whose D_r solutions are its style examples, read with ``load_reference(target)``; in ``equal
    select``, the user's reference set). The model is ``llm["refiner"]`` (a backend specification), else the
    extractor's own ``backend`` — also when ``llm["refiner"]`` names the extractor's model with its settings: one
    loaded copy serves both (issue 39: a second copy of the same weights only costs memory).
    """
    from equal.llm.backends import make_backend

    settings = dict(refinement or {})
    if not settings or not settings.pop("enabled", True):
        return None
    examples_from = settings.pop("examples_from", None) or {}
    config = RefinementConfig(**settings)
    examples = {}
    for kind, target in examples_from.items():
        if target is None:  # a profile without that target: instructions alone
            continue
        if load_reference is None:
            raise ConfigError("refinement.examples_from needs the reference sets (load_reference)")
        with_tests = kind == "code" and get_refine_prompt(config.prompt_version).program_answers
        examples[kind] = pick_examples(load_reference(target), config.examples, config.seed, with_tests)
    spec = llm.get("refiner")
    extractor_spec = {k: v for k, v in llm.items() if k not in ("refiner", "executor")}
    if spec and backend is not None and {k: v for k, v in spec.items() if k != "executor"} == extractor_spec:
        spec = None  # the extractor's own model and settings: share its loaded backend instead of a second copy
    refiner_backend = make_backend({k: v for k, v in spec.items() if k != "executor"}) if spec else backend
    if refiner_backend is None:
        refiner_backend = make_backend({k: v for k, v in llm.items() if k not in ("refiner", "executor")})
    return PairRefiner(refiner_backend, cache, config, examples)


def with_every_kind(extractor: QAExtractor) -> QAExtractor:
    """``extractor`` refining every pair kind, whatever its ``refinement.kinds``: the warm-up's pairs align the
    embedder (a question near its document), which asks no answer to be verified, only the pair to be about its
    document; the kinds a profile keeps decide what is trained on and rewarded. Same backend, cache and settings."""
    from equal.llm.refine import KINDS

    refiner = extractor.refiner
    if type(extractor) is not QAExtractor or refiner is None or refiner.config.kinds == KINDS:
        return extractor  # a scale-out extractor refines as its workers were built
    wide = PairRefiner(refiner.backend, refiner.cache, replace(refiner.config, kinds=KINDS), refiner.examples)
    return QAExtractor(extractor.backend, extractor.cache, extractor.config, wide)


#: Where an extractor's calls run besides this process (``llm.executor.kind``), imported when first used: the
#: extraction engine names the scale-out without depending on it
EXECUTORS: Registry = Registry("executor (llm.executor.kind; 'local' runs in this process)")
EXECUTORS.register("ray", "equal.scale.executor:RayExtractor")


def make_extractor(llm: dict, extraction: dict, seed: int = 0, cache_path: str | Path | None = None,
                   refinement: dict | None = None, load_reference=None) -> QAExtractor:  # fmt: skip
    """The extractor a profile describes: backend (``llm``), decoding (``extraction``), refinement
    (``refinement``, see :func:`make_refiner`), the shared call cache.

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
    if kind != "local":
        recipe = {"llm": llm, "refinement": refinement,
                  "references": _references_for(refinement, load_reference)}  # fmt: skip
        return EXECUTORS.build(kind, llm, cache, config, refinement=recipe, **executor)
    backend = make_backend({k: v for k, v in llm.items() if k != "refiner"})
    refiner = make_refiner(llm, refinement, cache, backend, load_reference)
    return QAExtractor(backend, cache, config, refiner)


def _references_for(refinement: dict | None, load_reference) -> dict[str, list[dict]]:
    """The D_r sets a refinement's examples come from, read on the driver (Ray workers cannot read artifacts)."""
    targets = set(((refinement or {}).get("examples_from") or {}).values()) - {None}
    return {t: load_reference(t) for t in sorted(targets)} if targets and load_reference else {}
