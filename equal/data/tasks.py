"""Target tasks as data: what the bandit selects for and what models are evaluated on.

A task is declared in YAML (``params/tasks.yaml`` holds the four built-in benchmarks; a profile or a
user adds their own), never in code::

    my_task:
      label: My task                  # how tables name it (default: the key)
      domain: math                    # the documents expected to serve it (not its name)
      metric: numeric                 # numeric | boxed | code_tests | code_function | multiple_choice | free_text
      format: jsonl                   # the file's reader: jsonl (any fields), or a built-in benchmark's format
      files: {all: data/my_task.jsonl}            # split -> file ("manifest:<source>/<file>" for raw data)
      fields: {question: problem, solution: worked_solution, answer: final_answer}
      reference: {split: all, size: 100, heldout: 200}   # D_r and a held-out slice, drawn with `seed`
      evaluation: {split: all, size: 200}              # evaluation items: a split, or drawn from the rest
      seed: 0

Every split is checked: missing or empty fields and duplicate ids name the file, line and field; a
pool too small for the requested sizes says so; D_r, the held-out slice and the evaluation items are
disjoint by normalised question, and no reference item repeats an evaluation item of *any* task.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from equal.data import targets
from equal.data.dedup import normalized_words
from equal.data.reading import ReadContext, iter_jsonl, require_str
from equal.errors import ConfigError, DataFormatError
from equal.paths import resource_dir
from equal.profiles import deep_merge
from equal.task import METRICS, REQUIRED_FIELDS, TaskSpec, with_final_answer

MANIFEST_PREFIX = "manifest:"


def parse_tasks(declared: dict[str, Any], source: str = "tasks") -> dict[str, TaskSpec]:
    """Validate a mapping of task declarations; every error names the task and the key."""
    if not isinstance(declared, dict) or not declared:
        raise ConfigError(f"{source}: expected a non-empty mapping of tasks")
    known = set(TaskSpec.__dataclass_fields__) - {"name", "source"}
    tasks = {}
    for name, body in declared.items():
        where = f"{source}: task {name!r}"
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(body).__name__}")
        unknown = sorted(set(body) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown keys {unknown}; known: {sorted(known)}")
        for key in ("domain", "metric", "files"):
            if not body.get(key):
                raise ConfigError(f"{where}: {key!r} is required")
        if body["metric"] not in METRICS:
            raise ConfigError(f"{where}: metric {body['metric']!r} is not one of {METRICS}")
        if body.get("format", "jsonl") not in READERS:
            raise ConfigError(f"{where}: format {body['format']!r} is not one of {sorted(READERS)}")
        if not isinstance(body["files"], dict):
            raise ConfigError(f"{where}: 'files' maps split names to files")
        spec = TaskSpec(name=name, source=source, **{**body, "exclude": tuple(body.get("exclude", ()))})
        for role in ("reference", "evaluation"):
            part = getattr(spec, role)
            if part is not None and part.get("split", _only_split(spec)) not in spec.files:
                raise ConfigError(f"{where}: {role} split {part.get('split')!r} is not in files {sorted(spec.files)}")
        if not (spec.is_target or spec.is_benchmark):
            raise ConfigError(f"{where}: needs a 'reference' (to select for it), an 'evaluation', or both")
        tasks[name] = spec
    return tasks


def load_task_file(path: str | Path) -> dict[str, TaskSpec]:
    """Tasks declared in a YAML file (a top-level ``tasks:`` mapping)."""
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        document = yaml.safe_load(handle) or {}
    return parse_tasks(document.get("tasks", {}), str(path))


def _only_split(spec: TaskSpec) -> str | None:
    return next(iter(spec.files)) if len(spec.files) == 1 else None


def resolve_file(reference: str, raw_dir: Path, base_dir: Path) -> Path:
    """``manifest:<source>/<file>`` under the raw-data folder's ``raw/``, else a path (relative to ``base_dir``)."""
    if reference.startswith(MANIFEST_PREFIX):
        from equal.data.manifest import load_manifest

        source, _, name = reference[len(MANIFEST_PREFIX) :].partition("/")
        manifest = load_manifest(raw_dir)
        if source not in manifest:
            raise ConfigError(f"{reference}: no source {source!r} in {raw_dir / 'MANIFEST.json'}")
        match = next((f for f in manifest[source].data_files if Path(f.local_path).name == name), None)
        if match is None:
            raise ConfigError(f"{reference}: source {source!r} has no data file named {name!r}")
        return raw_dir / match.local_path
    path = Path(reference).expanduser()
    return path if path.is_absolute() else (base_dir / path).resolve()


# ---------------------------------------------------------------------------------------------- readers
Reader = Callable[[TaskSpec, str, Path, ReadContext], list[dict]]


