"""Where one model's evaluation time goes, on the default's bits-per-byte items (a script, not a test).

    .venv/bin/python scripts/benchmark_evaluation.py [--batch-sizes 16 8 4]

On the base model, with a fresh result cache and the default profile's evaluation settings (notebook 06's items):

* building lm-eval's HF model (:func:`equal.evaluate.harness._lm_eval_model`) three times in one process: the first
  pays the imports, which notebook 06 pays once for all its models; the others are what each further model costs;
* each benchmark's bits per byte, timed, at each ``--batch-sizes`` (lm-eval sorts the requests by length and
  batches them; the default is 16): seconds and values side by side, so a faster setting can be checked to give
  the same numbers.

Every setting runs in this process one after the other: read the ratios, not the absolute times.
Writes ``results/benchmarks/evaluation.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from equal.artifacts import Artifacts
from equal.evaluate import harness
from equal.evaluate.harness import EvalConfig, task_configs, write_eval_items
from equal.io import write_json_atomic
from equal.paths import REPO_ROOT
from equal.profiles import load_profile
from equal.provenance import environment, git_state, now, package_versions
from equal.weights import causal_lm_dir, model_identity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="*", default=[16, 8, 4])
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "results" / "benchmarks" / "evaluation.json")
    args = parser.parse_args()
    profile = load_profile("default")
    settings = dict(profile["stages"]["evaluation"]["evaluation"])
    config = EvalConfig(**{**settings, "benchmarks": tuple(settings["benchmarks"])})
    artifacts = Artifacts.for_profile("default")
    files = write_eval_items({b: artifacts.evaluation_file(b) for b in config.benchmarks}, artifacts.eval_items_dir,
                             config)  # fmt: skip
    specs = artifacts.load_tasks()
    base = causal_lm_dir(profile["common"]["base_model"])
    report = {"created": now(), "git": git_state(), "environment": environment(),
              "packages": package_versions(("torch", "transformers", "lm_eval")),
              "parameters": {"evaluation": settings, "batch_sizes": args.batch_sizes}}  # fmt: skip
    builds = []
    for _ in range(3):
        started = time.perf_counter()
        harness._lm_eval_model(base, config)
        builds.append(round(time.perf_counter() - started, 2))
    report["model_build_s"] = {"first": builds[0], "next": builds[1:]}
    print("building the HF model:", report["model_build_s"], flush=True)
    started = time.perf_counter()
    model_id = model_identity(base)
    report["weights_hash_s"] = round(time.perf_counter() - started, 2)
    runs = {}
    for batch_size in args.batch_sizes:
        run_config = dataclasses.replace(config, batch_size=batch_size)
        rows = {}
        with tempfile.TemporaryDirectory() as cache:
            for bench, cfg, n in task_configs(files, run_config, specs):
                started = time.perf_counter()
                (row,) = harness._run_lm_eval(base, model_id, [(cfg, n, bench, Path(cache) / f"{bench}.json")],
                                              run_config, specs)  # fmt: skip
                rows[bench] = {"items": n, "seconds": round(time.perf_counter() - started, 1), "value": row["value"]}
                print(f"batch {batch_size} {bench}: {rows[bench]}", flush=True)
        runs[str(batch_size)] = {"benchmarks": rows, "seconds": round(sum(r["seconds"] for r in rows.values()), 1)}
    report["batch_sizes"] = runs
    default = runs.get(str(config.batch_size))
    if default is not None:
        report["against_the_default_batch"] = {
            size: {"time_ratio": round(default["seconds"] / run["seconds"], 2),
                   "max_value_difference": max(abs(run["benchmarks"][b]["value"] - default["benchmarks"][b]["value"])
                                               for b in run["benchmarks"])}
            for size, run in runs.items()}  # fmt: skip
    write_json_atomic(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
