"""Readers of the built-in benchmarks' raw files (GSM8K, MATH-500, MBPP, HumanEval); params/tasks.yaml names them.

Records are normalised to ``id, task, split, question, solution, answer`` plus what the task
needs to be scored (MBPP's ``test_list``, HumanEval's ``prompt``/``test``/``entry_point``). Maths solutions end
with the shared final-answer line (``The answer is: N``, :data:`equal.task.FINAL_ANSWER`): GSM8K's ``#### N``
is rewritten to it and MATH-500's solutions get it appended.
"""

from __future__ import annotations

import gzip
import re
from pathlib import Path

from equal.data.dedup import normalized_words
from equal.data.reading import ReadContext, iter_jsonl, require_str
from equal.task import with_final_answer

#: MBPP's standard split by task_id (Austin et al. 2021).
MBPP_SPLITS = {"prompt": range(1, 11), "test": range(11, 511), "validation": range(511, 601), "train": range(601, 975)}


def gsm8k_solution(solution: str) -> str:
    """A GSM8K solution in the shared answer format: no calculator notes, ``#### N`` → the final-answer line."""
    body = strip_calculator(solution.rsplit("####", 1)[0]).rstrip()
    return with_final_answer(body, gsm8k_final_answer(solution))


def gsm8k_final_answer(solution: str) -> str:
    """The number after ``####`` in a GSM8K solution, without thousands separators."""
    return solution.rsplit("####", 1)[-1].strip().replace(",", "")


def strip_calculator(solution: str) -> str:
    """Remove GSM8K's ``<<48/2=24>>`` calculator annotations."""
    return re.sub(r"<<[^>]*>>", "", solution)


def read_gsm8k(path: Path, split: str, ctx: ReadContext, rel: str | None = None) -> list[dict]:
    """A GSM8K JSONL file (``question``, ``answer`` with calculator notes and ``#### N``)."""
    rel = rel or str(path)
    items = []
    for line_no, obj in iter_jsonl(path, ctx):
        question = require_str(obj, "question", Path(rel), line_no, ctx)
        solution = require_str(obj, "answer", Path(rel), line_no, ctx) if question else None
        if question and solution:
            items.append(
                {
                    "id": f"gsm8k-{split}-{line_no - 1}",
                    "task": "gsm8k",
                    "split": split,
                    "question": question,
                    "solution": gsm8k_solution(solution),
                    "answer": gsm8k_final_answer(solution),
                }
            )
    return items


def read_math500(path: Path, ctx: ReadContext, rel: str | None = None) -> list[dict]:
    """A MATH-500 JSONL file (``problem``, ``solution``, ``answer``, ``subject``, ``level``)."""
    rel = rel or str(path)
    items = []
    for line_no, obj in iter_jsonl(path, ctx):
        problem = require_str(obj, "problem", Path(rel), line_no, ctx)
        if problem:
            items.append(
                {
                    "id": f"math500-{obj.get('unique_id', line_no)}",
                    "task": "math500",
                    "split": "test",
                    "question": problem,
                    "solution": with_final_answer(str(obj.get("solution", "")), str(obj.get("answer", ""))),
                    "answer": str(obj.get("answer", "")),
                    "subject": obj.get("subject"),
                    "level": obj.get("level"),
                }
            )
    return items


def read_mbpp(path: Path, split: str, ctx: ReadContext, rel: str | None = None) -> list[dict]:
    """One of MBPP's standard splits (by ``task_id``) of the full ``mbpp.jsonl``."""
    rel = rel or str(path)
    wanted = MBPP_SPLITS[split]
    items = []
    for line_no, obj in iter_jsonl(path, ctx):
        try:
            task_id = int(obj.get("task_id"))
        except (TypeError, ValueError):
            ctx.problem(rel, line_no, f"task_id {obj.get('task_id')!r} is not an integer", "bad_field_task_id")
            continue
        if task_id not in wanted:
            continue
        text = require_str(obj, "text", Path(rel), line_no, ctx)
        code = require_str(obj, "code", Path(rel), line_no, ctx) if text else None
        if text and code:
            code = code.replace("\r\n", "\n").replace("\t", "    ")
            items.append(
                {
                    "id": f"mbpp-{task_id}",
                    "task": "mbpp",
                    "split": split,
                    "question": text,
                    "solution": code,
                    "answer": code,
                    "test_list": obj.get("test_list", []),
                    "test_setup_code": obj.get("test_setup_code", ""),
                }
            )
    return items


def read_humaneval(path: Path, ctx: ReadContext, rel: str | None = None) -> list[dict]:
    """The gzip-compressed HumanEval JSONL (``prompt``, ``canonical_solution``, ``test``, ``entry_point``)."""
    rel = rel or str(path)
    items = []
    for line_no, obj in iter_jsonl(path, ctx, opener=gzip.open):
        prompt = require_str(obj, "prompt", Path(rel), line_no, ctx)
        if prompt:
            items.append(
                {
                    "id": obj.get("task_id", f"HumanEval/{line_no - 1}"),
                    "task": "humaneval",
                    "split": "test",
                    "question": prompt,
                    "solution": obj.get("canonical_solution", ""),
                    "answer": obj.get("canonical_solution", ""),
                    "prompt": obj.get("prompt"),
                    "test": obj.get("test"),
                    "entry_point": obj.get("entry_point"),
                }
            )
    return items


def evaluation_text(item: dict) -> str:
    """The text of an evaluation item that decontamination looks for: question and solution."""
    return f"{item['question']}\n{item.get('solution') or ''}"


def shared_questions(items: list[dict], others: list[dict]) -> set[str]:
    """Normalised questions present in both lists (empty when the sets are disjoint)."""

    def keys(xs: list[dict]) -> set[str]:
        return {" ".join(normalized_words(x["question"])) for x in xs}

    return keys(items) & keys(others)
