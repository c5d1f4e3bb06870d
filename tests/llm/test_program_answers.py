"""refine-v4: answers computed by programs that vote, checked against the document's own answer; questions that
stand alone; code with tests that run; concept answers their document supports; nothing paid twice."""

import json
import re

import pytest

from equal.errors import ConfigError
from equal.llm.cache import CallCache
from equal.llm.extract import ExtractionConfig, QAExtractor, pairs_records
from equal.llm.fake import ScriptedBackend
from equal.llm.ledger import CostLedger
from equal.llm.program import program_of, run_program, unstated_numbers, vote
from equal.llm.refine import (
    PairRefiner,
    RefinementConfig,
    answer_in_working,
    code_failure,
    get_refine_prompt,
    parse_program_reply,
    split_tests,
    strict_failures,
    support_share,
)
from equal.llm.types import Completion
from equal.llm.verify import document_answer

V4 = get_refine_prompt("refine-v4")
PEACHES = "Mike picked 40 peaches and then 12 more. How many peaches did he pick?"


# ---------------------------------------------------------------------------------------------- the pieces
def test_a_program_runs_in_the_sandbox_and_its_printed_answer_is_read():
    assert run_program(program_of("```python\na = 40\nb = 12\nprint(a + b)\n```")).answer == "52"
    assert run_program("print(10 / 4)").answer == "2.5"
    assert run_program("print(0.1 + 0.2)").answer == "0.3"  # float noise is not a different answer
    assert run_program("print(3.0)").answer == "3"
    assert run_program("raise ValueError('no')").status == "failed"
    assert run_program("while True:\n    pass", timeout=1).status == "timeout"
    assert run_program(None).status == "no_program" and program_of("def f(:") is None


def test_a_vote_needs_enough_agreeing_programs_and_no_tie():
    assert vote(["52", "52.0", "52", "51"], 3).answer == "52"
    assert vote(["52", "52", "51", None], 3).answer is None
    assert vote(["52", "52", "51", "51"], 2).answer is None  # a tie is no agreement
    assert vote([None, None], 1).answer is None and vote(["1/2", "0.5"], 2).answer == "1/2"


def test_a_program_must_compute_with_the_numbers_its_question_states():
    assert unstated_numbers("a = 40\nb = 12\nprint(a + b)", PEACHES) == []
    assert unstated_numbers("print(40 + 12 + 9)", PEACHES) == ["9"]
    # spelled-out numbers, percentages and unit constants are stated enough
    assert unstated_numbers("print(3 * 9 * 0.25 * 60)", "Three shelves hold nine books; 25% are read in an hour.") == []


def test_the_answer_a_document_states():
    assert document_answer("Body. How many?\n\nSolution: 20+6\n\nAnswer: 26 (apples)") == "26"
    assert document_answer("She has 3 + 4 = 7.\n#### 7") == "7"
    assert document_answer("Worked.\nThe answer is: 1,200") == "1,200"
    assert document_answer("Answer: 3\n\nAnother exercise.\nAnswer: 5") is None  # a page of several: no one answer
    assert document_answer("A lesson with no answer in it.") is None


