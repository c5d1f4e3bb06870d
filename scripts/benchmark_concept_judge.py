"""Can the refiner judge its own concept pairs? Measured on a hand-judged pair audit (issue 39).

A concept pair (an explanation) has no program or test to check it. Before any judge call runs over All's pairs,
this measures one against the audit's own reading: for every concept pair of a judged audit file, the refiner is
shown the document, the question and the answer and asked whether the question stands alone and the answer is
correct by the document (greedy, one call per pair); its verdict is compared with the hand's ``keep``.

    .venv/bin/python scripts/benchmark_concept_judge.py \\
        --audit results/benchmarks/pair_audit-seed20261207.jsonl        # ~2.5 min on 2 cores

Prints precision and recall and writes ``results/benchmarks/concept_judge.json`` (each verdict beside the hand's).
Measured once on the seed-20261207 audit (34 concept pairs, 7 kept by hand): the judge passed 22, of which 4 kept by
hand (precision 0.18, below the 0.21 of keeping all; recall 4 of 7). The default therefore keeps no concept pairs
(params/default.yaml, ``refinement.kinds``).
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path

from equal.io import read_jsonl, write_json_atomic
from equal.llm.backends import make_backend
from equal.llm.types import GenerationParams
from equal.paths import REPO_ROOT
from equal.provenance import environment

OUT = REPO_ROOT / "results" / "benchmarks" / "concept_judge.json"
SYSTEM = ("You check question-answer pairs written from a source document for a student's study set. You are strict: "
          "when in doubt, say no. You reply in exactly the asked format and nothing else.")  # fmt: skip
REQUEST = (
    "Source document:\n{document}\n\nQuestion: {question}\nAnswer: {answer}\n\n"
    "Check two things.\n"
    "1. Stands alone: could a reader who never saw the document tell exactly what the question asks? No if it says "
    "'this', 'the matter', 'point A', or mentions a person, thing or passage it does not name.\n"
    "2. Correct: does the answer give what the question asks for (not a definition when examples are asked, not a "
    "restatement when a reason is asked), and is every claim in it stated by the document?\n"
    "Reply exactly:\nStands alone: yes or no\nCorrect: yes or no"
)
DOCUMENT_TOKENS = 600


def verdict(text: str) -> bool:
    """Whether a judge's reply passes the pair: both answers read and both yes."""
    alone = re.search(r"stands alone:\s*(yes|no)", text, re.IGNORECASE)
    correct = re.search(r"correct:\s*(yes|no)", text, re.IGNORECASE)
    return bool(alone and correct and alone.group(1).lower() == "yes" and correct.group(1).lower() == "yes")


def main(argv: list[str] | None = None) -> int:
    """Judge the audit's concept pairs, print and write the agreement with the hand's reading."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--audit", required=True, help="a judged pair_audit*.jsonl")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args(argv)
    rows = [r for r in read_jsonl(Path(args.audit)) if r["kind"] == "concept"]
    spec = {"kind": "llama_cpp", "model": args.model, "n_parallel": 16, "n_ctx": 2048}
    backend = make_backend(spec)
    requests = [[{"role": "system", "content": SYSTEM},
                 {"role": "user", "content": REQUEST.format(document=backend.truncate(r["document"], DOCUMENT_TOKENS),
                                                            question=r["question"], answer=r["answer"])}]
                for r in rows]  # fmt: skip
    start = time.perf_counter()
    replies = backend.chat(requests, GenerationParams(max_tokens=16, temperature=0.0, seed=0))
    wall = time.perf_counter() - start
    judged = [{"question": r["question"], "hand_keep": r["keep"], "judge_pass": verdict(c.text), "reply": c.text}
              for r, c in zip(rows, replies, strict=True)]  # fmt: skip
    passed = [j for j in judged if j["judge_pass"]]
    kept = [j for j in judged if j["hand_keep"]]
    both = sum(j["hand_keep"] for j in passed)
    summary = {"audit": args.audit, "model": backend.model_id, "pairs": len(judged), "hand_kept": len(kept),
               "judge_passed": len(passed), "passed_and_kept": both,
               "precision": round(both / len(passed), 3) if passed else None,
               "recall": round(both / len(kept), 3) if kept else None,
               "keep_all_precision": round(len(kept) / len(judged), 3) if judged else None,
               "wall_s": round(wall, 1), "environment": environment()}  # fmt: skip
    write_json_atomic(Path(args.out), {**summary, "pairs_judged": judged})
    print(json.dumps({k: v for k, v in summary.items() if k != "environment"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
