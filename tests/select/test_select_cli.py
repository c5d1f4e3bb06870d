"""``equal select`` on a corpus and a reference set of one's own, as the README's example runs it.

Real documents (ASDiv word problems and WikiText paragraphs), a real reference set (GSM8K train problems),
the real llama.cpp extractor (SmolLM2-135M, smoke-sized decoding) and the tiny embedder. A run is killed with
SIGKILL in the middle of the bandit and re-run: it says where it resumes, calls the LLM again for nothing it had,
and ends with the dataset of a straight run given the same answers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from equal.io import read_jsonl, write_jsonl_atomic
from equal.llm.cache import CallCache
from equal.paths import REPO_ROOT

pytestmark = pytest.mark.slow  # real models, servers or whole pipelines: make test, not make test-fast

#: Appended to the README's command: the smoke profile's extractor, decoding and embedder (last flag wins).
SMOKE_FLAGS = ["--model", "smollm2-135m-instruct", "--refiner", "same", "--n-parallel", "8", "--n-ctx", "1024",
               "--max-pairs", "1",
               "--max-tokens", "64", "--embedder", "tiny-random-bert", "--warmup-fraction", "0.15",
               "--budget", "0.5", "--arms-per-round", "4", "--refine-attempts", "1", "--refine-max-tokens", "48",
               "--refine-examples", "1", "--refine-votes", "2", "--refine-min-agree", "2",
               "--refine-program-tokens", "96", "--on-failure", "keep_draft", "--quality-gate", "keep",
               "--quiet"]  # fmt: skip


def readme_command() -> list[str]:
    """The ``equal select`` command of the README's "your own data" example."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n# your own data\n(.*?)```", text, re.S)
    assert block, "README.md lost its '# your own data' example"
    words = shlex.split(block.group(1).replace("\\\n", " "))
    assert words[0].endswith("equal") and words[1] == "select", words
    return words[2:]


@pytest.fixture(scope="module")
def user_files(raw_dir, tmp_path_factory):
    """my_docs.jsonl (40 documents) and my_task.jsonl (30 problems with solutions), made from the shipped data."""
    from lxml import etree

    folder = tmp_path_factory.mktemp("own")
    root = etree.parse(str(raw_dir / "raw/asdiv/ASDiv.xml")).getroot()
    problems = [f"{p.findtext('Body')} {p.findtext('Question')} Solution: {p.findtext('Formula')}"
                for p in list(root.iter("Problem"))[1000:1025]]  # fmt: skip
    wiki = [p.strip() for p in (raw_dir / "raw/wikitext2/valid.txt").read_text(encoding="utf-8").split("\n \n")
            if len(p.strip()) > 400 and not p.strip().startswith("=")][:15]  # fmt: skip
    records = [{"id": f"rec{i}", "src": "asdiv" if i < len(problems) else "wikitext", "url": f"doc{i}", "text": t}
               for i, t in enumerate(problems + wiki)]  # fmt: skip
    write_jsonl_atomic(folder / "my_docs.jsonl", records)
    gsm8k = read_jsonl(raw_dir / "raw/gsm8k/train.jsonl")[:30]
    write_jsonl_atomic(folder / "my_task.jsonl", [{"question": g["question"], "solution": g["answer"]} for g in gsm8k])
    return folder


