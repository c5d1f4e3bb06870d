"""Evaluation of a (fine-tuned) causal LM through lm-eval's ``simple_evaluate`` on the repo's task YAMLs.

The YAMLs in ``tasks/`` (``equal_gsm8k``, ``equal_math500``, ``equal_mbpp``, ``equal_humaneval`` and a
``*_bpb`` twin of each) name a placeholder data file; :func:`task_configs` loads them with lm-eval's
own YAML loader (which resolves ``!function utils.*``) and points them at the profile's evaluation
items. Those items are a seeded sample of each benchmark's test split written once by
:func:`write_eval_items`, so every model sees the same items; generative tasks use the first
``generation_items`` of them, the bits-per-byte tasks the first ``bpb_items``.

Results are cached per model (hash of its weights), task, items and settings in
``<cache>/<key>.json`` with every sample's prompt and response, so a re-run evaluates only what is new.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from equal.evaluate import scoring
from equal.fingerprint import fingerprint
from equal.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from equal.paths import resource_dir
from equal.weights import file_fingerprint

TASKS_DIR = resource_dir("tasks")

# benchmark → test file in data/<profile>/targets, generative task, small-scale (bits-per-byte) task, metric
BENCHMARKS: dict[str, dict[str, str]] = {
    "gsm8k": {"file": "gsm8k_test", "task": "equal_gsm8k", "bpb": "equal_gsm8k_bpb", "metric": "exact_match"},
    "math500": {"file": "math500_test", "task": "equal_math500", "bpb": "equal_math500_bpb", "metric": "exact_match"},
    "mbpp": {"file": "mbpp_test", "task": "equal_mbpp", "bpb": "equal_mbpp_bpb", "metric": "pass@1"},
    "humaneval": {
        "file": "humaneval_test",
        "task": "equal_humaneval",
        "bpb": "equal_humaneval_bpb",
        "metric": "pass@1",
    },
}
ROW_FIELDS = ("benchmark", "task", "metric", "value", "items", "model_weights")
BENCHMARK_LABELS = {"gsm8k": "GSM8K", "math500": "MATH-500", "mbpp": "MBPP", "humaneval": "HumanEval"}


@dataclass(frozen=True)
class EvalConfig:
    """How models are evaluated (the same for every model within a profile)."""

    benchmarks: tuple[str, ...] = ("gsm8k", "math500", "mbpp", "humaneval")
    bpb_items: int = 200  # items per benchmark for bits per byte (all of them when the split is smaller)
    generation_items: int = 20  # items per benchmark for exact match / pass@1 (0: skip generation)
    max_gen_toks: dict[str, int] = field(default_factory=dict)  # per benchmark; default: the YAML's
    batch_size: int = 16
    device: str = "cpu"  # cuda on a GPU box
    dtype: str = "bfloat16"  # bfloat16 is ~3x faster than float32 on CPUs with AVX-512 BF16
    max_length: int = 1024
    max_solution_chars: int = 2000  # longer gold solutions are left out (they would not fit max_length)
    seed: int = 0


def write_eval_items(targets_dir: Path, out_dir: Path, config: EvalConfig) -> dict[str, Path]:
    """Write a seeded sample of each benchmark's test split (same items for every model); return the files."""
    files = {}
    n_items = max(config.bpb_items, config.generation_items)
    for bench in config.benchmarks:
        source = Path(targets_dir) / f"{BENCHMARKS[bench]['file']}.jsonl"
        records = [r for r in read_jsonl(source) if len(r["solution"]) <= config.max_solution_chars]
        random.Random(f"{config.seed}:{bench}").shuffle(records)
        path = Path(out_dir) / f"{bench}.jsonl"
        chosen = records[:n_items]
        if not path.is_file() or read_jsonl(path) != chosen:
            write_jsonl_atomic(path, chosen)
        files[bench] = path
    return files


def _yaml(name: str) -> dict:
    from lm_eval.tasks._yaml_loader import load_yaml  # resolves `!function utils.*` next to the YAML

    return load_yaml(TASKS_DIR / f"{name}.yaml")


