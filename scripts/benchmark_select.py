"""What refinement costs a practitioner: ``equal select`` on a corpus the project never saw (issue 39, item 8).

The issue's measurement (38 min 44 s and 6.2 GB peak with refinement, 5 min 18 s and 3.6 GB without, on 2 cores)
was made on the filer's own corpus of 524 news articles and word problems with a numeric maths task as the
reference set, at γ = 0.1; that corpus is not in the repository. This benchmark builds a stand-in of the same size
and make-up from the embedded sources, leaving out every document of the default's corpus:

* 484 prose documents (Wikipedia articles, US history and philosophy textbook sections) and 40 ASDiv word problems
  (7.6 % word problems, as the filer's corpus), drawn with a seed from ``equal prepare-data``'s own preparation;
* 100 GSM8K *training* problems outside the default's D_r as the reference set.

It then runs ``equal select --budget 0.1`` in a child process, exactly as a user would (the default profile's
settings, the refinement of ``--profile``), after its ``--dry-run``, and writes to
``results/benchmarks/select.json``: wall time, the child's peak resident memory, pairs kept and kept per minute,
the calls and tokens paid per stage, model seconds per stage and the dry-run's estimate beside what was measured.
Each run starts from an empty output folder (a warm cache would measure nothing); the corpus and reference set are
rebuilt identically from the seed.

    .venv/bin/python scripts/benchmark_select.py                       # about 40 min on 2 cores
    .venv/bin/python scripts/benchmark_select.py --label "no refinement" -- --no-refine
    .venv/bin/python scripts/benchmark_select.py --profile default --model-memory   # each LLM's memory alone
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import yaml

from equal.data.corpus import CorpusConfig, prepare_data
from equal.data.reading import ReadContext
from equal.data.targets import read_gsm8k
from equal.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from equal.paths import REPO_ROOT, cache_dir, raw_data_dir
from equal.profiles import load_profile
from equal.provenance import environment, git_state, now, package_versions

PROSE_SOURCES = ("wikitext2", "openstax_us_history", "openstax_philosophy")
PROBLEM_SOURCE = "asdiv"
DRY_RUN_KEYS = (
    "documents",
    "tokens_at_most",
    "refinement_tokens_at_most",
    "refinement_minutes_at_most",
    "refinement_minutes_expected",
)
TARGET_SECONDS, TARGET_PEAK_GB = 15 * 60, 4.0  # issue 39, item 8


def _text_key(text: str) -> str:
    return hashlib.sha1(" ".join(text.split()).lower().encode()).hexdigest()


def build_inputs(work: Path, seed: int, prose: int, problems: int, reference_size: int) -> dict:
    """The stand-in corpus and reference set under ``work`` (rebuilt identically from ``seed``), with their
    digests."""
    prepared = work / "prepared"
    sources = [*PROSE_SOURCES, PROBLEM_SOURCE]
    prepare_data(CorpusConfig(raw_dir=raw_data_dir(None), out_dir=prepared, seed=seed, sources=sources,
                              max_documents=None, source_quotas={}))  # fmt: skip
    default = REPO_ROOT / "data" / "default"
    if not (default / "corpus.jsonl").is_file():
        raise SystemExit(f"{default / 'corpus.jsonl'} is missing: run `make reproduce` (or notebook 01) first, so "
                         "that the stand-in can leave out every document the default has seen")  # fmt: skip
    seen = {_text_key(d["text"]) for d in read_jsonl(default / "corpus.jsonl")}
    unseen = [d for d in read_jsonl(prepared / "corpus.jsonl") if _text_key(d["text"]) not in seen]
    rng = random.Random(seed)
    prose_docs = [d for d in unseen if d["source"] in PROSE_SOURCES]
    problem_docs = [d for d in unseen if d["source"] == PROBLEM_SOURCE]
    if len(prose_docs) < prose or len(problem_docs) < problems:
        raise SystemExit(f"only {len(prose_docs)} prose and {len(problem_docs)} problem documents are unseen")
    chosen = rng.sample(prose_docs, prose) + rng.sample(problem_docs, problems)
    rng.shuffle(chosen)
    corpus = work / "corpus.jsonl"
    write_jsonl_atomic(corpus, [{"id": d["id"], "text": d["text"], "source": d["source"]} for d in chosen])

    used = {_text_key(r["question"]) for r in read_jsonl(default / "reference_gsm8k.jsonl")}
    ctx = ReadContext(on_error="raise")
    train = read_gsm8k(raw_data_dir(None) / "raw" / "gsm8k" / "train.jsonl", "train", ctx)
    pool = [t for t in train if _text_key(t["question"]) not in used]
    reference = work / "reference_gsm8k_train.jsonl"
    write_jsonl_atomic(reference, [{"question": t["question"], "solution": t["solution"]}
                                   for t in random.Random(seed).sample(pool, reference_size)])  # fmt: skip
    digest = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (corpus, reference)}
    return {"corpus": str(corpus), "reference": str(reference), "sha256": digest,
            "documents": dict(Counter(d["source"] for d in chosen)), "unseen_pool": len(unseen)}  # fmt: skip


def _rss_gb(pid: int) -> float:
    """A process's resident memory now (GB; 0 when it is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    return int(match.group(1)) / 2**20 if match else 0.0


