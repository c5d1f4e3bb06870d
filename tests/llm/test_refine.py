"""The refinement pass: verified final answers, checked arithmetic and code, bounded attempts, the quality gate,
every call cached exactly once and charged, resume after kill -9 without paying twice."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import cached_rows

from equal.errors import ConfigError
from equal.llm.cache import CallCache
from equal.llm.extract import ExtractionConfig, QAExtractor, draft_records, pairs_records
from equal.llm.fake import ScriptedBackend
from equal.llm.ledger import CostLedger
from equal.llm.quality import hard_check_failures
from equal.llm.refine import PairRefiner, RefinementConfig, pair_kind, parse_refined, pick_examples
from equal.llm.types import Completion
from equal.llm.verify import answers_match, code_check, final_answer, reference_answer, wrong_calculations


# ---------------------------------------------------------------------------------------------- verification
@pytest.mark.parametrize(
    ("reference", "answer"),
    [("52", "52"), ("1,200", "1200"), ("$52", "52"), ("0.5", "1/2"), ("\\frac{3}{4}", "0.75"), ("25%", "0.25"),
     ("52 peaches", "52"), ("x = 4", "4"), ("12.50", "12.5"), ("\\sqrt{2}", "\\sqrt{2}"), ("2x", "2x")],
)  # fmt: skip
def test_answers_that_agree(reference, answer):
    assert answers_match(reference, answer)


@pytest.mark.parametrize(("reference", "answer"), [("52", "53"), ("1/2", "0.6"), ("12", "twelve apples and more")])
def test_answers_that_differ(reference, answer):
    assert not answers_match(reference, answer)


def test_final_and_reference_answers():
    assert final_answer("Step.\nThe answer is: 42.\n") == "42."
    assert final_answer("so \\boxed{7} is it") == "7"
    assert final_answer("no final line") is None
    assert reference_answer("52") == "52"
    assert reference_answer("He picked 40 and then 12 more, so 52 in all.\nThe answer is: 52") == "52"
    long_prose = "He picked forty in the morning and twelve after lunch, and that was 52 peaches by the evening."
    assert reference_answer(long_prose) == "52"
    assert reference_answer("A long explanation without any figure in it at all, going on for a while longer.") is None
    assert reference_answer("Luke ended up with 2 good games.") == "2"  # a short sentence's one quantity
    assert reference_answer("26 buses should be rented.") == "26 buses should be rented"  # already a number
    assert reference_answer("Paris is the capital.") == "Paris is the capital"  # no quantity: the text itself


def test_wrong_calculations_are_found():
    good = "She buys 3 packs.\n3 * 4 = 12 pens.\n$3.50 x 2 = $7.\n12 / 5 = 2.4\nThe answer is: 12"
    assert wrong_calculations(good) == []
    assert wrong_calculations("48 / 2 = 25 clips\n2 + 2 = 4") == ["48 / 2 = 25"]


def test_wrong_calculations_read_sums_with_unit_words():
    # a probe pair (refine-v4): the sum of the four counts is 54, the answer 62 comes from a step never shown
    cutlery = "Now add them: 6 forks + 15 knives + 30 spoons + 3 teaspoons = 62 pieces of cutlery."
    assert wrong_calculations(cutlery) == []  # refine-v3 reads as shipped: words between numbers stay unread
    assert wrong_calculations(cutlery, with_units=True) == ["6 + 15 + 30 + 3 = 62"]
    assert wrong_calculations("6 forks + 15 knives + 30 spoons + 3 teaspoons = 54 pieces", with_units=True) == []
    assert wrong_calculations("So, 7 cars - 5 - 5 = 35 cars.", with_units=True) == ["7 - 5 - 5 = 35"]
    # words that scale or name the operation, and algebra's one-letter variables, leave a sum unread
    for right_as_meant in ("2 dozen * 3 = 72", "20 percent * 50 = 10", "3 times 4 = 12", "2 * 4 - 2 m + 4 = 18"):
        assert wrong_calculations(right_as_meant, with_units=True) == []
    assert wrong_calculations("$5 per hour * 8 hours = $40", with_units=True) == []


def test_code_check_runs_the_documents_asserts():
    answer = "```python\ndef add(a, b):\n    return a + b\n```"
    assert code_check(answer, "Write add.\nassert add(1, 2) == 3\n") == (True, "passes 1 document assert(s)")
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    assert code_check(wrong, "assert add(1, 2) == 3")[0] is False
    assert code_check("```python\ndef f(:\n```")[0] is False
    assert code_check(answer, "assert other(1) == 1") == (True, "parses")  # asserts about other functions: ignored


def test_pair_kinds():
    assert pair_kind("How many peaches did Mike pick if he picked 40 and 12?", "52") == "problem"
    assert pair_kind("Write a function that reverses a list.", "def f(x): return x[::-1]") == "code"
    assert pair_kind("Why is the sky blue?", "Rayleigh scattering.") == "concept"
    assert pair_kind("What is a closure?", "A function with its environment.") == "concept"
    # a word problem whose numbers are in the document or spelled out: a quantity asked for, a number answered
    assert pair_kind("How many buses should be rented?", "26 buses should be rented.") == "problem"
    assert pair_kind("How many good games did Luke end up with?", "Luke ended up with 2 good games.") == "problem"
    assert pair_kind("Adam fits nine figures on each of three shelves. How many figures fit?", "27") == "problem"
    assert pair_kind("How many moons does Mars have?", "Two small moons, Phobos and Deimos.") == "concept"
    assert pair_kind("How long ago did the war end?", "It ended in 1945.") == "concept"  # a year is a date


def test_parse_refined_reply():
    assert parse_refined("Question: What is 2 + 2?\nSolution:\n2 + 2 = 4\nThe answer is: 4") == (
        "What is 2 + 2?", "2 + 2 = 4\nThe answer is: 4")  # fmt: skip
    assert parse_refined("**Question:** Q?\n**Answer:** A.") == ("Q?", "A.")
    assert parse_refined("just prose") is None


# ---------------------------------------------------------------------------------------------- the pass itself
class Teacher(ScriptedBackend):
    """Extracts the problem a document names; refines it right, except where the question asks otherwise:
    'wrong-first' gets a wrong final answer when decoded greedily, 'always-wrong' every time, 'bad-sum' a wrong
    inline calculation, 'bare' the final answer with no step before it."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.model_id = "teacher@1"
        self.calls = []

    def chat(self, batch, params):
        self.calls.extend((m[-1]["content"], params.temperature) for m in batch)
        return super().chat(batch, params)

    def _answer(self, messages, params):
        user = messages[-1]["content"]
        if "\nDraft " not in user:  # extraction: the document's own pairs, as JSON
            pairs = json.loads(re.search(r"PAIRS=(\[.*\])", user).group(1))
            text = json.dumps({"pairs": pairs})
            return Completion(text, 10, 10, 0.0, "stop")
        question = re.search(r"\nDraft (?:question|task): (.*)\n", user).group(1)
        reference = re.search(r"The correct final answer is: (.*)\n", user)
        if reference is None:
            return super()._answer(messages, params)
        final = reference.group(1)
        if "always-wrong" in question or ("wrong-first" in question and params.temperature == 0):
            final = "999"
        steps = "12 + 12 = 25" if "bad-sum" in question else "40 + 12 = 52"
        work = "" if "bare" in question else f"He picks 40 and 12.\n{steps}\n"
        text = f"Question: {question} (restated)\nSolution:\n{work}The answer is: {final}"
        return Completion(text, 20, 20, 0.0, "stop")