def read_jsonl_task(spec: TaskSpec, split: str, path: Path, ctx: ReadContext) -> list[dict]:
    """A JSONL (or .jsonl.gz) file of task items, its fields mapped by ``spec.fields``."""
    mapping = {"id": "id", "question": "question", "solution": "solution", "answer": "answer", **spec.fields}
    needed = REQUIRED_FIELDS[spec.metric]
    opener = gzip.open if path.suffix == ".gz" else open
    items, seen = [], {}
    for line_no, obj in iter_jsonl(path, ctx, opener=opener):
        item = {"task": spec.name, "split": split}
        ok = True
        for name in dict.fromkeys(("question", *needed)):
            source_field = mapping.get(name, name)
            if name in ("choices", "test_list"):
                value = obj.get(source_field)
                if not isinstance(value, list) or not value:
                    ctx.problem(path, line_no, f"field {source_field!r} must be a non-empty list", f"bad_{name}")
                    ok = False
                    break
                item[name] = value
            else:
                value = require_str(obj, source_field, path, line_no, ctx)
                if value is None:
                    ok = False
                    break
                item[name] = value
        if not ok:
            continue
        raw_id = obj.get(mapping["id"])
        item_id = f"{spec.name}-{raw_id if raw_id not in (None, '') else line_no}"
        if item_id in seen:
            ctx.problem(path, line_no, f"duplicate id {raw_id!r} (first on line {seen[item_id]})", "duplicate_id")
            continue
        seen[item_id] = line_no
        if spec.metric == "multiple_choice":
            answer = item["answer"].strip().upper()
            letters = [chr(ord("A") + i) for i in range(len(item["choices"]))]
            if answer not in letters:
                ctx.problem(path, line_no, f"answer {item['answer']!r} is not a letter of {letters}", "bad_answer")
                continue
            item["answer"] = answer
            item.setdefault("solution", f"The answer is {answer}.")
        item.setdefault("answer", item.get("solution", ""))
        if spec.metric in ("numeric", "boxed"):  # one answer format for every set (equal.task.FINAL_ANSWER)
            item["solution"] = with_final_answer(item["solution"], item["answer"])
        items.append({"id": item_id, **item, **{k: v for k, v in obj.items() if k in ("subject", "level")}})
    return items


def _builtin(loader: Callable[..., list[dict]], split_arg: bool) -> Reader:
    def read(spec: TaskSpec, split: str, path: Path, ctx: ReadContext) -> list[dict]:
        items = loader(path, split, ctx) if split_arg else loader(path, ctx)
        return [{**item, "task": spec.name} for item in items]

    return read


#: Readers by ``format``: ``jsonl`` for any task's own file, the others for the built-in benchmarks' raw files.
READERS: dict[str, Reader] = {
    "jsonl": read_jsonl_task,
    "gsm8k": _builtin(targets.read_gsm8k, split_arg=True),
    "math500": _builtin(targets.read_math500, split_arg=False),
    "mbpp": _builtin(targets.read_mbpp, split_arg=True),
    "humaneval": _builtin(targets.read_humaneval, split_arg=False),
}


# ---------------------------------------------------------------------------------------------- splitting
@dataclass
class TaskItems:
    """A task's items by role: D_r, the held-out slice, the evaluation items, and excluded ones."""

    spec: TaskSpec
    reference: list[dict] = field(default_factory=list)
    heldout: list[dict] = field(default_factory=list)
    evaluation: list[dict] = field(default_factory=list)
    excluded: list[dict] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Items per role."""
        return {role: len(getattr(self, role)) for role in ("reference", "heldout", "evaluation", "excluded")}

    @property
    def protected(self) -> list[dict]:
        """Items that must never reach training data (evaluation and excluded splits)."""
        return self.evaluation + self.excluded


def question_key(item: dict) -> str:
    """The normalised question disjointness is checked on."""
    return " ".join(normalized_words(item["question"]))


def _draw(pool: list[dict], n: int, rng: random.Random, what: str, where: str) -> list[dict]:
    if n > len(pool):
        raise ConfigError(f"{where}: {what} asks for {n} items but only {len(pool)} are available")
    return rng.sample(pool, n)


def load_task(spec: TaskSpec, raw_dir: Path, base_dir: Path, ctx: ReadContext | None = None) -> dict[str, list[dict]]:
    """Every split of ``spec`` as normalised records (``id, task, split, question, solution, answer`` + extras)."""
    ctx = ctx or ReadContext()
    loaded = {}
    for split, reference in spec.files.items():
        path = resolve_file(reference, raw_dir, base_dir)
        if not path.is_file():
            raise ConfigError(f"{spec.source}: task {spec.name!r}, split {split!r}: file {path} does not exist")
        loaded[split] = READERS[spec.format](spec, split, path, ctx)
    return loaded


def _rng(spec: TaskSpec, role: str, seed: int) -> random.Random:
    return random.Random(f"{seed}:{spec.seed}:{spec.name}:{role}")


def draw_evaluation(spec: TaskSpec, splits: dict[str, list[dict]], seed: int = 0) -> TaskItems:
    """A task's evaluation items (its whole evaluation split, or a seeded ``size`` of it) and excluded splits."""
    where = f"{spec.source}: task {spec.name!r}"
    out = TaskItems(spec, excluded=[i for s in spec.exclude for i in splits.get(s, [])])
    if spec.evaluation is not None:
        split = spec.evaluation.get("split", _only_split(spec))
        pool = splits[split]
        size = spec.evaluation.get("size")
        shared_with_reference = spec.reference is not None and spec.reference.get("split", _only_split(spec)) == split
        if size is None and shared_with_reference:
            raise ConfigError(f"{where}: evaluation and reference share split {split!r}: give evaluation a 'size'")
        out.evaluation = pool if size is None else _draw(pool, int(size), _rng(spec, "evaluation", seed),
                                                         f"evaluation split {split!r}", where)  # fmt: skip
    return out