def test_strict_checks_reject_scaffolding_dangling_questions_and_trailing_text():
    good = "He picks 40 and 12.\n40 + 12 = 52\nThe answer is: 52"
    assert strict_failures(PEACHES, good, "problem") == []
    assert strict_failures(PEACHES, good + "\nHope this helps!", "problem") == ["malformed"]
    assert strict_failures(PEACHES, good + "\nThe answer is: 52", "problem") == ["malformed"]
    assert "leak" in strict_failures(PEACHES, "Notes (may be incomplete or wrong): 52\n" + good, "problem")
    assert "leak" in strict_failures(PEACHES, "40 <unk> 12\n" + good, "problem")
    assert strict_failures("According to the passage, what is a prime?", "A number.", "concept") == [
        "not_self_contained"
    ]
    assert strict_failures("What does the author argue?", "That it is so.", "concept") == ["not_self_contained"]
    assert strict_failures("Carla has $20.", "", "problem") == ["not_self_contained"]  # nothing asked
    # a concept question asks something: a question mark or an order; a restated passage is neither
    passage = "What you might need is a good normative moral theory. Normative ethics focuses on norms."
    assert strict_failures(passage, "A theory of norms.", "concept") == ["not_a_question"]
    assert strict_failures("Frederick Douglass's birthplace?", "Maryland.", "concept") == []
    assert strict_failures("Explain what a Cargo workspace is.", "A set of packages.", "concept") == []
    # read in the probe's kept pairs: a final answer no step reaches, a question holding the document's solution
    unworked = "4 episodes * 1 hour = 4 hours.\nThe answer is: 2"
    assert strict_failures("How many hours did Max watch?", unworked, "problem") == ["answer_not_worked"]
    assert strict_failures("He walks 1.5+1.5 = 3 miles a day. How far in 30 days?", "", "problem") == ["leak"]
    assert strict_failures(PEACHES, "40 + 12 = 52 peaches.\nThe answer is: $52", "problem") == []
    asserted = "2 + 1 - 1 = 2.\nAfter five years: 2 * 5 = 10 fish.\nHe will have 12 fish.\nThe answer is: 12"
    assert strict_failures("How many fish will Tony have?", asserted, "problem") == ["answer_not_worked"]
    assert answer_in_working("3 of 6 slices is 3/6 = 1/2 of the pie.\nThe answer is: 1/2")
    assert answer_in_working("20% of 50 = 10 apples, so 50 - 10 = 40 left.\nThe answer is: 40")
    assert answer_in_working("She pays 40 and 12, that is 52 in all.\nThe answer is: 52")  # nothing computed: seen


def test_code_must_be_one_function_with_tests_that_pass():
    code = "```python\ndef add(a, b):\n    return a + b\n```"
    solution, tests = split_tests(code + "\nTests:\n```python\nassert add(1, 2) == 3\n```")
    assert solution == code and tests == ["assert add(1, 2) == 3"]
    assert code_failure(solution, tests, "") is None
    assert code_failure(solution, ["assert add(1, 2) == 4"], "") == "code_fails"
    assert code_failure(solution, [], "") == "no_tests"
    assert code_failure(solution, [], "Write add.\nassert add(2, 2) == 4") is None  # the document's own asserts
    assert code_failure("Here is the code:\n" + code, tests, "") == "code_prose"
    assert code_failure("```python\ndef add(a, b):\n    print(a + b)\n```", tests, "") == "code_prose"


def test_a_concept_answer_may_name_only_what_its_document_states():
    from equal.llm.refine import unstated_facts

    document = ("The Australians first saw combat during the <unk> uprising in the Western Desert in 1915. "
                "The FBI's Secret War Against The Black Panther Party was published in 2005.")  # fmt: skip
    invented = "The first was Lieutenant Colonel John McIlveen, in 1916."
    assert unstated_facts(invented, document) == ["Lieutenant", "Colonel", "John", "McIlveen", "1916"]
    assert unstated_facts("The Black Panther Party was the FBI's target, in a book of 2005.", document) == []
    assert unstated_facts("Australians first fought in the Western Desert.", document) == []  # sentence start


def test_support_is_the_share_of_an_answers_content_words_in_its_document():
    document = "Photosynthesis converts light energy into chemical energy stored in glucose inside chloroplasts."
    assert support_share("Photosynthesis stores light energy as chemical energy in glucose.", document) == 1.0
    assert support_share("Mitochondria burn fatty acids during respiration.", document) == 0.0


def test_program_replies_are_parsed():
    reply = "Question: What is 2 + 3?\nProgram:\n```python\nprint(2 + 3)\n```"
    assert parse_program_reply(reply) == ("What is 2 + 3?", "print(2 + 3)\n")
    assert parse_program_reply("**Problem:** Q?\n**Program:**\n```python\nprint(1)\n```") == ("Q?", "print(1)\n")
    assert parse_program_reply("Question: Q?\nProgram:\n```python\nprint(\n```") is None
    assert parse_program_reply("just prose") is None


def test_settings_are_checked_and_earlier_prompts_keep_their_identity():
    with pytest.raises(ConfigError, match="min_agree"):
        RefinementConfig(votes=3, min_agree=4)
    with pytest.raises(ConfigError, match="min_support"):
        RefinementConfig(min_support=1.5)
    v3 = PairRefiner(ScriptedBackend(), None, RefinementConfig(prompt_version="refine-v3"))
    assert "votes" not in v3.identity["config"]  # runs refined with v3 keep their fingerprints
    v4 = PairRefiner(ScriptedBackend(), None, RefinementConfig(prompt_version="refine-v4"))
    assert v4.identity["config"]["votes"] == 4


