"""Benchmark the extractors on real corpus documents: speed and the quality of the pairs (a script, not a test).

    .venv/bin/python scripts/benchmark_extraction.py [--docs 50] [--backends batched single transformers]
        [--prompt-versions qa-extract-v1 qa-extract-v2] [--repeat-penalties 1.0 1.1] [--max-tokens 320]

Every backend × prompt × decoding setting extracts the same seeded *pilot* sample of documents from the
default profile's corpus, with a fresh cache, so every call is real: decoding is chosen on these pairs' quality,
never on a method comparison.
Per setting it reports docs/min and tokens/s; the share of documents whose answer stopped at the token
limit, was not valid JSON, or had its pairs dropped as degenerate; pairs per document; and the automatic
checks of :mod:`equal.llm.quality` (self-contained, steps, final answer, code parses, not truncated, not
degenerate) on a seeded sample of up to 100 pairs. Writes ``results/benchmarks/extraction.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from equal.data.corpus import CorpusConfig, prepare_data
from equal.io import read_jsonl, write_json_atomic
from equal.llm.backends import make_backend
from equal.llm.cache import CallCache
from equal.llm.extract import ExtractionConfig, ExtractionReport, QAExtractor, pairs_records
from equal.llm.ledger import CostLedger
from equal.llm.prompts import PROMPT_VERSION, PROMPTS
from equal.llm.quality import quality_summary
from equal.paths import REPO_ROOT, data_dir, raw_data_dir
from equal.provenance import sidecar
from equal.weights import dequantized_model_dir

BACKENDS = {
    "batched": {"kind": "llama_cpp", "model": "qwen2.5-coder-0.5b-instruct", "n_parallel": 16, "n_ctx": 2048},
    "single": {"kind": "llama_cpp", "model": "qwen2.5-coder-0.5b-instruct", "n_ctx": 2048},
    "batched-1.5b": {"kind": "llama_cpp", "model": "qwen2.5-coder-1.5b-instruct", "n_parallel": 16, "n_ctx": 2048},
    "transformers": {"kind": "transformers", "model_dir": None, "batch_size": 8},  # SmolLM2-135M, dequantised
}


def sample_documents(n: int, seed: int) -> list[dict]:
    """``n`` seeded documents of the default profile's corpus (prepared first if needed)."""
    corpus = data_dir("default") / "corpus.jsonl"
    if not corpus.is_file():
        prepare_data(CorpusConfig(raw_dir=raw_data_dir(), out_dir=data_dir("default")))
    docs = read_jsonl(corpus)
    return random.Random(seed).sample(docs, n)