def document(doc_id: str, pairs: list[dict], extra: str = "") -> dict:
    return {"id": doc_id, "text": f"A lesson. {extra} PAIRS={json.dumps(pairs)}"}


PROBLEM = {"question": "How many peaches did Mike pick if he picked 40 and then 12?", "answer": "52"}
GSM_STYLE = [{"question": "Tom has 3 bags of 4 apples. How many apples?", "solution": "3 * 4 = 12\nThe answer is: 12"}]


def extractor(tmp_path, backend=None, **refinement):
    backend = backend or Teacher(batch_size=4)
    cache = CallCache(tmp_path / "calls.sqlite")
    gate = refinement.pop("quality_gate", "drop")
    config = RefinementConfig(**{"attempts": 3, **refinement})
    refiner = PairRefiner(backend, cache, config, {"problem": GSM_STYLE})
    return QAExtractor(backend, cache, ExtractionConfig(max_pairs=3, quality_gate=gate), refiner), backend


def test_refined_pairs_are_verified_and_keep_their_drafts(tmp_path):
    docs = [
        document("d1", [PROBLEM]),
        document("d2", [{**PROBLEM, "question": PROBLEM["question"] + " wrong-first"}]),
        document("d3", [{**PROBLEM, "question": PROBLEM["question"] + " always-wrong"}]),
        document("d4", [{**PROBLEM, "question": PROBLEM["question"] + " bad-sum"}]),
        document("d5", [{"question": "Why does ice float?", "answer": "It is less dense than water."}]),
        document("d7", [{**PROBLEM, "question": PROBLEM["question"] + " bare"}]),
        document("d6", [{"question": "How many of 7 apples are left if 3 are eaten?", "answer": "Some were eaten, a "
                         "long story without any figure given for how many were eaten or left over at all."}]),
    ]  # fmt: skip
    qa, backend = extractor(tmp_path)
    ledger = CostLedger()
    results = qa.extract(docs, "m", ledger, progress=False)
    by_id = {r.doc_id: r for r in results}
    (first,) = by_id["d1"].pairs
    assert first["refinement"] == "verified" and first["refine_attempts"] == 1
    assert first["draft_answer"] == "52" and first["reference_answer"] == "52" and first["kind"] == "problem"
    assert first["answer"].endswith("The answer is: 52") and first["question"].endswith("(restated)")
    assert by_id["d2"].pairs[0]["refine_attempts"] == 2  # greedy wrong, the first sampled attempt right
    assert by_id["d3"].pairs == [] and by_id["d3"].refinement == {"problem/wrong_answer": 1}
    assert by_id["d4"].pairs == [] and by_id["d4"].refinement == {"problem/wrong_arithmetic": 1}
    assert by_id["d5"].pairs[0]["refinement"] == "accepted" and by_id["d5"].pairs[0]["kind"] == "concept"
    assert by_id["d6"].refinement == {"problem/no_reference": 1}  # nothing to verify against: not even called
    assert by_id["d7"].pairs == [] and by_id["d7"].refinement == {"problem/no_steps": 1}
    # calls: 7 extractions; refinement 1 (d1) + 2 (d2) + 3 (d3) + 3 (d4) + 1 (d5) + 0 (d6) + 3 (d7)
    assert len(backend.calls) == 7 + 13
    refine_records = [r for r in ledger.records if r.stage == "refine"]
    assert len(refine_records) == 13 and all(not r.cached for r in refine_records)
    assert sum(r.calls for r in results) == 20
    # the drafts are kept for the before/after quality table; the records carry the provenance
    assert len(draft_records(results)) == 7
    records = pairs_records(results, docs, "m")
    assert {r["doc_id"] for r in records} == {"d1", "d2", "d5"}
    assert all({"draft_answer", "reference_answer", "refinement", "refiner"} <= set(r) for r in records)

    # a second run pays for nothing: every refinement answer comes from the cache, and is charged again
    again, backend2 = extractor(tmp_path)
    ledger2 = CostLedger()
    results2 = again.extract(docs, "m", ledger2, progress=False)
    assert backend2.calls == [] and pairs_records(results2, docs, "m") == records
    assert len([r for r in ledger2.records if r.stage == "refine"]) == 13