# ---------------------------------------------------------------------------------------------- the pass
class Solver(ScriptedBackend):
    """Extracts the pairs a document lists; writes programs and solutions as its draft question asks:
    'scatter' — programs that disagree; 'unstated' — a program using a number its question lacks;
    'trailing' — a solution with text after its final line; default — a right program and solution."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.model_id = "solver@1"
        self.requests = []

    def chat(self, batch, params):
        self.requests.extend(m[0]["content"][:20] for m in batch)
        return super().chat(batch, params)

    def _answer(self, messages, params):
        system, user = messages[0]["content"], messages[-1]["content"]
        if "Reply with JSON only" in system:  # extraction: the pairs the document lists
            pairs = json.loads(re.search(r"PAIRS=(\[.*\])", user).group(1))
            return Completion(json.dumps({"pairs": pairs}), 10, 10, 0.0, "stop")
        if system == V4.program_system:
            draft = re.search(r"Draft question: (.*)", user).group(1)
            question = (
                PEACHES + (" scatter" if "scatter" in draft else "") + (" trailing" if "trailing" in draft else "")
            )
            code = "print(40 + 12 + 9)" if "unstated" in draft else "a = 40\nb = 12\nprint(a + b)"
            if "unstated" in draft:
                question = "How many peaches did Mike pick in all?"
            return Completion(f"Question: {question}\nProgram:\n```python\n{code}\n```", 10, 10, 0.0, "stop")
        if system == V4.vote_system:
            code = f"print({params.seed * 7 + 3})" if "scatter" in user else "print(40 + 12)"
            if "in all?" in user:
                code = "print(61)"
            return Completion(f"```python\n{code}\n```", 10, 10, 0.0, "stop")
        if user.startswith("Problem:"):
            question = re.search(r"Problem: (.*)\n", user).group(1)
            final = re.search(r"Final answer: (.*)", user).group(1)
            tail = "\nHope this helps!" if "trailing" in question else ""
            text = (
                f"Question: {question}\nSolution:\nHe picks 40 and then 12.\n40 + 12 = 52\nThe answer is: {final}{tail}"
            )
            return Completion(text, 10, 10, 0.0, "stop")
        if "Task:" in user:
            code = "```python\ndef add(a, b):\n    return a + b\n```"
            tests = "```python\nassert add(1, 2) == 3\n```"
            text = f"Question: Write a function add(a, b) that returns their sum.\nSolution:\n{code}\nTests:\n{tests}"
            return Completion(text, 10, 10, 0.0, "stop")
        if "using only what the source document says" in user:
            supported = "River deltas form where" in user
            answer = "Rivers carry sediment to the delta." if supported else "Volcanoes erupt magma."
            return Completion(f"Question: How do river deltas form?\nSolution:\n{answer}", 10, 10, 0.0, "stop")
        raise AssertionError(f"unexpected request: {user[:200]}")


def document(doc_id: str, pairs: list[dict], extra: str = "") -> dict:
    return {"id": doc_id, "text": f"A lesson.\n{extra}\nPAIRS={json.dumps(pairs)}"}


def v4_extractor(tmp_path, backend=None):
    backend = backend or Solver(batch_size=4)
    cache = CallCache(tmp_path / "calls.sqlite")
    config = RefinementConfig(prompt_version="refine-v4", attempts=2, votes=4, min_agree=3)
    refiner = PairRefiner(backend, cache, config, {"problem": [], "code": []})
    return QAExtractor(backend, cache, ExtractionConfig(max_pairs=3), refiner), backend


def test_answers_are_computed_checked_against_the_document_and_never_taken_from_the_draft(tmp_path):
    wrong_draft = {"question": "How many peaches did Mike pick?", "answer": "50"}  # the draft's arithmetic is wrong
    facts = "Mike picked 40 peaches, then 12 more."  # the numbers a restated problem must take from its document
    docs = [
        document("right", [wrong_draft], facts),
        document("stated", [wrong_draft], facts + "\nAnswer: 52"),
        document("contradicted", [wrong_draft], facts + "\nAnswer: 60"),
        document("scatter", [{**wrong_draft, "question": "How many peaches? scatter"}], facts),
        document("unstated", [{**wrong_draft, "question": "How many peaches? unstated"}], facts),
        document("trailing", [{**wrong_draft, "question": "How many peaches? trailing"}], facts),
        document("invented", [wrong_draft], "A Rust chapter: ownership and borrowing."),  # none of 40 and 12
        document("code", [{"question": "Write a function add(a, b).", "answer": "def add(a, b): return a + b"}]),
        document(
            "delta",
            [{"question": "How do river deltas form?", "answer": "From sediment."}],
            "River deltas form where rivers carry sediment into the sea.",
        ),
        document("volcano", [{"question": "How do river deltas form?", "answer": "From sediment."}]),
    ]
    qa, _ = v4_extractor(tmp_path)
    ledger = CostLedger()
    results = {r.doc_id: r for r in qa.extract(docs, "m", ledger, progress=False)}
    (right,) = results["right"].pairs
    assert right["refinement"] == "verified" and right["reference_answer"] == "52"  # not the draft's 50
    assert right["question"] == PEACHES and right["answer"].endswith("The answer is: 52")
    assert right["votes"] == ["52", "52", "52", "52"] and "print(a + b)" in right["program"]
    assert right["document_answer"] is None
    assert results["stated"].pairs[0]["document_answer"] == "52"
    assert results["contradicted"].refinement == {"problem/disagrees_with_document": 1}
    assert results["scatter"].refinement == {"problem/no_agreement": 1}
    assert results["unstated"].refinement == {"problem/not_self_contained": 1}
    assert results["trailing"].refinement == {"problem/malformed": 1}
    assert results["invented"].refinement == {"problem/invented_numbers": 1}
    assert results["code"].pairs[0]["refinement"] == "accepted" and "Tests" not in results["code"].pairs[0]["answer"]
    assert results["delta"].pairs[0]["refinement"] == "accepted"
    assert results["volcano"].refinement == {"concept/unsupported": 1}
    # calls: per problem 1 program + 3 votes, a solution only where the answer was accepted (2 attempts when it
    # fails); no solution is paid for an answer the vote or the document rejected, and no vote once no answer can
    # reach 3 of 4 ('scatter': three different answers, so its fourth vote is never asked)
    refine = [r for r in ledger.records if r.stage == "refine"]
    assert len(refine) == 6 * 4 + 3 + 1 + 1 + 2 + 1 + 1 + 2  # volcano: both concept attempts fail
    records = pairs_records(list(results.values()), docs, "m")
    assert all("program" in r for r in records if r["kind"] == "problem")

    again, backend2 = v4_extractor(tmp_path)
    assert pairs_records(again.extract(docs, "m", CostLedger(), progress=False), docs, "m") == records
    assert backend2.requests == []  # a second run pays for nothing


def test_the_dataset_card_says_how_answers_were_checked():
    from equal.llm.refine import describe, verification_table

    assert "4 Python programs" in describe({"prompt_version": "refine-v4", "examples_from": {"problem": "t"}})
    assert "draft's own final answer" in describe({"prompt_version": "refine-v3"})
    assert "not refined" in describe({"enabled": False})
    pairs = [{"kind": "problem", "refinement": "verified", "program": "print(1)", "document_answer": "1"},
             {"kind": "problem", "refinement": "verified", "program": "print(2)", "document_answer": None},
             {"kind": "concept", "refinement": "accepted"}]  # fmt: skip
    problem, concept = verification_table(pairs)
    assert problem["answer computed by programs"] == 2 and problem["answer equal to the document's"] == 1
    assert concept == {"kind": "concept", "pairs": 1, "verified or accepted": 1}


def test_a_quantity_asked_about_a_document_with_its_numbers_is_a_problem():
    from equal.llm.refine import pair_kind

    document = "A school has 120 students and 4 buses. Each bus holds 30 students."
    question, answer = "How many buses does the school need?", "The school needs several buses."
    assert pair_kind(question, answer) == "concept"  # v1-v3: the answer's words decide
    assert pair_kind(question, answer, document) == "problem"  # v4: the document gives the numbers
    assert pair_kind("Why do schools need buses?", answer, document) == "concept"  # nothing to compute
    assert pair_kind(question, answer, "The war of 1812 ended in 1815.") == "concept"  # years are no quantities


def test_the_document_decides_the_kind_before_the_draft():
    from equal.llm.refine import pair_kind

    asdiv = "Edeena bags apple slices in groups of 18 and grapes in groups of 9.\n\nAnswer: 18 (grapes)"
    question, bare = "What is the smallest number of grapes that Edeena can pack?", "The smallest number is 18."
    assert pair_kind(question, bare) == "concept"  # the draft alone reads as a fact
    assert pair_kind(question, bare, asdiv) == "problem"  # its document states the answer to check against
    assert pair_kind(question, bare, "Answer: the least common multiple") == "concept"  # no number to check
    snippet = "python sum of ascii values of all characters in a string `string`\n```python\nsum(map(ord, string))\n```"
    assert pair_kind("How do I sum the ASCII values of a string?", "Use sum(map(ord, s)).", snippet) == "code"
    two = "sum a list\n```python\nsum(xs)\n```\nor with a loop\n```python\ntotal = 0\n```"
    assert pair_kind("How do I sum a list?", "Use sum.", two) == "code"  # CoNaLa with two snippets
    rust = "Shadowing\n```rust\nlet x = 5;\n```\n```rust\nlet x = x + 1;\n```"
    assert pair_kind("What is shadowing?", "Declaring a variable again.", rust) == "concept"  # not Python
    essay = "Ownership is Rust's most unique feature.\n" * 20 + "```python\nx = 1\n```"
    assert pair_kind("What is ownership?", "A set of rules.", essay) == "concept"  # prose with a code sample


def test_a_problem_invented_beside_a_document_and_a_working_that_ends_elsewhere_are_caught():
    from equal.llm.refine import answer_in_working, invented_numbers

    assert invented_numbers("A train goes 60 km in 2 hours; how far in 5?", "Rust's ownership rules.") == ["5"]
    assert invented_numbers("She has nine shelves of 12 books. How many books?", "Nine shelves, a dozen each.") == []
    from equal.llm.program import numbers_in

    assert not numbers_in("What is the difference between $\\beth_0$ and $\\beth_1$?")  # dropped: states no number
    from equal.llm.refine import plain_dollars

    assert plain_dollars("Bob has \\$50 and spends \\$10.") == "Bob has $50 and spends $10."
    buses = "1,230 ÷ 48 ≈ 26\nWe round up.\nTherefore, 27 buses should be rented.\nThe answer is: 26"
    assert not answer_in_working(buses)  # concludes 27, answers 26
    assert answer_in_working(buses.replace("The answer is: 26", "The answer is: 27"))
    # numbers after the last result that are exponents, brackets, constants or the question's are no conclusion
    assert answer_in_working("5 * 5 = 25 m^2\nThe answer is: 25")
    assert answer_in_working("80 / 3 ≈ 26.67 (to 2 decimal places)\nThe answer is: 26.67")
    assert answer_in_working("120 / 2 = 60 km per 1 hour\nThe answer is: 60")
    assert answer_in_working("3 * 4 = 12 apples in 3 baskets\nThe answer is: 12", "4 apples in each of 3 baskets")


def test_a_concept_question_about_something_it_never_names_does_not_stand_alone():
    for question in ("What is the crux of the matter?", "What are the main changes made in this PEP?",
                     "What is the x-coordinate of point A?", "What did Howard tell me before?"):  # fmt: skip
        assert strict_failures(question, "An answer.", "concept") == ["not_self_contained"], question
    for question in ("How do I set a wireless device to managed mode?", "What is Bytecodehacks?",
                     "What was Martin Luther's profession?", "What caused World War I?", "What is a Type I error?",
                     "What does I/O mean?", "Why did the US enter the war?", "How do we compute the mean?",
                     "What is the main point a reader should take?"):  # fmt: skip
        assert strict_failures(question, "An answer.", "concept") == [], question


def test_code_that_computes_nothing_is_not_a_task():
    from equal.llm.refine import code_failure

    constant = "```python\ndef common_data_types():\n    return ['int', 'float']\n```"
    assert code_failure(constant, ["assert common_data_types() == ['int', 'float']"], "") == "trivial_code"
    literal = '```python\ndef answer(x):\n    """The answer."""\n    return 42\n```'
    assert code_failure(literal, ["assert answer(1) == 42"], "") == "trivial_code"
    odd = "```python\ndef f(x):\n    return {[1]: 2}\n```"  # not a literal: literal_eval raises TypeError
    assert code_failure(odd, ["assert f(1)"], "") == "code_fails"  # judged by its tests, never a crash
    works = "```python\ndef to_bool(s):\n    return s in ['true', '1']\n```"
    assert code_failure(works, ["assert to_bool('1')", "assert not to_bool('no')"], "") is None


def test_kinds_not_kept_are_dropped_before_any_call(tmp_path):
    backend = Solver(batch_size=4)
    cache = CallCache(tmp_path / "calls.sqlite")
    config = RefinementConfig(prompt_version="refine-v4", attempts=2, votes=4, min_agree=3, kinds=["problem", "code"])
    qa = QAExtractor(backend, cache, ExtractionConfig(max_pairs=3), PairRefiner(backend, cache, config, {}))
    delta = [{"question": "How do river deltas form?", "answer": "From sediment."}]
    docs = [document("delta", delta, "River deltas form where rivers carry sediment into the sea.")]
    ledger = CostLedger()
    (result,) = qa.extract(docs, "m", ledger, progress=False)
    assert result.pairs == [] and result.refinement == {"concept/kind_not_kept": 1}
    assert [r.stage for r in ledger.records] == ["extract"]  # no refinement call paid for it
    assert qa.refinement_identity["config"]["kinds"] == ["problem", "code"]
    from equal.llm.extract import with_every_kind

    (warm,) = with_every_kind(qa).extract(docs, "warm-up", CostLedger(), progress=False)  # the warm-up's pairs
    assert warm.refinement == {"concept/accepted": 1} and qa.refiner.config.kinds == ("problem", "code")
    with pytest.raises(ConfigError, match=r"refinement\.kinds"):
        RefinementConfig(kinds=["essay"])
    assert RefinementConfig(kinds=["code", "problem", "code"]).kinds == ("problem", "code")  # one order, no repeat
    from equal.llm.refine import describe, outcome_table

    assert "Only problem and code pairs" in describe({"prompt_version": "refine-v3", "kinds": ["problem", "code"]})
    (concept,) = outcome_table({"concept/kind_not_kept": 9, "concept/accepted": 1})
    assert concept["accepted_share"] == 1.0  # of the concept drafts refined


def test_the_dry_run_times_refinement_at_the_measured_rate(tmp_path, monkeypatch):
    from equal import workflow

    benchmark = tmp_path / "refinement.json"
    entry = {"refinement": {"prompt_version": "refine-v4"}, "refiner": "qwen2.5-coder-1.5b-instruct@cc/batched",
             "tokens": 60_000, "model_seconds": 300.0}  # fmt: skip
    benchmark.write_text(json.dumps({"known_answer": {"settings": {"v4": entry}, "environment": {"cpu": "x"}}}))
    monkeypatch.setattr(workflow, "REFINEMENT_BENCHMARK", benchmark)
    rate = workflow.measured_refinement_rate("refine-v4", "qwen2.5-coder-1.5b-instruct")
    assert rate == {"tokens_per_s": 200.0, "measured_by": "v4", "machine": "x"}
    assert workflow.measured_refinement_rate("refine-v3", "qwen2.5-coder-1.5b-instruct") is None  # not measured
    assert workflow.measured_refinement_rate("refine-v4", "smollm2") is None


def test_the_dry_run_expects_refinement_minutes_at_the_measured_seconds_per_document(tmp_path, monkeypatch):
    from equal import workflow

    benchmark = tmp_path / "select.json"
    run = {"refinement": {"prompt_version": "refine-v4", "votes": 4, "min_agree": 3}, "documents_extracted": 78,
           "per_stage": {"refine": {"model_s": 1560.0}}}  # fmt: skip
    older = {**run, "per_stage": {"refine": {"model_s": 3120.0}}, "finished": "2026-12-06"}
    run = {**run, "finished": "2026-12-07"}
    runs = {"before": older, "refine-v4 (default)": run, "no refinement": {"refinement": {}}}
    benchmark.write_text(json.dumps({"runs": runs}))  # the newest measurement of the same refinement counts
    monkeypatch.setattr(workflow, "SELECT_BENCHMARK", benchmark)
    measured = workflow.measured_refinement_per_document({"prompt_version": "refine-v4", "votes": 4, "min_agree": 3})
    assert measured["seconds_per_document"] == 20.0 and measured["measured_by"] == "refine-v4 (default)"
    assert workflow.measured_refinement_per_document({"prompt_version": "refine-v4", "votes": 2}) is None
    assert workflow.measured_refinement_per_document({"prompt_version": "refine-v3"}) is None
    assert workflow.measured_refinement_per_document({"enabled": False}) is None
