"""The pair audit (issue 39, item 6): draw a seeded sample of the pairs a profile trains on, judge it, render it.

    # 1. draw 40 pairs (20 maths, 10 code, 10 other) of All's kept pairs; a judged earlier draw is kept beside it
    .venv/bin/python scripts/pair_audit.py draw --profile default --seed 20261210
    # 2. fill in self_contained, correct, in_style, keep (true/false) and a one-line note on every line of
    #    results/benchmarks/pair_audit.jsonl, reading each pair against its document
    # 3. check the judgements and write results/benchmarks/pair_audit.md
    .venv/bin/python scripts/pair_audit.py render

Never judge the same sample twice after a prompt change: draw with a fresh seed (the old files stay, renamed
``pair_audit-seed<N>.jsonl`` / ``.md``). The functions are :mod:`equal.report.audit`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from equal.artifacts import Artifacts
from equal.config import load_config
from equal.errors import ConfigError
from equal.io import read_jsonl, write_jsonl_atomic
from equal.paths import REPO_ROOT
from equal.report.audit import check_judged, draw_sample, render, summarize

OUT = REPO_ROOT / "results" / "benchmarks" / "pair_audit.jsonl"


def _keep_earlier(out: Path) -> None:
    """Move a judged earlier draw aside (named by its seed), so a new draw never overwrites what was read."""
    if not out.is_file():
        return
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    seed = first.get("seed", "unknown")
    for suffix in (".jsonl", ".md"):
        old = out.with_suffix(suffix)
        if old.is_file():
            old.rename(out.with_name(f"{out.stem}-seed{seed}{suffix}"))


def main(argv: list[str] | None = None) -> int:
    """``draw`` or ``render``; returns 0, or 1 with the problem on stderr."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["draw", "render"])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--seed", type=int, help="draw: the sample's seed (a fresh one for every draw)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    out = Path(args.out) if Path(args.out).is_absolute() else REPO_ROOT / args.out
    try:
        if args.action == "draw":
            if args.seed is None:
                raise ConfigError("draw needs --seed (a fresh one: never judge the same sample twice)")
            config = load_config(args.profile)
            art = Artifacts.for_profile(config.profile, config.common.data_dir)
            folder = art.selection_run_dir("All", "", 0.0, 0, shared=True)
            if not (folder / "summary.json").is_file():
                raise ConfigError(f"{folder}: All's run is not finished (notebook 04 of profile {config.profile})")
            documents = {d["id"]: d["text"] for d in read_jsonl(art.corpus_file)}
            sample = draw_sample(read_jsonl(folder / "pairs.jsonl"), documents, args.seed)
            _keep_earlier(out)
            write_jsonl_atomic(out, [{"seed": args.seed, "profile": config.profile, **r} for r in sample])
            print(f"{len(sample)} pairs drawn into {out}: judge each line, then run `render`")
        else:
            records = check_judged(out)
            first = records[0] if records else {}
            title = f"Pair audit — profile `{first.get('profile')}`, seed {first.get('seed')}"
            out.with_suffix(".md").write_text(render(records, title), encoding="utf-8")
            print(json.dumps(summarize(records), ensure_ascii=False))
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
