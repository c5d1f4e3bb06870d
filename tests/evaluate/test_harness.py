"""The lm-eval configs generated from the built-in declarations load through lm-eval and score known answers right
and wrong."""

import math

import pytest

from equal.data.tasks import declared_tasks
from equal.evaluate.harness import EvalConfig, task_configs
from equal.io import write_jsonl_atomic

GSM8K = {
    "id": "gsm8k-test-0",
    "question": "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for "
    "her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh "
    "duck egg. How much in dollars does she make every day at the farmers' market?",
    "solution": "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = $18 every day at the farmer's market."
    "\n#### 18",
    "answer": "18",
}
MBPP = {
    "id": "mbpp-2",
    "question": "Write a function to find the shared elements from the given two lists.",
    "solution": "def similar_elements(test_tup1, test_tup2):\n  res = tuple(set(test_tup1) & set(test_tup2))\n"
    "  return (res) ",
    "answer": "",
    "test_list": "['assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))']",
    "test_setup_code": "",
}


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    from lm_eval.tasks import TaskManager

    folder = tmp_path_factory.mktemp("items")
    files = {"gsm8k": folder / "gsm8k.jsonl", "mbpp": folder / "mbpp.jsonl"}
    write_jsonl_atomic(files["gsm8k"], [GSM8K])
    write_jsonl_atomic(files["mbpp"], [MBPP])
    config = EvalConfig(benchmarks=("gsm8k", "mbpp"), bpb_items=1, generation_items=1)
    specs = [cfg for _, cfg, _ in task_configs(files, config, declared_tasks())]
    return TaskManager(include_defaults=False).load_task_or_group(specs)


def _only_doc(task):
    docs = list(task.test_docs())
    assert len(docs) == 1
    return docs[0]


def test_every_benchmark_has_a_generative_and_a_bpb_task(tasks):
    assert {name for name in tasks} == {"equal_gsm8k", "equal_gsm8k_bpb", "equal_mbpp", "equal_mbpp_bpb"}


def test_gsm8k_yaml_scores_a_right_and_a_wrong_answer(tasks):
    task = tasks["equal_gsm8k"]
    doc = _only_doc(task)
    assert "farmers' market" in task.doc_to_text(doc) and "'The answer is: N'" in task.doc_to_text(doc)
    assert task.process_results(doc, ["9 eggs are left.\n9 * 2 = 18.\nThe answer is: 18"]) == {"exact_match": 1.0}
    assert task.process_results(doc, ["16 - 3 - 4 = 9 eggs, 9 * 2 = 18.\n#### 18"]) == {"exact_match": 1.0}
    assert task.process_results(doc, ["16 - 3 = 13 eggs, 13 * 2 = 26.\n#### 26"]) == {"exact_match": 0.0}


def test_mbpp_yaml_runs_the_tests(tasks):
    task = tasks["equal_mbpp"]
    doc = _only_doc(task)
    assert "assert set(similar_elements" in task.doc_to_text(doc)
    right = "def similar_elements(a, b):\n    return tuple(set(a) & set(b))"
    wrong = "def similar_elements(a, b):\n    return tuple(set(a) | set(b))"
    assert task.process_results(doc, [right]) == {"pass@1": 1.0}
    assert task.process_results(doc, [wrong]) == {"pass@1": 0.0}


def test_bpb_yaml_turns_a_loglikelihood_into_bits_per_byte(tasks):
    from lm_eval.api.metrics import bits_per_byte

    task = tasks["equal_gsm8k_bpb"]
    doc = _only_doc(task)
    assert task.doc_to_target(doc) == GSM8K["solution"]
    scored = task.process_results(doc, [(-100.0, False)])["bits_per_byte"]
    assert scored == (-100.0, len(GSM8K["solution"].encode("utf-8")))
    assert bits_per_byte([scored]) == pytest.approx(100.0 / scored[1] / math.log(2))


@pytest.mark.slow
def test_an_evaluation_is_read_back_until_the_model_or_the_items_change(tmp_path, monkeypatch):
    from equal.evaluate import harness
    from equal.weights import TINY_CHAT_MODEL, causal_lm_dir

    calls = []
    real = harness._run_lm_eval
    monkeypatch.setattr(harness, "_run_lm_eval", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    files = {"gsm8k": tmp_path / "gsm8k.jsonl"}
    write_jsonl_atomic(files["gsm8k"], [GSM8K])
    config = EvalConfig(benchmarks=("gsm8k",), bpb_items=1, generation_items=0, dtype="float32")
    model = causal_lm_dir(TINY_CHAT_MODEL)
    first = harness.evaluate_model(model, files, config, tmp_path / "cache", declared_tasks())
    assert len(calls) == 1 and first[0]["metric"] == "bits_per_byte" and first[0]["items"] == 1
    assert (
        harness.evaluate_model(model, files, config, tmp_path / "cache", declared_tasks()) == first and len(calls) == 1
    )
    write_jsonl_atomic(files["gsm8k"], [{**GSM8K, "solution": GSM8K["solution"].replace("18", "19")}])
    harness.evaluate_model(model, files, config, tmp_path / "cache", declared_tasks())
    assert len(calls) == 2  # other items: evaluated again
