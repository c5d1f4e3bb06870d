"""The pair checks accept what a reader would train on and reject what the small extractors produce when they fail."""

import pytest

from equal.llm.quality import FINAL_ANSWER, is_degenerate, pair_checks, passes


@pytest.mark.parametrize(
    "text",
    [
        "2 \\times 3 \\times 3 \\times 3 \\times 3 \\times 3 \\times 3 \\times 3 \\times 3",  # seen in the default run
        "Question 1.1.1.1.1.1.1.1.1.1.1.1",  # seen in the default run
        "the answer the answer the answer the answer the answer the answer",
        " ".join(["apples", "pears"] * 30),
    ],
)
def test_runaway_repetition_is_degenerate(text):
    assert is_degenerate(text)


@pytest.mark.parametrize(
    "text",
    [
        "Janet sells 16 - 3 - 4 = 9 duck eggs a day. She makes 9 * 2 = 18 dollars every day.",
        "def add(a, b):\n    return a + b",
        "1, 2, 3, 4, 5 are the first five positive integers.",
    ],
)
def test_ordinary_text_is_not_degenerate(text):
    assert not is_degenerate(text)


def test_a_worked_solution_with_the_final_answer_line_passes():
    checks = pair_checks(
        "Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4. How many dollars does she make selling the "
        "rest at $2 each?",
        f"She has 16 - 3 - 4 = 9 eggs left.\nShe makes 9 * 2 = 18 dollars.\n{FINAL_ANSWER} 18",
    )
    assert passes(checks) and checks["has_steps"] and checks["final_answer"] and checks["code_parses"] is None


def test_terse_answers_dangling_questions_and_truncation_fail():
    terse = pair_checks("How many eggs are left?", "9")
    assert terse["has_steps"] is False and terse["final_answer"] is False and not passes(terse)
    dangling = pair_checks("What does the passage above say about the shorter piece?", "It is shorter.")
    assert dangling["self_contained"] is False and dangling["has_steps"] is None
    assert pair_checks("Who wrote Hamlet?", "Shakespeare wrote Hamlet.", truncated=True)["not_truncated"] is False


def test_code_answers_must_parse():
    good = pair_checks("Write a function that adds two numbers.", "```python\ndef add(a, b):\n    return a + b\n```")
    assert passes(good) and good["final_answer"] is None and good["has_steps"]
    bad = pair_checks("Write a function that adds two numbers.", "```python\ndef add(a, b)\n    return a +\n```")
    assert bad["code_parses"] is False and not passes(bad)


def test_an_explanation_needs_no_steps_or_final_answer():
    checks = pair_checks("Why does ice float on water?", "Ice is less dense than liquid water, so it floats.")
    assert passes(checks) and checks["has_steps"] is None and checks["final_answer"] is None


class LoopingBackend:
    """Answers like a small model caught in a loop under the JSON grammar: one good pair, one runaway one."""

    kind, model_id, n_params, context_length, batch_size = "test", "looping", 1, 2048, 4

    def count_tokens(self, text):
        return len(text.split())

    def truncate(self, text, max_tokens):
        return text

    def chat(self, batch, params):
        from equal.llm.types import Completion

        loop = "2 \\\\times 3 " * 40
        text = (
            '{"pairs": [{"question": "What is 2 + 2?", "answer": "2 + 2 = 4. The answer is: 4"}, '
            f'{{"question": "What is the product?", "answer": "{loop}'
        )  # cut at the token limit
        return [Completion(text, 10, 320, 0.1, finish_reason="length") for _ in batch]


def test_the_extractor_drops_and_counts_degenerate_pairs(tmp_path):
    from equal.llm.cache import CallCache
    from equal.llm.extract import ExtractionConfig, ExtractionReport, QAExtractor

    report = ExtractionReport()
    extractor = QAExtractor(LoopingBackend(), CallCache(tmp_path / "calls.sqlite"), ExtractionConfig(max_retries=0))
    (result,) = extractor.extract([{"id": "d1", "text": "Two times two."}], progress=False, report=report)
    assert [p["question"] for p in result.pairs] == ["What is 2 + 2?"]
    assert result.degenerate_pairs == 1 and result.hit_limit
    assert report.degenerate_pairs == 1 and report.token_limit_documents == 1


def test_prompts_are_versioned_and_the_new_one_asks_for_the_final_answer_line():
    from equal.errors import ConfigError
    from equal.llm.prompts import PROMPT_VERSION, extraction_messages, get_prompt

    with pytest.raises(ConfigError, match="known: \\['qa-extract-v1', 'qa-extract-v2'\\]"):
        get_prompt("qa-extract-v0")
    old, new = (
        extraction_messages("A document.", 2, version=v)[1]["content"] for v in (PROMPT_VERSION, "qa-extract-v2")
    )
    assert old != new and f"'{FINAL_ANSWER} <final answer>'" in new and new.endswith("Document:\nA document.")


def test_quality_summary_checks_a_seeded_sample():
    from equal.llm.quality import quality_summary

    good = {
        "question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
        "answer": "He starts with 3 apples. He buys 4 more, so 3 + 4 = 7.\nThe answer is: 7",
        "hit_token_limit": False,
    }
    terse = {**good, "answer": "7"}
    records = [good] * 30 + [terse] * 10
    summary = quality_summary(records, sample_size=40, seed=0)
    assert summary["quality_sample"] == 40 and summary["all_checks_pass_share"] == 0.75
    assert summary["checks_pass_share"]["final_answer"] == 0.75 and summary["checks_applicable"]["code_parses"] == 0
    assert summary["answers_under_20_chars_share"] == 0.25
    assert quality_summary(records, sample_size=10, seed=1) == quality_summary(records, sample_size=10, seed=1)
