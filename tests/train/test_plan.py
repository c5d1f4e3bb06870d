"""The fine-tuning plan (a model per target), what building a set cost, and a method's cost over its targets."""

from pathlib import Path

import pandas as pd
import pytest

from equal.artifacts import Artifacts
from equal.errors import ConfigError
from equal.io import write_json_atomic, write_jsonl_atomic
from equal.llm.ledger import BASE_REFERENCE_PARAMS, REFERENCE_PARAMS
from equal.train.plan import TrainingRun, extraction_cost, method_costs, plan_runs, training_pairs

METHODS = ["EQUAL", "Random", "All"]


def test_plan_expands_groups_one_model_per_target_and_trains_all_once():
    groups = [{"methods": "all", "gammas": [0.05], "seeds": [0]}, {"methods": ["EQUAL", "Random"], "seeds": "all"}]
    runs = plan_runs(groups, METHODS, gammas=[0.05, 0.2], seeds=[0, 1], targets=["gsm8k", "mbpp"])
    assert runs.count(TrainingRun("All", 1.0, 0)) == 1
    assert TrainingRun("EQUAL", 0.2, 1, "mbpp") in runs and TrainingRun("Random", 0.05, 1, "gsm8k") in runs
    assert len(runs) == 1 + 2 * 2 * 2 * 2  # All + (EQUAL, Random) × 2 targets × 2 γ × 2 seeds
    assert runs[0].method == "All" and [r.target for r in runs[1:]] == ["gsm8k"] * 8 + ["mbpp"] * 8
    with pytest.raises(ConfigError, match="did not run"):
        plan_runs([{"methods": ["Uniform"]}], METHODS, [0.05], [0], ["gsm8k"])
    with pytest.raises(ConfigError, match="seed 7"):
        plan_runs([{"seeds": [7]}], METHODS, [0.05], [0], ["gsm8k"])
    with pytest.raises(ConfigError, match="target 'math'"):
        plan_runs([{"targets": ["math"]}], METHODS, [0.05], [0], ["gsm8k"])


def test_train_seeds_cross_selection_seeds_for_the_variance_pilot():
    runs = plan_runs([{"methods": ["Random"], "train_seeds": [0, 1]}], METHODS, [0.05], [0, 1, 2], ["gsm8k"])
    assert len(runs) == 6 and len({r.label for r in runs}) == 6
    assert [(r.seed, r.fine_tuning_seed) for r in runs] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    art = Artifacts("test", Path("/tmp/x"), Path("/tmp/r"), Path("/tmp/f"))
    assert len({r.folder(art) for r in runs}) == 6  # every replicate its own model
    assert TrainingRun("Random", 0.05, 1, "gsm8k").fine_tuning_seed == 1  # by default the selection seed


def test_the_shared_selection_gets_its_own_fine_tuning_seeds_and_seed_0_is_its_one_model():
    groups = [{"methods": ["All"]}, {"methods": ["All"], "train_seeds": [0, 1, 2]}]
    runs = plan_runs(groups, METHODS, [0.05], [0], ["gsm8k", "mbpp"])
    assert runs == [
        TrainingRun("All", 1.0, 0),
        TrainingRun("All", 1.0, 0, None, 1),
        TrainingRun("All", 1.0, 0, None, 2),
    ]
    art = Artifacts("test", Path("/tmp/x"), Path("/tmp/r"), Path("/tmp/f"))
    assert runs[0].folder(art) == Path("/tmp/x/finetune/all")  # the folder a default run has always used
    assert len({r.folder(art) for r in runs}) == 3 and runs[2].label == "All · 100% · train seed 2"


def _ledger_row(doc, stage, tokens):
    return {"doc_id": doc, "stage": stage, "prompt_tokens": tokens, "completion_tokens": 10, "n_params": 1000}


def test_a_methods_cost_counts_documents_shared_by_its_targets_once(tmp_path):
    runs = [TrainingRun("EQUAL", 0.05, 0, "math"), TrainingRun("EQUAL", 0.05, 0, "code")]
    art = Artifacts("test", tmp_path, tmp_path / "results", tmp_path / "figures")
    math_dir, code_dir = (run.selection_folder(art) for run in runs)
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
    assert [p["question"] for p in training_pairs(runs[0], art)] == ["Q1", "Q2"]  # its own target's set only
    assert extraction_cost(runs[1], art)["documents_extracted"] == 3
    trained = pd.DataFrame({"model": [r.label for r in runs], "train_flops": [1e12, 2e12]})
    (cost,) = method_costs(runs, art, trained).to_dict("records")
    assert cost["models"] == 2 and cost["train_flops"] == 3e12  # both targets' models are charged
    assert cost["documents_extracted"] == 3 and cost["llm_calls"] == 3  # the warm-up and m1 once
    assert cost["tokens"] == 110 + 60 + 80
    assert cost["extractor_flops"] == 2 * 1000 * 250 and cost["reference_flops"] == pytest.approx(
        2 * REFERENCE_PARAMS * 250
    )
    # two pairs of one document scored at the same length are two gradients, in one ledger and in the other
    scored = {**_ledger_row("c1", "score-influence", 40), "completion_tokens": 0, "reference": "base"}
    write_jsonl_atomic(code_dir / "ledger.jsonl", [warmup, _ledger_row("c1", "extract", 70), scored, scored])
    write_jsonl_atomic(math_dir / "ledger.jsonl", [warmup, _ledger_row("m1", "extract", 50), scored])
    assert extraction_cost(runs[1], art)["llm_calls"] == 2  # scoring is not an LLM call
    (cost,) = method_costs(runs, art, trained).to_dict("records")
    assert cost["llm_calls"] == 3 and cost["tokens"] == 110 + 60 + 80  # shared across ledgers: once
    base = 2 * BASE_REFERENCE_PARAMS * 40  # one gradient's forward FLOPs at the paper's base, before the factor
    assert cost["reference_flops"] == pytest.approx(2 * REFERENCE_PARAMS * 250 + 2 * base)  # both gradients
    # a rewrite names the D_r item it came from and a rating its pair's document: neither reads a new document
    rewrite = _ledger_row("dr:gsm8k-7", "rewrite", 30)
    rating = _ledger_row("m1", "rate:qa-rate-v1", 20)
    write_jsonl_atomic(math_dir / "ledger.jsonl", [rewrite, rewrite, rating])
    assert extraction_cost(runs[0], art) | {"extractor_flops": 0, "reference_flops": 0} == {
        "documents_extracted": 0, "llm_calls": 3, "tokens": 2 * 40 + 30, "extractor_flops": 0, "reference_flops": 0
    }  # fmt: skip


