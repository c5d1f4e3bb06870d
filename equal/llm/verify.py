"""Checking a refined solution against what is known: its final answer, its arithmetic, its code.

A refined pair is *verified, not trusted*:

* :func:`final_answer` reads the answer a solution commits to (its last ``The answer is:`` line, else a
  ``\\boxed{}``); :func:`reference_answer` reads the one a draft or a document states;
* :func:`answers_match` compares two final answers: numbers, fractions, percentages and simple LaTeX are
  normalised and compared as numbers, anything else through Math-Verify's symbolic comparison, then as text;
* :func:`wrong_calculations` recomputes every inline calculation (``48 / 2 = 24``) of a solution;
* :func:`code_check` parses the code of an answer and, where the document gives ``assert`` lines about a function
  the answer defines, runs them in :mod:`equal.sandbox`.
"""

from __future__ import annotations

import ast
import logging
import math
import operator
import re
from fractions import Fraction

from equal.task import FINAL_ANSWER

_FENCED = re.compile(r"```(?:python|py)?\s*\n(.*?)```", re.S | re.IGNORECASE)
_CODE_LINE = re.compile(r"^\s*(?:def |class |import |from \S+ import |for .+:$|while .+:$|if .+:$|return\b)", re.M)

_FINAL_LINE = re.compile(re.escape(FINAL_ANSWER) + r"\s*(.+)", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_LATEX_FRAC = re.compile(r"\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}")
_WRAPPERS = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$|\\text\{[^{}]*\}|\\mathrm\{[^{}]*\}|\\,|\\!|\\;")
# An inline calculation: digits and operators, '=', a number (optionally with a unit sign around it).
_CALCULATION = re.compile(
    r"(?<![\w.^])((?:\(?\s*\$?-?\d[\d,]*(?:\.\d+)?%?\s*\)?\s*[-+*/×÷x]\s*)+\(?\s*\$?-?\d[\d,]*(?:\.\d+)?%?\s*\)?)"
    r"\s*=\s*\$?(-?\d[\d,]*(?:\.\d+)?)(?![\d.]*\s*[-+*/×÷^])"
)
_OPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def final_answer(solution: str) -> str | None:
    """The answer ``solution`` commits to: the text after its last final-answer line, else its last ``\\boxed{}``."""
    found = _FINAL_LINE.findall(solution)
    if found:
        return found[-1].strip().splitlines()[0].strip() if found[-1].strip() else None
    boxed = _BOXED.findall(solution)
    return boxed[-1].strip() if boxed else None


def reference_answer(draft: str, short_chars: int = 60) -> str | None:
    """The final answer a draft states: its final-answer line or ``\\boxed{}``, else the draft itself when it is
    short (``"52"``, ``"$1,200"``, ``"x = 4"``) — or the one number of a short sentence (``"Luke ended up with 2
    good games."`` → ``"2"``) — else its last number; None when it states none."""
    stated = final_answer(draft)
    if stated:
        return stated
    text = draft.strip().rstrip(".")
    if text and len(text) <= short_chars and "\n" not in text:
        numbers = _NUMBER.findall(text)
        if as_number(text) is None and len(numbers) == 1:
            return numbers[0]  # the sentence's quantity, which a solution's final line can equal
        return text
    numbers = _NUMBER.findall(draft)
    return numbers[-1] if numbers else None


_STATED = re.compile(r"^\s*(?:####|answer\s*[:：]|" + re.escape(FINAL_ANSWER) + r")\s*(.+?)\s*$", re.I | re.M)


def document_answer(document: str) -> str | None:
    """The one final answer a document states (ASDiv's and the maths collections' ``Answer: 26``, GSM8K's
    ``#### 26``, a worked example's ``The answer is: 26``, a ``\\boxed{26}``); None when it states none, or several
    different ones (a page of exercises: no single answer to check a pair against)."""
    stated = [m.strip().rstrip(".") for m in _STATED.findall(document)] or _BOXED.findall(document)
    stated = [s for s in stated if s]
    if not stated:
        return None
    first = stated[0]
    if any(not answers_match(first, other) for other in stated[1:]):
        return None
    number = as_number(first)
    if number is None:  # "26 (apples)", "x = 4 cm": its one number where it has one
        numbers = _NUMBER.findall(first)
        return numbers[0].replace(",", "") if len(numbers) == 1 else first
    return first


def _clean(text: str) -> str:
    text = _LATEX_FRAC.sub(r"(\1)/(\2)", text)
    text = _WRAPPERS.sub("", text)
    return text.replace("\\%", "%").replace("\\cdot", "*").replace("\\times", "*").strip().rstrip(".").strip()


def as_number(text: str) -> Fraction | None:
    """A final answer as an exact number when it is one (``"1,200"``, ``"$52"``, ``"3/4"``, ``"\\frac{3}{4}"``,
    ``"25%"``, ``"x = 4"``, ``"52 peaches"``); None otherwise."""
    text = _clean(text)
    text = re.sub(r"^[A-Za-z]\w*\s*=\s*", "", text)  # "x = 4"
    fraction = re.fullmatch(r"\(?\s*(-?\d+(?:\.\d+)?)\s*\)?\s*/\s*\(?\s*(\d+(?:\.\d+)?)\s*\)?", text)
    if fraction:
        denominator = Fraction(fraction.group(2))
        return Fraction(fraction.group(1)) / denominator if denominator else None
    match = re.fullmatch(r"([$€£]?)\s*(-?\d[\d,]*(?:\.\d+)?)\s*(%?)\s*([A-Za-z][A-Za-z .'-]{0,30})?", text)
    if not match:
        return None
    digits = match.group(2).replace(",", "")
    try:
        value = Fraction(digits)
    except ValueError:
        return None
    return value / 100 if match.group(3) else value


def _symbolic_match(reference: str, answer: str) -> bool:
    """Math-Verify's comparison of two LaTeX or plain expressions (False when either does not parse)."""
    try:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
    except ImportError:  # an optional refinement: fall back to exact text where Math-Verify is missing
        return False
    # its warning that the timeouts are off would print on every call: we turn them off on purpose
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    try:
        # timeouts off: Math-Verify's use SIGALRM, which works only in a process's main thread
        gold = parse(f"${reference}$", extraction_config=configs, parsing_timeout=None)
        given = parse(f"${answer}$", extraction_config=configs, parsing_timeout=None)
        return bool(gold and given and verify(gold, given, timeout_seconds=None))
    except Exception:  # a parser's failure on odd input is a mismatch, never a crash
        return False


def answers_match(reference: str, answer: str) -> bool:
    """Whether two final answers agree: as numbers when both are (0.5 = 1/2 = 50 %, 1,200 = 1200.00), else
    symbolically (Math-Verify), else as text without case, spaces and LaTeX wrappers."""
    left, right = as_number(reference), as_number(answer)
    if left is not None and right is not None:
        return left == right or math.isclose(float(left), float(right), rel_tol=1e-6, abs_tol=1e-9)
    if _symbolic_match(reference, answer):
        return True
    squash = re.compile(r"\s+")
    return squash.sub("", _clean(reference)).lower() == squash.sub("", _clean(answer)).lower()


def _evaluate(node: ast.AST) -> Fraction:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return Fraction(str(node.value))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_evaluate(node.operand)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_evaluate(node.left), _evaluate(node.right))
    raise ValueError("not arithmetic")