def select(folder: Path, out: str, *extra: str, wait: bool = True):
    args = [sys.executable, "-m", "equal.cli", "select", *readme_command(), *SMOKE_FLAGS, "--out", out, *extra]
    process = subprocess.Popen(args, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # fmt: skip
    if not wait:
        return process
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output
    return output


@pytest.mark.notebook
def test_equal_select_writes_a_dataset_and_resumes_after_kill(user_files):
    from datasets import load_from_disk

    printed = select(user_files, "dry", "--dry-run")
    assert "no LLM call" in printed
    plan = json.loads(printed[printed.index("{") :])
    n = plan["corpus_documents"]  # 40 records, long paragraphs split into units of at most 2,000 characters
    assert n >= 40 and plan["selected_documents"] == round(0.5 * n) and plan["warmup_documents"] == round(0.15 * n)
    assert plan["reference_flops_72b"] > plan["extractor_flops"] > 0
    assert not (user_files / "dry" / "pairs.jsonl").exists()
    assert len(CallCache(user_files / "dry" / "work" / "llm_calls.sqlite")) == 0

    # kill -9 in the middle of the bandit, then run again in the same folder
    process = select(user_files, "killed", wait=False)
    killed = user_files / "killed"
    run = Path("work", "selection", "my_task", "gamma50", "equal", "seed0")  # the selection run, in either folder
    log = killed / run / "rounds.jsonl"
    deadline = time.time() + 600
    while not (log.is_file() and len(log.read_text().splitlines()) >= 3):  # header + 2 rounds
        assert process.poll() is None, process.stdout.read()
        assert time.time() < deadline
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / run / "summary.json").exists()  # it died mid-run
    output = select(user_files, "killed")
    resumed = re.search(r"resuming at round (\d+) with (\d+) cached calls", output)
    assert resumed and int(resumed.group(1)) >= 2 and int(resumed.group(2)) >= plan["warmup_documents"] + 3, output
    # no call answered before the kill was made again: the re-run's new calls are exactly the ones it lacked
    summary = json.loads((killed / run / "summary.json").read_text())
    stored = len(CallCache(killed / "work" / "llm_calls.sqlite"))
    assert summary["new_llm_calls"] == stored - int(resumed.group(2))
    assert_paid_matches_the_cache(killed)  # the calls of the killed run included

    # The run it must equal: a straight run, never killed, in a fresh folder given the same LLM answers (a copy of
    # the killed folder's cache, so it pays nothing and the two differ only in the kill). Its outputs are checked.
    straight = user_files / "straight"
    (straight / "work").mkdir(parents=True)
    with closing(sqlite3.connect(killed / "work" / "llm_calls.sqlite")) as source, \
            closing(sqlite3.connect(straight / "work" / "llm_calls.sqlite")) as copy:  # fmt: skip
        source.backup(copy)
    printed = select(user_files, "straight")
    assert printed.strip().count("\n") == 0 and "QA pairs from" in printed, printed  # --quiet: the summary only
    assert json.loads((straight / run / "summary.json").read_text())["new_llm_calls"] == 0
    pairs = read_jsonl(straight / "pairs.jsonl")
    assert pairs and all([m["role"] for m in p["messages"]] == ["user", "assistant"] for p in pairs)
    assert read_jsonl(killed / "pairs.jsonl") == pairs
    assert len(load_from_disk(str(straight / "dataset"))) == len(pairs)
    cost = json.loads((straight / "cost.json").read_text())
    assert cost["loop_documents"] == plan["selected_documents"] and cost["warmup_documents"] == plan["warmup_documents"]
    assert cost["llm_calls"] >= plan["documents"]
    assert cost["reference_flops_72b"] > cost["extractor_flops"] > 0
    again = json.loads((killed / "cost.json").read_text())
    assert {k: again[k] for k in ("llm_calls", "tokens")} == {k: cost[k] for k in ("llm_calls", "tokens")}
    card = (straight / "README.md").read_text()
    assert "EQUAL" in card and "my_task.jsonl" in card and f"{len(pairs):,} question–answer pairs" in card
    assert "refined and gated (trained on)" in card and "Refinement, per kind of pair" in card  # quality table
    assert "Each pair was rewritten" in card and "Kept pairs, per kind" in card  # how answers were checked
    assert all(p["refinement"] for p in pairs)  # every pair says how it was refined (kept drafts included)
    refinement = json.loads((straight / "select.json").read_text())["refinement"]
    assert refinement["examples_from"] == {"problem": "my_task"} and refinement["examples"] == 1  # --refine-examples
    assert (straight / "selection_log.csv").read_text().count("\n") > 5


def assert_paid_matches_the_cache(out: Path) -> None:
    """cost.json's paid calls are every call the folder's cache holds (answers stored and failed calls)."""
    paid = json.loads((out / "cost.json").read_text())["paid"]
    with sqlite3.connect(out / "work" / "llm_calls.sqlite") as db:
        stored = db.execute("SELECT COUNT(*), SUM(prompt_tokens + completion_tokens) FROM calls").fetchone()
        failed = db.execute("SELECT COUNT(*), COALESCE(SUM(prompt_tokens + completion_tokens), 0) FROM failed_calls"
                            ).fetchone()  # fmt: skip
    assert (paid["calls"], paid["failed_calls"], paid["tokens"]) == (stored[0], failed[0], stored[1] + failed[1]), paid
    assert set(paid["by_stage"]) <= {"extract", "retry", "refine"} and paid["by_stage"]["extract"]["calls"] > 0


