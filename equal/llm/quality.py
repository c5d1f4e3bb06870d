"""Automatic checks of an extracted QA pair: is it fit to train on?

A pair is checked for what a reader of an instruction-tuning set would reject at a glance:

* ``not_degenerate`` — no runaway repetition (``"2 \\times 3 \\times 3 \\times 3 …"``, ``"1.1.1.1.1…"``):
  small models under a JSON grammar fall into loops that run to the token limit. Such pairs are dropped
  by the extractor in every run (:func:`is_degenerate`) and counted.
* ``self_contained`` — the question does not point at a text the reader cannot see ("the document",
  "the passage above", "the shorter piece" without saying which).
* ``has_steps`` — where the question is a problem, the answer works it out in at least two steps.
* ``final_answer`` — where the question is a maths problem, the answer ends with the final-answer line
  (:data:`FINAL_ANSWER`, the one convention shared by training pairs, D_r and evaluation gold text).
* ``code_parses`` — where the answer holds Python code, it parses.
* ``not_truncated`` — the call that produced the pair stopped on its own, not at the token limit.

A check that does not apply to a pair is ``None``; :func:`passes` is true when no check is ``False``.
"""

from __future__ import annotations

import ast
import re

from equal.llm.verify import _FENCED, code_blocks, inline_calculations
from equal.task import FINAL_ANSWER  # the final-answer line every problem's solution ends with

CHECKS = ("not_degenerate", "self_contained", "has_steps", "final_answer", "code_parses", "not_truncated")

_REPEATED_CHARS = re.compile(r"(.{1,8}?)\1{7,}", re.S)  # a short unit 8+ times in a row: "1.1.1.1.1.1.1.1."
_DANGLING = re.compile(
    r"\b(?:(?:the|this|that|above|below|following|given|provided|attached)\s+"
    r"(?:document|text|passage|article|excerpt|section|paragraph|page|snippet|table|figure|source|context))\b"
    r"|\baccording to the\b|\b(?:mentioned|described|shown|given) (?:above|below|earlier)\b"
    r"|\bthe (?:shorter|longer|first|second|other) (?:piece|one|part)\b",
    re.IGNORECASE,
)
_PROBLEM = re.compile(
    r"\b(?:how (?:many|much|long|far|old)|what is|what was|what's|calculate|compute|find|solve|evaluate|simplify|"
    r"determine|prove|show that|write (?:a|an) (?:function|program|script|class|method)|implement)\b",
    re.IGNORECASE,
)
_CODE_TASK = re.compile(r"\b(?:function|program|script|class|method|python|code|implement)\b", re.IGNORECASE)
_STEP_SPLIT = re.compile(r"(?:\n+|(?<=[.!?])\s+(?=[A-Z0-9]))")


def _longest_repeat(words: list[str], n: int) -> int:
    """The most times an ``n``-word group repeats back to back in ``words``."""
    best = 1
    for start in range(n):
        run, previous = 1, None
        for i in range(start, len(words) - n + 1, n):
            group = tuple(words[i : i + n])
            run = run + 1 if group == previous else 1
            best, previous = max(best, run), group
    return best


def is_degenerate(text: str) -> bool:
    """Runaway repetition: a short unit repeated 8+ times, a 1-4 word group 5+ times back to back, or a long
    text made of few distinct words."""
    if _REPEATED_CHARS.search(text):
        return True
    words = text.split()
    if any(_longest_repeat(words, n) >= 5 for n in (1, 2, 3, 4)):
        return True
    return len(words) >= 40 and len(set(words)) / len(words) < 0.2


def without_degenerate(pairs: list[dict]) -> list[dict]:
    """The pairs whose question and answer are both free of runaway repetition."""
    return [p for p in pairs if not (is_degenerate(p["question"]) or is_degenerate(p["answer"]))]


def _steps(answer: str) -> int:
    text = _FENCED.sub(" code ", answer)
    return len([part for part in _STEP_SPLIT.split(text) if len(part.strip()) >= 3])


def has_steps(solution: str) -> bool:
    """Whether a solution works in at least two steps before its final-answer line (a line or sentence each)."""
    body = re.split(re.escape(FINAL_ANSWER), solution, flags=re.IGNORECASE)[0]
    return _steps(body) >= 2


