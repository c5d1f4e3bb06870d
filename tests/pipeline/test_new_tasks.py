"""A target task none of the code knows, declared only in a profile, runs through notebooks 01-06.

Two tasks made from real ASDiv word problems: ``apples`` (numeric final answers, in the math domain like GSM8K)
and ``quiz`` (multiple choice: the right answer among three other problems' answers). One smoke-sized run selects
for both, trains on both and evaluates on both; each test checks one of them in every table.
"""

from __future__ import annotations

import json
import random
import re

import pandas as pd
import pytest
import yaml
from conftest import SmokeAnswers
from lxml import etree

from equal.io import read_jsonl
from equal.pipeline import run_profile

pytestmark = pytest.mark.slow  # real models, servers or whole pipelines: make test, not make test-fast


def asdiv_problems(raw_dir) -> list[dict]:
    """ASDiv's problems with a plain integer answer: question, formula, answer."""
    root = etree.parse(str(raw_dir / "raw/asdiv/ASDiv.xml")).getroot()
    problems = []
    for problem in root.iter("Problem"):
        answer = re.match(r"^\s*(\d+)\s*(\(|$)", problem.findtext("Answer") or "")
        if answer:
            question = f"{problem.findtext('Body').strip()} {problem.findtext('Question').strip()}"
            formula = (problem.findtext("Formula") or "").strip()
            problems.append(
                {"id": problem.get("ID"), "question": question, "formula": formula, "answer": answer.group(1)}
            )
    return problems


def write_tasks(raw_dir, folder) -> dict:
    """The two task files and their declarations (what a user adds to a profile)."""
    problems = asdiv_problems(raw_dir)
    apples, quiz = problems[:300], problems[300:500]
    with open(folder / "apples.jsonl", "w") as handle:  # its own field names, mapped by `fields`
        for p in apples:
            record = {"uid": p["id"], "problem": p["question"], "worked": f"{p['formula']}\n#### {p['answer']}",
                      "final": p["answer"]}  # fmt: skip
            handle.write(json.dumps(record) + "\n")
    rng = random.Random(0)
    answers = [p["answer"] for p in problems]
    with open(folder / "quiz.jsonl", "w") as handle:
        for p in quiz:
            others = rng.sample(sorted(set(answers) - {p["answer"]}), 3)
            choices = [*others, p["answer"]]
            rng.shuffle(choices)
            letter = "ABCD"[choices.index(p["answer"])]
            handle.write(json.dumps({"id": p["id"], "question": p["question"], "choices": choices, "answer": letter,
                                     "solution": f"{p['formula']}. The answer is {letter}."}) + "\n")  # fmt: skip
    apples = {
        "label": "Apples", "domain": "math", "metric": "numeric", "files": {"all": str(folder / "apples.jsonl")},
        "fields": {"id": "uid", "question": "problem", "solution": "worked", "answer": "final"},
        "reference": {"split": "all", "size": 20, "heldout": 20}, "evaluation": {"split": "all", "size": 30},
    }  # fmt: skip
    quiz = {
        "label": "Quiz", "domain": "math", "metric": "multiple_choice", "files": {"all": str(folder / "quiz.jsonl")},
        "reference": {"split": "all", "size": 20, "heldout": 10}, "evaluation": {"split": "all", "size": 20},
    }  # fmt: skip
    return {"apples": apples, "quiz": quiz}


@pytest.fixture(scope="module")
def new_task_run(raw_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("newtasks")
    methods = ["EQUAL", "Random", "All"]
    profile = {
        "extends": "smoke",
        "common": {"targets": ["apples", "quiz"], "methods": methods, "seeds": [0]},
        "stages": {
            # no source quotas: every ASDiv unit is offered (the decontamination check below needs them)
            "data": {"tasks": write_tasks(raw_dir, folder), "max_documents": 80, "source_quotas": None},
            "finetuning": {"runs": [{"methods": methods, "gammas": "all", "seeds": [0]}]},
            "evaluation": {"evaluation": {"benchmarks": ["apples", "quiz"], "max_gen_toks": {"apples": 16}}},
        },
    }
    path = folder / "newtasks.yaml"
    path.write_text(yaml.safe_dump(profile, allow_unicode=True))
    overrides = {"data_dir": str(folder / "data"), "figures_dir": str(folder / "figures")}
    notebooks = ["01", "02", "03", "04", "05", "06"]  # 07 only redraws figures; the smoke pipeline test runs it
    answers = SmokeAnswers()  # the profile extends smoke: it reads the smoke extractor's shipped answers
    info = run_profile(str(path), only=notebooks, overrides=overrides, results_override=folder / "results",
                       log_output=False)  # fmt: skip
    assert all(record["status"] == "ok" for record in info["notebooks"].values())
    answers.assert_none_paid("the new-task run")
    return folder


def _table(run, name) -> pd.DataFrame:
    return pd.read_csv(run / "results" / f"{name}.csv")


def _checks_every_table(run, task: str, label: str, metric: str) -> None:
    declared = json.loads((run / "data" / "tasks.json").read_text())
    assert declared[task]["items"]["evaluation"] > 0 and declared[task]["items"]["reference"] == 20
    selections = _table(run, "selection_runs")
    assert set(selections.loc[selections["target"] == task, "method"]) == {"EQUAL", "Random", "All"}
    assert selections.loc[selections["target"] == task, "ot_heldout"].notna().all()
    assert (_table(run, "selection_curves")["target"] == task).any()  # the bandit selected for it
    trained = _table(run, "finetune_runs")
    assert (run / "data" / "selection" / task / "gamma20" / "equal" / "seed0" / "pairs.jsonl").is_file()
    assert trained.set_index("model").loc[f"D_r (control) · {task}", "pairs"] == 20  # its own D_r
    evaluated = _table(run, "eval_runs")
    mine = evaluated[evaluated["benchmark"] == task]
    assert set(mine["metric"]) == {"bits_per_byte", metric} and set(mine["label"]) == {label}
    own = trained[(trained["target"] == task) | trained["target"].isna()]  # its models and All
    assert set(mine["model"]) == {"Base", *own["model"]} and len(own) == 4  # EQUAL, Random, the control, All
    main = _table(run, "main_table")
    assert any(column.startswith(f"{label} bpb") for column in main.columns)
    assert any(column.startswith(f"{label} {'EM' if metric == 'exact_match' else metric}") for column in main.columns)


@pytest.mark.notebook
def test_a_new_numeric_task_runs_through_every_notebook(new_task_run):
    _checks_every_table(new_task_run, "apples", "Apples", "exact_match")
    # its evaluation items were removed from the corpus like a built-in benchmark's (ASDiv is a corpus source)
    contaminated = read_jsonl(new_task_run / "data" / "contaminated_units.jsonl")
    assert any(row["matched_item"].startswith("apples-") for row in contaminated)


@pytest.mark.notebook
def test_a_new_multiple_choice_task_runs_through_every_notebook(new_task_run):
    _checks_every_table(new_task_run, "quiz", "Quiz", "acc")
    items = read_jsonl(new_task_run / "data" / "eval" / "items" / "quiz.jsonl")
    assert items and all(len(i["choices"]) == 4 and i["answer"] in "ABCD" for i in items)
    accuracy = _table(new_task_run, "eval_runs").query("benchmark == 'quiz' and metric == 'acc'")["value"]
    assert accuracy.between(0, 1).all()  # scored by the multiple-choice kind: the likeliest letter