def main() -> None:
    """Run the benchmark and write its JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backends", nargs="*", default=["batched", "single", "transformers"], choices=list(BACKENDS))
    parser.add_argument("--max-pairs", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, nargs="*", default=[320])
    parser.add_argument("--prompt-versions", nargs="*", default=[PROMPT_VERSION], choices=sorted(PROMPTS))
    parser.add_argument("--repeat-penalties", type=float, nargs="*", default=[1.0])
    parser.add_argument("--quality-sample", type=int, default=100, help="pairs checked per setting")
    parser.add_argument("--out", default=str(REPO_ROOT / "results" / "benchmarks" / "extraction.json"))
    parser.add_argument("--append", action="store_true", help="keep the other backends' rows already in --out")
    args = parser.parse_args()
    docs = sample_documents(args.docs, args.seed)
    settings = [(v, rp, mt) for v in args.prompt_versions for rp in args.repeat_penalties for mt in args.max_tokens]
    rows = []
    for name in args.backends:
        spec = dict(BACKENDS[name])
        if spec["kind"] == "transformers":
            spec["model_dir"] = dequantized_model_dir("smollm2-135m-instruct")
        try:
            backend = make_backend(spec)
        except Exception as exc:  # e.g. the optional 1.5B packages are not installed
            print(f"[{name}] skipped: {exc}")
            continue
        for version, penalty, max_tokens in settings:
            config = ExtractionConfig(max_pairs=args.max_pairs, max_tokens=max_tokens, prompt_version=version,
                                      repeat_penalty=penalty)  # fmt: skip
            label = f"{name}/{version}/rp{penalty:g}/mt{max_tokens}/mp{args.max_pairs}"
            rows.append(measure(label, backend, spec, config, docs, args))
    if args.append and Path(args.out).is_file():
        measured = {row["backend"] for row in rows}
        earlier = json.loads(Path(args.out).read_text())["rows"]
        rows = [row for row in earlier if row["backend"] not in measured] + rows
    parameters = {"docs": args.docs, "seed": args.seed, "max_pairs": args.max_pairs, "max_tokens": args.max_tokens,
                  "prompt_versions": args.prompt_versions, "repeat_penalties": args.repeat_penalties,
                  "quality_sample": args.quality_sample}  # fmt: skip
    write_json_atomic(args.out, {"rows": rows, **sidecar(parameters)})
    print(f"\nwrote {args.out}")


def measure(name: str, backend, spec: dict, config: ExtractionConfig, docs: list[dict], args) -> dict:
    """Extract ``docs`` with a fresh cache; speed, outcomes and pair quality of one setting."""
    with tempfile.TemporaryDirectory() as tmp:
        extractor = QAExtractor(backend, CallCache(Path(tmp) / "calls.sqlite"), config)
        ledger, report = CostLedger(), ExtractionReport()
        started = time.perf_counter()
        results = extractor.extract(docs, method=name, ledger=ledger, report=report)
        wall = time.perf_counter() - started
    calls = ledger.frame()
    tokens = int(calls["prompt_tokens"].sum() + calls["completion_tokens"].sum())
    records = pairs_records(results, docs, name)
    quality = quality_summary(records, args.quality_sample, args.seed)
    sample = random.Random(args.seed).sample(records, k=min(args.quality_sample, len(records)))
    n = len(docs)
    row = {
        "backend": name,
        "kind": backend.kind,
        "model": backend.model_id,
        "n_params": backend.n_params,
        "prompt_version": config.prompt_version,
        "repeat_penalty": config.repeat_penalty,
        "max_tokens": config.max_tokens,
        "max_pairs": config.max_pairs,
        "documents": n,
        "calls": len(calls),
        "wall_s": round(wall, 1),
        "docs_per_min": round(n / wall * 60, 2),
        "tokens_per_s": round(tokens / wall, 1),
        "prompt_tokens": int(calls["prompt_tokens"].sum()),
        "completion_tokens": int(calls["completion_tokens"].sum()),
        "token_limit_share": round(report.token_limit_documents / n, 4),
        "invalid_json_share": round((report.outcomes["repaired"] + report.outcomes["malformed"]) / n, 4),
        "degenerate_pairs": report.degenerate_pairs,
        "well_formed_share": round(report.well_formed_share, 4),
        "docs_with_pairs_share": round(sum(1 for r in results if r.pairs) / n, 4),
        "pairs_per_doc": round(report.pairs / n, 3),
        "outcomes": dict(report.outcomes),
        "pairs": report.pairs,
        **quality,
        "spec": {k: str(v) for k, v in spec.items()},
    }
    print(f"\n[{name}] {row['model']}: {row['docs_per_min']} docs/min, token limit {row['token_limit_share']:.0%}, "
          f"invalid JSON {row['invalid_json_share']:.0%}, degenerate pairs {row['degenerate_pairs']}, "
          f"{row['pairs_per_doc']} pairs/doc, all checks pass {row['all_checks_pass_share']:.0%} "
          f"({row['checks_pass_share']}), {row['outcomes']}")  # fmt: skip
    for record in sample[:5]:
        print(f"  Q: {record['question'][:160]}\n  A: {record['answer'][:240]}")
    return row


if __name__ == "__main__":
    main()
