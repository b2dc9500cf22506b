"""An interrupted ingest resumes at the first unfinished chunk, same output."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

from recnas.data import storage
from recnas.data.ingest import ingest

from .helpers import write_criteo

OPTIONS = {"chunk_bytes": 24_000, "parallel": "local", "workers": 1}


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    path = folder / "day_0.txt"
    write_criteo(path, 3_000, seed=3)
    clean = ingest("criteo", [str(path)], str(folder / "clean"), **OPTIONS)
    return path, clean


def test_killed_ingest_resumes_and_matches_a_clean_run(raw, tmp_path, caplog):
    path, clean = raw
    out = tmp_path / "out"
    code = (
        "from recnas.data.ingest import ingest; "
        f"ingest('criteo', [{str(path)!r}], {str(out)!r}, **{OPTIONS!r})"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    markers = out / "_work" / "pass1"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if markers.exists() and len(list(markers.glob("*.json"))) >= 3:
            break
        time.sleep(0.002)
    proc.kill()
    proc.wait()
    done = len(list(markers.glob("*.json")))
    chunks = len(clean.files["train"])
    assert 3 <= done < chunks, "the ingest was not caught mid-way"
    assert not (out / "meta.json").exists()

    with caplog.at_level(logging.INFO, logger="recnas.data.ingest"):
        resumed = ingest("criteo", [str(path)], str(out), **OPTIONS)
    assert f"pass 1: {done} of {chunks} chunks already done" in caplog.text
    assert resumed.files == clean.files
    assert resumed.rows == clean.rows


def test_resume_in_pass_two_rewrites_only_unfinished_chunks(raw, tmp_path):
    path, clean = raw
    out = tmp_path / "out"
    ingest("criteo", [str(path)], str(out), keep_work=True, **OPTIONS)
    # Undo the end of pass 2 for the second half of the chunks, as a crash would.
    (out / "meta.json").unlink()
    chunks = sorted((out / "_work" / "pass2").glob("*.json"))
    for marker in chunks[len(chunks) // 2 :]:
        marker.unlink()
        part = marker.name.replace("chunk", "part").replace(".json", ".parquet")
        for split in ("train", "val", "test"):
            storage.delete_file(str(out / split / part))
    kept = out / "train" / "part-00000.parquet"
    before = kept.stat().st_mtime_ns
    resumed = ingest("criteo", [str(path)], str(out), **OPTIONS)
    assert resumed.files == clean.files
    assert kept.stat().st_mtime_ns == before  # finished chunks were not redone
    assert not (out / "_work").exists()
