"""Target tasks: evaluation splits, the reference set D_r and a held-out slice, all disjoint.

Records are normalised to ``id, task, split, question, solution, answer`` plus what the task
needs to be scored (MBPP's ``test_list``, HumanEval's ``prompt``/``test``/``entry_point``).
"""

from __future__ import annotations

import gzip
import random
import re
from pathlib import Path

from equal.data.dedup import normalized_words
from equal.data.manifest import Source
from equal.data.reading import ReadContext, iter_jsonl, require_str
from equal.errors import ConfigError

#: MBPP's standard split by task_id (Austin et al. 2021).
MBPP_SPLITS = {"prompt": range(1, 11), "test": range(11, 511), "validation": range(511, 601), "train": range(601, 975)}
#: Reference domain -> (task, split) the reference set and held-out slice are drawn from.
REFERENCE_TASKS = {"math": ("gsm8k", "train"), "code": ("mbpp", "train")}


def gsm8k_final_answer(solution: str) -> str:
    """The number after ``####`` in a GSM8K solution, without thousands separators."""
    return solution.rsplit("####", 1)[-1].strip().replace(",", "")


def strip_calculator(solution: str) -> str:
    """Remove GSM8K's ``<<48/2=24>>`` calculator annotations."""
    return re.sub(r"<<[^>]*>>", "", solution)


def _file(source: Source, raw_dir: Path, name: str) -> tuple[Path, str]:
    raw = next((f for f in source.data_files if Path(f.local_path).name == name), None)
    if raw is None:
        raise ConfigError(f"manifest source {source.name!r} has no data file named {name!r}")
    return raw_dir / raw.local_path, raw.local_path


def load_gsm8k(source: Source, raw_dir: Path, split: str, ctx: ReadContext) -> list[dict]:
    """GSM8K ``train`` or ``test``."""
    path, rel = _file(source, raw_dir, f"{split}.jsonl")
    return read_gsm8k(path, split, ctx, rel)


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
                    "solution": strip_calculator(solution),
                    "answer": gsm8k_final_answer(solution),
                }
            )
    return items


def load_math500(source: Source, raw_dir: Path, ctx: ReadContext) -> list[dict]:
    """MATH-500 (test only)."""
    path, rel = _file(source, raw_dir, "test_ori.jsonl")
    return read_math500(path, ctx, rel)


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
                    "solution": str(obj.get("solution", "")),
                    "answer": str(obj.get("answer", "")),
                    "subject": obj.get("subject"),
                    "level": obj.get("level"),
                }
            )
    return items


def load_mbpp(source: Source, raw_dir: Path, split: str, ctx: ReadContext) -> list[dict]:
    """MBPP by the standard task_id split (``prompt``, ``test``, ``validation``, ``train``)."""
    path, rel = _file(source, raw_dir, "mbpp.jsonl")
    return read_mbpp(path, split, ctx, rel)


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


def load_humaneval(source: Source, raw_dir: Path, ctx: ReadContext) -> list[dict]:
    """HumanEval (test only; the file is gzip-compressed JSONL)."""
    path, rel = _file(source, raw_dir, "HumanEval.jsonl.gz")
    return read_humaneval(path, ctx, rel)


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


def load_targets(sources: dict[str, Source], raw_dir: Path, ctx: ReadContext) -> dict[str, list[dict]]:
    """Every split we use, keyed ``<task>_<split>``; evaluation splits are those ending in ``_test``."""
    return {
        "gsm8k_train": load_gsm8k(sources["gsm8k"], raw_dir, "train", ctx),
        "gsm8k_test": load_gsm8k(sources["gsm8k"], raw_dir, "test", ctx),
        "math500_test": load_math500(sources["math500"], raw_dir, ctx),
        "mbpp_train": load_mbpp(sources["mbpp"], raw_dir, "train", ctx),
        "mbpp_test": load_mbpp(sources["mbpp"], raw_dir, "test", ctx),
        # MBPP's few-shot prompt and validation problems are held out of everything, too.
        "mbpp_heldout": load_mbpp(sources["mbpp"], raw_dir, "prompt", ctx)
        + load_mbpp(sources["mbpp"], raw_dir, "validation", ctx),
        "humaneval_test": load_humaneval(sources["humaneval"], raw_dir, ctx),
    }


def evaluation_items(targets: dict[str, list[dict]]) -> list[dict]:
    """All items that must never leak into training data (every non-train split)."""
    return [item for key, items in targets.items() if not key.endswith("_train") for item in items]


def evaluation_text(item: dict) -> str:
    """The text of an evaluation item that decontamination looks for: question and solution."""
    return f"{item['question']}\n{item.get('solution') or ''}"


def draw_reference_sets(
    targets: dict[str, list[dict]], size: int, heldout_size: int, seed: int
) -> dict[str, list[dict]]:
    """Seeded reference sets D_r and held-out slices per domain, disjoint from every evaluation item.

    Training items whose question also appears (after normalisation) in an evaluation split are
    never drawn. Returns ``{"reference_math": [...], "heldout_math": [...], "reference_code": ...}``.
    """
    banned = {" ".join(normalized_words(item["question"])) for item in evaluation_items(targets)}
    drawn: dict[str, list[dict]] = {}
    for domain, (task, split) in REFERENCE_TASKS.items():
        pool = [i for i in targets[f"{task}_{split}"] if " ".join(normalized_words(i["question"])) not in banned]
        if size + heldout_size > len(pool):
            raise ConfigError(
                f"reference_size + heldout_size = {size + heldout_size} exceeds the "
                f"{len(pool)} clean {task} {split} items"
            )
        picked = random.Random(f"{seed}-{domain}").sample(pool, size + heldout_size)
        drawn[f"reference_{domain}"] = picked[:size]
        drawn[f"heldout_{domain}"] = picked[size:]
    return drawn


def shared_questions(items: list[dict], others: list[dict]) -> set[str]:
    """Normalised questions present in both lists (empty when the sets are disjoint)."""

    def keys(xs: list[dict]) -> set[str]:
        return {" ".join(normalized_words(x["question"])) for x in xs}

    return keys(items) & keys(others)
