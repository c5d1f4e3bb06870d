"""Atomic writes: all or nothing, and the file as readable as a plain open() would make it."""

import os
import stat

import pytest

from equal.io import atomic_open, write_text_atomic


def test_a_result_is_written_whole_with_the_usual_permissions(tmp_path):
    path = write_text_atomic(tmp_path / "table.csv", "a,b\n1,2\n")
    with open(tmp_path / "plain.csv", "w") as handle:  # what open() gives under this process's umask
        handle.write("x")
    assert path.read_text() == "a,b\n1,2\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(os.stat(tmp_path / "plain.csv").st_mode)


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_text_atomic(tmp_path / "table.csv", "old\n")
    with pytest.raises(RuntimeError), atomic_open(path) as handle:
        handle.write("half")
        raise RuntimeError("crash")
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["table.csv"]
