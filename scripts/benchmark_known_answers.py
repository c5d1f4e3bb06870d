"""The known-answer probe: how often a kept problem pair's final answer is right, on problems whose answer is known.

Precision is measured before anything else is trusted (issue 39). Documents whose answers are known go through the
default's own stages — the profile's extractor drafts pairs, a refinement setting refines them — and every problem
pair kept is compared with the known answer:

* GSM8K *training* problems outside D_r and its held-out slice (and so outside every evaluation split), shown as a
  document twice: the problem alone (``gsm8k, question only``) and the problem with its worked solution and
  ``#### N`` line (``gsm8k, with answer``);
* ASDiv word problems as the corpus holds them (``asdiv, with answer``: body, question, formula, ``Answer:``) and
  without their formula and answer (``asdiv, question only``).

Per setting and group it writes the problem drafts, the pairs kept, the share of kept pairs whose final answer is the
known one (``correct_share``; also on the pairs that restate the document's own problem, ``same_problem``), the yield
(kept / problem drafts), the share of drafts whose own answer was right (what v3 trusted), pairs kept per minute of
model time and the peak memory of the process. Only problem drafts are refined (concept and code pairs have no known
answer). Calls go through their own cache (``.cache/llm/known-answer-probe.sqlite``): a re-run, or a run stopped
half-way and started again, pays only what is missing; figures are written after every chunk.

Scope: the first 80 of the 165 documents with problem drafts (``--documents``), in the seeded order. The first chunk
took 72 min of model time on 2 cores (about 25 s a call), so all 165 under five settings would take about 8 hours;
80 was set for that cost alone, the same for every setting and before any setting but the first was measured.
``--documents 165`` extends it from the cache.

    .venv/bin/python scripts/benchmark_known_answers.py       # results/benchmarks/refinement.json, key known_answer
    .venv/bin/python scripts/benchmark_known_answers.py --recheck   # the kept pairs on file against today's checks
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import statistics
import time
from collections import Counter
from pathlib import Path

from equal.config import stage_parameters
from equal.data.tasks import declared_tasks, load_task, question_key, select_tasks, split_tasks
from equal.io import read_jsonl, write_json_atomic, write_jsonl_atomic
from equal.llm.cache import CallCache
from equal.llm.extract import DocumentResult, ExtractionConfig, QAExtractor, make_extractor, make_refiner
from equal.llm.ledger import CostLedger
from equal.llm.refine import pair_kind
from equal.llm.verify import answers_match, final_answer, reference_answer
from equal.paths import REPO_ROOT, cache_dir, raw_data_dir
from equal.profiles import load_profile
from equal.provenance import environment, git_state, now, package_versions

#: The settings compared (refinement overrides over the profile's): the draft-verified pass and program answers at
#: several thresholds; the v4 settings share their program calls through the cache.
SETTINGS = {  # in the order they run: the main candidate first, so a partial probe has it; the v4 settings
    # after it share its program calls through the cache; refine-v3 last, as the reference being replaced
    "refine-v4, 4 programs, >=3 agree": {"prompt_version": "refine-v4", "votes": 4, "min_agree": 3},
    "refine-v4, greedy program only": {"prompt_version": "refine-v4", "votes": 1, "min_agree": 1},
    "refine-v4, 4 programs, >=2 agree": {"prompt_version": "refine-v4", "votes": 4, "min_agree": 2},
    "refine-v4, 4 programs, all agree": {"prompt_version": "refine-v4", "votes": 4, "min_agree": 4},
    "refine-v3 (draft's answer verified)": {"prompt_version": "refine-v3"},
}
#: The settings the rule may choose: issue 39 rules out the draft's answer as the judge, so refine-v3 is measured
#: as the reference, not as a candidate.
CANDIDATES = tuple(name for name, setting in SETTINGS.items() if setting["prompt_version"] == "refine-v4")
TARGET_CORRECT = 0.95
KEPT_FIELDS = ("doc_id", "group", "known", "final", "correct", "same_problem", "draft_question", "question", "answer",
               "program", "votes")  # fmt: skip


def task_splits(profile: dict) -> tuple[dict, dict]:
    """Every split of the profile's tasks as read from the raw files, and their D_r, held-out and evaluation items
    drawn as notebook 01 draws them (the probe needs no prepared corpus)."""
    params = stage_parameters(profile, "data")
    common = profile["common"]
    specs = select_tasks(declared_tasks(params.get("tasks")), common["targets"],
                         stage_parameters(profile, "evaluation")["evaluation"]["benchmarks"])  # fmt: skip
    raw = raw_data_dir(common.get("raw_data_dir"))
    loaded = {name: load_task(spec, raw, REPO_ROOT) for name, spec in specs.items()}
    return loaded, split_tasks(loaded, specs, common.get("seed", 0))


def gsm8k_documents(loaded: dict, splits: dict, count: int, seed: int) -> list[dict]:
    """``count`` GSM8K training problems outside D_r and its held-out slice, each as two documents."""
    items = splits["gsm8k"]
    used = {question_key(i) for i in items.reference + items.heldout + items.evaluation}
    pool = [i for i in loaded["gsm8k"]["train"] if question_key(i) not in used]
    chosen = random.Random(seed).sample(pool, count)
    docs = []
    for item in chosen:
        known = item["answer"]
        worked = item["solution"].rsplit("\n", 1)[0]  # the worked steps without the final-answer line
        docs.append({"id": f"{item['id']}/q", "group": "gsm8k, question only", "text": item["question"],
                     "known": known, "problem": item["question"]})  # fmt: skip
        docs.append({"id": f"{item['id']}/a", "group": "gsm8k, with answer", "known": known,
                     "problem": item["question"], "text": f"{item['question']}\n\n{worked}\n#### {known}"})  # fmt: skip
    return docs


def asdiv_documents(profile: dict, count: int, seed: int) -> list[dict]:
    """``count`` ASDiv problems with a numeric answer, as the corpus holds them and without formula and answer."""
    from lxml import etree

    raw = raw_data_dir(profile["common"].get("raw_data_dir")) / "raw" / "asdiv" / "ASDiv.xml"
    if not raw.is_file():
        raw = raw_data_dir(profile["common"].get("raw_data_dir")) / "asdiv" / "ASDiv.xml"
    problems = []
    for problem in etree.parse(str(raw)).getroot().iter("Problem"):
        fields = {c.tag: " ".join((c.text or "").split()) for c in problem if isinstance(c.tag, str)}
        number = re.match(r"^-?[\d.,]+", fields.get("Answer", ""))
        if fields.get("Question") and number:
            problems.append((problem.get("ID"), fields, number.group(0).replace(",", "")))
    docs = []
    for pid, fields, known in random.Random(seed).sample(problems, count):
        question = f"{fields.get('Body', '')} {fields['Question']}".strip()
        full = f"{question}\n\nSolution: {fields.get('Formula', '')}\n\nAnswer: {fields['Answer']}"
        docs.append({"id": f"asdiv-{pid}/a", "group": "asdiv, with answer", "text": full, "known": known,
                     "problem": question})  # fmt: skip
        docs.append({"id": f"asdiv-{pid}/q", "group": "asdiv, question only", "text": question, "known": known,
                     "problem": question})  # fmt: skip
    return docs


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in re.findall(r"\d[\d,]*(?:\.\d+)?", text)}


def same_problem(question: str, problem: str) -> bool:
    """Whether a kept question restates the document's own problem: it states every number the problem does."""
    return _numbers(problem) <= _numbers(question)


