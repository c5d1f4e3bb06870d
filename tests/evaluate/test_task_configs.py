"""Generated lm-eval configs: the four built-in benchmarks get their metric kind's prompt, scoring hook and metric,
and a new multiple-choice task scores a right and a wrong answer."""

import json

import pytest

from equal.data.tasks import load_task_file, parse_tasks
from equal.evaluate.task_configs import bpb_config, task_config
from equal.paths import resource_dir

#: What each built-in benchmark's generated configs must be: (output type, scoring hook, metric) of the generative
#: task, and the bits-per-byte twin's prompt (the problem alone for math, the kind's prompt for code).
BUILT_IN = {
    "gsm8k": ("generate_until", "gsm8k_exact_match", "exact_match", "{{question}}"),
    "math500": ("generate_until", "math_exact_match", "exact_match", "{{question}}"),
    "mbpp": ("generate_until", "mbpp_pass_at_1", "pass@1", None),
    "humaneval": ("generate_until", "humaneval_pass_at_1", "pass@1", None),
}


@pytest.mark.parametrize("name", list(BUILT_IN))
def test_built_in_benchmarks_are_generated_from_their_declaration(name, tmp_path):
    spec = load_task_file(resource_dir("params") / "tasks.yaml")[name]
    generated, bpb = task_config(spec, tmp_path / "items.jsonl"), bpb_config(spec, tmp_path / "items.jsonl")
    output_type, hook, metric, bpb_prompt = BUILT_IN[name]
    assert generated["task"] == f"equal_{name}" and bpb["task"] == f"equal_{name}_bpb"
    assert generated["output_type"] == output_type and generated["process_results"].__name__ == hook
    assert [m["metric"] for m in generated["metric_list"]] == [metric]
    assert bpb["output_type"] == "loglikelihood" and bpb["process_results"].__name__ == "bits_per_byte"
    assert bpb["doc_to_text"] == (bpb_prompt or generated["doc_to_text"]) and bpb["doc_to_target"] == "{{solution}}"
    assert "generation_kwargs" not in bpb
    for config in (generated, bpb):
        assert config["dataset_kwargs"]["data_files"]["test"] == str(tmp_path / "items.jsonl")


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
