"""Answer scoring behind the task YAMLs: GSM8K and MATH exact match, MBPP and HumanEval pass@1."""

from equal.evaluate import scoring

MBPP_DOC = {
    "question": "Write a function to add two numbers.",
    "test_list": "['assert add(1, 2) == 3', 'assert add(-1, 1) == 0']",
    "test_setup_code": "",
}
HUMANEVAL_DOC = {
    "prompt": 'def double(x: int) -> int:\n    """Return twice x."""\n',
    "test": "def check(candidate):\n    assert candidate(2) == 4\n    assert candidate(-3) == -6\n",
    "entry_point": "double",
}


def test_gsm8k_final_number():
    assert scoring.gsm8k_correct("She sells 9 eggs, 9 * 2 = 18.\n#### 18", "18")
    assert scoring.gsm8k_correct("The answer is $1,234.00.", "1234")  # no ####: the last number
    assert not scoring.gsm8k_correct("9 * 2 = 18\n#### 17", "18")
    assert not scoring.gsm8k_correct("I do not know.", "18")


def test_the_final_answer_line_comes_first():
    assert scoring.gsm8k_correct("3 + 4 = 7 then 7 * 2 = 14.\nThe answer is: 14", "14")
    assert not scoring.gsm8k_correct("It is 14, or 15.\nThe answer is: 15\nThanks, 14", "14")  # the line wins
    assert scoring.math_correct(r"So x = 1/2." + "\nThe answer is: $\\frac{1}{2}$", r"\frac{1}{2}")
    assert scoring.math_correct(r"The answer is: \boxed{7}.", "7")


def test_math_boxed_answer():
    assert scoring.math_correct(r"So $r = 3$ and the point is $\boxed{\left( 3, \dfrac{\pi}{2} \right)}$.",
                                r"\left( 3, \frac{\pi}{2} \right)")  # fmt: skip
    assert scoring.math_correct(r"\boxed{\frac{1}{4}}", r"\frac14") is False  # no symbolic equivalence, stated
    assert not scoring.math_correct(r"\boxed{5}", "6")
    assert scoring.last_boxed(r"\boxed{a} then \boxed{\frac{1}{2}}") == r"\frac{1}{2}"


def test_mbpp_pass_at_1_runs_the_asserts():
    right = "```python\ndef add(a, b):\n    return a + b\n```"
    wrong = "def add(a, b):\n    return a - b"
    assert scoring.passes(scoring.mbpp_program(right, MBPP_DOC))
    assert not scoring.passes(scoring.mbpp_program(wrong, MBPP_DOC))


def test_humaneval_completion_or_whole_function():
    body = "    return 2 * x\n"
    whole = "```python\ndef double(x):\n    return x + x\n```"
    assert scoring.passes(scoring.humaneval_program(body, HUMANEVAL_DOC))
    assert scoring.passes(scoring.humaneval_program(whole, HUMANEVAL_DOC))
    assert not scoring.passes(scoring.humaneval_program("    return x\n", HUMANEVAL_DOC))


def test_an_endless_answer_fails_by_timeout():
    assert not scoring.passes("while True:\n    pass\n", timeout_s=1.0)


def test_the_vllm_engine_is_a_clear_error_without_vllm_and_its_results_are_kept_apart(tmp_path):
    import importlib.util

    import pytest

    from equal.errors import ConfigError
    from equal.evaluate.harness import EvalConfig, _cache_key, _lm_eval_model

    with pytest.raises(ConfigError, match="engine must be one of"):
        EvalConfig(engine="tgi")
    data = tmp_path / "items.jsonl"
    data.write_text('{"id": 1}\n')
    cfg = {"task": "gsm8k_bpb", "output_type": "loglikelihood"}
    assert _cache_key("m", cfg, 1, data, EvalConfig()) != _cache_key("m", cfg, 1, data, EvalConfig(engine="vllm"))
    if importlib.util.find_spec("vllm") is None:
        with pytest.raises(ConfigError, match="pip install vllm"):
            _lm_eval_model(tmp_path, EvalConfig(engine="vllm"))
