"""The pair audit (equal.report.audit, scripts/pair_audit.py): a seeded, stratified draw with empty judgements, a
judged file checked line by line, and the summary the targets are stated in."""

import json

import pytest

from equal.errors import ConfigError
from equal.report.audit import JUDGEMENTS, check_judged, draw_sample, render, summarize


def _pairs() -> list[dict]:
    domains = ["math"] * 30 + ["code"] * 15 + ["general"] * 12 + ["science"] * 2
    return [{"doc_id": f"d{i}", "domain": d, "kind": "problem" if d == "math" else "concept", "question": f"q{i}",
             "answer": f"a{i}", "program": "print(1)" if d == "math" else None}
            for i, d in enumerate(domains)]  # fmt: skip


def test_a_draw_is_seeded_stratified_and_carries_the_document_and_empty_judgements():
    documents = {f"d{i}": f"document {i} " * 300 for i in range(60)}
    sample = draw_sample(_pairs(), documents, seed=3)
    assert [r["stratum"] for r in sample].count("math") == 20 and len(sample) == 40
    assert {r["stratum"] for r in sample} == {"math", "code", "other"}  # general and science pool into "other"
    assert sample == draw_sample(_pairs(), documents, seed=3) != draw_sample(_pairs(), documents, seed=4)
    first = sample[0]
    assert all(first[key] is None for key in JUDGEMENTS) and first["note"] == "" and first["program"] == "print(1)"
    assert first["document"].startswith(f"document {first['doc_id'][1:]} ") and len(first["document"]) <= 1500
    small = draw_sample(_pairs()[:3], documents, seed=0)  # fewer than the quota: all of them
    assert len(small) == 3


def test_judgements_are_checked_per_line_and_summarized_against_the_targets(tmp_path):
    sample = draw_sample(_pairs(), {}, seed=1)
    for r in sample:
        r.update(self_contained=True, correct=True, in_style=True, keep=True, note="fine")
    sample[-1].update(keep=False, note="answer ungrounded")  # an "other" pair
    path = tmp_path / "pair_audit.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in sample) + "\n")
    summary = summarize(check_judged(path))
    assert summary["keep_share"] == pytest.approx(39 / 40, abs=2e-3) and summary["math_correct_share"] == 1.0
    assert summary["meets_targets"]
    sample[0]["correct"] = False  # one wrong maths answer fails the target, whatever the keep share
    path.write_text("\n".join(json.dumps(r) for r in sample) + "\n")
    assert not summarize(check_judged(path))["meets_targets"]
    assert "maths correct 95%" in render(check_judged(path), "audit")
    sample[5]["keep"] = "yes"
    path.write_text("\n".join(json.dumps(r) for r in sample) + "\n")
    with pytest.raises(ConfigError, match=r"pair_audit.jsonl:6: judgement keep must be true or false"):
        check_judged(path)