def pair_checks(question: str, answer: str, truncated: bool = False) -> dict[str, bool | None]:
    """Every check of :data:`CHECKS` on one pair (``None``: the check does not apply)."""
    code = code_blocks(answer)
    problem = bool(_PROBLEM.search(question))
    code_task = problem and bool(_CODE_TASK.search(question))
    parses = None
    if code:
        parses = True
        for block in code:
            try:
                ast.parse(block)
            except (SyntaxError, ValueError):
                parses = False
                break
    return {
        "not_degenerate": not (is_degenerate(question) or is_degenerate(answer)),
        "self_contained": not _DANGLING.search(question),
        "has_steps": (_steps(answer) >= 2 or bool(code)) if problem else None,
        "final_answer": (FINAL_ANSWER.lower() in answer.lower()) if problem and not code_task else None,
        "code_parses": parses,
        "not_truncated": not truncated,
    }


#: The checks a pair must pass to be trained on (equal.llm.extract's quality gate); the others are reported only.
HARD_CHECKS = ("not_degenerate", "not_truncated", "verified", "code_parses")


def hard_check_failures(pair: dict, truncated: bool = False) -> list[str]:
    """The hard checks ``pair`` fails: runaway repetition, cut at the token limit, a refined problem whose final
    answer was not verified (``refinement`` is not ``verified``), code that does not parse."""
    checks = pair_checks(pair["question"], pair["answer"], truncated)
    failures = [name for name in ("not_degenerate", "not_truncated", "code_parses") if checks[name] is False]
    if pair.get("kind") == "problem" and pair.get("refinement") not in (None, "verified"):
        failures.append("verified")
    return failures


_LIST_LINE = re.compile(r"^\s*(?:\d+[.)]\s|[-*•]\s|#+\s|step\s*\d+\b)", re.IGNORECASE | re.M)


def solution_style(answer: str, length_range: tuple[float, float]) -> dict[str, bool]:
    """How closely a worked solution follows the reference set's format: no list numbering, bullets or headings;
    at least one inline calculation (``48 / 2 = 24``); the final-answer line last; a length (characters) within
    ``length_range`` (D_r's interquartile range); ``all`` when every one holds."""
    lines = [line.strip() for line in answer.strip().splitlines() if line.strip()]
    style = {
        "no_list_numbering": not _LIST_LINE.search(answer),
        "inline_calculations": inline_calculations(answer) > 0,
        "final_line": bool(lines) and lines[-1].lower().startswith(FINAL_ANSWER.lower()),
        "length_in_reference_iqr": length_range[0] <= len(answer) <= length_range[1],
    }
    return {**style, "all": all(style.values())}


def passes(checks: dict[str, bool | None]) -> bool:
    """Whether a pair fails no check."""
    return all(value is not False for value in checks.values())


def quality_summary(records: list[dict], sample_size: int = 200, seed: int = 0) -> dict:
    """Every check on a seeded sample of ``sample_size`` extracted pairs (``question``, ``answer``,
    ``hit_token_limit``): the pass share of each check where it applies, how often it applies, the share of pairs
    passing all, and the share of answers under 20 characters (over every record)."""
    import random

    sample = random.Random(seed).sample(records, k=min(sample_size, len(records)))
    checked = [pair_checks(r["question"], r["answer"], bool(r.get("hit_token_limit"))) for r in sample]
    applicable = {c: [x[c] for x in checked if x[c] is not None] for c in CHECKS}
    return {
        "quality_sample": len(sample),
        "all_checks_pass_share": round(sum(passes(x) for x in checked) / max(len(checked), 1), 4),
        "checks_pass_share": {c: (round(sum(v) / len(v), 4) if v else None) for c, v in applicable.items()},
        "checks_applicable": {c: len(v) for c, v in applicable.items()},
        "answers_under_20_chars_share": round(sum(len(r["answer"]) < 20 for r in records) / max(len(records), 1), 4),
    }


def before_after(drafts: list[dict], pairs: list[dict], sample_size: int = 200, seed: int = 0) -> list[dict]:
    """The quality table's two rows: every check of :func:`quality_summary` on the extracted drafts and on the pairs
    kept after refinement and the quality gate (``stage``, ``pairs``, the pass share of each check and where it
    applies, the share passing all, answers under 20 characters, median answer length)."""
    import statistics

    rows = []
    for stage, records in (("extracted (drafts)", drafts), ("refined and gated (trained on)", pairs)):
        summary = quality_summary(records, sample_size, seed) if records else {}
        checks = summary.pop("checks_pass_share", {})
        applicable = summary.pop("checks_applicable", {})
        rows.append({"stage": stage, "pairs": len(records),
                     "median_answer_chars": int(statistics.median(len(r["answer"]) for r in records)) if records else 0,
                     **summary, **{c: checks.get(c) for c in CHECKS},
                     **{f"{c} applies": applicable.get(c, 0) for c in CHECKS}})  # fmt: skip
    return rows
