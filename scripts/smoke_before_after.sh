#!/usr/bin/env bash
# A refactor changes no result: the smoke profile end to end at two commits, the LLM answers held fixed (each
# commit's answers/smoke.jsonl.gz), must write the same tables and figures, byte for byte. Training wall times
# (finetune_runs: wall_s) are the one column that may differ between any two runs.
#
#   scripts/smoke_before_after.sh BEFORE AFTER     # e.g. 1f32cf0 HEAD; about 7 min per commit on 2 cores
#
# Each commit runs in its own git worktree under $WORK (default /tmp/equal-smoke) with this checkout's .venv and
# converted models; the raw data is $EQUAL_RAW_DATA_DIR (default ../shared/data).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${WORK:-/tmp/equal-smoke}
RAW=${EQUAL_RAW_DATA_DIR:-$(cd "$REPO/.." && pwd)/shared/data}
mkdir -p "$WORK"
for pair in "before:$1" "after:$2"; do
  name=${pair%%:*}; commit=$(git -C "$REPO" rev-parse "${pair#*:}")
  dir=$WORK/$name-$commit
  if [ ! -f "$dir/results/smoke/run_info.json" ]; then
    [ -d "$dir" ] || git -C "$REPO" worktree add --detach "$dir" "$commit" > /dev/null
    mkdir -p "$dir/.cache" && ln -sfn "$REPO/.cache/models" "$dir/.cache/models"
    echo "== $name: $commit ($(date +%T))"
    (cd "$dir" && PYTHONPATH="$dir" EQUAL_RAW_DATA_DIR="$RAW" "$REPO/.venv/bin/python" -m equal.pipeline \
      --profile smoke --quiet > "$WORK/$name-$commit.log" 2>&1)
  fi
  eval "${name}_dir=$dir"
done
status=0
for kind in results paper_figures; do
  list() { (cd "$1/$kind/smoke" && find . -type f \( -name '*.csv' -o -name '*.csv.gz' -o -name '*.md' -o -name '*.png' \
    -o -name '*.pdf' \) | sort); }
  if ! diff <(list "$before_dir") <(list "$after_dir") > /dev/null; then echo "$kind: the file lists differ"; status=1; fi
  differ=0
  while read -r f; do
    a=$before_dir/$kind/smoke/$f; b=$after_dir/$kind/smoke/$f
    cmp -s "$a" "$b" && continue
    case $f in  # until 2026-12-07 a gzip table carried its write time: compare what it holds
      *.gz) if cmp -s <(zcat "$a") <(zcat "$b"); then echo "   $kind/$f: same rows (gzip header only)"; continue; fi ;;
      */finetune_runs.csv|*/finetune_runs.md)
        csv=${f%.*}.csv
        if diff <(cut -d, -f1-16,18- "$before_dir/$kind/smoke/$csv") <(cut -d, -f1-16,18- "$after_dir/$kind/smoke/$csv") \
            > /dev/null; then echo "   $kind/$f: only wall_s differs"; continue; fi ;;
    esac
    echo "DIFFERS: $kind/$f"; differ=$((differ + 1)); status=1
  done < <(list "$before_dir")
  echo "$kind: $(list "$before_dir" | wc -l) files, $differ differ"
done
exit $status
