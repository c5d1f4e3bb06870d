"""Extraction and refinement prompts, in one place and versioned.

Bump ``PROMPT_VERSION`` whenever a prompt or the schema changes: it is part of every cache key,
so old answers are never reused for a new prompt. The instruction comes before the document so
that backends with prefix caching (llama.cpp, vLLM) evaluate it once for all documents.
"""

from __future__ import annotations

import json

from equal.llm.types import Messages

PROMPT_VERSION = "qa-extract-v1"

SYSTEM = "You turn documents into question-answer pairs for instruction tuning. Reply with JSON only."

EXTRACT = (
    "Write up to {max_pairs} question-answer pairs that the document below supports.\n"
    "- Each question must be self-contained: answerable without seeing the document.\n"
    "- Each answer must be correct and complete; keep the document's worked steps when it has them.\n"
    "- Skip boilerplate and references.\n"
    'Format: {{"pairs": [{{"question": "...", "answer": "..."}}]}}\n\n'
    "Document:\n"
)

REFINE = (
    "Improve these question-answer pairs extracted from the document below: fix formatting, make each "
    "question self-contained, complete missing or partial answers, correct errors, and drop pairs the "
    'document does not support. Keep the same JSON format: {{"pairs": [{{"question": "...", "answer": "..."}}]}}\n\n'
    "Pairs:\n{pairs}\n\nDocument:\n"
)

RETRY_NOTE = "\n\nYour previous reply was not valid JSON in the required format. Reply with the JSON object only."


def qa_schema(max_pairs: int) -> dict:
    """JSON schema of an answer: ``{"pairs": [{"question": str, "answer": str}, ...]}``."""
    pair = {
        "type": "object",
        "properties": {"question": {"type": "string"}, "answer": {"type": "string"}},
        "required": ["question", "answer"],
    }
    return {
        "type": "object",
        "properties": {"pairs": {"type": "array", "items": pair, "maxItems": max_pairs}},
        "required": ["pairs"],
    }


def extraction_messages(document: str, max_pairs: int, retry: bool = False) -> Messages:
    """Chat messages asking for the QA pairs of ``document``."""
    user = EXTRACT.format(max_pairs=max_pairs) + document + (RETRY_NOTE if retry else "")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def refinement_messages(document: str, pairs: list[dict]) -> Messages:
    """Chat messages asking to refine already extracted ``pairs`` (the paper's second pass)."""
    shown = json.dumps({"pairs": pairs}, ensure_ascii=False, indent=1)
    user = REFINE.format(pairs=shown) + document
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def prompt_overhead(max_pairs: int) -> str:
    """The fixed text around a document (to budget the document's share of the context)."""
    return SYSTEM + EXTRACT.format(max_pairs=max_pairs) + RETRY_NOTE
