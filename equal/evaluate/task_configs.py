"""lm-eval task configs generated from a task's declaration: one generic YAML per metric kind.

``tasks/kind_<metric>.yaml`` holds everything a kind of task needs (prompt, scoring hook, metric,
generation settings); :func:`task_config` names the task after the declared one (``equal_<name>``),
points it at that task's evaluation items, and :func:`bpb_config` derives its bits-per-byte twin
(``equal_<name>_bpb``: the kind's prompt, the gold ``solution`` as target, ``kind_bits_per_byte.yaml``).
A new task therefore needs no YAML of its own.
"""

from __future__ import annotations

from pathlib import Path

from equal.errors import ConfigError
from equal.paths import resource_dir
from equal.task import TaskSpec

TASKS_DIR = resource_dir("tasks")
#: Kinds scored only by bits per byte (no generative metric).
BPB_ONLY = ("free_text",)
_BPB_DROPS = ("generation_kwargs", "doc_to_choice")


def _load(name: str) -> dict:
    from lm_eval.tasks._yaml_loader import load_yaml  # resolves `!function utils.*` next to the YAML

    path = TASKS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"{path}: no task template for this metric kind")
    return dict(load_yaml(path))


def _with_data(config: dict, task: str, data_file: Path, templates: list[str]) -> dict:
    # metadata.templates: which generic YAMLs the config came from (the evaluation cache digests them)
    metadata = {**config.get("metadata", {}), "templates": templates}
    return {"task": task, **config, "dataset_kwargs": {"data_files": {"test": str(data_file)}}, "metadata": metadata}


def task_config(spec: TaskSpec, data_file: str | Path) -> dict | None:
    """The generative (or multiple-choice) config of ``spec`` over ``data_file``; None for bpb-only kinds."""
    if spec.metric in BPB_ONLY:
        return None
    return _with_data(_load(f"kind_{spec.metric}"), f"equal_{spec.name}", Path(data_file), [f"kind_{spec.metric}"])


def bpb_config(spec: TaskSpec, data_file: str | Path) -> dict:
    """Bits per byte of the gold solution given the kind's prompt (every task has it)."""
    prompt = {"doc_to_text": "{{question}}"}
    if spec.metric not in BPB_ONLY:
        prompt["doc_to_text"] = _load(f"kind_{spec.metric}")["doc_to_text"]
    if spec.metric in ("numeric", "boxed"):
        prompt["doc_to_text"] = "{{question}}"  # the problem alone, as the built-in bpb tasks score it
    base = {"dataset_path": "json", "test_split": "test", **prompt, **_load("kind_bits_per_byte"),
            "metadata": {"version": 1.0}}  # fmt: skip
    templates = ["kind_bits_per_byte"] + ([] if spec.metric in BPB_ONLY else [f"kind_{spec.metric}"])
    return _with_data({k: v for k, v in base.items() if k not in _BPB_DROPS}, f"equal_{spec.name}_bpb",
                      Path(data_file), templates)  # fmt: skip
