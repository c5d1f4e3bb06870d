"""Program-aided answers: a problem's answer is what a program prints, agreed on by several programs.

A small model's arithmetic is not trusted to decide an answer (PAL, arXiv 2211.10435; OpenMathInstruct-1, arXiv
2402.10176). For a problem pair the refiner writes a short Python program; :func:`run_program` runs it in
:mod:`equal.sandbox` and reads the number it prints; :func:`vote` groups the programs' results by
:func:`equal.llm.verify.answers_match` and returns the answer enough of them agree on. :func:`unstated_numbers`
tells whether a program computes with numbers its question does not give (a question that does not stand alone).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from fractions import Fraction

from equal.llm.verify import _FENCED, answers_match, as_number

#: Numbers a program may use without its question stating them: unit conversions and small multipliers
#: (minutes in an hour, days in a week, percent, a dozen, half).
CONSTANTS = frozenset({0, 1, 2, 3, 4, 7, 10, 12, 24, 30, 31, 52, 60, 100, 365, 1000, 3600})
_WORDS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
          "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
          "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
          "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90, "hundred": 100, "thousand": 1000,
          "twice": 2, "double": 2, "half": 2, "triple": 3, "thrice": 3, "dozen": 12, "quarter": 4, "third": 3,
          "fourth": 4, "fifth": 5, "tenth": 10}  # fmt: skip
_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")


def program_of(text: str) -> str | None:
    """The Python program of a reply: its first fenced block, else the reply itself when it parses as Python."""
    fenced = _FENCED.findall(text)
    code = fenced[0] if fenced else text.strip()
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    return code if code.strip() else None


def _normalise(printed: str) -> str | None:
    """The final answer a program printed: its last non-empty line, as an exact number where it is one."""
    lines = [line.strip() for line in printed.strip().splitlines() if line.strip()]
    if not lines:
        return None
    last = lines[-1]
    number = as_number(last)
    if number is None:
        try:
            number = Fraction(float(last)).limit_denominator(10**6)  # 1e3, 0.30000000000000004
        except (ValueError, OverflowError):
            return last[:80]
    if number.denominator == 1:
        return str(number.numerator)
    rounded = round(float(number), 6)
    return f"{rounded:.6f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class ProgramRun:
    """One program's run: what it printed as its final answer (None: it failed, timed out or printed nothing)."""

    answer: str | None
    status: str  # passed | failed | timeout | no_program


def run_program(code: str | None, timeout: float = 5.0) -> ProgramRun:
    """Run ``code`` in the sandbox and read the final answer it prints."""
    if code is None:
        return ProgramRun(None, "no_program")
    from equal.sandbox import run_python

    result = run_python(code, timeout=timeout, memory_mb=512)
    if not result.passed:
        return ProgramRun(None, result.status)
    return ProgramRun(_normalise(result.stdout), "passed")


@dataclass(frozen=True)
class Vote:
    """The outcome of a vote: the agreed answer (None when no answer has ``needed`` votes), its votes and the total."""

    answer: str | None
    votes: int
    total: int
    groups: tuple[tuple[str, int], ...]  # every distinct answer and its votes, most first


def vote(answers: list[str | None], needed: int) -> Vote:
    """The answer at least ``needed`` of ``answers`` agree on (numbers compared exactly, else symbolically)."""
    groups: list[list] = []
    for answer in answers:
        if answer is None:
            continue
        for group in groups:
            if answers_match(group[0], answer):
                group[1] += 1
                break
        else:
            groups.append([answer, 1])
    groups.sort(key=lambda g: -g[1])
    ranked = tuple((g[0], g[1]) for g in groups)
    top = groups[0] if groups else None
    # a tie at the top is no agreement, whatever the threshold
    tied = len(groups) > 1 and groups[1][1] == groups[0][1]
    agreed = top is not None and top[1] >= needed and not tied
    return Vote(top[0] if agreed else None, top[1] if top else 0, len(answers), ranked)


def numbers_in(text: str) -> set[Fraction]:
    """The numbers ``text`` states, in digits or words ("nine", "a dozen"), as exact absolute values; a percent
    also as its share (25 and 0.25)."""
    found = set()
    for raw in _NUMBER.findall(text):
        value = as_number(raw)
        if value is not None:
            found.add(abs(value))
    for word in re.findall(r"[a-z]+", text.lower()):
        if word in _WORDS:
            found.add(Fraction(_WORDS[word]))
    # "25%" is 25 and 0.25 to a program
    found |= {n / 100 for n in list(found)}
    return found


def unstated_numbers(code: str, question: str) -> list[str]:
    """The numeric literals of ``code`` that its question does not state (nor :data:`CONSTANTS`): a program that
    needs them answers a question that does not stand alone."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return []
    stated = numbers_in(question)
    unstated = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            value = abs(Fraction(str(node.value)))
            if value in stated or value in CONSTANTS or value * 100 in stated:
                continue
            unstated.append(str(node.value))
    return unstated


def agreeing(programs: list[str | None], runs: list[ProgramRun], answer: str) -> list[str]:
    """The programs whose printed answer is ``answer``."""
    return [p for p, r in zip(programs, runs, strict=True)
            if p is not None and r.answer is not None and answers_match(answer, r.answer)]  # fmt: skip