def draw_reference(items: TaskItems, splits: dict[str, list[dict]], banned: set[str], seed: int = 0) -> TaskItems:
    """Draw D_r and the held-out slice of ``items.spec`` (seeded), avoiding ``banned`` normalised questions
    (every task's evaluation items) and the task's own evaluation and excluded items."""
    spec = items.spec
    where = f"{spec.source}: task {spec.name!r}"
    if spec.reference is not None:
        split = spec.reference.get("split", _only_split(spec))
        avoid = banned | {question_key(i) for i in items.protected}
        pool = [i for i in splits[split] if question_key(i) not in avoid]
        size, heldout = int(spec.reference.get("size", 100)), int(spec.reference.get("heldout", 0))
        picked = _draw(pool, size + heldout, _rng(spec, "reference", seed), f"reference ({size}) + heldout ({heldout})",
                       where)  # fmt: skip
        items.reference, items.heldout = picked[:size], picked[size:]
    check_disjoint(items, where)
    return items


def split_task(
    spec: TaskSpec, splits: dict[str, list[dict]], banned: set[str] | None = None, seed: int = 0
) -> TaskItems:
    """Draw D_r, the held-out slice and the evaluation items (seeded, disjoint) from a task's splits.

    ``banned``: normalised questions that D_r and the held-out slice must avoid (every task's
    evaluation items).
    """
    return draw_reference(draw_evaluation(spec, splits, seed), splits, banned or set(), seed)


def split_tasks(loaded: dict[str, dict[str, list[dict]]], specs: dict[str, TaskSpec], seed: int = 0
                ) -> dict[str, TaskItems]:  # fmt: skip
    """Split every task: first all evaluation items, then each D_r avoiding *every* task's evaluation items."""
    items = {name: draw_evaluation(specs[name], loaded[name], seed) for name in loaded}
    banned = {question_key(i) for task in items.values() for i in task.protected}
    return {name: draw_reference(task, loaded[name], banned, seed) for name, task in items.items()}


BUILTIN_TASKS_FILE = resource_dir("params") / "tasks.yaml"


def declared_tasks(extra: dict[str, Any] | None = None) -> dict[str, TaskSpec]:
    """The built-in declarations (``params/tasks.yaml``) with a profile's own ``tasks`` merged over them by name:
    a new name declares a task, a known name overrides some of its keys (e.g. ``reference: {size: 20}``)."""
    with open(BUILTIN_TASKS_FILE, encoding="utf-8") as handle:
        builtin = (yaml.safe_load(handle) or {}).get("tasks", {})
    if extra and not isinstance(extra, dict):
        raise ConfigError(f"the profile's 'tasks' must map task names to declarations, got {type(extra).__name__}")
    source = str(BUILTIN_TASKS_FILE) + (" + the profile's tasks" if extra else "")
    return parse_tasks(deep_merge(builtin, extra or {}), source)


def select_tasks(specs: dict[str, TaskSpec], targets: list[str], benchmarks: list[str] | tuple[str, ...] = ()
                 ) -> dict[str, TaskSpec]:  # fmt: skip
    """The declared tasks a run needs, checked: every target has a reference set, every benchmark an evaluation."""
    for role, names, check in (("target", targets, "is_target"), ("benchmark", benchmarks, "is_benchmark")):
        for name in names:
            if name not in specs:
                raise ConfigError(f"{role} {name!r} is not a declared task; declared: {sorted(specs)}")
            if not getattr(specs[name], check):
                block = "reference" if role == "target" else "evaluation"
                raise ConfigError(f"{role} {name!r} ({specs[name].source}) has no {block!r} block")
    return {name: specs[name] for name in dict.fromkeys([*targets, *benchmarks])}


def check_disjoint(items: TaskItems, where: str) -> None:
    """D_r, the held-out slice and the evaluation items share no normalised question."""
    roles = {"reference": items.reference, "heldout": items.heldout, "evaluation": items.evaluation}
    keys = {role: {question_key(i) for i in xs} for role, xs in roles.items()}
    for a, b in (("reference", "heldout"), ("reference", "evaluation"), ("heldout", "evaluation")):
        shared = keys[a] & keys[b]
        if shared:
            raise DataFormatError(where, None, f"{len(shared)} question(s) are in both {a} and {b}")
