"""Evaluation of a (fine-tuned) causal LM through lm-eval's ``simple_evaluate`` on configs generated from each
benchmark's declaration.

A benchmark is a declared task with an ``evaluation`` block (``params/tasks.yaml`` or a profile's own
``tasks``); :mod:`equal.evaluate.task_configs` turns its metric kind into an lm-eval config (one generic YAML
per kind in ``tasks/``) and its bits-per-byte twin, pointed at the profile's evaluation items. Those items are
a seeded sample of the task's evaluation split written once by :func:`write_eval_items`, so every model sees the
same items; generative tasks use the first ``generation_items`` of them, the bits-per-byte tasks the first
``bpb_items``.

Results are cached per model (hash of its weights), task, items and settings in
``<cache>/<key>.json`` with every sample's prompt and response, so a re-run evaluates only what is new.
"""

from __future__ import annotations

import importlib.util
import json
import math
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path

from equal.errors import ConfigError
from equal.evaluate import scoring
from equal.evaluate.task_configs import bpb_config, task_config
from equal.fingerprint import fingerprint
from equal.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from equal.paths import resource_dir
from equal.task import METRIC_NAMES, TaskSpec
from equal.weights import model_identity

TASKS_DIR = resource_dir("tasks")

ROW_FIELDS = ("benchmark", "task", "metric", "value", "items", "model_weights")
ENGINES = ("hf", "vllm")


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
    engine: str = "hf"  # hf (transformers, any device) | vllm (lm-eval's vLLM model: GPUs, generation-heavy runs)
    tensor_parallel_size: int = 1  # vllm: GPUs per model
    gpu_memory_utilization: float = 0.9  # vllm

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"evaluation engine must be one of {ENGINES}, got {self.engine!r}")


def write_eval_items(sources: dict[str, Path], out_dir: Path, config: EvalConfig) -> dict[str, Path]:
    """Write a seeded sample of each benchmark's evaluation items (``sources``: benchmark → the file notebook 01
    wrote; the same items for every model); return the files."""
    files = {}
    n_items = max(config.bpb_items, config.generation_items)
    for bench in config.benchmarks:
        records = [r for r in read_jsonl(sources[bench]) if len(r.get("solution") or "") <= config.max_solution_chars]
        random.Random(f"{config.seed}:{bench}").shuffle(records)
        path = Path(out_dir) / f"{bench}.jsonl"
        chosen = records[:n_items]
        if not path.is_file() or read_jsonl(path) != chosen:
            write_jsonl_atomic(path, chosen)
        files[bench] = path
    return files


def task_configs(eval_files: dict[str, Path], config: EvalConfig, specs: dict[str, TaskSpec]
                 ) -> list[tuple[str, dict, int]]:  # fmt: skip
    """(benchmark, lm-eval task config, number of items) for every task to run: each benchmark's bits-per-byte
    task, and its generative (or multiple-choice) task when ``generation_items`` > 0."""
    out = []
    for bench, path in eval_files.items():
        spec = specs[bench]
        n_available = len(read_jsonl(path))
        configs = [(bpb_config(spec, path), min(config.bpb_items, n_available))]
        generative = task_config(spec, path)
        if config.generation_items > 0 and generative is not None:
            configs.append((generative, min(config.generation_items, n_available)))
        for cfg, n in configs:
            if cfg["output_type"] == "generate_until" and bench in config.max_gen_toks:
                cfg["generation_kwargs"] = {**cfg["generation_kwargs"], "max_gen_toks": config.max_gen_toks[bench]}
            out.append((bench, cfg, n))
    return out


def _cache_key(model_id: str, cfg: dict, n: int, data_file: Path, config: EvalConfig) -> str:
    """What an evaluation result depends on: the model's weights, the task (YAML and scoring hooks),
    generation settings, the items and the numeric settings."""
    settings = {k: v for k, v in asdict(config).items() if k in ("dtype", "max_length", "seed")}
    if config.engine != "hf":  # another engine's numbers are other numbers (the default keeps older keys)
        settings["engine"] = config.engine
    key = fingerprint(
        model=model_id,
        task_yaml=[TASKS_DIR / f"{name}.yaml" for name in template_names(cfg)],
        task_hooks=TASKS_DIR / "utils.py",
        scoring=Path(scoring.__file__),
        generation=cfg.get("generation_kwargs"),
        items=n,
        data=data_file,
        settings=settings,
    )
    return f"{cfg['task']}-{key.digest[:16]}"


