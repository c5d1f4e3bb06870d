"""Where the default's extraction time goes, and two batched llama.cpp schedulers compared (a script).

    .venv/bin/python scripts/benchmark_batching.py [--docs 32] [--before 25e4d9d] [--after cc8d84c]

The default profile's whole extraction pass (the 0.5B extractor, then the 1.5B refiner with up to 4 verified
attempts per pair) runs on the same seeded documents of the default corpus twice, with a fresh cache each time so
every call is real: once with the batched backend (``equal/llm/llama_batch.py``) of commit ``--before`` (static
groups of ``n_parallel`` conversations sharing one cached prefix), once with that of ``--after`` (default: this
tree). Only the scheduler differs; prompts, decoding and verification are the same. Both runs go one after the other
in one process, so the ratio is what to read, not the absolute times.

``results/benchmarks/batching.json`` compares 25e4d9d with cc8d84c (continuous batching, one kept prefix per kind
of request): 0.90x, so the static groups stayed (this tree's backend is 25e4d9d's, with its time counted).

Per run: documents per minute, the seconds spent in extraction and in refinement (the calls' own wall time from
the ledger) and, where the backend counts them, where the decoder's time goes (reading prefixes, reading prompts,
generation steps, sampling) with the tokens of each. Then the machine's limit: seconds per generation step of the
1.5B refiner with 1, 4 and 16 live sequences (this tree's backend). Writes ``results/benchmarks/batching.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from equal.artifacts import Artifacts
from equal.io import read_jsonl, write_json_atomic
from equal.llm.cache import CallCache
from equal.llm.extract import ExtractionConfig, QAExtractor, make_refiner
from equal.llm.ledger import CostLedger
from equal.llm.types import GenerationParams
from equal.paths import REPO_ROOT
from equal.profiles import load_profile
from equal.provenance import environment, git_state, now, package_versions

BEFORE = "25e4d9d"  # the last commit with static groups and one kept prefix


def backend_class(revision: str | None):
    """``LlamaCppBatchBackend`` of this tree (None) or of a commit (its file imported as a module of its own)."""
    if revision is None:
        from equal.llm.llama_batch import LlamaCppBatchBackend

        return LlamaCppBatchBackend
    source = subprocess.run(["git", "show", f"{revision}:equal/llm/llama_batch.py"], cwd=REPO_ROOT, check=True,
                            capture_output=True, text=True).stdout  # fmt: skip
    path = Path(tempfile.mkdtemp()) / f"llama_batch_{revision}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.LlamaCppBatchBackend


def run_pass(cls, profile: dict, docs: list[dict], folder: Path) -> tuple[dict, list[str]]:
    """The default's extraction and refinement of ``docs`` with backends of class ``cls``, every call new."""
    common = profile["common"]
    llm = common["llm"]

    def build(spec: dict):
        return cls(spec["model"], n_parallel=spec["n_parallel"], n_ctx=spec["n_ctx"], seed=common["seed"])

    started = time.perf_counter()
    extractor_backend, refiner_backend = build(llm), build(llm["refiner"])
    load_s = time.perf_counter() - started
    cache = CallCache(folder / "calls.sqlite")
    artifacts = Artifacts.for_profile("default")
    without_refiner = {k: v for k, v in llm.items() if k != "refiner"}  # so that it refines on refiner_backend
    refiner = make_refiner(without_refiner, common["refinement"], cache, refiner_backend, artifacts.load_reference)
    extractor = QAExtractor(extractor_backend, cache, ExtractionConfig(seed=common["seed"], **common["extraction"]),
                            refiner)  # fmt: skip
    ledger = CostLedger()
    started = time.perf_counter()
    results = extractor.extract(docs, method="benchmark", ledger=ledger, progress=True)
    wall = time.perf_counter() - started
    calls = ledger.frame()
    by_stage = calls.groupby("stage").agg(calls=("wall_s", "size"), wall_s=("wall_s", "sum"),
                                          prompt_tokens=("prompt_tokens", "sum"),
                                          completion_tokens=("completion_tokens", "sum"))  # fmt: skip
    pairs = sum(len(r.pairs) for r in results)
    row = {
        "load_s": round(load_s, 1),
        "wall_s": round(wall, 1),
        "docs_per_min": round(len(docs) / wall * 60, 2),
        "pairs_kept": pairs,
        "draft_pairs": sum(len(r.drafts) for r in results),
        "refinement": dict(sum((r.refinement for r in results), Counter())),
        "stages": {stage: {k: round(float(v), 1) for k, v in values.items()}
                   for stage, values in by_stage.to_dict("index").items()},
    }  # fmt: skip
    for name, backend in (("extractor", extractor_backend), ("refiner", refiner_backend)):
        if hasattr(backend, "stats"):
            row[f"{name}_decoder"] = {k: round(float(v), 2) for k, v in sorted(backend.stats.items())}
    texts = [p["answer"] for r in results for p in r.pairs]
    return row, texts


