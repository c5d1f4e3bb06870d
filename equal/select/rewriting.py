"""Rewriting: synthetic data from the reference set instead of documents — the paper's Rewriting baseline.

The extractor LLM is shown one D_r item at a time (seeded order, cycling) and asked for new problems of the same
kind with worked solutions, under a versioned prompt and the extraction JSON schema, sampling at ``temperature``.
Each call is numbered in its prompt, so calls differ even on the same item, and every one is cached and resumable
like an extraction call (calls are batched like extraction).
Generated pairs are kept when they are new — not a D_r question, not a repeat of a pair already kept (normalised
text) — and clean: no 13-word overlap with any evaluation item (the corpus's decontamination test). They then go
through ``finish`` — in a method run, the refinement pass and quality gate every extracted pair goes through
(:meth:`equal.select.runner.MethodRunner.refine_generated`) — and only the pairs it keeps count. Generation stops
once ``wanted`` pairs are kept or after ``max_calls``. Calls are charged to the ledger (stage ``rewrite``; the
refiner's calls stage ``refine``).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from equal.data.decontam import Decontaminator
from equal.data.dedup import normalized_words
from equal.data.targets import evaluation_text
from equal.errors import ConfigError
from equal.llm.parsing import parse_pairs
from equal.llm.prompts import ChatPrompt, pick_prompt, qa_schema
from equal.llm.quality import FINAL_ANSWER, without_degenerate
from equal.llm.types import GenerationParams, Messages

REWRITE_PROMPTS = {
    "qa-rewrite-v1": ChatPrompt(
        "qa-rewrite-v1",
        system="You write instruction-tuning data: new practice problems with worked solutions. Reply with JSON only.",
        user=(
            "Here is an example problem with its solution:\n\nProblem: {question}\nSolution: {solution}\n\n"
            "Set {index}. Write {pairs} new problems of the same kind and difficulty — different situations, names "
            "and numbers, not copies — each with a correct step-by-step solution. A problem's solution ends with the "
            f"line '{FINAL_ANSWER} <final answer>'; a programming task's answer is working Python code in a ```python "
            "block."
            '\nFormat: {{"pairs": [{{"question": "...", "answer": "..."}}]}}'
        ),
    ),
}
REWRITE_VERSION = "qa-rewrite-v1"
#: Bump when the way generated pairs become Rewriting's set changes: 2: refined and gated like extracted pairs.
REWRITE_PAIRS_VERSION = 2


def rewrite_messages(seed_item: dict, pairs: int, index: int = 0, version: str = REWRITE_VERSION) -> Messages:
    """Chat messages asking for ``pairs`` new problems like ``seed_item`` (a D_r question with its solution);
    ``index`` numbers the call, so that two calls on the same item are two different (cacheable) requests."""
    solution = seed_item.get("solution") or seed_item.get("answer") or ""
    return pick_prompt(REWRITE_PROMPTS, version, "rewriting").messages(
        question=seed_item["question"], solution=solution, pairs=pairs, index=index + 1
    )


def _normal(text: str) -> str:
    return " ".join(normalized_words(text))


def rewrite_from_seeds(
    extractor,
    seeds: list[dict],
    wanted: int,
    protected: list[tuple[str, str]],
    method: str,
    ledger=None,
    seed: int = 0,
    pairs_per_call: int = 2,
    temperature: float = 0.8,
    max_calls: int | None = None,
    version: str = REWRITE_VERSION,
    finish: Callable[[list[dict]], list[dict]] | None = None,
) -> tuple[list[dict], dict]:
    """Generate up to ``wanted`` new pairs from the D_r ``seeds`` with ``extractor``'s LLM (cached, charged to
    ``ledger``); ``protected``: (id, text) of evaluation items no pair may overlap. ``finish`` (None: keep them as
    generated) turns new, clean pairs into the pairs to keep — refined, gated, some dropped — and is given no more
    than are still wanted, so that nothing is refined that is not needed. Returns the pairs (each with the id of the
    seed it came from) and counts of what was dropped and why."""
    counts = {"calls": 0, "generated": 0, "duplicates": 0, "contaminated": 0, "malformed": 0}
    if finish is not None:
        counts["finish_dropped"] = 0  # new and clean, then dropped by refinement or the quality gate
    if not seeds or wanted <= 0:
        return [], counts
    order = list(seeds)
    random.Random(f"rewrite-{seed}").shuffle(order)
    clean = Decontaminator(13).fit(protected)
    seen = {_normal(s["question"]) for s in seeds}  # a D_r question is not new
    kept: list[dict] = []
    waiting: list[dict] = []  # new, clean pairs not yet finished (a batch may bring more than are still wanted)
    limit = max_calls if max_calls is not None else 3 * (wanted // max(pairs_per_call, 1) + 1)
    schema = qa_schema(pairs_per_call) if extractor.config.constrain_json else None
    batch = max(1, getattr(extractor.backend, "batch_size", 1))
    params = GenerationParams(max_tokens=extractor.config.max_tokens, temperature=temperature, seed=seed,
                              json_schema=schema, repeat_penalty=extractor.config.repeat_penalty)  # fmt: skip
    while len(kept) < wanted:
        if waiting:
            need = wanted - len(kept)
            batch_pairs, waiting = waiting[:need], waiting[need:]
            finished = batch_pairs if finish is None else finish(batch_pairs)
            if finish is not None:
                counts["finish_dropped"] += len(batch_pairs) - len(finished)
            kept.extend(finished)  # never more than were still wanted: finish only drops
            continue
        if counts["calls"] >= limit:
            break
        calls = range(counts["calls"], min(counts["calls"] + batch, limit))
        items = [order[i % len(order)] for i in calls]
        requests = [rewrite_messages(item, pairs_per_call, i, version) for i, item in zip(calls, items, strict=True)]
        answers = extractor.ask(f"rewrite:{version}", requests, params)
        for item, (completion, cached) in zip(items, answers, strict=True):
            counts["calls"] += 1
            parsed = parse_pairs(completion.text) if completion.error is None else None
            status = parsed.status if parsed is not None else "error"
            extractor.charge(ledger, method, f"dr:{item.get('id', '')}", "rewrite", completion, cached, status)
            if parsed is None or not parsed.pairs:
                counts["malformed"] += 1
                continue
            cut = completion.finish_reason == "length"
            for index, pair in enumerate(parsed.pairs):  # a cut answer cuts its last pair only (as extraction's)
                pair["hit_token_limit"] = cut and index == len(parsed.pairs) - 1
            for pair in without_degenerate(parsed.pairs):
                counts["generated"] += 1
                key = _normal(pair["question"])
                if key in seen:
                    counts["duplicates"] += 1
                    continue
                if clean.match(f"{pair['question']}\n{pair['answer']}") is not None:
                    counts["contaminated"] += 1
                    continue
                seen.add(key)
                waiting.append({**pair, "seed_item": item.get("id"), "doc_id": f"dr:{item.get('id', '')}"})
    return kept, counts


def protected_items(artifacts) -> list[tuple[str, str]]:
    """(id, text) of every declared task's evaluation items the profile prepared (none when there are none), in the
    form the corpus's decontamination indexes them."""
    try:
        tasks = artifacts.load_tasks()
    except (FileNotFoundError, ConfigError):
        return []
    return [(str(item.get("id")), evaluation_text(item)) for name in tasks if artifacts.evaluation_file(name).is_file()
            for item in artifacts.load_evaluation(name)]  # fmt: skip