def test_failure_policy_and_quality_gate(tmp_path):
    docs = [document("d3", [{**PROBLEM, "question": PROBLEM["question"] + " always-wrong"}])]
    kept, _ = extractor(tmp_path, on_failure="keep_draft", quality_gate="keep")
    (result,) = kept.extract(docs, "m", None, progress=False)
    (pair,) = result.pairs
    assert pair["refinement"] == "kept_draft:wrong_answer" and pair["answer"] == "52"
    assert result.gate_dropped == {"verified": 1}  # counted, kept: quality_gate keep
    gated, _ = extractor(tmp_path, on_failure="keep_draft")
    (result,) = gated.extract(docs, "m", None, progress=False)
    assert result.pairs == [] and result.gate_dropped == {"verified": 1}
    assert hard_check_failures({"question": "q", "answer": "```python\ndef f(:\n```"}) == ["code_parses"]
    with pytest.raises(ConfigError, match="on_failure"):
        RefinementConfig(on_failure="maybe")
    with pytest.raises(ConfigError, match="quality_gate"):
        ExtractionConfig(quality_gate="sometimes")


def test_examples_are_seeded_and_shown():
    references = [{"question": f"q{i}", "solution": f"s{i}\nThe answer is: {i}"} for i in range(20)]
    assert pick_examples(references, 3, seed=1) == pick_examples(references, 3, seed=1)
    refiner = PairRefiner(Teacher(), None, RefinementConfig(examples=2), {"problem": references})
    user = refiner.messages("doc", PROBLEM, "problem", "52")[-1]["content"]
    assert "Question: q0\nSolution:\ns0" in user and "q2" not in user and "The correct final answer is: 52" in user
    with pytest.raises(ConfigError, match="unknown pair kinds"):
        PairRefiner(Teacher(), None, RefinementConfig(), {"poem": references})
    none = PairRefiner(Teacher(), None, RefinementConfig(examples=0), {"problem": references})
    assert not any("q0" in m["content"] for m in none.messages("doc", PROBLEM, "problem", "52"))  # instructions only
    with pytest.raises(ConfigError, match="examples must be 0 or more"):
        RefinementConfig(examples=-1)


