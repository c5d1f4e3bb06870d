"""Scoring a model's answer against a benchmark item (used by the lm-eval task YAMLs in ``tasks/``).

* GSM8K (numeric): exact match on the final number — the number on the final-answer line
  (``The answer is: N``, :data:`equal.task.FINAL_ANSWER`), else after ``####``, else the last number the
  response writes (lm-eval's "flexible extract").
* MATH-500 (boxed): exact match on the final answer — the final-answer line, else the last
  ``\\boxed{...}``, else the last number — after a light LaTeX normalisation.
* MBPP / HumanEval: pass@1 — the answer's code is run with the benchmark's tests in
  :mod:`equal.sandbox` and passes if the program exits cleanly within the timeout.
"""

from __future__ import annotations

import ast
import re

from equal.sandbox import run_python
from equal.task import FINAL_ANSWER

CODE_TIMEOUT_S = 10.0

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_FENCED = re.compile(r"```(?:python|py|Python)?[ \t]*\n(.*?)(?:```|$)", re.DOTALL)


def normalize_number(text: str) -> str | None:
    """``"1,234.50"`` → ``"1234.5"``; ``None`` when the text holds no number."""
    match = _NUMBER.search(text.replace("$", ""))
    if match is None:
        return None
    value = match.group(0).replace(",", "").rstrip(".")
    if "." in value:
        value = value.rstrip("0").rstrip(".")
    return value or "0"


def final_answer_line(response: str) -> str | None:
    """What follows the last final-answer line (``The answer is: ...``), or ``None``."""
    at = response.lower().rfind(FINAL_ANSWER.lower())
    if at < 0:
        return None
    return response[at + len(FINAL_ANSWER) :].strip().splitlines()[0].strip() if response[at:].strip() else None


def gsm8k_final_number(response: str) -> str | None:
    """The number on the final-answer line, else after the last ``####``, else the last number in the response."""
    line = final_answer_line(response)
    if line:
        found = normalize_number(line)
        if found is not None:
            return found
    if "####" in response:
        found = normalize_number(response.rsplit("####", 1)[1])
        if found is not None:
            return found
    numbers = _NUMBER.findall(response.replace("$", ""))
    return normalize_number(numbers[-1]) if numbers else None


def gsm8k_correct(response: str, gold: str) -> bool:
    """Exact match of the final numbers."""
    predicted = gsm8k_final_number(response)
    return predicted is not None and predicted == normalize_number(gold)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (braces balanced), or ``None``."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def normalize_math_answer(answer: str) -> str:
    """A light normalisation of a LaTeX final answer (spacing, \\left/\\right, dfrac, dollars, units of degree)."""
    text = answer.strip().strip("$").strip()
    for old, new in (("\\left", ""), ("\\right", ""), ("\\dfrac", "\\frac"), ("\\tfrac", "\\frac"), ("^\\circ", "")):
        text = text.replace(old, new)
    text = re.sub(r"\\text\{\s*([^}]*)\}", r"\1", text)
    text = re.sub(r"\\[,!;: ]", "", text)
    text = re.sub(r"\s+", "", text).rstrip(".")
    if re.fullmatch(r"-?\d[\d,]*(\.\d+)?", text):
        text = normalize_number(text) or text
    return text


def math_final_answer(response: str) -> str | None:
    """The final-answer line (its boxed expression if it has one), else the last boxed expression, else the last
    number."""
    line = final_answer_line(response)
    if line:
        inner = last_boxed(line)
        return inner if inner is not None else line.rstrip(".").strip().strip("$")
    boxed = last_boxed(response)
    if boxed is not None:
        return boxed
    numbers = _NUMBER.findall(response)
    return numbers[-1] if numbers else None


def math_correct(response: str, gold: str) -> bool:
    """Exact match of the normalised final answers."""
    predicted = math_final_answer(response)
    return predicted is not None and normalize_math_answer(predicted) == normalize_math_answer(gold)


def extract_code(response: str) -> str:
    """The first fenced code block of a response, else the whole response."""
    match = _FENCED.search(response)
    return (match.group(1) if match else response).strip("\n")


def as_test_list(value) -> list[str]:
    """MBPP's ``test_list`` as a list (the data files store it as a Python literal string)."""
    if isinstance(value, str):
        value = ast.literal_eval(value)
    return [str(test) for test in value]


def mbpp_program(response: str, doc: dict) -> str:
    """The model's code followed by the item's setup code and assert statements."""
    tests = "\n".join(as_test_list(doc["test_list"]))
    return f"{extract_code(response)}\n\n{doc.get('test_setup_code') or ''}\n{tests}\n"


def humaneval_program(response: str, doc: dict) -> str:
    """The completed function (the prompt is prepended unless the answer redefines the entry point)
    followed by the item's ``check`` function, called on the entry point."""
    code = extract_code(response)
    if f"def {doc['entry_point']}" not in code:
        code = doc["prompt"] + code
    return f"{code}\n\n{doc['test']}\n\ncheck({doc['entry_point']})\n"


def passes(program: str, timeout_s: float = CODE_TIMEOUT_S) -> bool:
    """Whether a program runs to completion in the sandbox (pass@1 with one sample)."""
    return run_python(program, timeout=timeout_s).passed
