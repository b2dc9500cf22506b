"""A UTF-8 byte-order mark at the start of a raw file (as spreadsheet programs
save CSV) is not part of its first line: the same rows come out as without it,
with the same line numbers."""

from __future__ import annotations

import gzip
import random

import pytest

from recnas.data.ingest import ingest
from recnas.data.readers.avazu import HEADER as AVAZU_HEADER
from recnas.data.readers.kdd2012 import FIELDS as KDD_FIELDS

from .helpers import check_dataset, rejected_rows, write_criteo

BOM = b"\xef\xbb\xbf"


def _movielens() -> dict[str, str]:
    lines = ["userId,movieId,rating,timestamp"]
    lines += [
        f"{u},{m},{(u + m) % 10 / 2 + 0.5},{964982703 + u * m}"
        for u in range(1, 16)
        for m in range(1, 21)
    ]
    lines[4] = "1,5,9.5,964982708"  # line 5: a rating out of range
    movies = ["movieId,title,genres"]
    movies += [f"{m},Film {m} (19{70 + m}),Drama|Comedy" for m in range(1, 21)]
    return {"ratings.csv": _text(lines), "movies.csv": _text(movies)}


def _avazu() -> dict[str, str]:
    rng = random.Random(2)

    def row(hour: int) -> str:
        ids = [f"{rng.getrandbits(32):08x}" for _ in range(9)]
        ints = [str(rng.randint(0, 9)) for _ in range(2)] + ["-1"] * 8
        click = str(rng.randint(0, 1))
        return ",".join(
            [str(rng.getrandbits(63)), click, f"141021{hour:02d}", "1005", "0"]
            + ids
            + ints
        )

    lines = [",".join(AVAZU_HEADER)] + [row(h % 24) for h in range(300)]
    return {"train.csv": _text(lines)}


def _kdd2012(sep: str = "\t") -> dict[str, str]:
    rng = random.Random(3)
    rows = [",".join(f.lower() for f in KDD_FIELDS)] if sep == "," else []
    for i in range(300):
        fields = [str(rng.randint(0, 1)), str(rng.randint(1, 3))]
        fields += [str(rng.randint(1, 50)) for _ in range(9)]
        fields.append(str(1 + i % 40))  # UserID
        rows.append(sep.join(fields))
    users = [f"{u}\t{u % 3}\t{u % 6 + 1}" for u in range(1, 41)]
    name = "training.txt" if sep == "\t" else "clicks.csv"
    return {name: _text(rows), "userid_profile.txt": _text(users)}


def _kdd2012_csv() -> dict[str, str]:
    return _kdd2012(",")


def _text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def _ingest(folder, files: dict[str, bytes], dataset: str, **options):
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    meta = ingest(
        dataset,
        [str(folder)],
        str(folder) + "-out",
        parallel="local",
        workers=1,
        max_rejected_fraction=0.05,
        **options,
    )
    check_dataset(meta)
    return meta


def _same(plain, marked) -> None:
    assert marked.rows == plain.rows
    assert marked.rows_read == plain.rows_read
    assert marked.rejected == plain.rejected
    assert rejected_rows(marked) == rejected_rows(plain)
    for split in plain.splits:
        assert marked.split_md5(split) == plain.split_md5(split)
    assert marked.features.to_dict() == plain.features.to_dict()


@pytest.mark.parametrize(
    ("dataset", "make"),
    [
        ("movielens", _movielens),
        ("avazu", _avazu),
        ("kdd2012", _kdd2012),
        ("kdd2012", _kdd2012_csv),
    ],
)
def test_a_bom_changes_nothing(tmp_path, dataset, make):
    files = {name: text.encode() for name, text in make().items()}
    plain = _ingest(tmp_path / "plain", files, dataset)
    assert plain.rows_read > 0
    marked = {name: BOM + data for name, data in files.items()}
    _same(plain, _ingest(tmp_path / "bom", marked, dataset))


def test_movielens_rows_keep_their_line_numbers(tmp_path):
    files = {name: BOM + text.encode() for name, text in _movielens().items()}
    meta = _ingest(tmp_path / "bom", files, "movielens")
    assert meta.rows_read == 300 == sum(meta.rows.values()) + 1
    assert [(r["line"], r["reason"]) for r in rejected_rows(meta)] == [(5, "label")]
    names = {f.name: f.vocab_size for f in meta.features.sparse}
    assert names["genres"] >= 2  # movies.csv was read, its header too


@pytest.mark.parametrize("form", ["chunks", "gzip"])
def test_criteo_without_header_keeps_its_first_row(tmp_path, form):
    write_criteo(tmp_path / "rows.txt", 400, seed=4)
    data = (tmp_path / "rows.txt").read_bytes()
    name, options = "day_0.txt", {"chunk_bytes": 9_000}
    if form == "gzip":
        name, options = "day_0.txt.gz", {}
        pack = gzip.compress
    else:
        pack = bytes
    plain = _ingest(tmp_path / "plain", {name: pack(data)}, "criteo", **options)
    assert plain.rows_read == 400 and not plain.rejected
    marked = _ingest(tmp_path / "bom", {name: pack(BOM + data)}, "criteo", **options)
    _same(plain, marked)