def test_a_missing_selection_names_the_file(tmp_path):
    art = Artifacts("test", tmp_path, tmp_path / "results", tmp_path / "figures")
    with pytest.raises(ConfigError, match=r"random/seed0/summary.json does not exist — run notebook 04 first"):
        training_pairs(TrainingRun("Random", 0.05, 0, "math"), art)


def test_selection_and_cost_tables_charge_the_same_72b_flops(tmp_path):
    from equal.llm.ledger import CallRecord, CostLedger

    run = TrainingRun("Random", 0.05, 0, "math")
    art = Artifacts("test", tmp_path, tmp_path / "results", tmp_path / "figures")
    folder = run.selection_folder(art)
    ledger = CostLedger(folder / "ledger.jsonl")
    for doc, tokens in (("a", 120), ("b", 75)):
        ledger.add(CallRecord("Random", doc, "extract", "llama_cpp", "m", 1000, tokens, 10, 0.1, False))
    write_jsonl_atomic(folder / "pairs.jsonl", [])
    write_json_atomic(folder / "summary.json", {"method": "Random"})
    selection_flops = ledger.summary()["flops_reference"].iloc[0]  # what the selection table reports
    assert extraction_cost(run, art)["reference_flops"] == pytest.approx(selection_flops)


@pytest.mark.slow
def test_models_are_retrained_exactly_when_their_training_set_changes(tmp_path):
    from equal.train.finetune import FinetuneConfig
    from equal.train.plan import train_runs
    from equal.weights import TINY_CHAT_MODEL, causal_lm_dir

    art = Artifacts("test", tmp_path, tmp_path / "results", tmp_path / "figures")
    runs = [TrainingRun("EQUAL", 0.05, 0, "math"), TrainingRun("Random", 0.05, 0, "math")]

    def write_selection(run, questions):
        folder = run.selection_folder(art)
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
    first = train_runs(runs, art, base, config, progress=False)
    assert not first["reused"].any()
    assert list(first["answer_chars_median"]) == [len("It is 4.")] * 2  # each set's answer length, for the link
    again = train_runs(runs, art, base, config, progress=False)
    assert again["reused"].all()  # an unchanged re-run retrains nothing
    write_selection(runs[0], ["What is 2 + 2?", "What is 5 - 1?"])  # EQUAL's set changed, Random's did not
    changed = train_runs(runs, art, base, config, progress=False)
    assert list(changed["reused"]) == [False, True]
    assert list(changed["fingerprint"] == first["fingerprint"]) == [False, True]


@pytest.mark.slow
def test_a_model_trained_in_its_own_process_is_the_one_trained_in_this_process(tmp_path):
    """Isolation (the default) changes where a model trains, not what it learns; an error in the worker surfaces."""
    from equal.fingerprint import files_digest
    from equal.train.finetune import FinetuneConfig
    from equal.train.plan import _finetune_in_own_process, train_runs
    from equal.weights import TINY_CHAT_MODEL, causal_lm_dir

    config = FinetuneConfig(method="full", max_steps=2, batch_size=2, learning_rate=1e-3, lr_scheduler_type="constant",
                            warmup_steps=0, max_length=64, bf16=False, save_dtype="float32", save_steps=1)  # fmt: skip
    base = causal_lm_dir(TINY_CHAT_MODEL)
    run = TrainingRun("EQUAL", 0.05, 0, "math")
    weights, losses = [], []
    for isolate in (True, False):
        art = Artifacts("test", tmp_path / str(isolate), tmp_path / "results", tmp_path / "figures")
        folder = run.selection_folder(art)
        pairs = [{"doc_id": f"d{i}", "pair_index": 0, "question": f"What is {i} + 2?", "answer": f"It is {i + 2}.",
                  "domain": "math"} for i in range(4)]  # fmt: skip
        write_jsonl_atomic(folder / "pairs.jsonl", pairs)
        write_jsonl_atomic(folder / "ledger.jsonl", [])
        write_json_atomic(folder / "summary.json", {"method": run.method})
        table = train_runs([run], art, base, config, progress=False, isolate=isolate)
        weights.append(files_digest(list((run.folder(art) / "model").glob("*.safetensors"))))
        losses.append(table["final_loss"].item())
    assert weights[0] == weights[1] and losses[0] == losses[1]
    with pytest.raises(ValueError, match="no QA pairs"):
        _finetune_in_own_process(base, [], tmp_path / "empty", config, False)
