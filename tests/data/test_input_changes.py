"""A rerun of ingest on the same output: reused while the inputs are unchanged,
made again when a file changes, even one inside a folder input whose own
modification time stays the same."""

from __future__ import annotations

import logging
import os

import pytest

from recnas.data.ingest import ingest
from recnas.data.readers.base import input_fingerprint, input_stamps

from .helpers import check_dataset

OPTIONS = {"parallel": "local", "workers": 1, "protocol": "random"}
MOVIES = "movieId,title,genres\n" + "".join(
    f"{m},Film {m} (19{70 + m}),Drama|Comedy\n" for m in range(1, 21)
)


def _ratings(rows: int, seed: int = 0) -> str:
    lines = ["userId,movieId,rating,timestamp"]
    for i in range(rows):
        user, movie = 1 + (i * 7 + seed) % 97, 1 + (i * 13 + seed) % 20
        lines.append(f"{user},{movie},{(i + seed) % 10 / 2 + 0.5},{964982703 + i}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "ml"
    path.mkdir()
    (path / "ratings.csv").write_text(_ratings(2_000))
    (path / "movies.csv").write_text(MOVIES)
    return path


def _rewrite_keeping_folder_time(folder, name: str, text: str) -> None:
    """Rewrites a file in place and puts the folder's times back as they were."""
    before = os.stat(folder)
    with open(folder / name, "r+") as f:  # same inode: no entry in the folder changes
        f.seek(0)
        f.write(text)
        f.truncate()
    file_stat = os.stat(folder / name)
    later = file_stat.st_mtime_ns + 2_000_000_000
    os.utime(folder / name, ns=(later, later))  # clocks with a coarse tick
    os.utime(folder, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(folder).st_mtime_ns == before.st_mtime_ns


def test_a_file_rewritten_inside_a_folder_is_ingested_again(folder, tmp_path, caplog):
    out = str(tmp_path / "out")
    first = ingest("movielens", [str(folder)], out, **OPTIONS)
    check_dataset(first)
    assert first.rows_read == 2_000
    meta_file = tmp_path / "out" / "meta.json"
    written = os.stat(meta_file).st_mtime_ns
    stamp = input_fingerprint([str(folder)])

    caplog.set_level(logging.INFO, logger="recnas.data.ingest")
    again = ingest("movielens", [str(folder)], out, **OPTIONS)
    assert again.to_dict() == first.to_dict()
    assert os.stat(meta_file).st_mtime_ns == written  # reused, not rewritten
    assert "nothing to do" in caplog.text
    assert input_fingerprint([str(folder)]) == stamp

    _rewrite_keeping_folder_time(folder, "ratings.csv", _ratings(1_000, seed=3))
    assert input_fingerprint([str(folder)]) != stamp
    caplog.clear()
    redone = ingest("movielens", [str(folder)], out, **OPTIONS)
    assert "ingesting again" in caplog.text
    check_dataset(redone)
    assert redone.rows_read == 1_000 == sum(redone.rows.values())
    assert redone.details["fingerprint"] != first.details["fingerprint"]
    # Other settings on the same output are still refused, not redone.
    with pytest.raises(ValueError, match="already holds a different processed"):
        ingest("movielens", [str(folder)], out, **{**OPTIONS, "seed": 5})


def test_a_same_size_rewrite_and_a_new_file_change_the_stamps(folder):
    before = input_fingerprint([str(folder)])
    text = (folder / "ratings.csv").read_text()
    swapped = text.replace("964982703\n", "964982704\n", 1)
    assert len(swapped) == len(text) and swapped != text
    _rewrite_keeping_folder_time(folder, "ratings.csv", swapped)
    changed = input_fingerprint([str(folder)])
    assert changed != before
    (folder / ".DS_Store").write_bytes(b"\0")  # not an input: ignored
    assert input_fingerprint([str(folder)]) == changed
    (folder / "links.csv").write_text("movieId,imdbId,tmdbId\n")
    assert input_fingerprint([str(folder)]) != changed


def test_stamps_list_the_files_ingest_reads(folder, tmp_path):
    (folder / ".hidden").write_text("x")
    stamps = input_stamps([str(folder), str(tmp_path / "absent.csv")])
    names = [os.path.basename(s["uri"]) for s in stamps]
    assert names == ["movies.csv", "ratings.csv", "absent.csv"]
    size = os.path.getsize(folder / "ratings.csv")
    assert stamps[1]["bytes"] == size and stamps[1]["mtime_ns"] > 0
    assert stamps[2]["missing"] is True
