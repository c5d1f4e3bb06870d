"""RunSummary: summary.json typed, read back unchanged, each method kind's figures in their own class."""

import json

import pytest

from equal.io import write_json_atomic
from equal.select.summary import BandDetails, BanditDetails, RatingDetails, RewritingDetails, RunSummary

COMMON = {"fingerprint": "ab12", "method": "EQUAL", "target": "gsm8k", "gamma": 0.05, "seed": 3, "budget": 50,
          "warmup_documents": 50, "warmup_pairs_included": False, "pairs": 61, "llm_calls": 140, "tokens": 91000,
          "flops_model": 9.1e13, "flops_reference": 1.3e16, "new_llm_calls": 0, "wall_s": 2.5, "loop_documents": 50,
          "documents_by_domain": {"code": 20, "math": 80}, "degenerate_pairs_dropped": 1, "token_limit_documents": 2,
          "draft_pairs": 90, "refinement": {"problem/verified": 30}, "quality_gate_dropped": {}}  # fmt: skip


BAND = {"band": 2, "bands": 5, "band_rank_start": 40, "ranked_documents": 200, "band_distance_mean": 0.61,
        "band_distance_range": [0.58, 0.64]}  # fmt: skip
BANDIT = {"rounds": 25, "pulls": 50, "stop_reason": "budget", "resumed_rounds": 0}


@pytest.mark.parametrize(
    ("figures", "kind"),
    [
        (BANDIT, BanditDetails),
        ({"malformed_ratings": 2}, RatingDetails),
        ({"rewriting": {"calls": 9, "finish_dropped": 3}}, RewritingDetails),
        (BAND, BandDetails),
        ({}, type(None)),
    ],
)
def test_summary_json_reads_back_unchanged(tmp_path, figures, kind):
    record = {**COMMON, **figures, "documents_extracted": 100}
    write_json_atomic(tmp_path / "summary.json", record)
    summary = RunSummary.from_json(json.loads((tmp_path / "summary.json").read_text()))
    assert isinstance(summary.details, kind) and summary.documents_extracted == 100  # loop + warm-up
    write_json_atomic(tmp_path / "again.json", summary.to_json())
    assert (tmp_path / "again.json").read_bytes() == (tmp_path / "summary.json").read_bytes()


def test_a_shared_run_is_labelled_for_each_request():
    summary = RunSummary.from_json({**COMMON, "documents_extracted": 100})
    other = summary.for_request("mbpp", 0.2, 0)
    assert (other.target, other.gamma, other.seed, other.pairs) == ("mbpp", 0.2, 0, 61)


def test_figures_of_no_known_method_kind_are_an_error():
    with pytest.raises(ValueError, match=r"figures of no known method kind: \['novelty'\]"):
        RunSummary.from_json({**COMMON, "novelty": 1, "documents_extracted": 100})
