"""The pair audit: a seeded sample of the pairs a profile trains on, read and judged by hand (issue 39, item 6).

Automatic checks only count the defects someone thought of. :func:`draw_sample` takes a seeded, domain-stratified
sample of the kept pairs (All's: every pair any method of the profile trains on comes from All's extraction) with
everything a reader needs — the question, answer and kind as trained, the document, the refinement's provenance
(the program and its votes for a computed answer) — and empty judgement fields. A person fills in, for each pair,
``self_contained``, ``correct``, ``in_style``, ``keep`` (booleans) and a one-line ``note``; :func:`check_judged`
refuses a file with a missing or non-boolean judgement (naming the line), and :func:`render` writes the readable
``.md`` with the shares the targets are stated in (≥ 80 % keep, every maths pair correct).

Never tune on the same sample twice: a new draw takes a fresh seed and the judged files of earlier draws are kept
beside it (``pair_audit-seed<N>.jsonl``).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from equal.errors import ConfigError

#: pairs per document domain in a sample (the issue's 20 maths, 10 code, 10 other)
QUOTAS = {"math": 20, "code": 10, "other": 10}
JUDGEMENTS = ("self_contained", "correct", "in_style", "keep")
DOCUMENT_CHARS = 1500  # enough of the document to check a pair against it


def _stratum(domain: str | None) -> str:
    return domain if domain in ("math", "code") else "other"


def draw_sample(pairs: list[dict], documents: dict[str, str], seed: int,
                quotas: dict[str, int] | None = None) -> list[dict]:  # fmt: skip
    """A seeded sample of ``pairs`` (kept pairs with ``doc_id`` and ``domain``), ``quotas`` per stratum (maths, code,
    other; all of a stratum's pairs where it holds fewer), each record with the pair as trained, the start of its
    document (``documents``: id → text), the refinement's provenance and empty judgements."""
    quotas = quotas or QUOTAS
    rng = np.random.default_rng([seed, 0xA0D])
    by_stratum: dict[str, list[dict]] = {name: [] for name in quotas}
    for pair in pairs:
        by_stratum.setdefault(_stratum(pair.get("domain")), []).append(pair)
    sample = []
    for name, quota in quotas.items():
        pool = by_stratum.get(name, [])
        for i in sorted(rng.choice(len(pool), size=min(quota, len(pool)), replace=False)) if pool else []:
            pair = pool[int(i)]
            sample.append({"stratum": name, "doc_id": pair.get("doc_id"), "source": pair.get("source"),
                           "kind": pair.get("kind"), "question": pair["question"], "answer": pair["answer"],
                           "refinement": pair.get("refinement"), "reference_answer": pair.get("reference_answer"),
                           "program": pair.get("program"), "votes": pair.get("votes"),
                           "document": documents.get(pair.get("doc_id"), "")[:DOCUMENT_CHARS],
                           **dict.fromkeys(JUDGEMENTS), "note": ""})  # fmt: skip
    return sample


def check_judged(path: Path) -> list[dict]:
    """The judged records of ``path``, or a :class:`ConfigError` naming the first line whose judgement is missing or
    not a boolean, or whose note is empty."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path}:{number}: not JSON ({error.msg})") from error
        wrong = [key for key in JUDGEMENTS if not isinstance(record.get(key), bool)]
        if wrong:
            raise ConfigError(f"{path}:{number}: judgement {', '.join(wrong)} must be true or false")
        if not str(record.get("note", "")).strip():
            raise ConfigError(f"{path}:{number}: a one-line note is required")
        records.append(record)
    return records


def summarize(records: list[dict]) -> dict:
    """Shares of the judged sample: each judgement overall and per stratum, and whether the targets are met."""
    out: dict = {"pairs": len(records), "by_stratum": dict(Counter(r["stratum"] for r in records))}
    for key in JUDGEMENTS:
        out[f"{key}_share"] = round(float(np.mean([r[key] for r in records])), 3) if records else float("nan")
    maths = [r for r in records if r["stratum"] == "math"]
    out["math_correct_share"] = round(float(np.mean([r["correct"] for r in maths])), 3) if maths else float("nan")
    out["meets_targets"] = bool(records) and out["keep_share"] >= 0.8 and all(r["correct"] for r in maths)
    return out


def render(records: list[dict], title: str) -> str:
    """The readable audit: the summary, then every pair with its judgement and note."""
    summary = summarize(records)
    strata = ", ".join(f"{n} {s}" for s, n in summary["by_stratum"].items())
    met = "yes" if summary["meets_targets"] else "no"
    lines = [f"# {title}", "",
             f"{summary['pairs']} pairs ({strata}). Keep {summary['keep_share']:.0%} (target ≥ 80 %); maths correct "
             f"{summary['math_correct_share']:.0%} (target: all); self-contained "
             f"{summary['self_contained_share']:.0%}; correct {summary['correct_share']:.0%}; in style "
             f"{summary['in_style_share']:.0%}. Targets met: {met}.",
             ""]  # fmt: skip
    for i, r in enumerate(records, start=1):
        marks = " · ".join(f"{key} {'✓' if r[key] else '✗'}" for key in JUDGEMENTS)
        lines += [f"## {i}. {r['stratum']} · {r['kind']} · `{r['doc_id']}`", "", f"**Q:** {r['question']}", "",
                  "**A:**", "", "```text", r["answer"], "```", "", f"{marks} — {r['note']}", ""]  # fmt: skip
    return "\n".join(lines)
