"""Shared fixtures: the real raw-data folder (../shared/data) and its manifest; two local llama.cpp servers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from equal.data.manifest import load_manifest
from equal.paths import ENV_CACHE, REPO_ROOT, raw_data_dir


def _isolate_xdist_worker() -> None:
    """Under pytest-xdist (``make test`` runs two workers) each worker gets its own cache folder — models, embeddings
    and LLM answers are written by both, and the tests count what was paid — and, where there are enough CPUs, a
    core of its own: two workers' thread pools (llama.cpp's, torch's) sharing both cores slow each other far more
    than two halves of the machine do. Thread pools follow the affinity (``equal.provenance.usable_cpus``)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, ...; unset without xdist
    if not worker:
        return
    if not os.environ.get(ENV_CACHE):
        os.environ[ENV_CACHE] = str(REPO_ROOT / ".cache" / f"tests-{worker}")
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if workers > 1 and len(cpus) >= workers:
        index = int(worker.removeprefix("gw"))
        share = len(cpus) // workers
        os.sched_setaffinity(0, cpus[index * share : (index + 1) * share])
        os.environ.setdefault("OMP_NUM_THREADS", str(share))  # torch sizes its pool from it in subprocesses too


_isolate_xdist_worker()

#: Test files, slowest first, as measured in fresh clones (docs/reproducing.md): `make test` hands whole files to
#: its two workers in collection order (--dist loadfile --no-loadscope-reorder), so the long ones start first and
#: run side by side instead of one of them last and alone. The other files keep their order after them.
SLOWEST_FIRST = ("select/test_select_cli.py", "pipeline/test_notebooks.py", "pipeline/test_new_tasks.py",
                 "select/test_methods.py", "llm/test_resume.py", "scale/test_ray.py",
                 "train/test_finetune.py")  # fmt: skip


def pytest_collection_modifyitems(config, items) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    tests = REPO_ROOT / "tests"
    # a stable sort: a file's tests keep their order
    items.sort(key=lambda item: rank.get(item.path.relative_to(tests).as_posix(), len(rank)))


@pytest.fixture(scope="session")
def raw_dir():
    path = raw_data_dir()
    assert (path / "MANIFEST.json").is_file(), f"the real data must be at {path} (set EQUAL_RAW_DATA_DIR)"
    return path


@pytest.fixture(scope="session")
def manifest(raw_dir):
    return load_manifest(raw_dir)


@pytest.fixture(scope="session")
def builtin_tasks(raw_dir):
    """Every split of the four built-in benchmarks as params/tasks.yaml declares them: ``{task: {split: items}}``."""
    from equal.data.tasks import declared_tasks, load_task
    from equal.paths import REPO_ROOT

    return {name: load_task(spec, raw_dir, REPO_ROOT) for name, spec in declared_tasks().items()}


@pytest.fixture(scope="session")
def builtin_splits(builtin_tasks):
    """The same splits keyed ``<task>_<split>`` (``gsm8k_train``, ``mbpp_test``, ...)."""
    return {f"{task}_{split}": items for task, splits in builtin_tasks.items() for split, items in splits.items()}


def problem_corpus(splits: dict, per_domain: int) -> list[dict]:
    """Real documents for selection tests: the first ``per_domain`` GSM8K and MBPP training problems with their
    solutions (math first, then code)."""
    chosen = ((splits["gsm8k_train"][:per_domain], "math"), (splits["mbpp_train"][:per_domain], "code"))
    return [{"id": i["id"], "domain": domain, "source": i["task"], "title": "",
             "text": f"{i['question']}\n\nSolution: {i['solution']}"}
            for items, domain in chosen for i in items]  # fmt: skip


def free_port() -> int:
    """A TCP port nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_llama_server(threads: int) -> tuple[subprocess.Popen, str]:
    """llama-cpp-python's OpenAI-compatible server with SmolLM2-135M on a free localhost port, once it answers."""
    from equal.weights import packaged_gguf

    port = free_port()
    model = packaged_gguf("smollm2-135m-instruct")
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "smollm2",
               "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", str(threads)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                if json.load(response)["data"]:
                    return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    pytest.fail("llama_cpp.server did not start within 120 s")


@pytest.fixture(scope="session")
def llama_servers():
    """Two llama.cpp servers of SmolLM2-135M on 127.0.0.1: two replicas of one deployment."""
    started = [_start_llama_server(threads=1) for _ in range(2)]
    yield [url for _, url in started]
    for process, _ in started:
        process.terminate()
        process.wait(timeout=30)


class SmokeAnswers:
    """The smoke profile's shipped LLM answers (``answers/smoke.jsonl.gz``): the notebook tests read the tiny
    extractor's answers from them instead of paying minutes of llama.cpp calls; extraction itself is exercised by the
    backend, resume and ``equal select`` tests. ``paid_since()`` says how many calls a run had to pay anyway."""

    def __init__(self) -> None:
        from equal.pipeline import shipped_answers_cache
        from equal.profiles import load_profile

        self.path = shipped_answers_cache(load_profile("smoke"))
        self.start = self.count()

    def count(self) -> int:
        from equal.llm.cache import CallCache

        cache = CallCache(self.path)
        try:
            return len(cache)
        finally:
            cache.close()

    def paid_since(self) -> int:
        return self.count() - self.start

    def assert_none_paid(self, run: str) -> None:
        paid = self.paid_since()
        assert paid == 0, (
            f"{run} paid {paid} LLM calls the smoke profile's shipped answers do not hold (a prompt, a decoding "
            "setting or the documents changed): after this run, `.venv/bin/equal export-answers --profile smoke` "
            "refreshes answers/smoke.jsonl.gz and params/smoke.yaml; commit both"
        )


def cached_rows(db, stage: str | None = None) -> int:
    """Calls stored in the LLM cache ``db`` (of one ``stage``), 0 while the file or its table does not exist yet:
    what a test polls while another process fills the cache."""
    import sqlite3

    if not db.exists():
        return 0
    query = "SELECT COUNT(*) FROM calls" + (" WHERE stage = ?" if stage else "")
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return connection.execute(query, (stage,) if stage else ()).fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0