@pytest.mark.notebook
def test_random_and_all_pay_no_warmup_and_keep_the_users_fields(user_files):
    """Random and All read no embedding: no warm-up, training or clustering, and every call paid is counted; the
    user's record fields (their id, a source field named otherwise, the rest) travel with every pair."""
    from datasets import load_from_disk

    records = read_jsonl(user_files / "my_docs.jsonl")  # 6 word problems and 4 paragraphs: All extracts them all
    write_jsonl_atomic(user_files / "plain_docs.jsonl", [*records[:6], *records[-4:]])
    for method in ("All", "Random"):  # Random reads All's answers back from the folder's cache
        select(user_files, "plain", "--method", method, "--source-field", "src", "--corpus", "plain_docs.jsonl")
        out = user_files / "plain"
        work = out / "work"
        assert not (work / "clusters.json").exists() and not (work / "embedder_tuned").exists()
        assert not (work / "warmup").exists()
        cost = json.loads((out / "cost.json").read_text())
        assert cost["warmup_documents"] == 0 and cost["clusters"] == 0
        assert_paid_matches_the_cache(out)
        pairs = read_jsonl(out / "pairs.jsonl")
        assert pairs and all(re.fullmatch(r"rec\d+", p["metadata"]["id"]) for p in pairs)
        assert {p["metadata"]["source"] for p in pairs} <= {"asdiv", "wikitext"}
        assert all(p["metadata"]["url"].startswith("doc") for p in pairs)
        dataset = load_from_disk(str(out / "dataset"))
        assert dataset[0]["record_id"] == pairs[0]["metadata"]["id"]
        card = (out / "README.md").read_text()
        assert "## Sources" in card and "| asdiv" in card and "| wikitext" in card


def test_an_emptied_corpus_is_a_clear_error(user_files, tmp_path):
    tiny = tmp_path / "tiny.jsonl"
    write_jsonl_atomic(tiny, [{"text": "Too short to keep."}, {"text": "Also short."}])
    result = subprocess.run([sys.executable, "-m", "equal.cli", "select", "--corpus", str(tiny), "--reference",
                             str(user_files / "my_task.jsonl"), "--out", str(tmp_path / "o"), "--dry-run"],
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode != 0
    assert "no document left to select from" in result.stderr and "2 too short" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_run_repeats_from_its_select_json(tmp_path):
    """--config reads a run's select.json (or YAML): its settings, with the options given on the command line over
    them; an unknown setting is an error naming it."""
    from equal.cli import _given_options, _read_select_config, build_parser, select_config
    from equal.errors import ConfigError

    saved = {"settings": {"corpus": ["a.jsonl"], "reference": "r.jsonl", "out": "o", "budget": 0.1,
                          "method": "Random", "seed": 3, "extraction": {"max_tokens": 99}}}  # fmt: skip
    (tmp_path / "select.json").write_text(json.dumps(saved))
    _, commands = build_parser()
    argv = ["select", "--config", str(tmp_path / "select.json"), "--budget", "0.2"]
    args = commands["select"].parse_args(argv[1:])
    config = select_config(args, _given_options(commands["select"], argv))
    assert (config.method, config.seed, config.budget, config.corpus) == ("Random", 3, 0.2, [Path("a.jsonl")])
    assert config.extraction["max_tokens"] == 99
    (tmp_path / "bad.yaml").write_text("budget: 0.1\nbudgte: 2\n")
    with pytest.raises(ConfigError, match="unknown settings \\['budgte'\\]"):
        _read_select_config(tmp_path / "bad.yaml")


def test_a_control_that_needs_domain_labels_is_refused_before_any_work(user_files, tmp_path):
    """Random in domain and the in-domain quantiles read the corpus's source domains: a user's corpus has none."""
    from equal.errors import ConfigError
    from equal.workflow import SelectConfig, run_select

    for method in ("Random in domain", "In-domain quantile 1"):
        out = tmp_path / method.replace(" ", "_")
        with pytest.raises(ConfigError, match="source domain labels"):
            run_select(SelectConfig(corpus=[user_files / "my_docs.jsonl"], reference=user_files / "my_task.jsonl",
                                    out=out, method=method, progress=False), dry_run=True)  # fmt: skip
        assert not out.exists()  # nothing prepared, nothing paid
