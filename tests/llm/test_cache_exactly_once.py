"""The LLM cache is exactly-once across processes: first writer wins, in-flight keys are waited for, a dead
worker's leases are taken over, a locked database is a clear error, and the cache pickles into workers."""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import sqlite3
import time

import pytest

from equal.llm.cache import CacheBusy, CallCache, CallMeta
from equal.llm.extract import ExtractionConfig, QAExtractor
from equal.llm.fake import ScriptedBackend
from equal.llm.types import Completion

META = CallMeta("scripted", "scripted@1", "v", "extract")


def _docs(indices) -> list[dict]:
    return [{"id": f"d{i}", "text": f"Document {i} explains why {i} plus {i} equals {2 * i}."} for i in indices]


def _extract(cache_path, call_log, indices, latency_s, out_path) -> None:
    """One worker: extract ``indices`` through the shared cache and write which documents got pairs."""
    extractor = QAExtractor(ScriptedBackend(latency_s, call_log), CallCache(cache_path), ExtractionConfig())
    results = extractor.extract(_docs(indices), progress=False)
    with open(out_path, "w") as handle:
        handle.write("\n".join(f"{r.doc_id} {r.status} {r.pairs[0]['answer']}" for r in results))


def _paid(call_log) -> list[str]:
    return call_log.read_text().split("\n")[:-1] if call_log.exists() else []


def _rows(cache_path) -> int:
    with sqlite3.connect(cache_path) as db:
        return db.execute("SELECT COUNT(*) FROM calls").fetchone()[0]


def _leases(cache_path) -> int:
    if not cache_path.exists():  # connecting would create it
        return 0
    try:
        with sqlite3.connect(cache_path) as db:
            return db.execute("SELECT COUNT(*) FROM leases").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0


def test_first_answer_stored_is_final(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    first = cache.put("k", Completion("first", 3, 2, 0.1), *vars(META).values())
    second = cache.put("k", Completion("second", 3, 2, 0.1), *vars(META).values())
    assert first.text == second.text == "first" and cache.get("k").text == "first"


@pytest.mark.slow
def test_processes_racing_over_overlapping_documents_pay_each_call_once(tmp_path):
    cache_path, call_log = tmp_path / "c.sqlite", tmp_path / "calls.log"
    CallCache(cache_path)  # schema first, so the race is over calls, not table creation
    ranges = [range(0, 24), range(8, 32), range(4, 28), range(0, 32)]
    context = mp.get_context("spawn")
    workers = [
        context.Process(target=_extract, args=(cache_path, call_log, list(r), 0.05, tmp_path / f"out{n}"))
        for n, r in enumerate(ranges)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
        assert worker.exitcode == 0
    paid = _paid(call_log)
    distinct = {line.split()[1] for line in paid}
    assert len(distinct) == 32 and len(paid) == 32, f"{len(paid)} calls paid for 32 distinct requests"
    assert _rows(cache_path) == 32
    answers = {}
    for n in range(len(ranges)):
        for line in (tmp_path / f"out{n}").read_text().splitlines():
            doc, status, answer = line.split(" ", 2)
            assert status == "ok"
            assert answers.setdefault(doc, answer) == answer  # every worker got the one stored answer
    assert len(answers) == 32
    # more than one worker paid: the race really was concurrent
    assert len({line.split()[0] for line in paid}) > 1


@pytest.mark.slow
def test_a_worker_waits_for_a_call_in_flight_instead_of_paying_again(tmp_path):
    cache_path, call_log = tmp_path / "c.sqlite", tmp_path / "calls.log"
    slow = mp.get_context("spawn").Process(
        target=_extract, args=(cache_path, call_log, [0], 3.0, tmp_path / "slow"), daemon=True
    )
    slow.start()
    deadline = time.time() + 60
    while not _leases(cache_path) and time.time() < deadline:  # the slow worker has claimed its call
        time.sleep(0.05)
    _extract(cache_path, call_log, [0], 0.0, tmp_path / "fast")
    slow.join(timeout=60)
    assert len(_paid(call_log)) == 1, "the second worker paid for a call already in flight"
    assert (tmp_path / "fast").read_text() == (tmp_path / "slow").read_text()


@pytest.mark.slow
def test_killed_worker_loses_nothing_and_its_calls_are_taken_over(tmp_path):
    cache_path, call_log = tmp_path / "c.sqlite", tmp_path / "calls.log"
    victim = mp.get_context("spawn").Process(
        target=_extract, args=(cache_path, call_log, list(range(6)), 0.4, tmp_path / "victim")
    )
    victim.start()
    deadline = time.time() + 60
    while not (len(_paid(call_log)) >= 2 and _leases(cache_path)) and time.time() < deadline:
        time.sleep(0.02)  # two calls done and a third in flight (its lease taken), not between two calls
    os.kill(victim.pid, signal.SIGKILL)  # mid-call: it holds the lease of the document it was answering
    victim.join()
    done_before = _rows(cache_path)
    assert 2 <= done_before < 6
    assert _leases(cache_path) >= 1  # a lease left behind by the dead

    started = time.time()
    _extract(cache_path, call_log, list(range(6)), 0.0, tmp_path / "survivor")
    assert time.time() - started < 30, "the dead worker's lease was waited out instead of taken over"
    lines = (tmp_path / "survivor").read_text().splitlines()
    assert len(lines) == 6 and all(line.split()[1] == "ok" for line in lines)  # nothing lost
    assert _rows(cache_path) == 6
    paid = [line.split()[1] for line in _paid(call_log)]
    assert len(paid) == len(set(paid)) == 6  # no finished call paid twice


def test_an_expired_lease_of_another_host_is_taken_over(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite", lease_s=0.2)
    _, claimed, _ = cache.claim(["k"], owner="elsewhere:1:abc")
    assert claimed == ["k"]
    assert cache.claim(["k"])[2] == ["k"]  # live lease of another owner: wait
    time.sleep(0.3)
    assert cache.claim(["k"])[1] == ["k"]  # expired: taken over


def test_a_long_call_keeps_its_lease(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite", lease_s=0.3)
    other = CallCache(tmp_path / "c.sqlite", lease_s=0.3)
    seen = []

    def slow_call(positions):
        time.sleep(1.0)  # three lease periods: the heartbeat must renew it
        seen.append(other.claim(["k"], owner="elsewhere:1:abc")[2])
        yield positions[0], Completion("answer", 1, 1, 1.0)

    ((completion, cached),) = cache.resolve(["k"], slow_call, META)
    assert completion.text == "answer" and not cached
    assert seen == [["k"]]  # while the call ran, the key was never up for grabs


def test_cache_pickles_into_another_process(tmp_path):
    cache = CallCache(tmp_path / "c.sqlite")
    cache.put("k", Completion("stored", 1, 1, 0.1), *vars(META).values())
    clone = pickle.loads(pickle.dumps(cache))
    assert clone.get("k").text == "stored" and clone.owner != cache.owner
    with mp.get_context("spawn").Pool(1) as pool:
        assert pool.apply(len, (cache,)) == 1


def test_a_locked_database_is_a_clear_error(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = CallCache(path, busy_timeout_s=0.5)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(CacheBusy, match=r"c\.sqlite: database still locked"):
            cache.put("k", Completion("x", 1, 1, 0.1), *vars(META).values())
    finally:
        blocker.execute("ROLLBACK")
    assert cache.put("k", Completion("x", 1, 1, 0.1), *vars(META).values()).text == "x"
