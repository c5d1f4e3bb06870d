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


_JSON_ESCAPES = set('"\\/bfnrtu')
_HEX = set("0123456789abcdefABCDEF")
# LaTeX commands that start like a JSON escape (\n, \b, \f, \r, \t) and are never meant as one.
_LATEX_AFTER_N = ("neq", "ne", "nu", "nabla", "not", "notin", "newline", "nleq", "ngeq", "nmid", "nparallel")


def _is_latex(text: str, i: int) -> bool:
    r"""Is the backslash at ``text[i]`` the start of a LaTeX command rather than a JSON escape?"""
    rest = text[i + 1 : i + 12]
    if not rest or rest[0] not in _JSON_ESCAPES:
        return True  # \sqrt, \cdot, \left ... are invalid JSON escapes anyway
    if rest[0] == "u":
        return not (len(rest) >= 5 and all(c in _HEX for c in rest[1:5]))  # \underline vs \u00e9
    if rest[0] in "bfrt":
        return len(rest) > 1 and rest[1].isascii() and rest[1].isalpha()  # \frac, \times, \beta, \right
    if rest[0] == "n":
        word = re.match(r"n[a-zA-Z]*", rest).group(0)
        return word in _LATEX_AFTER_N
    return False


def fix_latex_escapes(text: str) -> str:
    r"""Double the backslashes of LaTeX commands written unescaped inside JSON strings.

    Small models write ``"\frac{1}{2}"`` in JSON, which a JSON parser reads as a form feed followed
    by ``rac{1}{2}``. Escapes that are JSON (``\n`` before ordinary words, ``\"``, ``\\``,
    ``\u00e9``) are left alone.
    """
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] == "\\":
            out.append("\\\\")
            i += 2
            continue
        if char == "\\" and _is_latex(text, i):
            out.append("\\\\")
        else:
            out.append(char)
        i += 1
    return "".join(out)


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
    cleaned = fix_latex_escapes(_FENCE.sub("", text.strip()))
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
