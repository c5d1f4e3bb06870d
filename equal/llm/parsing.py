"""Turning an LLM answer into QA pairs — never raising, always saying what went wrong."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import json_repair

_FENCE = re.compile(r"^\s*```(?:json)?\s*|\s*```\s*$", re.IGNORECASE)
_PAIR_KEYS = ("pairs", "qa_pairs", "qa", "questions", "items", "data")


@dataclass
class ParsedAnswer:
    """Pairs found in one answer, and the outcome: ``ok``, ``empty``, ``repaired`` or ``malformed``."""

    pairs: list[dict] = field(default_factory=list)
    status: str = "malformed"
    reason: str = ""
    dropped_items: int = 0  # items of the list that were not usable pairs

    @property
    def well_formed(self) -> bool:
        """The answer was valid JSON in the expected shape (possibly with zero pairs)."""
        return self.status in ("ok", "empty")


def _as_text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        return "\n".join(str(v) for v in value).strip()
    return ""


def _pair_list(obj: object) -> list | None:
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict):
        for key in _PAIR_KEYS:
            if isinstance(obj.get(key), list):
                return obj[key]
        if "question" in obj and "answer" in obj:
            return [obj]
    return None


def parse_pairs(text: str | None) -> ParsedAnswer:
    """Parse ``{"pairs": [{"question", "answer"}]}`` (or close variants) from an LLM answer.

    Strict JSON first; then ``json_repair`` for truncated or slightly broken JSON (status
    ``repaired``). Items without a non-empty question and answer are dropped and counted.
    """
    if text is None or not text.strip():
        return ParsedAnswer(reason="empty answer")
    cleaned = _FENCE.sub("", text.strip())
    status = "ok"
    try:
        obj = json.loads(cleaned)
    except json.JSONDecodeError as exc:
        try:
            obj = json_repair.loads(cleaned)
        except Exception as repair_exc:  # json_repair promises not to raise; never trust that here
            return ParsedAnswer(reason=f"invalid JSON ({exc.msg}); repair failed ({repair_exc!r})")
        status = "repaired"
        reason = f"invalid JSON repaired ({exc.msg} at char {exc.pos})"
    items = _pair_list(obj)
    if items is None:
        return ParsedAnswer(reason=f"no list of pairs in the answer (got {type(obj).__name__})")
    pairs, dropped = [], 0
    for item in items:
        question = _as_text(item.get("question")) if isinstance(item, dict) else ""
        answer = _as_text(item.get("answer")) if isinstance(item, dict) else ""
        if question and answer:
            pairs.append({"question": question, "answer": answer})
        else:
            dropped += 1
    if status == "repaired":
        return ParsedAnswer(pairs, "repaired" if pairs else "malformed", reason, dropped)
    if not pairs:
        return ParsedAnswer([], "empty", "no usable pair" if items else "document has no pairs", dropped)
    return ParsedAnswer(pairs, "ok", "", dropped)
