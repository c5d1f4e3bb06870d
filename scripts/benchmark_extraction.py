"""Benchmark the extraction backends on real corpus documents (a script, not a test).

    .venv/bin/python scripts/benchmark_extraction.py [--docs 50] [--backends batched single transformers]

Every backend extracts the same seeded sample of documents from the default profile's corpus,
with a fresh cache, so every call is real. Prints docs/min, tokens/s, the share of well-formed
answers, the share of documents with at least one pair and five sample pairs per backend, and
writes ``results/benchmarks/extraction.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from equal.data.corpus import CorpusConfig, prepare_data
from equal.io import read_jsonl, write_json_atomic
from equal.llm.backends import make_backend
from equal.llm.cache import CallCache
from equal.llm.extract import ExtractionConfig, ExtractionReport, QAExtractor, pairs_records
from equal.llm.ledger import CostLedger
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
    parser.add_argument("--max-tokens", type=int, default=320)
    parser.add_argument("--out", default=str(REPO_ROOT / "results" / "benchmarks" / "extraction.json"))
    parser.add_argument("--append", action="store_true", help="keep the other backends' rows already in --out")
    args = parser.parse_args()
    docs = sample_documents(args.docs, args.seed)
    config = ExtractionConfig(max_pairs=args.max_pairs, max_tokens=args.max_tokens)
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
        with tempfile.TemporaryDirectory() as tmp:
            extractor = QAExtractor(backend, CallCache(Path(tmp) / "calls.sqlite"), config)
            ledger, report = CostLedger(), ExtractionReport()
            started = time.perf_counter()
            results = extractor.extract(docs, method=name, ledger=ledger, report=report)
            wall = time.perf_counter() - started
        calls = ledger.frame()
        tokens = int(calls["prompt_tokens"].sum() + calls["completion_tokens"].sum())
        with_pairs = sum(1 for r in results if r.pairs) / len(results)
        row = {
            "backend": name,
            "kind": backend.kind,
            "model": backend.model_id,
            "n_params": backend.n_params,
            "documents": len(docs),
            "calls": len(calls),
            "wall_s": round(wall, 1),
            "docs_per_min": round(len(docs) / wall * 60, 2),
            "tokens_per_s": round(tokens / wall, 1),
            "prompt_tokens": int(calls["prompt_tokens"].sum()),
            "completion_tokens": int(calls["completion_tokens"].sum()),
            "well_formed_share": round(report.well_formed_share, 4),
            "docs_with_pairs_share": round(with_pairs, 4),
            "outcomes": dict(report.outcomes),
            "pairs": report.pairs,
            "spec": {k: str(v) for k, v in spec.items()},
        }
        rows.append(row)
        print(
            f"\n[{name}] {row['model']}: {row['docs_per_min']} docs/min, {row['tokens_per_s']} tokens/s, "
            f"well-formed {row['well_formed_share']:.0%}, documents with ≥1 pair {with_pairs:.0%}, {row['outcomes']}"
        )
        for record in random.Random(args.seed).sample(pairs_records(results, docs, name), k=min(5, report.pairs)):
            print(f"  Q: {record['question'][:160]}\n  A: {record['answer'][:160]}")
    if args.append and Path(args.out).is_file():
        measured = {row["backend"] for row in rows}
        earlier = json.loads(Path(args.out).read_text())["rows"]
        rows = [row for row in earlier if row["backend"] not in measured] + rows
    write_json_atomic(
        args.out,
        {
            "rows": rows,
            "config": asdict(config),
            **sidecar(
                {"docs": args.docs, "seed": args.seed, "max_pairs": args.max_pairs, "max_tokens": args.max_tokens}
            ),
        },
    )
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