RUN = """
import json, sys
from equal.llm.cache import CallCache
from equal.llm.extract import ExtractionConfig, QAExtractor, pairs_records
from equal.llm.fake import ScriptedBackend
from equal.llm.refine import PairRefiner, RefinementConfig
folder = sys.argv[1]
backend = ScriptedBackend(latency_s=0.05, call_log=f"{folder}/calls.log", batch_size=2)
cache = CallCache(f"{folder}/calls.sqlite")
refiner = PairRefiner(backend, cache, RefinementConfig(attempts=2))
docs = [{"id": f"d{i}", "text": f"Document {i} explains topic number {i} in plain words."} for i in range(40)]
results = QAExtractor(backend, cache, ExtractionConfig(max_pairs=1), refiner).extract(docs, "m", progress=False)
with open(f"{folder}/pairs.jsonl", "w") as handle:
    for record in pairs_records(results, docs, "m"):
        handle.write(json.dumps(record) + "\\n")
"""


@pytest.mark.slow
def test_killed_refinement_resumes_without_paying_twice(tmp_path):
    script = tmp_path / "run.py"
    script.write_text(RUN)
    db = tmp_path / "calls.sqlite"
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while cached_rows(db, "refine") < 4 and time.time() < deadline and process.poll() is None:
        time.sleep(0.01)
    assert process.poll() is None, process.stderr.read().decode()[-2000:]
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    paid_before = cached_rows(db, "refine")
    assert 4 <= paid_before < 40
    resumed = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert cached_rows(db, "refine") == 40  # one refinement per document's pair, each paid once
    paid = (tmp_path / "calls.log").read_text().split()
    keys = paid[1::2]
    # 40 extractions + 40 refinements; only the batch in flight at the kill (2 calls) may have been paid twice
    assert len(set(keys)) == 80 and len(keys) - len(set(keys)) <= 2
    records = [json.loads(line) for line in (tmp_path / "pairs.jsonl").read_text().splitlines()]
    assert len(records) == 40 and all(r["refinement"] in ("accepted", "verified") for r in records)


def test_a_request_is_fitted_to_the_refiners_context():
    references = [{"question": f"q{i} " + "word " * 60, "solution": "step " * 80 + f"\nThe answer is: {i}"}
                  for i in range(3)]  # fmt: skip
    small = Teacher(context_length=700)  # words stand for tokens here
    refiner = PairRefiner(small, None, RefinementConfig(examples=3, max_tokens=200), {"problem": references})
    document = "zebra " * 1000
    user = refiner.messages(document, PROBLEM, "problem", "52")[-1]["content"]
    used = small.count_tokens(user) + small.count_tokens(refiner.prompt.system)
    assert used <= 700 - 200 - 64  # the answer's budget and the template's margin are left free
    assert "Question: q0" in user and "q2" not in user  # examples left out until the rest fits
    roomy = PairRefiner(Teacher(context_length=4096), None, RefinementConfig(examples=3), {"problem": references})
    full = roomy.messages(document, PROBLEM, "problem", "52")[-1]["content"]
    assert "q2" in full and full.count("zebra") == RefinementConfig().max_document_tokens


def test_a_final_line_written_another_way_becomes_the_final_answer_line():
    from equal.llm.refine import with_final_line

    assert with_final_line("x + y = 3.\n\nAnswer: $\\frac{1}{4}$") == "x + y = 3.\n\nThe answer is: \\frac{1}{4}"
    assert with_final_line("Step.\n**Final answer:** 12") == "Step.\nThe answer is: 12"
    assert with_final_line("Step.\nThe answer is: 12\n") == "Step.\nThe answer is: 12"
    assert with_final_line("2 + 9 = 11") == "2 + 9 = 11"  # no final line to rewrite: verification decides