def inline_calculations(solution: str) -> int:
    """How many inline calculations (``48 / 2 = 24``) ``solution`` writes out."""
    return len(_CALCULATION.findall(solution))


# Unit words between a number and the operator after it ("6 forks + 15 knives = 21"); words that scale a number
# ("2 dozen", "20 percent") or say the operation ("3 times 4") are left in, so such a sum stays unread, not misread;
# one- and two-letter words ("2 m", "x") may be algebra's variables and are left in too.
_UNIT_WORDS = re.compile(r"(?<=\d)((?:\s+[A-Za-z]{3,}){1,3})(?=\s*[-+*/×÷=]\s*\$?\d)")
_SCALING_WORDS = frozenset({"dozen", "dozens", "score", "hundred", "hundreds", "thousand", "thousands", "million",
                            "millions", "billion", "half", "halves", "third", "thirds", "quarter", "quarters",
                            "percent", "cent", "times"})  # fmt: skip


def _without_unit_words(solution: str) -> str:
    def drop(match: re.Match) -> str:
        words = match.group(1).split()
        return match.group(0) if any(w.lower() in _SCALING_WORDS for w in words) else ""

    return _UNIT_WORDS.sub(drop, solution)


def wrong_calculations(solution: str, with_units: bool = False) -> list[str]:
    """The inline calculations of ``solution`` (``12 * 4 = 48``, ``$3.50 x 2 = $7``) whose result is wrong (off
    by more than rounding to the result's own decimals). With ``with_units``, sums with unit words between their
    numbers are read too ("6 forks + 15 knives + 30 spoons = 62" is wrong); refine-v3 reads without them, so its
    judged pairs stay as shipped."""
    if with_units:
        solution = _without_unit_words(solution)
    wrong = []
    for match in _CALCULATION.finditer(solution):
        expression, result = match.groups()
        before = solution[: match.start()].rstrip()
        if before and before[-1] in "*/×÷+-x" and not before[-2:-1].isalpha():
            continue  # the tail of a calculation with words in it ("16 gallons * 1/4 = 4"): not readable whole
        source = expression.replace("×", "*").replace("x", "*").replace("÷", "/").replace("$", "").replace(",", "")
        percent = "%" in source
        source = re.sub(r"(\d(?:\.\d+)?)%", r"(\1/100)", source)
        try:
            value = _evaluate(ast.parse(source.strip(), mode="eval"))
        except (SyntaxError, ValueError, ZeroDivisionError):
            continue  # not a calculation we can read: neither right nor wrong
        stated = Fraction(result.replace(",", ""))
        decimals = len(result.split(".")[1]) if "." in result else 0
        tolerance = Fraction(1, 2 * 10**decimals) if decimals or value.denominator != 1 else Fraction(0)
        if percent and abs(value * 100 - stated) <= max(tolerance, Fraction(1, 200)):
            continue  # "20% x 50 = 10" and "0.2 x 50 = 10" read alike
        if abs(value - stated) > max(tolerance, abs(stated) * Fraction(1, 10**6)):
            wrong.append(f"{expression.strip()} = {result}")
    return wrong


