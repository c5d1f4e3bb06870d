import time
from pathlib import Path

from equal.sandbox import run_python


def test_a_correct_solution_passes_and_a_wrong_one_fails():
    solution = "def add(a, b):\n    return a + b\n"
    assert run_python(solution + "assert add(2, 3) == 5\n").passed
    wrong = run_python(solution + "assert add(2, 3) == 6\n")
    assert wrong.status == "failed" and "AssertionError" in wrong.stderr


def test_an_infinite_loop_times_out_and_is_killed():
    tick = time.perf_counter()
    result = run_python("while True:\n    pass\n", timeout=2)
    assert result.status == "timeout"
    assert time.perf_counter() - tick < 10


def test_writes_outside_the_sandbox_are_blocked_and_inside_allowed(tmp_path):
    outside = tmp_path / "escaped.txt"
    result = run_python(f"open({str(outside)!r}, 'w').write('x')\n")
    assert result.status == "failed" and "PermissionError" in result.stderr
    assert not outside.exists()
    keep = tmp_path / "keep.txt"
    keep.write_text("precious")
    for attempt in (f"import os\nos.remove({str(keep)!r})", f"import shutil\nshutil.rmtree({str(tmp_path)!r})"):
        result = run_python(attempt)
        assert result.status == "failed" and "outside the sandbox" in result.stderr
    assert keep.read_text() == "precious"
    inside = run_python("open('scratch.txt', 'w').write('ok')\nassert open('scratch.txt').read() == 'ok'\n")
    assert inside.passed


def test_processes_are_refused():
    result = run_python("import os\nos.system('touch /tmp/equal-sandbox-should-not-exist')\n")
    assert result.status == "failed" and "not allowed" in result.stderr
    assert not Path("/tmp/equal-sandbox-should-not-exist").exists()
