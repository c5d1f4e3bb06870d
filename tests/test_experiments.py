"""The fine-tuning plan, the union of a method's QA sets over targets, and what building a set cost."""

import pytest

from equal.artifacts import Artifacts
from equal.errors import ConfigError
from equal.io import write_json_atomic, write_jsonl_atomic
from equal.llm.ledger import REFERENCE_PARAMS
from equal.train.plan import TrainingRun, extraction_cost, plan_runs, training_pairs

METHODS = ["EQUAL", "Random", "All"]


def test_plan_expands_groups_and_trains_all_once():
    groups = [{"methods": "all", "gammas": [0.05], "seeds": [0]}, {"methods": ["EQUAL", "Random"], "seeds": "all"}]
    runs = plan_runs(groups, METHODS, gammas=[0.05, 0.2], seeds=[0, 1])
    assert runs.count(TrainingRun("All", 1.0, 0)) == 1
    assert TrainingRun("EQUAL", 0.2, 1) in runs and TrainingRun("Random", 0.05, 1) in runs
    assert len(runs) == 1 + 2 * 2 * 2  # All + (EQUAL, Random) × 2 γ × 2 seeds
    with pytest.raises(ConfigError, match="did not run"):
        plan_runs([{"methods": ["Uniform"]}], METHODS, [0.05], [0])
    with pytest.raises(ConfigError, match="seed 7"):
        plan_runs([{"seeds": [7]}], METHODS, [0.05], [0])


def _ledger_row(doc, stage, tokens):
    return {"doc_id": doc, "stage": stage, "prompt_tokens": tokens, "completion_tokens": 10, "n_params": 1000}


def test_union_over_targets_counts_shared_documents_once(tmp_path):
    run = TrainingRun("EQUAL", 0.05, 0)
    art = Artifacts("test", tmp_path, tmp_path / "results", tmp_path / "figures")
    math_dir, code_dir = run.selection_folders(art, ["math", "code"])
    for folder in (math_dir, code_dir):
        write_json_atomic(folder / "summary.json", {"method": "EQUAL"})
    shared = {"doc_id": "w1", "pair_index": 0, "question": "Q1", "answer": "A1", "domain": "math"}
    write_jsonl_atomic(math_dir / "pairs.jsonl", [shared, {**shared, "doc_id": "m1", "question": "Q2"}])
    write_jsonl_atomic(
        code_dir / "pairs.jsonl", [shared, {**shared, "doc_id": "c1", "question": "Q3", "domain": "code"}]
    )
    warmup = _ledger_row("w1", "warmup-extract", 100)
    write_jsonl_atomic(math_dir / "ledger.jsonl", [warmup, _ledger_row("m1", "extract", 50)])
    write_jsonl_atomic(
        code_dir / "ledger.jsonl", [warmup, _ledger_row("c1", "extract", 70), _ledger_row("m1", "extract", 50)]
    )
    assert [p["question"] for p in training_pairs(run, art, ["math", "code"])] == ["Q1", "Q2", "Q3"]
    cost = extraction_cost(run, art, ["math", "code"])
    assert cost["documents_extracted"] == 3 and cost["llm_calls"] == 3
    assert cost["tokens"] == 110 + 60 + 80
    assert cost["extractor_flops"] == 2 * 1000 * 250 and cost["reference_flops"] == pytest.approx(
        2 * REFERENCE_PARAMS * 250
    )


def test_a_missing_selection_names_the_file(tmp_path):
    art = Artifacts("test", tmp_path, tmp_path / "results", tmp_path / "figures")
    with pytest.raises(ConfigError, match=r"random/seed0/summary.json does not exist — run notebook 04 first"):
        training_pairs(TrainingRun("Random", 0.05, 0), art, ["math"])


def test_selection_and_cost_tables_charge_the_same_72b_flops(tmp_path):
    from equal.llm.ledger import CallRecord, CostLedger

    run = TrainingRun("Random", 0.05, 0)
    art = Artifacts("test", tmp_path, tmp_path / "results", tmp_path / "figures")
    (folder,) = run.selection_folders(art, ["math"])
    ledger = CostLedger(folder / "ledger.jsonl")
    for doc, tokens in (("a", 120), ("b", 75)):
        ledger.add(CallRecord("Random", doc, "extract", "llama_cpp", "m", 1000, tokens, 10, 0.1, False))
    write_jsonl_atomic(folder / "pairs.jsonl", [])
    write_json_atomic(folder / "summary.json", {"method": "Random"})
    selection_flops = ledger.summary()["flops_reference"].iloc[0]  # what the selection table reports
    assert extraction_cost(run, art, ["math"])["reference_flops"] == pytest.approx(selection_flops)


def test_models_are_retrained_exactly_when_their_training_set_changes(tmp_path):
    from equal.train.finetune import FinetuneConfig
    from equal.train.plan import train_runs
    from equal.weights import TINY_CHAT_MODEL, causal_lm_dir

    art = Artifacts("test", tmp_path, tmp_path / "results", tmp_path / "figures")
    runs = [TrainingRun("EQUAL", 0.05, 0), TrainingRun("Random", 0.05, 0)]

    def write_selection(run, questions):
        (folder,) = run.selection_folders(art, ["math"])
        pairs = [{"doc_id": f"d{i}", "pair_index": 0, "question": q, "answer": "It is 4.", "domain": "math"}
                 for i, q in enumerate(questions)]  # fmt: skip
        write_jsonl_atomic(folder / "pairs.jsonl", pairs)
        write_jsonl_atomic(folder / "ledger.jsonl", [])
        write_json_atomic(folder / "summary.json", {"method": run.method})

    write_selection(runs[0], ["What is 2 + 2?", "What is 3 + 1?"])
    write_selection(runs[1], ["What is 1 + 3?", "What is 0 + 4?"])
    config = FinetuneConfig(method="full", max_steps=1, batch_size=2, learning_rate=1e-3, lr_scheduler_type="constant",
                            warmup_steps=0, max_length=64, bf16=False, save_dtype="float32", save_steps=1)  # fmt: skip
    base = causal_lm_dir(TINY_CHAT_MODEL)
    first = train_runs(runs, art, ["math"], base, config, progress=False)
    assert not first["reused"].any()
    again = train_runs(runs, art, ["math"], base, config, progress=False)
    assert again["reused"].all()  # an unchanged re-run retrains nothing
    write_selection(runs[0], ["What is 2 + 2?", "What is 5 - 1?"])  # EQUAL's set changed, Random's did not
    changed = train_runs(runs, art, ["math"], base, config, progress=False)
    assert list(changed["reused"]) == [False, True]
    assert list(changed["fingerprint"] == first["fingerprint"]) == [False, True]
