"""The Rewriting baseline's generation loop (equal.select.rewriting): new, clean pairs, counted drops, every call
charged. The LLM here answers from a script (what a model would say, fixed); the method runs on a real model in
tests/select/test_methods.py."""

import json
from dataclasses import dataclass, field

from equal.llm.extract import ExtractionConfig
from equal.llm.ledger import CostLedger
from equal.llm.types import Completion
from equal.select.rewriting import rewrite_from_seeds

SEEDS = [
    {"id": "s1", "question": "Tom has 3 apples and buys 4 more. How many apples?", "solution": "3 + 4 = 7."},
    {"id": "s2", "question": "A box holds 6 eggs. How many eggs in 5 boxes?", "solution": "6 * 5 = 30."},
]
EVAL = [("gsm8k-1", "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
                    "muffins for her friends every day with four")]  # fmt: skip


@dataclass
class ScriptedExtractor:
    """Answers the k-th rewriting call with the k-th scripted reply; records every request."""

    replies: list[str]
    config: ExtractionConfig = field(default_factory=lambda: ExtractionConfig(max_pairs=2))
    backend: object = None

    def __post_init__(self):
        self.requests = []

    def ask(self, stage, requests, params):
        out = []
        for request in requests:
            self.requests.append(request)
            text = self.replies[len(self.requests) - 1] if len(self.requests) <= len(self.replies) else "not json"
            out.append((Completion(text, 50, 20, 0.01), False))
        return out

    def charge(self, ledger, method, doc_id, stage, completion, cached, status):
        from equal.llm.ledger import CallRecord

        if ledger is not None:
            ledger.add(CallRecord(method, doc_id, stage, "scripted", "m", 1000, completion.prompt_tokens,
                                  completion.completion_tokens, 0.0, cached, status))  # fmt: skip


def reply(*questions):
    return json.dumps({"pairs": [{"question": q, "answer": "Step one.\nThe answer is: 1"} for q in questions]})


def test_only_new_clean_pairs_are_kept_and_every_call_is_charged():
    contaminated = ("Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins "
                    "for her friends every day with four of them?")  # fmt: skip
    extractor = ScriptedExtractor([
        reply("Sam has 2 pears and buys 5 more. How many pears?", SEEDS[0]["question"]),  # the second copies D_r
        reply(contaminated, "Sam has 2 pears and buys 5 more. How many pears?"),  # an evaluation item; a repeat
        "{broken",
        reply("A crate holds 8 melons. How many melons in 3 crates?"),
    ])  # fmt: skip
    ledger = CostLedger()
    pairs, counts = rewrite_from_seeds(extractor, SEEDS, wanted=2, protected=EVAL, method="Rewriting", ledger=ledger)
    assert [p["question"] for p in pairs] == ["Sam has 2 pears and buys 5 more. How many pears?",
                                              "A crate holds 8 melons. How many melons in 3 crates?"]  # fmt: skip
    assert counts == {"calls": 4, "generated": 5, "duplicates": 2, "contaminated": 1, "malformed": 1}
    assert len(ledger.records) == 4 and {r.stage for r in ledger.records} == {"rewrite"}
    assert {r.doc_id for r in ledger.records} <= {"dr:s1", "dr:s2"}
    prompts = [r[1]["content"] for r in extractor.requests]
    assert "Set 1." in prompts[0] and "Set 2." in prompts[1] and len(set(prompts)) == 4  # every call a new request


def test_generation_stops_at_the_call_limit_when_the_model_never_delivers():
    extractor = ScriptedExtractor([])
    pairs, counts = rewrite_from_seeds(extractor, SEEDS, wanted=3, protected=[], method="Rewriting", max_calls=5)
    assert pairs == [] and counts["calls"] == 5 and counts["malformed"] == 5


def test_finish_sees_only_what_is_still_wanted_and_its_drops_are_made_up_by_new_calls():
    """With a refinement pass (``finish``) that drops a pair, generation goes on until ``wanted`` pairs survive it,
    and no pair beyond those still wanted is sent to it (nothing refined that is not needed)."""
    extractor = ScriptedExtractor([
        reply("Sam has 2 pears and buys 5 more. How many pears?", "A crate holds 8 melons. How many in 3 crates?"),
        reply("Ann reads 4 pages a day. How many pages in 6 days?", "Bo runs 3 km a day. How far in 7 days?"),
    ])  # fmt: skip
    seen = []

    def finish(pairs):
        seen.append([p["question"] for p in pairs])
        return [{**p, "answer": "refined"} for p in pairs if "melons" not in p["question"]]  # one fails refinement

    pairs, counts = rewrite_from_seeds(extractor, SEEDS, wanted=2, protected=[], method="Rewriting", finish=finish)
    assert [p["question"] for p in pairs] == ["Sam has 2 pears and buys 5 more. How many pears?",
                                              "Ann reads 4 pages a day. How many pages in 6 days?"]  # fmt: skip
    assert all(p["answer"] == "refined" and p["seed_item"] in {"s1", "s2"} for p in pairs)
    assert seen == [
        ["Sam has 2 pears and buys 5 more. How many pears?", "A crate holds 8 melons. How many in 3 crates?"],
        ["Ann reads 4 pages a day. How many pages in 6 days?"],
    ]  # fmt: skip  (Bo's pair never refined)
    assert counts["calls"] == 2 and counts["finish_dropped"] == 1