def step_costs(spec: dict, seed: int) -> dict:
    """Seconds per generation step of this tree's backend with 1, 4 and 16 live sequences (identical greedy
    requests, so they all stop together), and the tokens per second that makes."""
    from equal.llm.llama_batch import LlamaCppBatchBackend

    backend = LlamaCppBatchBackend(spec["model"], n_parallel=16, n_ctx=spec["n_ctx"], seed=seed)
    request = [{"role": "user", "content": "Count from 1 to 200, one number per line."}]
    costs = {}
    for live in (1, 4, 16):
        backend.stats.clear()
        backend.chat([request] * live, GenerationParams(max_tokens=64))
        per_step = backend.stats["step_s"] / backend.stats["steps"]
        costs[str(live)] = {"s_per_step": round(per_step, 4), "tokens_per_s": round(live / per_step, 1)}
        print(f"{live:>2} live sequences: {per_step:.3f} s per step, {live / per_step:.1f} tokens/s", flush=True)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--before", default=BEFORE, help="the commit whose scheduler is the baseline")
    parser.add_argument("--after", default=None, help="the commit whose scheduler is compared (default: this tree)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "benchmarks" / "batching.json")
    args = parser.parse_args()
    profile = load_profile("default")
    corpus = Artifacts.for_profile("default").data / "corpus.jsonl"
    if not corpus.is_file():
        sys.exit(f"{corpus}: missing; run notebook 01 of the default profile first (make reproduce)")
    docs = random.Random(args.seed).sample(read_jsonl(corpus), args.docs)
    report = {"created": now(), "git": git_state(), "environment": environment(),
              "packages": package_versions(("llama_cpp_python", "numpy")),
              "parameters": {"docs": args.docs, "seed": args.seed, "before": args.before, "after": args.after,
                             "llm": profile["common"]["llm"], "extraction": profile["common"]["extraction"],
                             "refinement": profile["common"]["refinement"]},
              "runs": {}}  # fmt: skip
    answers = {}
    for name, revision in (("before", args.before), ("after", args.after)):
        print(f"== {name} ({revision or 'this tree'})", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            report["runs"][name], answers[name] = run_pass(backend_class(revision), profile, docs, Path(folder))
        print({k: v for k, v in report["runs"][name].items() if k != "stages"}, flush=True)
    before, after = report["runs"]["before"], report["runs"]["after"]
    report["speedup"] = round(before["wall_s"] / after["wall_s"], 2)
    report["refine_speedup"] = round(before["stages"]["refine"]["wall_s"] / after["stages"]["refine"]["wall_s"], 2)
    report["same_answers_share"] = round(
        sum(a == b for a, b in zip(answers["before"], answers["after"], strict=False))
        / max(1, max(len(answers["before"]), len(answers["after"]))), 3)  # fmt: skip
    report["refiner_step_costs"] = step_costs(profile["common"]["llm"]["refiner"], profile["common"]["seed"])
    write_json_atomic(args.out, report)
    print(f"speed-up {report['speedup']}x (refinement {report['refine_speedup']}x); wrote {args.out}")


if __name__ == "__main__":
    main()
