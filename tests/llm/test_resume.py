"""kill -9 in the middle of an extraction run, then resume: nothing lost, nothing repeated."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import cached_rows

pytestmark = pytest.mark.slow  # real models, servers or whole pipelines: make test, not make test-fast


def test_killed_run_resumes_without_repeating_calls(tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": f"Document {i}: {i} + {i} = {2 * i}."}) + "\n" for i in range(30))
    )
    db = tmp_path / "calls.sqlite"
    command = [
        sys.executable,
        "-m",
        "equal.cli",
        "extract",
        "--input",
        str(docs),
        "--output",
        str(tmp_path / "p.jsonl"),
        "--backend",
        "transformers",
        "--model",
        "tiny-random-chat-llama",
        "--batch-size",
        "1",
        "--max-tokens",
        "160",
        "--cache",
        str(db),
        "--quiet",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while cached_rows(db) < 8 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed: make the calls slower"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    done_before = cached_rows(db)
    assert 8 <= done_before < 60
    assert not (tmp_path / "p.jsonl").exists()  # outputs are written atomically at the end

    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((tmp_path / "p.summary.json").read_text())["report"]
    # 30 documents × (1 call + 1 retry, the tiny model writes nonsense) = 60 calls in all.
    assert summary["new_calls"] == 60 - done_before and summary["cached_calls"] == done_before
    assert cached_rows(db) == 60
    assert len((tmp_path / "p.documents.jsonl").read_text().splitlines()) == 30

    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0
    assert json.loads((tmp_path / "p.summary.json").read_text())["report"]["new_calls"] == 0