def template_names(cfg: dict) -> list[str]:
    """The generic YAMLs a generated config came from (its cache key reads their content)."""
    return cfg.get("metadata", {}).get("templates", [])


def _cache_path(model_id: str, cfg: dict, n: int, config: EvalConfig, cache_dir: Path) -> Path:
    key = _cache_key(model_id, cfg, n, Path(cfg["dataset_kwargs"]["data_files"]["test"]), config)
    return Path(cache_dir) / f"{key}.json"


def item_scores(
    model_dir: str | Path,
    eval_files: dict[str, Path],
    config: EvalConfig,
    cache_dir: Path,
    specs: dict[str, TaskSpec],
    model_id: str | None = None,
) -> list[dict]:
    """Every evaluation item's score for one model, read from the cache :func:`evaluate_model` filled: ``value``
    and ``weight`` such that a metric over any set of items is sum(value) / sum(weight) — bits of the gold
    solution and its UTF-8 bytes for bits per byte, the 0/1 score and 1 otherwise. Paired comparisons between
    models (bootstrap over items) are built from these. ``model_id``: the ``model_weights`` of
    :func:`evaluate_model`'s rows (else the weights are hashed again)."""
    model_id = model_id or model_identity(model_dir)
    rows = []
    for bench, cfg, n in task_configs(eval_files, config, specs):
        path = _cache_path(model_id, cfg, n, config, cache_dir)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no cached evaluation of {model_dir} on {cfg['task']} — evaluate first")
        cached = json.loads(path.read_text())
        metric = cached["row"]["metric"]
        items = read_jsonl(cfg["dataset_kwargs"]["data_files"]["test"]) if metric == "bits_per_byte" else []
        for sample in cached["samples"]:
            if metric == "bits_per_byte":  # the sample's score is the log-likelihood (nats) of the gold solution
                value = -float(sample["score"]) / math.log(2)
                weight = len(items[sample["doc_id"]]["solution"].encode("utf-8"))
            else:
                value, weight = float(sample["score"]), 1
            rows.append({"benchmark": bench, "metric": metric, "item": sample["doc_id"], "value": value,
                         "weight": weight})  # fmt: skip
    return rows


def evaluate_model(
    model_dir: str | Path,
    eval_files: dict[str, Path],
    config: EvalConfig,
    cache_dir: Path,
    specs: dict[str, TaskSpec],
) -> list[dict]:
    """Evaluate one model on every task (cached per task); one row per task with the metric and item count
    (``label``: the benchmark's name in tables)."""
    model_id = model_identity(model_dir)
    planned = task_configs(eval_files, config, specs)
    rows, todo = [], []
    for bench, cfg, n in planned:
        path = _cache_path(model_id, cfg, n, config, cache_dir)
        if path.is_file():
            cached = json.loads(path.read_text())["row"]
            rows.append({name: cached[name] for name in ROW_FIELDS})  # the column order of a fresh row
        else:
            todo.append((cfg, n, bench, path))
    if todo:
        rows.extend(_run_lm_eval(model_dir, model_id, todo, config, specs))
    order = {cfg["task"]: i for i, (_, cfg, _) in enumerate(planned)}
    return [{**row, "label": specs[row["benchmark"]].title} for row in sorted(rows, key=lambda r: order[r["task"]])]


def _lm_eval_model(model_dir: Path, config: EvalConfig):
    """lm-eval's model for ``config.engine``: HFLM (transformers) or VLLM (vLLM on GPUs)."""
    if config.engine == "vllm":
        if importlib.util.find_spec("vllm") is None:
            raise ConfigError("evaluation engine 'vllm' needs vLLM on a GPU machine: pip install vllm")
        from lm_eval.models.vllm_causallms import VLLM

        return VLLM(pretrained=str(model_dir), dtype=config.dtype, batch_size="auto", max_length=config.max_length,
                    tensor_parallel_size=config.tensor_parallel_size, seed=config.seed,
                    gpu_memory_utilization=config.gpu_memory_utilization)  # fmt: skip
    from lm_eval.models.huggingface import HFLM

    return HFLM(pretrained=str(model_dir), device=config.device, dtype=config.dtype, batch_size=config.batch_size,
                max_length=config.max_length)  # fmt: skip


def _run_lm_eval(model_dir: Path, model_id: str, todo: list[tuple], config: EvalConfig, specs: dict[str, TaskSpec]
                 ) -> list[dict]:  # fmt: skip
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    model = _lm_eval_model(model_dir, config)
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
        metric = "bits_per_byte" if cfg["output_type"] == "loglikelihood" else METRIC_NAMES[specs[bench].metric]
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
