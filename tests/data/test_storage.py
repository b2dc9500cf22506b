"""Inputs and outputs on S3 (a real moto server on 127.0.0.1), and ingest on Ray."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recnas.data import storage
from recnas.data.ingest import ingest
from recnas.data.loader import BatchLoader
from recnas.data.meta import load_meta
from recnas.data.readers.base import input_fingerprint, input_stamps

from ..conftest import S3_PORT
from .helpers import check_dataset, write_criteo

ZIP = (
    Path(__file__).resolve().parents[2]
    / "datasets"
    / "ml-latest-small"
    / "ml-latest-small.zip"
)
BUCKET = "recnas-test"
BOM = b"\xef\xbb\xbf"


@pytest.fixture(scope="module")
def s3():
    """A moto S3 server of our own on 127.0.0.1, where the test session's AWS
    settings point (see conftest)."""
    server = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen(
        [str(server), "-H", "127.0.0.1", "-p", str(S3_PORT)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", S3_PORT), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"moto_server did not start on 127.0.0.1:{S3_PORT}")
            time.sleep(0.1)
    import boto3

    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(
        Bucket=BUCKET
    )
    yield f"s3://{BUCKET}"
    proc.terminate()
    proc.wait(timeout=10)


def test_storage_round_trip(s3):
    uri = storage.join(s3, "a", "b.bin")
    storage.write_bytes(uri, b"hello")
    assert storage.exists(uri) and storage.size(uri) == 5
    assert storage.read_bytes(uri) == b"hello"
    assert storage.list_files(storage.join(s3, "a")) == [uri]
    storage.delete_dir(storage.join(s3, "a"))
    assert not storage.exists(uri)
    with pytest.raises(ValueError, match="unsupported storage URI"):
        storage.resolve("gs://bucket/key")


def test_ingest_from_and_to_s3_matches_local(s3, tmp_path):
    raw = storage.join(s3, "raw", ZIP.name)
    storage.write_bytes(raw, ZIP.read_bytes())
    remote = ingest("movielens", [raw], storage.join(s3, "ml"))
    local = ingest("movielens", [str(ZIP)], str(tmp_path / "ml"))
    assert remote.files == local.files
    meta = load_meta(storage.join(s3, "ml"))
    assert meta.rows == local.rows
    loader = BatchLoader(
        meta.uri, "val", batch_size=4096, shuffle=False, drop_last=False
    )
    assert sum(len(b) for b in loader.epoch(0)) == local.rows["val"]
    assert not storage.exists(storage.join(s3, "ml", "_work", "plan.json"))


def test_ray_tasks_ingest_byte_ranges_on_s3(s3, tmp_path, ray_cluster):
    path = tmp_path / "day_0.txt"
    write_criteo(path, 4_000, seed=11)
    raw = storage.join(s3, "criteo", "day_0.txt")
    storage.write_bytes(raw, path.read_bytes())
    options = {"chunk_bytes": 150_000, "max_rejected_fraction": 0.0}
    on_ray = ingest(
        "criteo", [raw], storage.join(s3, "criteo-out"), parallel="ray", **options
    )
    local = ingest(
        "criteo", [str(path)], str(tmp_path / "out"), parallel="local", **options
    )
    assert len(on_ray.files["train"]) == 7
    assert on_ray.files == local.files
    check_dataset(local)
    assert on_ray.rows_read == 4_000


def test_a_damaged_file_under_ray_tasks_gives_its_own_message(tmp_path, ray_cluster):
    """A truncated gzip input read by Ray tasks is named, with the line reached."""
    write_criteo(tmp_path / "plain.txt", 20_000, seed=3)
    packed = gzip.compress((tmp_path / "plain.txt").read_bytes())
    path = tmp_path / "day_2.txt.gz"
    path.write_bytes(packed[: len(packed) * 7 // 10])
    with pytest.raises(ValueError) as info:
        ingest(
            "criteo",
            [str(path)],
            str(tmp_path / "out"),
            parallel="ray",
            block_bytes=1 << 18,
        )
    message = str(info.value)
    assert message.startswith("day_2.txt.gz: cannot read the file past line ")
    assert "Traceback" not in message


def test_an_s3_folder_is_stamped_by_its_files_and_a_bom_is_ignored(s3, tmp_path):
    folder = storage.join(s3, "bom")
    ratings = "userId,movieId,rating,timestamp\n" + "".join(
        f"{u},{m},{(u + m) % 5 + 0.5},{964982703 + u * m}\n"
        for u in range(1, 9)
        for m in range(1, 11)
    )
    movies = "movieId,title,genres\n" + "".join(
        f"{m},Film {m} (1990),Drama\n" for m in range(1, 11)
    )
    for name, text in (("movies.csv", movies), ("ratings.csv", ratings)):
        storage.write_bytes(storage.join(folder, name), BOM + text.encode())
    stamps = input_stamps([folder])
    names = [storage.basename(s["uri"]) for s in stamps]
    assert names == ["movies.csv", "ratings.csv"]
    assert stamps[1]["bytes"] == len(ratings) + len(BOM)
    before = input_fingerprint([folder])
    assert input_fingerprint([folder]) == before
    out = str(tmp_path / "o")
    meta = ingest("movielens", [folder], out, parallel="local", chunk_bytes=500)
    check_dataset(meta)
    assert meta.rows_read == 80 == sum(meta.rows.values())
    half = ratings[: ratings.index("5,1,")]
    storage.write_bytes(storage.join(folder, "ratings.csv"), half.encode())
    assert input_fingerprint([folder]) != before
    again = ingest("movielens", [folder], out, parallel="local", chunk_bytes=500)
    assert again.rows_read == 40
