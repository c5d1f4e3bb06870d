"""LLM-scoring: the extractor LLM rates how useful each QA pair is for the target task, 1 (useless) to 5 (ideal).

The LLM-scoring baseline of the paper keeps the best-rated pairs. Rating prompts are versioned like the extraction
prompts (the version is part of every cache key); a rating is asked for as JSON, ``{"rating": N}``, under a schema
where the backend supports one. An answer that is not a rating from 1 to 5 is counted and rates 0 — never fatal.
Calls go through the extractor's engine, cache and ledger (stage ``rate``), priced like extraction calls.
"""

from __future__ import annotations

import json

from equal.llm.prompts import ChatPrompt, pick_prompt
from equal.llm.types import GenerationParams, Messages

RATING_PROMPTS = {
    "qa-rate-v1": ChatPrompt(
        "qa-rate-v1",
        system="You judge instruction-tuning data. Reply with JSON only.",
        user=(
            "A model is being trained to solve tasks like these examples:\n{examples}\n\n"
            "Rate how useful the question-answer pair below is as training data for that model, from 1 (useless: "
            "off-topic, wrong or incomplete) to 5 (ideal: a task of the same kind with a correct, complete "
            'solution). Reply as {{"rating": N}}.\n\nQuestion: {question}\nAnswer: {answer}'
        ),
    ),
}
RATING_VERSION = "qa-rate-v1"
RATING_SCHEMA = {
    "type": "object",
    "properties": {"rating": {"type": "integer", "minimum": 1, "maximum": 5}},
    "required": ["rating"],
}
MAX_CHARS = 1500  # of a question, an answer or an example shown in the prompt


def rating_messages(pair: dict, examples: list[dict], version: str = RATING_VERSION) -> Messages:
    """Chat messages asking for the rating of ``pair`` against the target's ``examples`` (question/solution)."""
    prompt = pick_prompt(RATING_PROMPTS, version, "rating")
    shown = "\n\n".join(f"Example {i + 1}:\nQuestion: {e['question'][:MAX_CHARS]}\n"
                        f"Answer: {(e.get('solution') or e.get('answer') or '')[:MAX_CHARS]}"
                        for i, e in enumerate(examples))  # fmt: skip
    return prompt.messages(examples=shown, question=pair["question"][:MAX_CHARS], answer=pair["answer"][:MAX_CHARS])


def parse_rating(text: str) -> int | None:
    """The rating in an answer (an integer from 1 to 5), or None when there is none."""
    try:
        value = json.loads(text.strip()).get("rating")
    except (json.JSONDecodeError, AttributeError):
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        return None
    return int(value) if 1 <= value <= 5 else None


def rate_pairs(extractor, pairs: list[dict], examples: list[dict], method: str, ledger=None,
               version: str = RATING_VERSION) -> tuple[list[int], int]:  # fmt: skip
    """Rate every pair with ``extractor``'s LLM (cached, charged to ``ledger`` under ``method``); return the
    ratings (0 for an answer that holds none) and how many answers held none."""
    params = GenerationParams(max_tokens=16, temperature=0.0, seed=extractor.config.seed, json_schema=RATING_SCHEMA)
    requests = [rating_messages(p, examples, version) for p in pairs]
    ratings, malformed = [], 0
    for pair, (completion, cached) in zip(pairs, extractor.ask(f"rate:{version}", requests, params), strict=True):
        rating = parse_rating(completion.text) if completion.error is None else None
        malformed += rating is None
        extractor.charge(ledger, method, str(pair.get("doc_id", "")), "rate", completion, cached,
                         "ok" if rating is not None else "malformed")  # fmt: skip
        ratings.append(rating or 0)
    return ratings, malformed
