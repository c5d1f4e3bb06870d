"""The cost ledger: every LLM call with its tokens and time, aggregated per run and per method.

FLOPs are estimated as ``2 · N_params · tokens`` (forward pass, prompt + completion tokens) both
for the model that ran and for a reference model size (default 72e9, the paper's extractor), so
costs compare across backends. A call answered from the cache still charges its original tokens
to the method that uses it; ``new_calls`` and ``new_wall_s`` say what this run actually spent.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from equal.io import write_json_atomic

#: Parameters of the paper's extractor, Qwen2.5-72B-Instruct (72.7 B): the one constant every
#: "FLOPs at 72B" figure uses, through :func:`inference_flops`.
REFERENCE_PARAMS = 72.7e9


def inference_flops(n_params: float, tokens: float) -> float:
    """Forward-pass FLOPs of ``tokens`` tokens through a model of ``n_params`` parameters: 2·N·tokens."""
    return 2.0 * n_params * tokens


@dataclass
class CallRecord:
    """One LLM call as charged to a method."""

    method: str
    doc_id: str
    stage: str  # "extract", "retry" or "refine"
    backend: str
    model_id: str
    n_params: int
    prompt_tokens: int
    completion_tokens: int
    wall_s: float
    cached: bool
    status: str = ""  # parse outcome of the answer


class CostLedger:
    """Append-only list of :class:`CallRecord`, streamed to a JSONL file when a path is given."""

    def __init__(self, path: str | Path | None = None, reference_params: float = REFERENCE_PARAMS) -> None:
        self.path = Path(path) if path else None
        self.reference_params = reference_params
        self.records: list[CallRecord] = []
        if self.path:
            # A ledger describes one run: a re-run (resumed or not) charges every call again, cached or new.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("")

    def add(self, record: CallRecord) -> None:
        """Record a call (appended and flushed to the JSONL file at once)."""
        self.records.append(record)
        if self.path:
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(asdict(record)) + "\n")

    def frame(self) -> pd.DataFrame:
        """All calls as a DataFrame."""
        return pd.DataFrame([asdict(r) for r in self.records], columns=list(CallRecord.__dataclass_fields__))

    def summary(self, by: str = "method") -> pd.DataFrame:
        """Per-method totals: documents, calls, tokens, FLOPs (model and reference), new work."""
        calls = self.frame()
        if calls.empty:
            return pd.DataFrame(
                columns=[
                    by,
                    "documents",
                    "calls",
                    "prompt_tokens",
                    "completion_tokens",
                    "tokens",
                    "flops_model",
                    "flops_reference",
                    "new_calls",
                    "new_wall_s",
                ]
            )
        calls["tokens"] = calls["prompt_tokens"] + calls["completion_tokens"]
        calls["flops_model"] = inference_flops(calls["n_params"], calls["tokens"])
        calls["flops_reference"] = inference_flops(self.reference_params, calls["tokens"])
        calls["new_wall_s"] = calls["wall_s"].where(~calls["cached"], 0.0)
        grouped = calls.groupby(by)
        return pd.DataFrame(
            {
                "documents": grouped["doc_id"].nunique(),
                "calls": grouped.size(),
                "prompt_tokens": grouped["prompt_tokens"].sum(),
                "completion_tokens": grouped["completion_tokens"].sum(),
                "tokens": grouped["tokens"].sum(),
                "flops_model": grouped["flops_model"].sum(),
                "flops_reference": grouped["flops_reference"].sum(),
                "new_calls": grouped["cached"].apply(lambda c: int((~c).sum())),
                "new_wall_s": grouped["new_wall_s"].sum().round(2),
            }
        ).reset_index()

    def write_summary(self, path: str | Path, extra: dict | None = None) -> Path:
        """Write the per-method summary as JSON (with the reference model size)."""
        return write_json_atomic(
            path,
            {
                "reference_params": self.reference_params,
                "flops_formula": "2 * n_params * (prompt_tokens + completion_tokens)",
                "methods": self.summary().to_dict(orient="records"),
                **(extra or {}),
            },
        )