def figures(rows: list[dict], drafts: list[dict], ledger: CostLedger) -> dict:
    """One setting's figures over its rows (kept pairs) and problem drafts."""
    out: dict = {}
    groups = sorted({d["group"] for d in drafts})
    for group in [*groups, "all"]:
        mine = [r for r in rows if group in ("all", r["group"])]
        asked = [d for d in drafts if group in ("all", d["group"])]
        kept = [r for r in mine if r["kept"]]
        same = [r for r in kept if r["same_problem"]]
        out[group] = {
            "problem_drafts": len(asked),
            "draft_answer_correct_share": round(sum(d["draft_correct"] for d in asked) / len(asked), 4)
            if asked
            else None,
            "kept": len(kept),
            "yield": round(len(kept) / len(asked), 4) if asked else None,
            "correct": sum(r["correct"] for r in kept),
            "correct_share": round(sum(r["correct"] for r in kept) / len(kept), 4) if kept else None,
            "same_problem_kept": len(same),
            "same_problem_correct_share": round(sum(r["correct"] for r in same) / len(same), 4) if same else None,
            "outcomes": dict(Counter(r["outcome"] for r in mine)),
            "median_answer_chars": int(statistics.median(len(r["answer"]) for r in kept)) if kept else None,
        }
    records = [r for r in ledger.records if r.stage == "refine"]
    wall = sum(r.wall_s for r in records)
    kept = sum(r["kept"] for r in rows)
    out["calls"] = len(records)
    out["new_calls"] = sum(not r.cached for r in records)
    out["model_seconds"] = round(wall, 1)
    out["tokens"] = sum(r.prompt_tokens + r.completion_tokens for r in records)  # what --dry-run's estimate scales
    out["kept_per_minute"] = round(kept / (wall / 60), 2) if wall else None
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the probe and write its figures under ``known_answer`` in the refinement benchmark's JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="default")
    parser.add_argument("--gsm8k", type=int, default=100, help="GSM8K training problems (two documents each)")
    parser.add_argument("--asdiv", type=int, default=30, help="ASDiv problems (two documents each)")
    parser.add_argument("--settings", nargs="*", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument(
        "--documents",
        type=int,
        default=80,
        help="documents with problem drafts refined per setting, in the seeded order (at most all)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=40, help="documents refined between two writes of the figures")
    parser.add_argument("--out", default=str(REPO_ROOT / "results" / "benchmarks" / "refinement.json"))
    parser.add_argument("--cache", default=str(cache_dir() / "llm" / "known-answer-probe.sqlite"))
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="re-apply the current code's checks to the kept pairs on file (no model call)",
    )
    args = parser.parse_args(argv)
    profile = load_profile(args.profile)
    loaded, splits = task_splits(profile)
    docs = gsm8k_documents(loaded, splits, args.gsm8k, args.seed) + asdiv_documents(profile, args.asdiv, args.seed)
    if args.recheck:
        return recheck(Path(args.out), {d["id"]: d["text"] for d in docs})

    params = stage_parameters(profile, "selection")
    random.Random(args.seed).shuffle(docs)  # every chunk holds every group
    by_id = {d["id"]: d for d in docs}
    drafting = make_extractor(params["llm"], {**params["extraction"], "quality_gate": "keep"}, params["seed"],
                              cache_path=args.cache)  # fmt: skip
    tick = time.perf_counter()
    drafted = drafting.extract(docs, method="known-answer-probe", progress=True)
    problem_drafts = {r.doc_id: [p for p in r.drafts if pair_kind(p["question"], p["answer"]) == "problem"]
                      for r in drafted}  # fmt: skip
    problems = sum(len(pairs) for pairs in problem_drafts.values())
    print(f"drafts: {sum(len(r.drafts) for r in drafted)} pairs, {problems} problems, of {len(docs)} documents "
          f"({time.perf_counter() - tick:.0f} s)", flush=True)  # fmt: skip

    out_path = Path(args.out)
    report = json.loads(out_path.read_text()) if out_path.is_file() else {}
    probe = report.setdefault("known_answer", {})
    probe.update({"profile": profile["name"], "started": now(), "git": git_state(), "environment": environment(),
                  "packages": package_versions(), "seed": args.seed,
                  "documents": dict(Counter(d["group"] for d in docs)),
                  "target_correct_share": TARGET_CORRECT, "extractor": drafting.backend.model_id})  # fmt: skip
    probe.setdefault("settings", {})
    cache = CallCache(args.cache)
    for name in args.settings:
        settings = {**params["refinement"], **SETTINGS[name]}
        refiner = make_refiner(params["llm"], settings, cache, drafting.backend, lambda t: splits[t].reference)
        qa = QAExtractor(drafting.backend, cache, ExtractionConfig(quality_gate="drop"), refiner)
        ledger, rows, wall = CostLedger(), [], 0.0
        ids = [d for d in problem_drafts if problem_drafts[d]][: args.documents]
        for start in range(0, len(ids), args.chunk):
            chunk = ids[start : start + args.chunk]
            results = [DocumentResult(d, [dict(p) for p in problem_drafts[d]], "ok") for d in chunk]
            tick = time.perf_counter()
            qa.finish([{"id": d, "text": by_id[d]["text"]} for d in chunk], results, "known-answer-probe", ledger)
            wall += time.perf_counter() - tick
            for d, result in zip(chunk, results, strict=True):
                doc = by_id[d]
                for pair in result.pairs:
                    answer = final_answer(pair["answer"]) or ""
                    rows.append({"group": doc["group"], "kept": True, "outcome": pair["refinement"],
                                 "correct": answers_match(doc["known"], answer), "answer": pair["answer"],
                                 "same_problem": same_problem(pair["question"], doc["problem"]),
                                 "doc_id": d, "known": doc["known"], "final": answer, "question": pair["question"],
                                 "draft_question": pair["draft_question"], "program": pair.get("program"),
                                 "votes": pair.get("votes")})  # fmt: skip
                for key, n in result.refinement.items():
                    outcome = key.split("/", 1)[1]
                    if outcome != "verified":
                        rows += [{"group": doc["group"], "kept": False, "outcome": outcome, "correct": False,
                                  "answer": "", "same_problem": False}] * n  # fmt: skip
            entry = figures(rows, [r for d in ids[: start + len(chunk)] for r in _draft_rows(d, problem_drafts, by_id)],
                            ledger)  # fmt: skip
            entry.update({"refinement": SETTINGS[name], "refiner": refiner.backend.model_id,
                          "documents_done": start + len(chunk), "documents_planned": len(ids),
                          "git": git_state(), "measured": now(),  # settings may be re-measured one at a time
                          "wall_s_this_run": round(wall, 1),
                          "peak_memory_gb": peak_memory_gb()})  # fmt: skip
            probe["settings"][name] = entry
            probe["finished"] = now()
            probe["choice"] = choose(probe["settings"], len(ids))
            write_json_atomic(out_path, report)
            # every kept pair, to be read by hand beside the figures
            kept_rows = [{"setting": name, **{k: r[k] for k in KEPT_FIELDS}} for r in rows if r["kept"]]
            pairs_path = out_path.with_name("known_answer_pairs.jsonl")
            earlier = [r for r in read_jsonl(pairs_path) if r["setting"] != name] if pairs_path.is_file() else []
            write_jsonl_atomic(pairs_path, earlier + kept_rows)
            print(
                json.dumps(
                    {
                        name: {k: entry["all"][k] for k in ("kept", "yield", "correct_share")}
                        | {"done": entry["documents_done"], "new_calls": entry["new_calls"]}
                    }
                ),
                flush=True,
            )
    return 0


def recheck(out_path: Path, documents: dict[str, str]) -> int:
    """Re-apply the current checks of a kept problem pair (:func:`equal.llm.refine.strict_failures`, and
    :func:`equal.llm.refine.invented_numbers` against its document, ``documents``: id → text) to every kept pair on
    file, and write what they now reject under ``known_answer.recheck``.

    Checks only ever get stricter, so a setting none of whose kept pairs fails them would keep exactly the same
    pairs at the current code: its figures stand without a model call. A pair that fails would, in a real run, be
    tried again (another call), so for such a setting the figures are only bounded and the probe must be re-run."""
    from equal.llm.extract import PAIRS_VERSION
    from equal.llm.refine import strict_failures, ungrounded_problem

    def failures(row: dict) -> list[str]:
        found = strict_failures(row["question"], row["answer"], "problem")
        invented = ungrounded_problem(row["question"], documents[row["doc_id"]])
        return found + (["invented_numbers"] if invented else [])

    report = json.loads(out_path.read_text())
    rows = read_jsonl(out_path.with_name("known_answer_pairs.jsonl"))
    missing = sorted({r["doc_id"] for r in rows} - set(documents))
    if missing:
        raise SystemExit(
            f"error: {len(missing)} kept pairs' documents are not among this probe's documents (e.g. "
            f"{missing[0]}): run --recheck with the --profile, --gsm8k, --asdiv and --seed of the probe"
        )

    result: dict = {"git": git_state(), "pairs_version": PAIRS_VERSION, "checked": now(), "settings": {}}
    for name in sorted({r["setting"] for r in rows}):
        if SETTINGS.get(name, {}).get("prompt_version") != "refine-v4":
            continue  # refine-v3 had no strict checks: re-checking it would measure another setting
        mine = [r for r in rows if r["setting"] == name]
        failing = [{"doc_id": r["doc_id"], "correct": r["correct"], "failures": f}
                   for r in mine if (f := failures(r))]  # fmt: skip
        result["settings"][name] = {"kept": len(mine), "now_rejected": failing,
                                    "figures_stand": not failing}  # fmt: skip
        print(f"{name}: {len(failing)} of {len(mine)} kept pairs now rejected {failing}", flush=True)
    report["known_answer"]["recheck"] = result
    write_json_atomic(out_path, report)
    return 0


def choose(settings: dict[str, dict], planned: int) -> dict | None:
    """The rule, fixed before the figures: among the candidate settings measured on every planned document, those
    whose kept problem pairs are right at least ``TARGET_CORRECT`` of the time over all groups and in every group with
    10 kept pairs or more; of these the one keeping the most (yield), then the one with fewer calls. Where none meets
    the target, the most precise one, marked as missing it. None until every candidate is complete."""
    complete = {n: m for n, m in settings.items() if n in CANDIDATES and m.get("documents_done") == planned}
    if set(complete) != set(CANDIDATES):
        return None

    def precise(m: dict) -> bool:
        groups = [g for g in m.values() if isinstance(g, dict) and "correct_share" in g]
        every_group = all(g["correct_share"] is not None and g["correct_share"] >= TARGET_CORRECT
                          for g in groups if g["kept"] >= 10)  # fmt: skip
        return every_group and (m["all"]["correct_share"] or 0) >= TARGET_CORRECT

    meeting = [n for n, m in complete.items() if precise(m)]
    if meeting:
        best = max(meeting, key=lambda n: (complete[n]["all"]["yield"], -complete[n]["calls"]))
    else:
        best = max(complete, key=lambda n: complete[n]["all"]["correct_share"] or 0)
    rule = " ".join(choose.__doc__.split(". Where")[0].split())
    return {"setting": best, "meets_target": bool(meeting), "rule": rule}


def peak_memory_gb() -> float:
    """The peak resident memory of this process so far (GB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def _draft_rows(doc_id: str, problem_drafts: dict, by_id: dict) -> list[dict]:
    doc = by_id[doc_id]
    return [{"group": doc["group"], "draft_correct": answers_match(doc["known"], reference_answer(p["answer"]) or "")}
            for p in problem_drafts[doc_id]]  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
