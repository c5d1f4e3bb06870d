import json
import shutil

import pytest

from equal.data.manifest import load_manifest, verify_sources
from equal.errors import ChecksumError, DataFormatError
from equal.fingerprint import file_digest


@pytest.fixture
def small_raw(tmp_path, raw_dir):
    """A raw folder with one real source (gsm8k) and its real manifest entry."""
    entries = [e for e in json.loads((raw_dir / "MANIFEST.json").read_text()) if e["name"] == "gsm8k"]
    (tmp_path / "MANIFEST.json").write_text(json.dumps(entries))
    for f in entries[0]["files"]:
        (tmp_path / f["local_path"]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(raw_dir / f["local_path"], tmp_path / f["local_path"])
    return tmp_path


def test_real_files_match_manifest(small_raw):
    sources = load_manifest(small_raw)
    assert verify_sources(small_raw, list(sources.values()), progress=False) == 3


def test_mismatch_names_the_file(small_raw):
    target = small_raw / "raw/gsm8k/test.jsonl"
    target.write_bytes(target.read_bytes() + b"\n")
    with pytest.raises(ChecksumError, match=r"raw/gsm8k/test\.jsonl: sha256 [0-9a-f]{64} does not match"):
        verify_sources(small_raw, list(load_manifest(small_raw).values()), progress=False)


def test_missing_file_names_the_file(small_raw):
    (small_raw / "raw/gsm8k/train.jsonl").unlink()
    with pytest.raises(ChecksumError, match=r"raw/gsm8k/train\.jsonl: missing"):
        verify_sources(small_raw, list(load_manifest(small_raw).values()), progress=False)


def test_missing_manifest_and_bad_manifest(tmp_path):
    with pytest.raises(ChecksumError, match=r"no MANIFEST\.json"):
        load_manifest(tmp_path)
    (tmp_path / "MANIFEST.json").write_text('[{"name": "x"}')
    with pytest.raises(DataFormatError, match=r"MANIFEST\.json:1: invalid JSON"):
        load_manifest(tmp_path)


def test_upstream_url_points_at_the_pinned_commit(manifest):
    raw_file = manifest["gsm8k"].data_files[0]
    assert raw_file.upstream_commit in raw_file.upstream_url
    assert raw_file.upstream_url.endswith("grade_school_math/data/train.jsonl")


def test_file_digest(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert file_digest(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_missing_file_is_downloaded_from_a_mirror_and_verified(small_raw, tmp_path_factory):
    """fetch_missing over real HTTP: a local server plays the mirror."""
    import functools
    import http.server
    import threading

    mirror = tmp_path_factory.mktemp("mirror")
    shutil.copytree(small_raw / "raw", mirror / "raw")
    (small_raw / "raw/gsm8k/test.jsonl").unlink()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mirror))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    try:
        sources = list(load_manifest(small_raw).values())
        assert verify_sources(small_raw, sources, fetch_missing=True, progress=False, mirror_url=url) == 3
        assert (small_raw / "raw/gsm8k/test.jsonl").is_file()
        # A corrupted mirror copy is refused and nothing is written.
        (small_raw / "raw/gsm8k/test.jsonl").unlink()
        (mirror / "raw/gsm8k/test.jsonl").write_text("tampered\n")
        with pytest.raises(ChecksumError, match="downloaded file has sha256"):
            verify_sources(small_raw, sources, fetch_missing=True, progress=False, mirror_url=url)
        assert not (small_raw / "raw/gsm8k/test.jsonl").exists()
    finally:
        server.shutdown()