def run_child(command: list[str]) -> tuple[float, str, list[tuple[float, float, str]]]:
    """Run ``command``, echoing its output; its wall seconds, its output and its memory over time (seconds, GB,
    the last line it printed), sampled every 2 s, to say which phase holds the peak."""
    tick = time.perf_counter()
    lines: list[str] = []
    memory: list[tuple[float, float, str]] = []
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1) as child:

        def sample() -> None:
            while child.poll() is None:
                last = lines[-1].strip()[:80] if lines else ""
                memory.append((round(time.perf_counter() - tick, 1), round(_rss_gb(child.pid), 2), last))
                time.sleep(2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        for line in child.stdout:
            sys.stdout.write(line)
            if line.strip():  # text mode reads a progress bar's \r redraws as lines of their own
                lines.append(line)
    sampler.join()
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} exited with {child.returncode}")
    return time.perf_counter() - tick, "".join(lines), memory


def per_stage(out: Path) -> dict:
    """Calls, tokens and model seconds per stage (extract, refine) from every ledger of the output folder."""
    stages: dict = defaultdict(Counter)
    for ledger in out.rglob("ledger.jsonl"):
        for record in read_jsonl(ledger):
            s = stages[record["stage"]]
            s["calls"] += 1
            s["new_calls"] += not record["cached"]
            s["tokens"] += record["prompt_tokens"] + record["completion_tokens"]
            s["model_s"] += record["wall_s"]
    return {k: {**v, "model_s": round(v["model_s"], 1)} for k, v in stages.items()}


_MODEL_MEMORY = """
import json, re, sys
from pathlib import Path
from equal.llm.backends import make_backend
from equal.llm.types import GenerationParams
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", Path("/proc/self/status").read_text()).group(1)) / 2**20
spec = json.loads(sys.argv[1])
before = rss()
backend = make_backend(spec)
backend.chat([[{"role": "user", "content": "Name three rivers."}]] * 4, GenerationParams(max_tokens=8))
print(json.dumps({"python_gb": round(before, 2), "with_model_gb": round(rss(), 2)}))
"""


