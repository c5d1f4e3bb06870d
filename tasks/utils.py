"""lm-eval hooks of the EQUAL task YAMLs: thin wrappers over :mod:`equal.evaluate.scoring` (tested there)."""

from equal.evaluate import scoring


def _response(results) -> str:
    return results[0] if results else ""


def gsm8k_exact_match(doc, results):
    return {"exact_match": float(scoring.gsm8k_correct(_response(results), doc["answer"]))}


def math_exact_match(doc, results):
    return {"exact_match": float(scoring.math_correct(_response(results), doc["answer"]))}


def mbpp_pass_at_1(doc, results):
    return {"pass@1": float(scoring.passes(scoring.mbpp_program(_response(results), doc)))}


def humaneval_pass_at_1(doc, results):
    return {"pass@1": float(scoring.passes(scoring.humaneval_program(_response(results), doc)))}


def mbpp_prompt(doc) -> str:
    tests = "\n".join(scoring.as_test_list(doc["test_list"]))
    return f"{doc['question']}\nYour code should pass these tests:\n{tests}"


def humaneval_prompt(doc) -> str:
    return f"Complete the following Python function.\n\n{doc['prompt']}"


def bits_per_byte(doc, results):
    """(log-likelihood of the gold solution, its UTF-8 bytes): aggregated by lm-eval's bits_per_byte."""
    loglikelihood = results[0][0] if isinstance(results[0], (tuple, list)) else results[0]
    return {"bits_per_byte": (loglikelihood, len(doc["solution"].encode("utf-8")))}


def choice_letters(doc) -> list[str]:
    return [chr(ord("A") + i) for i in range(len(doc["choices"]))]


def choices_prompt(doc) -> str:
    options = "\n".join(f"{letter}. {text}" for letter, text in zip(choice_letters(doc), doc["choices"], strict=True))
    return f"{doc['question']}\n{options}\nAnswer with the letter of the correct choice."


def answer_index(doc) -> int:
    return choice_letters(doc).index(doc["answer"])
