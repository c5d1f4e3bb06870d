"""Generated lm-eval configs: the four built-in benchmarks come out as their hand-written YAMLs, and a new
multiple-choice task scores a right and a wrong answer."""

import json

import pytest

from equal.data.tasks import load_task_file, parse_tasks
from equal.evaluate.harness import _yaml
from equal.evaluate.task_configs import bpb_config, task_config
from equal.paths import resource_dir

COMPARED = ("output_type", "doc_to_text", "doc_to_target", "process_results", "metric_list", "generation_kwargs",
            "target_delimiter", "dataset_path", "test_split")  # fmt: skip


def same(a, b) -> bool:
    return (a.__name__ == b.__name__) if callable(a) and callable(b) else a == b


@pytest.mark.parametrize("name", ["gsm8k", "math500", "mbpp", "humaneval"])
def test_built_in_benchmarks_are_generated_from_their_declaration(name, tmp_path):
    spec = load_task_file(resource_dir("params") / "tasks.yaml")[name]
    generated, bpb = task_config(spec, tmp_path / "items.jsonl"), bpb_config(spec, tmp_path / "items.jsonl")
    for made, written in ((generated, _yaml(f"equal_{name}")), (bpb, _yaml(f"equal_{name}_bpb"))):
        assert made["task"] == written["task"]
        for key in COMPARED:
            assert same(made.get(key), written.get(key)), (name, made["task"], key)
        assert made["dataset_kwargs"]["data_files"]["test"] == str(tmp_path / "items.jsonl")


def test_a_multiple_choice_task_needs_no_yaml_of_its_own(tmp_path):
    from lm_eval.tasks import TaskManager

    items = tmp_path / "quiz.jsonl"
    doc = {"id": "q1", "question": "Which number is even?", "choices": ["3", "4", "5"], "answer": "B",
           "solution": "The answer is B."}  # fmt: skip
    items.write_text(json.dumps(doc) + "\n")
    spec = parse_tasks({"quiz": {"domain": "general", "metric": "multiple_choice", "files": {"test": str(items)},
                                 "evaluation": {"split": "test"}}})["quiz"]  # fmt: skip
    configs = [task_config(spec, items), bpb_config(spec, items)]
    loaded = TaskManager(include_defaults=False).load_task_or_group(configs)
    task = loaded["equal_quiz"]
    doc = next(iter(task.test_docs()))
    assert task.doc_to_choice(doc) == ["A", "B", "C"] and task.doc_to_target(doc) == 1
    assert "A. 3\nB. 4\nC. 5" in task.doc_to_text(doc)
    right = task.process_results(doc, [(-0.1, True), (-0.01, True), (-2.0, False)])
    wrong = task.process_results(doc, [(-0.01, True), (-0.1, True), (-2.0, False)])
    assert right["acc"] == 1.0 and wrong["acc"] == 0.0
    assert "equal_quiz_bpb" in loaded
