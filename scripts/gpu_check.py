"""Check the paper profile's GPU paths on this machine in minutes, before a multi-day run.

Each step is independent and reported pass / fail / skip with its time and peak GPU memory:

* fine-tuning through ``equal.train.finetune`` (bf16 on the GPU): full, LoRA, gradient checkpointing; the losses
  finite and falling, the model saved in bf16 and reloadable;
* the batched Gaussian W2 (``equal.embed.clustering.pairwise_w2``) on the device against the CPU loop at
  k = 200, d = 384, and its time at the paper's k = 1,000, d = 768 extrapolated from a timed slice;
* corpus embeddings (all-MiniLM-L6-v2, packaged) on the device against a CPU encode, and the throughput on
  20,000 texts;
* evaluation through ``equal.evaluate`` with lm-eval's HF model on the device (and vLLM where it is installed).

Models are built from a config (the 2-layer test Llama with SmolLM2's real tokenizer) or come from the installed
packages: nothing is downloaded. Training pairs and texts are the shipped extractions (``answers/default.jsonl.gz``);
the evaluation items are GSM8K test items from the raw data when it is found (else the first one, quoted).

    .venv/bin/python scripts/gpu_check.py                      # on a GPU box: ~ a few minutes
    .venv/bin/python scripts/gpu_check.py --device cpu --small # the CPU dry run the test suite runs

Writes ``results/benchmarks/gpu_check.json`` (``--out``). Without CUDA and without ``--device cpu`` it says so
and exits 0.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import importlib.metadata
import importlib.util
import json
import math
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ANSWERS = REPO_ROOT / "answers" / "default.jsonl.gz"
# GSM8K test item 0, quoted for a machine without the raw data (the evaluation step only checks the path runs)
GSM8K_ITEM = {
    "id": "gsm8k-test-0",
    "question": "Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for "
    "her friends every day with four. She sells the remainder at the farmers' market daily for $2 per fresh duck "
    "egg. How much in dollars does she make every day at the farmers' market?",
    "solution": "Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = $18 every day at the farmer's market."
    "\n#### 18",
    "answer": "18",
}


def versions() -> dict:
    """The libraries and the GPU this check ran with."""
    found = {}
    for name in ("torch", "transformers", "peft", "accelerate", "lm_eval", "sentence-transformers", "vllm"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    smi = shutil.which("nvidia-smi")
    gpu = None
    if smi:
        query = [smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"]
        gpu = subprocess.run(query, capture_output=True, text=True, timeout=30).stdout.strip() or None
    import torch

    return {"python": platform.python_version(), "packages": found, "nvidia_smi": gpu,
            "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available()}  # fmt: skip


def shipped_pairs(limit: int) -> list[dict]:
    """The first ``limit`` question–answer pairs the default's extractor wrote (the shipped answers)."""
    return _all_shipped_pairs()[:limit]


