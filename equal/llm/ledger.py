"""The cost ledger: every LLM call with its tokens and time, aggregated per run and per method.

FLOPs are estimated as ``2 · N_params · tokens`` (forward pass, prompt + completion tokens) both
for the model that ran and for a reference model size (default 72e9, the paper's extractor), so
costs compare across backends. A call answered from the cache still charges its original tokens
to the method that uses it; ``new_calls`` and ``new_wall_s`` say what this run actually spent.

Compute that is not the extractor's — a selection method scoring pairs with the base model (perplexity,
gradients) — is charged in the same ledger: its record says ``reference="base"`` (priced at the paper's base
model, :data:`BASE_REFERENCE_PARAMS`) and ``flops_factor`` (3 for a forward and backward pass).
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


#: Parameters of the paper's base model, LLaMA-3.1-8B: the reference size of compute done by the model being
#: tuned (perplexity and gradient scores), where REFERENCE_PARAMS prices the extractor's.
BASE_REFERENCE_PARAMS = 8.03e9
REFERENCES = {"extractor": REFERENCE_PARAMS, "base": BASE_REFERENCE_PARAMS}


#: Stages of the calls that read a corpus document (a warm-up call's stage carries the prefix "warmup-"). A rating
#: names the document its pair came from and a rewrite the D_r item it rewrites: neither is a document extracted.
EXTRACTION_STAGES = frozenset({"extract", "retry", "refine"})


def reads_document(record: dict) -> bool:
    """Whether a ledger record is an extractor call that read its corpus document: what "documents" counts."""
    extractor = record.get("reference", "extractor") == "extractor"
    return extractor and record["stage"].removeprefix("warmup-") in EXTRACTION_STAGES


def inference_flops(n_params: float, tokens: float) -> float:
    """Forward-pass FLOPs of ``tokens`` tokens through a model of ``n_params`` parameters: 2·N·tokens."""
    return 2.0 * n_params * tokens


def call_flops(record: dict, reference_params: float = REFERENCE_PARAMS) -> tuple[float, float]:
    """(FLOPs of the model that ran, FLOPs at the paper's size) of one ledger record: 2·N·tokens times its
    ``flops_factor``; the paper's size is the extractor's (``reference_params``) or, for ``reference="base"``
    records, the base model's."""
    tokens = record["prompt_tokens"] + record["completion_tokens"]
    factor = float(record.get("flops_factor", 1.0))
    reference = BASE_REFERENCE_PARAMS if record.get("reference", "extractor") == "base" else reference_params
    return factor * inference_flops(record["n_params"], tokens), factor * inference_flops(reference, tokens)


@dataclass
class CallRecord:
    """One LLM call as charged to a method."""

    method: str
    doc_id: str
    stage: str  # an EXTRACTION_STAGES name (warm-up: "warmup-" prefixed), or a method's rating, rewrite or scoring
    backend: str
    model_id: str
    n_params: int
    prompt_tokens: int
    completion_tokens: int
    wall_s: float
    cached: bool
    status: str = ""  # parse outcome of the answer
    flops_factor: float = 1.0  # 1: a forward pass; 3: forward and backward (gradient scores)
    reference: str = "extractor"  # which of the paper's models prices it: "extractor" (72B) or "base" (8B)


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
        records = calls.to_dict("records")
        flops = [call_flops(r, self.reference_params) for r in records]
        calls["flops_model"] = [model for model, _ in flops]
        calls["flops_reference"] = [reference for _, reference in flops]
        # calls and tokens are the LLM's and documents those its extraction read; base-model scoring only adds FLOPs
        llm = (calls["reference"] == "extractor").astype(int)
        calls["doc_id"] = calls["doc_id"].where([reads_document(r) for r in records])
        for column in ("prompt_tokens", "completion_tokens"):
            calls[column] = calls[column] * llm
        calls["tokens"] = calls["prompt_tokens"] + calls["completion_tokens"]
        calls["llm_call"], calls["new_call"] = llm, llm * (~calls["cached"]).astype(int)
        calls["new_wall_s"] = calls["wall_s"].where(~calls["cached"], 0.0)
        grouped = calls.groupby(by)
        return pd.DataFrame(
            {
                "documents": grouped["doc_id"].nunique(),
                "calls": grouped["llm_call"].sum(),
                "prompt_tokens": grouped["prompt_tokens"].sum(),
                "completion_tokens": grouped["completion_tokens"].sum(),
                "tokens": grouped["tokens"].sum(),
                "flops_model": grouped["flops_model"].sum(),
                "flops_reference": grouped["flops_reference"].sum(),
                "new_calls": grouped["new_call"].sum(),
                "new_wall_s": grouped["new_wall_s"].sum().round(2),
            }
        ).reset_index()

    def write_summary(self, path: str | Path, extra: dict | None = None) -> Path:
        """Write the per-method summary as JSON (with the reference model size)."""
        return write_json_atomic(
            path,
            {
                "reference_params": self.reference_params,
                "flops_formula": "flops_factor * 2 * n_params * (prompt_tokens + completion_tokens)",
                "methods": self.summary().to_dict(orient="records"),
                **(extra or {}),
            },
        )
