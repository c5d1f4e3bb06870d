"""Fine-tuning speed on the default's real training sets: padding, start-up, throughput, memory (a script).

    .venv/bin/python scripts/benchmark_training.py [--steps 12] [--sets control-gsm8k control-mbpp random]

Each set trains ``--steps`` steps of the default profile's regime (notebook 05's ``finetune``: bf16 autocast,
batch 8, max_length 384), three ways, one after the other in this process, so the ratios are what to read:

* ``before``: a spawned process per model (imports torch and transformers again) and batches in random order;
* ``grouped``: a spawned process, batches grouped by length (``FinetuneConfig.sampling``);
* ``server``: a process forked from the training server (:func:`equal.train.plan._training_context`, imports paid
  once per run), batches grouped by length;
* ``after``: the default: as ``server``, each batch of 8 computed as two micro-batches of 4
  (``FinetuneConfig.micro_batch_size``).

Per run: the share of padded tokens in its batches, seconds from asking for the model to entering
:func:`equal.train.finetune.finetune` (start-up), the training's own seconds, real (not padded) tokens per second,
the training process's peak memory and torch's thread count. ``grouped`` and ``server`` compute the same thing in
different processes (the same losses and weights); ``after`` the same updates in micro-batches (losses and weights
within bf16 rounding).
Writes ``results/benchmarks/training.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path

from equal.paths import REPO_ROOT

#: the default's training sets measured: the D_r controls (always there after notebook 01), Random's (after 04)
SETS = {"control-gsm8k": ("D_r (control)", 0.0, 0, "gsm8k"), "control-mbpp": ("D_r (control)", 0.0, 0, "mbpp"),
        "random": ("Random", 0.05, 0, "gsm8k")}  # fmt: skip
WAYS = {"before": ("spawn", "random", 0), "grouped": ("spawn", "group_by_length", 0),
        "server": ("server", "group_by_length", 0), "after": ("server", "group_by_length", 4)}  # fmt: skip


def padding_share(lengths: list[int], batch_size: int, sampling: str, seed: int, micro: int = 0) -> float:
    """Share of padded positions in one epoch's batches, as the trainer forms them with ``sampling`` (each batch
    padded per micro-batch of ``micro`` examples, 0: as a whole)."""
    import torch
    from torch.utils.data import RandomSampler
    from transformers.trainer_pt_utils import LengthGroupedSampler

    generator = torch.Generator().manual_seed(seed)
    if sampling == "group_by_length":
        sampler = LengthGroupedSampler(batch_size, lengths=lengths, generator=generator)
    else:
        sampler = RandomSampler(range(len(lengths)), generator=generator)
    order = list(sampler)
    padded = real = 0
    for start in range(0, len(order), micro or batch_size):
        batch = [lengths[i] for i in order[start : start + (micro or batch_size)]]
        padded += max(batch) * len(batch)
        real += sum(batch)
    return 1 - real / padded


def _timed_train(base: str, pairs: list[dict], out: str, config, asked: float) -> dict:
    """In the training process: start-up seconds (until the training libraries are imported: what a spawned
    process pays again and a process forked from the training server has already), the training, peak memory,
    thread count."""
    import torch
    import transformers.trainer  # noqa: F401  (part of the start-up a spawned process pays)

    from equal.train.launch import train

    entered = time.time()
    train(Path(base), pairs, Path(out), config, progress=False)
    info = json.loads((Path(out) / "train_info.json").read_text())
    return {"startup_s": round(entered - asked, 2), "train_s": info["wall_s"], "tokens_seen": info["tokens_seen"],
            "losses": [row["loss"] for row in info["losses"]], "threads": torch.get_num_threads(),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}  # fmt: skip


def train_in(context: str, base: Path, pairs: list[dict], out: Path, config) -> dict:
    """Train one model in a new process: spawned, or forked from the training server."""
    from equal.train.plan import _training_context

    pool_context = _training_context() if context == "server" else multiprocessing.get_context("spawn")
    asked = time.time()
    with pool_context.Pool(1) as pool:
        return pool.apply(_timed_train, (str(base), pairs, str(out), config, asked))


def max_weight_difference(a: Path, b: Path) -> float:
    """The largest absolute difference between two saved models' weights."""
    from safetensors.torch import load_file

    first, second = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    return max(float((first[k].float() - second[k].float()).abs().max()) for k in first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--sets", nargs="*", default=["control-gsm8k", "control-mbpp"], choices=list(SETS))
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "benchmarks" / "training.json")
    args = parser.parse_args()
    from transformers import AutoTokenizer

    from equal.artifacts import Artifacts
    from equal.chat_format import chat_example
    from equal.io import write_json_atomic
    from equal.profiles import load_profile
    from equal.provenance import environment, git_state, now, package_versions
    from equal.train.finetune import FinetuneConfig
    from equal.train.plan import TrainingRun, training_pairs
    from equal.weights import causal_lm_dir

    profile = load_profile("default")
    regime = profile["stages"]["finetuning"]["finetune"]
    base = causal_lm_dir(profile["common"]["base_model"])
    tokenizer = AutoTokenizer.from_pretrained(base)
    artifacts = Artifacts.for_profile("default")
    sets = {name: TrainingRun(*args) for name, args in SETS.items()}
    report = {"created": now(), "git": git_state(), "environment": environment(),
              "packages": package_versions(("torch", "transformers", "numpy")),
              "parameters": {"steps": args.steps, "regime": regime, "ways": WAYS}, "sets": {}}  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        for name in args.sets:
            run = sets[name]
            pairs = training_pairs(run, artifacts)
            base_config = FinetuneConfig(**{**regime, "max_steps": args.steps, "save_steps": 10_000,
                                            "keep_checkpoints": False})  # fmt: skip
            lengths = [len(chat_example(tokenizer, p["question"], p["answer"], base_config.max_length)["input_ids"])
                       for p in pairs]  # fmt: skip
            row: dict = {"set": run.label, "pairs": len(pairs), "ways": {}}
            for way, (context, sampling, micro) in WAYS.items():
                config = dataclasses.replace(base_config, sampling=sampling, micro_batch_size=micro)
                result = train_in(context, base, pairs, Path(folder) / name / way, config)
                result["padding_share"] = round(
                    padding_share(lengths, config.batch_size, sampling, config.seed, micro), 3
                )
                # real tokens: the batches' tokens less their padding
                result["real_tokens_per_s"] = round(result["tokens_seen"] * (1 - result["padding_share"])
                                                    / result["train_s"], 1)  # fmt: skip
                row["ways"][way] = result
                print(name, way, {k: v for k, v in result.items() if k != "losses"}, flush=True)
            ways = row["ways"]
            row["startup_ratio"] = round(ways["before"]["startup_s"] / max(ways["after"]["startup_s"], 1e-3), 1)
            row["train_s_ratio"] = round(ways["before"]["train_s"] / ways["after"]["train_s"], 2)
            row["same_computation"] = {  # another process: the same numbers; micro-batches: within bf16 rounding
                f"{a} vs {b}": {"max_loss_difference": max(abs(x - y) for x, y in zip(ways[a]["losses"],
                                                                                     ways[b]["losses"], strict=True)),
                                "max_weight_difference": max_weight_difference(Path(folder) / name / a / "model",
                                                                               Path(folder) / name / b / "model")}
                for a, b in (("grouped", "server"), ("server", "after"))}  # fmt: skip
            report["sets"][name] = row
            print(name, {k: v for k, v in row.items() if k != "ways"}, flush=True)
    write_json_atomic(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