def task_configs(eval_files: dict[str, Path], config: EvalConfig) -> list[tuple[str, dict, int]]:
    """(benchmark, lm-eval task config, number of items) for every task to run."""
    specs = []
    for bench, path in eval_files.items():
        n_available = len(read_jsonl(path))
        names = [(BENCHMARKS[bench]["bpb"], min(config.bpb_items, n_available))]
        if config.generation_items > 0:
            names.append((BENCHMARKS[bench]["task"], min(config.generation_items, n_available)))
        for name, n in names:
            cfg = _yaml(name)
            cfg["dataset_kwargs"] = {"data_files": {"test": str(path)}}
            if cfg["output_type"] == "generate_until" and bench in config.max_gen_toks:
                cfg["generation_kwargs"] = {**cfg["generation_kwargs"], "max_gen_toks": config.max_gen_toks[bench]}
            specs.append((bench, cfg, n))
    return specs


def _cache_key(model_id: str, cfg: dict, n: int, data_file: Path, config: EvalConfig) -> str:
    """What an evaluation result depends on: the model's weights, the task (YAML and scoring hooks),
    generation settings, the items and the numeric settings."""
    settings = {k: v for k, v in asdict(config).items() if k in ("dtype", "max_length", "seed")}
    key = fingerprint(
        model=model_id,
        task_yaml=TASKS_DIR / f"{cfg['task']}.yaml",
        task_hooks=TASKS_DIR / "utils.py",
        scoring=Path(scoring.__file__),
        generation=cfg.get("generation_kwargs"),
        items=n,
        data=data_file,
        settings=settings,
    )
    return f"{cfg['task']}-{key.digest[:16]}"


def evaluate_model(
    model_dir: str | Path, eval_files: dict[str, Path], config: EvalConfig, cache_dir: Path
) -> list[dict]:
    """Evaluate one model on every task (cached per task); one row per task with the metric and item count."""
    model_dir = Path(model_dir)
    # the model's identity in the cache: its weights' bytes
    model_id = file_fingerprint([*model_dir.glob("*.safetensors"), *model_dir.glob("*.bin")])
    specs = task_configs(eval_files, config)
    rows, todo = [], []
    for bench, cfg, n in specs:
        key = _cache_key(model_id, cfg, n, Path(cfg["dataset_kwargs"]["data_files"]["test"]), config)
        path = Path(cache_dir) / f"{key}.json"
        if path.is_file():
            cached = json.loads(path.read_text())["row"]
            rows.append({name: cached[name] for name in ROW_FIELDS})  # the column order of a fresh row
        else:
            todo.append((cfg, n, bench, path))
    if todo:
        rows.extend(_run_lm_eval(model_dir, model_id, todo, config))
    order = {cfg["task"]: i for i, (_, cfg, _) in enumerate(specs)}
    return sorted(rows, key=lambda row: order[row["task"]])


def _run_lm_eval(model_dir: Path, model_id: str, todo: list[tuple], config: EvalConfig) -> list[dict]:
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    model = HFLM(
        pretrained=str(model_dir),
        device=config.device,
        dtype=config.dtype,
        batch_size=config.batch_size,
        max_length=config.max_length,
    )
    rows = []
    manager = TaskManager(include_defaults=False)
    # one task per call: each result is written as soon as it exists (an interrupted run keeps it)
    for cfg, n, bench, path in todo:
        output = simple_evaluate(
            model=model,
            tasks=[cfg],
            task_manager=manager,
            limit=n,
            apply_chat_template=True,
            log_samples=True,
            bootstrap_iters=0,
            random_seed=config.seed,
            numpy_random_seed=config.seed,
            torch_random_seed=config.seed,
            fewshot_random_seed=config.seed,
        )
        result = output["results"][cfg["task"]]
        metric = "bits_per_byte" if cfg["output_type"] == "loglikelihood" else BENCHMARKS[bench]["metric"]
        row = {
            "benchmark": bench,
            "task": cfg["task"],
            "metric": metric,
            "value": float(result[f"{metric},none"]),
            "items": int(output["n-samples"][cfg["task"]]["effective"]),
            "model_weights": model_id,
        }
        samples = [
            {
                "doc_id": s["doc_id"],
                "id": s["doc"].get("id"),
                "response": s["filtered_resps"][0] if cfg["output_type"] == "generate_until" else None,
                "score": s.get(metric) if not isinstance(s.get(metric), (list, tuple)) else s[metric][0],
            }
            for s in output["samples"][cfg["task"]]
        ]
        write_json_atomic(
            path, {"row": row, "config": {k: v for k, v in cfg.items() if not callable(v)}, "samples": samples}
        )
        rows.append(row)
    return rows
