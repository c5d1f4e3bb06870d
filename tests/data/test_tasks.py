"""Target tasks declared as data: the built-in benchmarks from params/tasks.yaml, and a task none of the code knows."""

import json

import pytest

from equal.data.reading import ReadContext
from equal.data.tasks import load_task, load_task_file, parse_tasks, question_key, split_task
from equal.errors import ConfigError, DataFormatError
from equal.paths import resource_dir


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def numeric_items(n: int) -> list[dict]:
    return [{"uid": f"p{i}", "problem": f"Tom has {i} apples and buys {i + 3} more. How many apples does he have?",
             "worked": f"He has {i} + {i + 3} = {2 * i + 3} apples.", "final": str(2 * i + 3)}
            for i in range(n)]  # fmt: skip


def my_task(path, **overrides) -> dict:
    body = {"domain": "math", "metric": "numeric", "files": {"all": str(path)},
            "fields": {"id": "uid", "question": "problem", "solution": "worked", "answer": "final"},
            "reference": {"split": "all", "size": 10, "heldout": 5},
            "evaluation": {"split": "all", "size": 8}}  # fmt: skip
    return {"apples": {**body, **overrides}}


@pytest.mark.slow
def test_the_built_in_benchmarks_are_declared_in_params(raw_dir, tmp_path):
    tasks = load_task_file(resource_dir("params") / "tasks.yaml")
    assert set(tasks) == {"gsm8k", "math500", "mbpp", "humaneval"}
    assert [t for t in tasks.values() if t.is_target] == [tasks["gsm8k"], tasks["mbpp"]]
    loaded = {name: load_task(spec, raw_dir, tmp_path) for name, spec in tasks.items()}
    banned = {question_key(i) for name, spec in tasks.items()
              for i in split_task(spec, loaded[name]).protected}  # fmt: skip
    gsm8k = split_task(tasks["gsm8k"], loaded["gsm8k"], banned)
    assert (len(gsm8k.reference), len(gsm8k.heldout), len(gsm8k.evaluation)) == (100, 200, 1319)
    mbpp = split_task(tasks["mbpp"], loaded["mbpp"], banned)
    assert len(mbpp.evaluation) == 500 and len(mbpp.excluded) == 100 and len(mbpp.reference) == 100
    assert not {question_key(i) for i in mbpp.reference + mbpp.heldout} & banned


def test_a_task_of_your_own_is_drawn_disjoint_and_seeded(tmp_path):
    path = write_jsonl(tmp_path / "apples.jsonl", numeric_items(30))
    spec = parse_tasks(my_task(path))["apples"]
    assert spec.is_target and spec.is_benchmark and spec.title == "apples"
    items = split_task(spec, load_task(spec, tmp_path, tmp_path))
    assert (len(items.reference), len(items.heldout), len(items.evaluation)) == (10, 5, 8)
    keys = [{question_key(i) for i in xs} for xs in (items.reference, items.heldout, items.evaluation)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert items.reference[0]["id"].startswith("apples-p") and items.reference[0]["answer"].isdigit()
    again = split_task(spec, load_task(spec, tmp_path, tmp_path))
    assert [i["id"] for i in again.reference] == [i["id"] for i in items.reference]  # seeded


def test_bad_reference_files_name_the_file_line_and_field(tmp_path):
    records = numeric_items(30)
    del records[6]["worked"]
    path = write_jsonl(tmp_path / "apples.jsonl", records)
    spec = parse_tasks(my_task(path))["apples"]
    with pytest.raises(DataFormatError, match=r"apples.jsonl:7: field 'worked' is missing"):
        load_task(spec, tmp_path, tmp_path)
    skipped = ReadContext(on_error="skip")
    assert len(load_task(spec, tmp_path, tmp_path, skipped)["all"]) == 29 and skipped.report.skipped_total == 1

    records = numeric_items(30)
    records[9]["uid"] = "p2"
    path = write_jsonl(tmp_path / "dup.jsonl", records)
    with pytest.raises(DataFormatError, match=r"dup.jsonl:10: duplicate id 'p2' \(first on line 3\)"):
        load_task(parse_tasks(my_task(path))["apples"], tmp_path, tmp_path)

    path = write_jsonl(tmp_path / "few.jsonl", numeric_items(12))
    spec = parse_tasks(my_task(path))["apples"]
    with pytest.raises(ConfigError, match=r"reference \(10\) \+ heldout \(5\) asks for 15 items but only 4"):
        split_task(spec, load_task(spec, tmp_path, tmp_path))


def test_declarations_are_checked_before_anything_is_read(tmp_path):
    with pytest.raises(ConfigError, match="metric 'bleu' is not one of"):
        parse_tasks(my_task(tmp_path / "x.jsonl", metric="bleu"))
    with pytest.raises(ConfigError, match="'domain' is required"):
        parse_tasks(my_task(tmp_path / "x.jsonl", domain=None))
    with pytest.raises(ConfigError, match="unknown keys"):
        parse_tasks(my_task(tmp_path / "x.jsonl", reference_size=3))
    with pytest.raises(ConfigError, match="give evaluation a 'size'"):
        spec = parse_tasks(my_task(write_jsonl(tmp_path / "a.jsonl", numeric_items(30)), evaluation={"split": "all"}))
        split_task(spec["apples"], load_task(spec["apples"], tmp_path, tmp_path))


def test_a_multiple_choice_task_checks_its_answer_letters(tmp_path):
    records = [{"id": i, "question": f"Which number is even, case {i}?", "choices": ["3", "4", "5"], "answer": "b"}
               for i in range(6)]  # fmt: skip
    records[4]["answer"] = "D"
    path = write_jsonl(tmp_path / "mc.jsonl", records)
    declared = {"quiz": {"domain": "general", "metric": "multiple_choice", "files": {"test": str(path)},
                         "evaluation": {"split": "test"}}}  # fmt: skip
    spec = parse_tasks(declared)["quiz"]
    with pytest.raises(DataFormatError, match=r"mc.jsonl:5: answer 'D' is not a letter of \['A', 'B', 'C'\]"):
        load_task(spec, tmp_path, tmp_path)
    items = load_task(spec, tmp_path, tmp_path, ReadContext(on_error="skip"))["test"]
    assert len(items) == 5 and items[0]["answer"] == "B" and items[0]["solution"] == "The answer is B."