def test_refine_v3_shows_its_examples_as_earlier_turns():
    refiner = PairRefiner(Teacher(), None, RefinementConfig(prompt_version="refine-v3", examples=1),
                          {"problem": GSM_STYLE})  # fmt: skip
    turns = refiner.messages("A lesson about peaches.", PROBLEM, "problem", "52")
    assert [t["role"] for t in turns] == ["system", "user", "assistant", "user"]
    assert turns[1]["content"] == f"Problem: {GSM_STYLE[0]['question']}\nFinal answer: 12"
    assert turns[2]["content"] == f"Question: {GSM_STYLE[0]['question']}\nSolution:\n{GSM_STYLE[0]['solution']}"
    assert turns[3]["content"].endswith(f"Problem: {PROBLEM['question']}\nFinal answer: 52")
    assert "A lesson about peaches." in turns[3]["content"]
    concept = refiner.messages("doc", {"question": "Why?", "answer": "Because."}, "concept", None)
    assert [t["role"] for t in concept] == ["system", "user"]  # a kind without examples: one request


def test_a_problem_shows_its_working_in_two_steps_or_one_calculation():
    refiner = PairRefiner(Teacher(), None, RefinementConfig(prompt_version="refine-v3"))
    from equal.llm.refine import RefinedPair

    def outcome(solution: str) -> str:
        item = RefinedPair({"question": "Q?", "answer": "100"}, "problem", "100")
        return refiner.judge(item, Completion(f"Question: Q?\nSolution:\n{solution}", 5, 5, 0.0, "stop"), "")[0]

    assert outcome("They planted 75 + 25 = 100 trees.\nThe answer is: 100 (trees)") == "verified"
    assert outcome("They planted the redwoods.\nThey planted the cypresses.\nThe answer is: 100") == "verified"
    assert outcome("100\nThe answer is: 100") == "no_steps"
    assert outcome("75 + 25 = 100\nThe answer is: 90") == "wrong_answer"


def test_a_sentence_for_an_answer_is_explained_not_solved():
    long_answer = "The answer is: The sum of 2 and 3 equals 5, as anyone can count on a hand."
    assert pair_kind("What is the sum of 2 and 3?", long_answer) == "concept"
    assert pair_kind("What is the sum of 2 and 3?", "The answer is: 5") == "problem"


def test_a_reply_that_skips_the_restatement_keeps_the_draft_question():
    assert parse_refined("Solution:\n2 + 2 = 4\nThe answer is: 4", "Q?") == ("Q?", "2 + 2 = 4\nThe answer is: 4")
    assert parse_refined("Rayleigh scattering makes it blue.", "Why is the sky blue?") == (
        "Why is the sky blue?", "Rayleigh scattering makes it blue.")  # fmt: skip
    assert parse_refined("Problem: What is 2 + 2?\nSolution:\n2 + 2 = 4", "Q?") == ("What is 2 + 2?", "2 + 2 = 4")
    assert parse_refined("Task: Why?\nNotes (may be incomplete or wrong): because", "Q?") is None  # an echo
    assert parse_refined("Source document (for facts only):\nText.", "Q?") is None
    assert parse_refined("Rayleigh scattering.") is None  # without a draft question: the strict format only


def test_a_refiner_naming_the_extractors_model_shares_its_loaded_backend(monkeypatch):
    """One loaded copy serves both when llm.refiner names the extractor's model with its settings; another model
    gets its own backend."""
    import equal.llm.backends as backends
    from equal.llm.extract import make_refiner

    built = []
    monkeypatch.setattr(backends, "make_backend", lambda spec: built.append(spec) or f"backend of {spec['model']}")
    extractor = {"kind": "llama_cpp", "model": "qwen2.5-coder-1.5b-instruct", "n_parallel": 16, "n_ctx": 2048}
    loaded = object()
    same = make_refiner({**extractor, "refiner": dict(extractor)}, {"prompt_version": "refine-v4"}, None, loaded)
    assert same.backend is loaded and built == []
    other = {**extractor, "model": "qwen2.5-coder-0.5b-instruct"}
    separate = make_refiner({**other, "refiner": dict(extractor)}, {"prompt_version": "refine-v4"}, None, loaded)
    assert separate.backend == "backend of qwen2.5-coder-1.5b-instruct" and len(built) == 1