_ASSERT = re.compile(r"^\s*(assert\s+.+)$", re.M)


def code_blocks(answer: str) -> list[str]:
    """The Python code in an answer: its fenced blocks, else the answer itself when it reads as code."""
    fenced = _FENCED.findall(answer)
    if fenced:
        return fenced
    return [answer] if len(_CODE_LINE.findall(answer)) >= 1 and "\n" in answer else []


def code_check(answer: str, document: str = "", timeout: float = 10.0) -> tuple[bool, str]:
    """Whether the code of ``answer`` parses and passes the ``assert`` lines of ``document`` that call a function it
    defines (run in the sandbox); with the reason when it does not."""
    from equal.sandbox import run_python

    blocks = code_blocks(answer)
    if not blocks:
        return False, "no code"
    code = "\n\n".join(blocks)
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError) as exc:
        return False, f"code does not parse ({exc.__class__.__name__})"
    defined = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    asserts = [line for line in _ASSERT.findall(document) if any(f"{name}(" in line for name in defined)]
    if not asserts:
        return True, "parses"
    result = run_python(code + "\n\n" + "\n".join(asserts) + "\n", timeout=timeout)
    return (True, f"passes {len(asserts)} document assert(s)") if result.passed else (
        False, f"fails the document's asserts ({result.status})")  # fmt: skip