@functools.cache  # every step reads from the same archive: parse it once
def _all_shipped_pairs() -> list[dict]:
    pairs = []
    with gzip.open(ANSWERS, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            if record.get("stage") != "extract":
                continue
            try:
                found = json.loads(record["text"]).get("pairs") or []
            except (json.JSONDecodeError, AttributeError):
                continue  # a malformed answer the extraction repaired or dropped
            for pair in found:
                if isinstance(pair, dict) and str(pair.get("question", "")).strip() and str(pair.get("answer", "")):
                    pairs.append({"question": str(pair["question"]), "answer": str(pair["answer"])})
    return pairs


class Checker:
    """Runs the steps, each on its own, and collects what they report."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.steps: list[dict] = []

    def run(self, name: str, step: Callable[[], dict]) -> None:
        import torch

        cuda = self.device.startswith("cuda")
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        started = time.perf_counter()
        try:
            details = step() or {}
            status = details.pop("status", "pass")
        except Skip as why:
            status, details = "skip", {"reason": str(why)}
        except Exception as exc:  # a failing step is reported, and the others still run
            status = "fail"
            details = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(limit=6)}
        record = {"step": name, "status": status, "seconds": round(time.perf_counter() - started, 2),
                  "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1) if cuda else None,
                  **details}  # fmt: skip
        self.steps.append(record)
        shown = {k: v for k, v in details.items() if k != "traceback"}
        print(f"[{status:4}] {name} ({record['seconds']} s) {json.dumps(shown, default=str)[:400]}", flush=True)


class Skip(Exception):
    """A step that cannot run here (a package not installed): reported, not a failure."""


def check_finetune(device: str, small: bool, workdir: Path, method: str, checkpointing: bool) -> dict:
    """Fine-tune the test Llama through ``equal.train.finetune``; losses finite and falling, the bf16 model reloads."""
    import torch
    from transformers import AutoModelForCausalLM

    from equal.train.finetune import FinetuneConfig, finetune
    from equal.weights import build_tiny_chat_model

    model_dir = build_tiny_chat_model(workdir / "tiny-chat-llama")
    pairs = shipped_pairs(32 if small else 256)
    on_gpu = device != "cpu"
    config = FinetuneConfig(
        max_steps=8 if small else 40, batch_size=4 if small else 16, learning_rate=3e-3, lr_scheduler_type="constant",
        max_length=256, bf16=on_gpu, method=method, save_dtype="bfloat16", use_cpu=not on_gpu, save_steps=10_000,
        keep_checkpoints=False, gradient_checkpointing=checkpointing, seed=0, lora_r=8, lora_alpha=16,
    )  # fmt: skip
    out = workdir / f"finetune-{method}{'-checkpointing' if checkpointing else ''}"
    losses = [row["loss"] for row in finetune(model_dir, pairs, out, config, progress=False)]
    window = max(1, len(losses) // 4)
    first, last = sum(losses[:window]) / window, sum(losses[-window:]) / window
    reloaded = AutoModelForCausalLM.from_pretrained(out / "model")
    dtypes = sorted({str(p.dtype) for p in reloaded.parameters()})
    finite = all(math.isfinite(x) for x in losses)
    ok = finite and last < first and dtypes == ["torch.bfloat16"]
    logits = reloaded(torch.tensor([[1, 2, 3]])).logits
    ok = ok and bool(torch.isfinite(logits.float()).all())
    # bf16_autocast: false on the CPU dry run (float32 training); the model is saved in bf16 either way
    return {"status": "pass" if ok else "fail", "steps": len(losses), "first_loss": round(first, 4),
            "last_loss": round(last, 4), "saved_dtypes": dtypes, "pairs": len(pairs),
            "bf16_autocast": config.bf16}  # fmt: skip


def check_w2(device: str, small: bool) -> dict:
    """The batched W2 on ``device`` equals the CPU loop; its time at the paper's k and d, from a timed slice."""
    import numpy as np
    import torch

    from equal.embed.clustering import ClusterGaussians, pairwise_w2

    def gaussians(k: int, d: int, seed: int) -> ClusterGaussians:
        rng = np.random.default_rng(seed)
        means = rng.normal(size=(k, d))
        factors = rng.normal(size=(k, d, d)) / math.sqrt(d)
        return ClusterGaussians(means, factors @ factors.transpose(0, 2, 1) + 1e-3 * np.eye(d))

    k, d = (20, 16) if small else (200, 384)
    test = gaussians(k, d, 0)
    started = time.perf_counter()
    reference = pairwise_w2(test, device="cpu", batched=False)
    cpu_s = time.perf_counter() - started
    started = time.perf_counter()
    batched = pairwise_w2(test, device=device, batched=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    device_s = time.perf_counter() - started
    upper = np.triu_indices(k, k=1)
    relative = float(np.max(np.abs(batched[upper] - reference[upper]) / np.abs(reference[upper])))
    # the paper's size: every pair of k = 1,000 clusters in d = 768, timed on a slice of clusters and scaled by pairs
    big_k, big_d, slice_k = (40, 32, 10) if small else (1000, 768, 60)
    paper = gaussians(slice_k, big_d, 1)
    started = time.perf_counter()
    pairwise_w2(paper, device=device, batched=True)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    slice_s = time.perf_counter() - started
    scale = (big_k * (big_k - 1) / 2) / (slice_k * (slice_k - 1) / 2)
    return {"status": "pass" if relative <= 1e-6 else "fail", "k": k, "d": d, "max_relative_difference": relative,
            "cpu_loop_s": round(cpu_s, 3), "batched_s": round(device_s, 3),
            "paper_size": {"k": big_k, "d": big_d, "timed_clusters": slice_k, "timed_s": round(slice_s, 3),
                           "extrapolated_s": round(slice_s * scale, 1), "how": "extrapolated from the timed slice "
                           "by the number of pairs (the eigendecompositions dominate)"}}  # fmt: skip


def check_embeddings(device: str, small: bool) -> dict:
    """MiniLM on ``device`` against a CPU encode (within 1e-3), and its throughput on 20,000 texts."""
    import numpy as np

    from equal.embed.embedding import DEFAULT_EMBEDDER, load_embedder

    pairs = shipped_pairs(2_000)
    texts = [f"{p['question']}\n{p['answer']}" for p in pairs]
    sample = texts[: 32 if small else 256]
    cpu = load_embedder(DEFAULT_EMBEDDER, device="cpu").encode(sample, batch_size=64, normalize_embeddings=True)
    model = load_embedder(DEFAULT_EMBEDDER, device=device)
    here = model.encode(sample, batch_size=64, normalize_embeddings=True)
    difference = float(np.max(np.abs(np.asarray(here) - np.asarray(cpu))))
    n = 200 if small else 20_000
    many = [texts[i % len(texts)] for i in range(n)]
    started = time.perf_counter()
    model.encode(many, batch_size=256 if device != "cpu" else 64, normalize_embeddings=True)
    seconds = time.perf_counter() - started
    return {"status": "pass" if difference <= 1e-3 else "fail", "max_abs_difference": difference, "texts": n,
            "texts_per_s": round(n / seconds, 1), "distinct_texts": len(texts)}  # fmt: skip


def evaluation_items(small: bool) -> tuple[list[dict], str]:
    """GSM8K test items from the raw data when it is here, else the first one, quoted."""
    from equal.data.reading import ReadContext
    from equal.data.targets import read_gsm8k
    from equal.data.tasks import resolve_file
    from equal.paths import raw_data_dir

    try:
        path = resolve_file("manifest:gsm8k/test.jsonl", raw_data_dir(), REPO_ROOT)
        items = read_gsm8k(path, "test", ReadContext())[: 2 if small else 8]
        return items, str(path)
    except Exception:  # no raw data on this machine: the check of the path needs one real item only
        return [GSM8K_ITEM], "GSM8K test item 0, quoted in scripts/gpu_check.py"


def check_evaluation(device: str, small: bool, workdir: Path, engine: str) -> dict:
    """Bits per byte and generation through ``equal.evaluate`` with lm-eval's ``engine`` model on ``device``."""
    from equal.data.tasks import declared_tasks
    from equal.evaluate.harness import EvalConfig, evaluate_model
    from equal.io import write_jsonl_atomic
    from equal.weights import build_tiny_chat_model

    if engine == "vllm" and importlib.util.find_spec("vllm") is None:
        raise Skip("vLLM is not installed (pip install vllm on a GPU box)")
    if engine == "vllm" and device == "cpu":
        raise Skip("vLLM runs on GPUs only")
    items, source = evaluation_items(small)
    files = {"gsm8k": workdir / f"gsm8k-{engine}.jsonl"}
    write_jsonl_atomic(files["gsm8k"], items)
    config = EvalConfig(benchmarks=("gsm8k",), bpb_items=len(items), generation_items=min(2, len(items)),
                        max_gen_toks={"gsm8k": 16}, batch_size=8, device=device,
                        dtype="bfloat16" if device != "cpu" else "float32", engine=engine,
                        gpu_memory_utilization=0.3)  # fmt: skip
    model = build_tiny_chat_model(workdir / "tiny-chat-llama")
    rows = evaluate_model(model, files, config, workdir / f"eval-cache-{engine}", declared_tasks())
    values = {row["metric"]: row["value"] for row in rows}
    ok = all(math.isfinite(v) for v in values.values()) and "bits_per_byte" in values
    return {"status": "pass" if ok else "fail", "metrics": values, "items": len(items), "items_from": source}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N, or cpu for the dry run")
    parser.add_argument("--small", action="store_true", help="tiny sizes: the CPU dry run of the test suite")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "benchmarks" / "gpu_check.json")
    parser.add_argument("--only", nargs="*", help="run these steps only (names as printed)")
    args = parser.parse_args(argv)
    import torch

    found = versions()
    print(json.dumps(found, indent=1), flush=True)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device on this machine: nothing to check (run with --device cpu --small for the dry run)")
        return 0
    checker = Checker(args.device)
    steps = {
        "finetune full bf16": lambda: check_finetune(args.device, args.small, work, "full", False),
        "finetune lora bf16": lambda: check_finetune(args.device, args.small, work, "lora", False),
        "finetune gradient checkpointing": lambda: check_finetune(args.device, args.small, work, "full", True),
        "gaussian w2 batched": lambda: check_w2(args.device, args.small),
        "embeddings": lambda: check_embeddings(args.device, args.small),
        "evaluation lm-eval hf": lambda: check_evaluation(args.device, args.small, work, "hf"),
        "evaluation lm-eval vllm": lambda: check_evaluation(args.device, args.small, work, "vllm"),
    }
    unknown = sorted(set(args.only or []) - set(steps))
    if unknown:
        parser.error(f"unknown steps {unknown}; known: {sorted(steps)}")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="equal-gpu-check-") as folder:
        work = Path(folder)
        for name, step in steps.items():
            if not args.only or name in args.only:
                checker.run(name, step)
    summary = {"device": args.device, "small": args.small, "versions": found, "steps": checker.steps,
               "wall_s": round(time.perf_counter() - started, 1), "command": " ".join(sys.argv),
               "passed": all(s["status"] != "fail" for s in checker.steps)}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1, default=str) + "\n", encoding="utf-8")
    counts = {status: sum(s["status"] == status for s in checker.steps) for status in ("pass", "fail", "skip")}
    print(f"{counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped in {summary['wall_s']} s "
          f"-> {args.out}")  # fmt: skip
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