def model_memory(profile: str) -> dict:
    """Resident memory of each LLM the profile loads (extractor, refiner), alone in a fresh process, at its
    ``n_parallel`` and at half of it: what of the run's peak the models hold, and what their KV cache costs."""
    llm = load_profile(profile)["common"]["llm"]
    specs = {"extractor": {k: v for k, v in llm.items() if k not in ("refiner", "executor")}}
    if llm.get("refiner"):
        specs["refiner"] = {k: v for k, v in llm["refiner"].items() if k != "executor"}
    out = {}
    for role, spec in specs.items():
        for parallel in (spec.get("n_parallel", 1), max(1, spec.get("n_parallel", 1) // 2)):
            setting = {**spec, "n_parallel": parallel}
            printed = subprocess.run([sys.executable, "-c", _MODEL_MEMORY, json.dumps(setting)], check=True,
                                     capture_output=True, text=True).stdout  # fmt: skip
            out[f"{role} {spec['model']}, n_parallel {parallel}"] = json.loads(printed.strip().splitlines()[-1])
    return out


def main(argv: list[str] | None = None) -> int:
    """Build the inputs, run ``equal select`` (dry run, then the run) and write the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default", help="whose refinement settings the run uses")
    parser.add_argument("--label", default=None, help="the entry's name in the JSON (default: the refinement's)")
    parser.add_argument("--budget", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prose", type=int, default=484)
    parser.add_argument("--problems", type=int, default=40)
    parser.add_argument("--reference-size", type=int, default=100)
    parser.add_argument("--work", default=str(cache_dir() / "benchmarks" / "select"))
    parser.add_argument("--out", default=str(REPO_ROOT / "results" / "benchmarks" / "select.json"))
    parser.add_argument(
        "--model-memory",
        action="store_true",
        help="only measure each LLM's resident memory alone (about a minute) and write it",
    )
    parser.add_argument("extra", nargs="*", help="options passed on to equal select (after --)")
    args = parser.parse_args(argv)
    if args.model_memory:
        path = Path(args.out)
        report = json.loads(path.read_text()) if path.is_file() else {}
        report["model_memory"] = {"profile": args.profile, "measured": now(), **model_memory(args.profile)}
        write_json_atomic(path, report)
        print(json.dumps(report["model_memory"], indent=1))
        return 0

    work = Path(args.work)
    inputs = build_inputs(work, args.seed, args.prose, args.problems, args.reference_size)
    refinement = load_profile(args.profile)["common"].get("refinement") or {}
    config = work / "settings.yaml"
    config.write_text(yaml.safe_dump({"refinement": {k: v for k, v in refinement.items() if k != "examples_from"}}))
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)  # a warm cache would measure nothing
    equal = [str(Path(sys.executable).with_name("equal")), "select", "--corpus", inputs["corpus"], "--reference",
             inputs["reference"], "--budget", str(args.budget), "--seed", str(args.seed), "--out", str(out),
             "--config", str(config), *args.extra]  # fmt: skip
    _, printed, _ = run_child([*equal, "--dry-run"])
    plan = json.loads(printed.split("plan (no LLM call made):", 1)[1])
    shutil.rmtree(out, ignore_errors=True)
    wall, _, memory = run_child(equal)
    peak_gb = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 2)
    cost = json.loads((out / "cost.json").read_text())
    pairs = read_jsonl(out / "pairs.jsonl")
    stages = per_stage(out)
    refine_s = stages.get("refine", {}).get("model_s")
    label = args.label or ("no refinement" if "--no-refine" in args.extra else
                           f"{refinement.get('prompt_version', '?')} ({args.profile})")  # fmt: skip
    entry = {
        "command": " ".join(["equal", *equal[1:]]),
        "wall_s": round(wall, 1),
        "peak_memory_gb": peak_gb,
        "peak_memory_during": max(memory, key=lambda m: m[1])[2] if memory else None,
        "memory_every_30_s": memory[::15],
        "meets_target": wall <= TARGET_SECONDS and peak_gb <= TARGET_PEAK_GB,
        "pairs_kept": len(pairs),
        "pairs_by_kind": dict(Counter(p.get("kind") for p in pairs)),
        "kept_per_minute": round(len(pairs) / (wall / 60), 2),
        "documents_extracted": cost.get("documents_extracted"),
        "paid": cost.get("paid"),
        "per_stage": stages,
        "dry_run": {k: plan.get(k) for k in DRY_RUN_KEYS},
        "refinement_model_minutes": round(refine_s / 60, 1) if refine_s else None,
        "refinement": refinement,
        "extra_options": args.extra,
        "finished": now(),
    }
    path = Path(args.out)
    report = json.loads(path.read_text()) if path.is_file() else {}
    report.update({"targets": {"wall_s": TARGET_SECONDS, "peak_memory_gb": TARGET_PEAK_GB}, "inputs": inputs,
                   "git": git_state(), "environment": environment(), "packages": package_versions(),
                   "seed": args.seed, "budget": args.budget})  # fmt: skip
    report.setdefault("runs", {})[label] = entry
    write_json_atomic(path, report)
    print(json.dumps({label: {k: entry[k] for k in ("wall_s", "peak_memory_gb", "pairs_kept", "kept_per_minute",
                                                      "meets_target")}}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
