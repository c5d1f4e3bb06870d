"""Benchmark the selection loop alone at the paper's scale (a script, not a test).

    .venv/bin/python scripts/benchmark_bandit_scale.py [--docs 1460000] [--clusters 1000] [--rounds 146]

As in the authors' simulation, extraction is replaced by a lookup: every document has one
pre-extracted QA-pair embedding, so the loop's own cost — choosing clusters, drawing unseen
documents, OT rewards against a 100-item reference set, policy updates — is all that is timed.
The embeddings are synthetic (seeded clusters in 384 dimensions, stored as float16): this measures
time and memory, not quality. Two implementations run on the same data:

* ``equal``: :func:`equal.select.loop.run_loop` with :class:`equal.select.reward.OTReward` (documents grouped
  by cluster once; cost rows computed once per item and reused by the cumulative reward);
* ``straightforward``: the obvious per-pull loop — scan the label array for the cluster's unseen
  documents, rebuild the cost matrix of everything extracted from the cluster, solve exact OT.

Both use the paper's cumulative reward and the authors' batch shape (50 clusters × 10 documents
per round) with the paper's UCB; each prints its wall time and the process's peak memory, and
everything goes to ``results/benchmarks/bandit_scale.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time

import numpy as np
import ot

from equal.io import write_json_atomic
from equal.paths import REPO_ROOT
from equal.provenance import package_versions
from equal.select.loop import LoopConfig, run_loop
from equal.select.policies import UCB
from equal.select.reward import OTReward, RewardConfig, cost_matrix, reward_from_distance


def peak_rss_gib() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def synthetic_world(n_docs: int, n_clusters: int, dim: int, seed: int):
    """Cluster labels, one float16 QA embedding per document, and a 100-item reference set."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, n_clusters, size=n_docs).astype(np.int32)
    embeddings = np.empty((n_docs, dim), dtype=np.float16)
    for start in range(0, n_docs, 100_000):  # in chunks: no float32 copy of the whole matrix
        stop = min(start + 100_000, n_docs)
        block = centres[labels[start:stop]] + rng.normal(0, 0.04, size=(stop - start, dim)).astype(np.float32)
        embeddings[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    near = rng.choice(n_clusters, size=5, replace=False)
    reference = centres[near[rng.integers(0, 5, size=100)]] + rng.normal(0, 0.04, size=(100, dim))
    return labels, embeddings, reference / np.linalg.norm(reference, axis=1, keepdims=True)


def run_equal(labels, embeddings, reference, config: LoopConfig) -> tuple[float, list[int]]:
    reward = OTReward(reference, RewardConfig())

    def pull(round_index, assignments):
        return [docs.tolist() for _, docs in assignments]

    def score(arm, items, cumulative):
        return reward(arm, embeddings[items].astype(np.float32), cumulative)

    tick = time.perf_counter()
    run = run_loop(UCB(), labels, config, pull, score, n_arms=int(labels.max()) + 1, progress=False)
    return time.perf_counter() - tick, run.documents


def run_straightforward(labels, embeddings, reference, config: LoopConfig) -> tuple[float, list[int]]:
    """The obvious implementation: per pull, scan for unseen documents and recompute everything."""
    tick = time.perf_counter()
    n_arms = int(labels.max()) + 1
    seen = np.zeros(len(labels), dtype=bool)
    extracted: dict[int, list[int]] = {}
    policy = UCB().start(n_arms)
    b = np.full(len(reference), 1.0 / len(reference))
    spent, round_index, documents = 0, 0, []
    rng_docs = np.random.default_rng(config.seed)
    while spent < config.budget:
        available = np.array([np.any((labels == j) & ~seen) for j in range(n_arms)]) if round_index == 0 else None
        if available is None:
            available = np.bincount(labels[~seen], minlength=n_arms) > 0
        if not available.any():
            break
        for arm in policy.select(available, config.arms_per_round, np.random.default_rng([config.seed, round_index])):
            unseen = np.flatnonzero((labels == arm) & ~seen)
            take = rng_docs.choice(
                unseen, size=min(config.docs_per_pull, len(unseen), config.budget - spent), replace=False
            )
            seen[take] = True
            documents.extend(take.tolist())
            spent += len(take)
            items = extracted.setdefault(int(arm), [])
            items.extend(take.tolist())
            x = embeddings[items].astype(np.float64)
            a = np.full(len(x), 1.0 / len(x))
            distance = float(ot.emd2(a, b, cost_matrix(x, reference)))
            policy.update(int(arm), reward_from_distance(distance))
            if spent >= config.budget:
                break
        round_index += 1
    return time.perf_counter() - tick, documents


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=1_460_000)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--arms-per-round", type=int, default=50)
    parser.add_argument("--docs-per-pull", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=146)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-straightforward", action="store_true")
    parser.add_argument("--out", default=str(REPO_ROOT / "results" / "benchmarks" / "bandit_scale.json"))
    args = parser.parse_args()

    tick = time.perf_counter()
    labels, embeddings, reference = synthetic_world(args.docs, args.clusters, args.dim, args.seed)
    setup_s = time.perf_counter() - tick
    data_gib = (labels.nbytes + embeddings.nbytes) / 2**30
    budget = args.rounds * args.arms_per_round * args.docs_per_pull
    config = LoopConfig(
        budget=budget, docs_per_pull=args.docs_per_pull, arms_per_round=args.arms_per_round, seed=args.seed
    )
    print(f"{args.docs:,} documents, {args.clusters} clusters, {args.dim}-d float16 embeddings ({data_gib:.2f} GiB), "
          f"budget {budget:,} documents = {args.rounds} rounds × {args.arms_per_round} clusters × {args.docs_per_pull} "
          f"documents; data built in {setup_s:.1f} s")  # fmt: skip

    results = {}
    wall, docs = run_equal(labels, embeddings, reference, config)
    results["equal"] = {"wall_s": round(wall, 2), "peak_rss_gib": round(peak_rss_gib(), 2), "documents": len(docs)}
    print(f"equal.select.loop.run_loop:   {wall:7.1f} s, peak RSS {peak_rss_gib():.2f} GiB, {len(docs):,} documents")
    if not args.skip_straightforward:
        wall, docs = run_straightforward(labels, embeddings, reference, config)
        results["straightforward"] = {"wall_s": round(wall, 2), "peak_rss_gib": round(peak_rss_gib(), 2),
                                      "documents": len(docs)}  # fmt: skip
        print(f"straightforward per-pull:   {wall:7.1f} s, peak RSS {peak_rss_gib():.2f} GiB, {len(docs):,} documents")
    write_json_atomic(
        args.out,
        {
            "command": "scripts/benchmark_bandit_scale.py "
            + " ".join(
                f"--{k.replace('_', '-')} {v}"
                for k, v in vars(args).items()
                if k not in ("out", "skip_straightforward")
            ),
            "scale": {
                "documents": args.docs,
                "clusters": args.clusters,
                "dim": args.dim,
                "budget": budget,
                "rounds": args.rounds,
                "arms_per_round": args.arms_per_round,
                "docs_per_pull": args.docs_per_pull,
            },
            "reward": "cumulative exact OT (ot.emd2), cost 1 - cosine, 100 reference items; policy: the paper's UCB",
            "data_setup_s": round(setup_s, 1),
            "data_gib": round(data_gib, 2),
            "results": results,
            "targets": {"wall_s": 60, "peak_gib": 8},
            "machine": {
                "platform": platform.platform(),
                "processor": platform.processor(),
                "cpus": os.cpu_count(),
            },
            "versions": package_versions(("numpy", "pot", "scipy")),
        },
    )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
