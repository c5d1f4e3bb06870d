import random
import string

from equal.llm.parsing import parse_pairs

GOOD = '{"pairs": [{"question": "What is 2+3?", "answer": "2+3 = 5"}, {"question": "Name a prime.", "answer": "7"}]}'


def test_valid_answer():
    parsed = parse_pairs(GOOD)
    assert parsed.status == "ok" and parsed.well_formed
    assert parsed.pairs[1] == {"question": "Name a prime.", "answer": "7"}


def test_fenced_and_variant_shapes():
    assert parse_pairs(f"```json\n{GOOD}\n```").status == "ok"
    assert parse_pairs('[{"question": "q?", "answer": 42}]').pairs == [{"question": "q?", "answer": "42"}]
    assert parse_pairs('{"qa_pairs": [{"question": "q?", "answer": ["step 1", "step 2"]}]}').pairs[0]["answer"] == (
        "step 1\nstep 2"
    )


def test_truncated_json_is_repaired():
    parsed = parse_pairs(GOOD[:-30])  # cut inside the second pair, as a max_tokens stop does
    assert parsed.status == "repaired" and not parsed.well_formed
    assert parsed.pairs[0]["question"] == "What is 2+3?"
    assert "invalid JSON repaired" in parsed.reason


def test_empty_and_useless_answers():
    assert parse_pairs('{"pairs": []}').status == "empty"
    assert parse_pairs("").status == "malformed" and parse_pairs(None).reason == "empty answer"
    no_pairs = parse_pairs('{"pairs": [{"question": "", "answer": "x"}, {"q": 1}]}')
    assert no_pairs.status == "empty" and no_pairs.dropped_items == 2
    assert parse_pairs('"just a string"').status == "malformed"
    assert "no list of pairs" in parse_pairs("42").reason


def test_never_raises_on_garbage():
    rng = random.Random(0)
    alphabet = string.printable + '{}[]":,\\'
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        parsed = parse_pairs(text)
        assert parsed.status in {"ok", "empty", "repaired", "malformed"}
        assert all(p["question"] and p["answer"] for p in parsed.pairs)


def test_latex_inside_json_strings_survives():
    raw = (
        r'{"pairs": [{"question": "Simplify $\frac{2}{4} \times 3$ and \sqrt{9}", '
        r'"answer": "$\text{yes}$, x \neq 1\nDone \u00e9 \"q\" \\alpha"}]}'
    )
    pair = parse_pairs(raw).pairs[0]
    assert pair["question"] == r"Simplify $\frac{2}{4} \times 3$ and \sqrt{9}"
    assert pair["answer"] == '$\\text{yes}$, x \\neq 1\nDone é "q" \\alpha'
