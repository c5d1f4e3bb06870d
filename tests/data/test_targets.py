import pytest

from equal.data.targets import gsm8k_final_answer, gsm8k_solution, shared_questions, strip_calculator
from equal.data.tasks import declared_tasks, select_tasks, split_tasks
from equal.errors import ConfigError


def test_gsm8k_answer_parsing():
    solution = "She sold 48/2 = <<48/2=24>>24 clips in May.\n#### 1,072"
    assert gsm8k_final_answer(solution) == "1072"
    assert strip_calculator(solution).startswith("She sold 48/2 = 24 clips")
    assert gsm8k_solution(solution) == "She sold 48/2 = 24 clips in May.\nThe answer is: 1072"  # the shared format


def test_targets_have_the_standard_splits(builtin_tasks):
    sizes = {task: {split: len(items) for split, items in splits.items()} for task, splits in builtin_tasks.items()}
    assert sizes == {
        "gsm8k": {"train": 7473, "test": 1319},
        "math500": {"test": 500},
        "mbpp": {"train": 374, "test": 500, "prompt": 10, "validation": 90},
        "humaneval": {"test": 164},
    }
    assert {int(i["id"].split("-")[1]) for i in builtin_tasks["mbpp"]["test"]} == set(range(11, 511))
    assert all("\r" not in i["solution"] for i in builtin_tasks["mbpp"]["train"])
    assert builtin_tasks["humaneval"]["test"][0]["entry_point"]
    for task in ("gsm8k", "math500"):  # maths solutions end with the final-answer line, like the training pairs
        item = builtin_tasks[task]["test"][0]
        assert item["solution"].endswith(f"The answer is: {item['answer']}") and "####" not in item["solution"]


def test_reference_sets_are_seeded_and_disjoint_from_every_evaluation_item(builtin_tasks):
    specs = declared_tasks()
    first, again, other = (split_tasks(builtin_tasks, specs, seed) for seed in (0, 0, 1))
    ids = {name: [i["id"] for i in first[name].reference] for name in ("gsm8k", "mbpp")}
    assert ids == {name: [i["id"] for i in again[name].reference] for name in ids}
    assert ids["gsm8k"] != [i["id"] for i in other["gsm8k"].reference]
    assert len(first["gsm8k"].reference) == 100 and len(first["mbpp"].heldout) == 200
    assert not first["math500"].reference and not first["humaneval"].heldout  # benchmarks only
    assert all(i["split"] == "train" for i in first["gsm8k"].reference + first["mbpp"].reference)
    protected = [i for task in first.values() for i in task.protected]
    assert len(protected) == 1319 + 500 + 500 + 100 + 164  # every evaluation split and MBPP's prompt/validation
    for task in first.values():
        assert not shared_questions(task.reference + task.heldout, protected)
        assert not shared_questions(task.reference, task.heldout)


def test_a_profile_overrides_a_built_in_declaration_by_name():
    specs = declared_tasks({"gsm8k": {"reference": {"size": 20, "heldout": 20}}})
    assert specs["gsm8k"].reference == {"split": "train", "size": 20, "heldout": 20}
    assert specs["gsm8k"].metric == "numeric" and specs["math500"].reference is None
    with pytest.raises(ConfigError, match="task 'mine': 'domain' is required"):
        declared_tasks({"mine": {"metric": "numeric", "files": {"all": "x.jsonl"}, "evaluation": {}}})
    with pytest.raises(ConfigError, match=r"target 'math500' .*has no 'reference' block"):
        select_tasks(specs, ["math500"])
