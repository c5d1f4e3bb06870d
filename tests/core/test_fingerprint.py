"""The one cache rule (equal.fingerprint.reuse_or_reset): fingerprint first, done-marker last, read back on a
match, cleared with the changed parts named on a mismatch, an unfinished folder kept to resume."""

from equal.fingerprint import fingerprint, reuse_or_reset


def test_a_folder_is_read_back_resumed_or_cleared(tmp_path):
    folder, said = tmp_path / "run", []
    first = fingerprint(corpus="a", seed=0)
    assert reuse_or_reset(folder, first, "done.json", "run", log=said.append) is False  # fresh: stamped
    (folder / "partial.txt").write_text("half")
    assert reuse_or_reset(folder, first, "done.json", "run", log=said.append) is False  # unfinished: kept
    assert (folder / "partial.txt").is_file()
    (folder / "done.json").write_text("{}")
    assert reuse_or_reset(folder, first, "done.json", "run", log=said.append) is True  # finished: read back
    assert reuse_or_reset(folder, fingerprint(corpus="b", seed=0), "done.json", "run", log=said.append) is False
    assert not (folder / "done.json").exists() and not (folder / "partial.txt").exists()  # stale: cleared
    assert said == ["run: inputs changed (corpus) — recomputing"]
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "done.json").write_text("{}")  # a done-marker without a fingerprint is never trusted
    assert reuse_or_reset(torn, first, "done.json", log=None) is False and not (torn / "done.json").exists()
