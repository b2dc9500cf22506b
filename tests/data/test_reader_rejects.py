"""Rows rejected by the readers themselves, and lines left out of side tables,
reach the rejected rows and the counts of ``meta.json``: none is lost."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from recnas.data.ingest import ingest
from recnas.data.readers.avazu import HEADER

from .helpers import check_dataset, read_split, rejected_rows

AVAZU_ROW = (
    "1,0,14102100,1005,0,1fbe01fe,f3845767,28905ebd,ecad2386,7801e8d9,07d7df22,"
    "a99f214a,ddd2926e,44956a24,1,2,15706,320,50,1722,0,35,-1,79"
)


def rejected(meta) -> list[dict]:
    return sorted(rejected_rows(meta), key=lambda r: (r["source"], r["line"]))


def test_reader_rejects_on_clean_blocks_keep_their_text(tmp_path):
    """Every field parses, but the reader finds hour 99 no time of day."""
    bad = AVAZU_ROW.replace("14102100", "14102199")
    lines = [",".join(HEADER)] + [AVAZU_ROW] * 30 + [bad]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    meta = ingest("avazu", [str(path)], str(tmp_path / "o"), max_rejected_fraction=0.1)
    check_dataset(meta)
    assert meta.rejected == {"time_value": 1}
    assert rejected(meta) == [
        {"source": "train.csv", "line": 32, "reason": "time_value", "text": bad}
    ]


def test_movielens_reader_rejects(tmp_path):
    ratings = tmp_path / "ratings.dat"
    good = [
        f"{u}::{m}::{1 + (u + m) % 5}::97830{u:04d}"
        for u in range(1, 9)
        for m in (1, 1193)
    ]
    lines = good + ["1::1193:x:5::978300760", "2::1::6::978300760"]
    ratings.write_text("\n".join(lines) + "\n")
    movies = tmp_path / "movies.dat"
    movies.write_text("1::A (1995)::Comedy\n1193::B (1975)::Drama\n")
    meta = ingest(
        "movielens",
        [str(ratings), str(movies)],
        str(tmp_path / "o"),
        protocol="random",
        max_rejected_fraction=0.2,
    )
    check_dataset(meta)
    assert meta.rejected == {"field_count": 1, "label": 1}
    got = [(r["line"], r["reason"]) for r in rejected(meta)]
    assert got == [(len(good) + 1, "field_count"), (len(good) + 2, "label")]


def test_joined_movielens_bad_year_is_rejected(tmp_path):
    header = "user_id,movie_id,rating,timestamp,title,genres,gender,age,occupation,zip"
    row = "1,{m},4,978300760,{title},Drama,F,1,10,48067"
    lines = [header] + [row.format(m=m, title="A (1995)") for m in range(20)]
    lines.append(row.format(m=99, title="B (19x5)"))
    path = tmp_path / "joined.csv"
    path.write_text("\n".join(lines) + "\n")
    meta = ingest(
        "movielens",
        [str(path)],
        str(tmp_path / "o"),
        protocol="random",
        max_rejected_fraction=0.1,
    )
    check_dataset(meta)
    assert meta.rejected == {"sparse_id": 1}
    assert rejected(meta)[0]["line"] == 22


KDD_ROWS = [
    # Depth (a dense field) repeats the user id, to tell the rows apart.
    "\t".join([str(c), "1", "7", "8", "9", str(u), "1", "2", "3", "4", "5", str(u)])
    for c, u in [(0, 1), (1, 2), (0, 3), (1, 4)] * 5
]


def test_kdd_user_table_rejects_reach_meta(tmp_path):
    training = tmp_path / "training.txt"
    training.write_text("\n".join(KDD_ROWS) + "\n")
    users = tmp_path / "user.txt"
    users.write_text("1\t1\t2\n2\tx\t3\n3\t2\n4\t2\t6\n")
    meta = ingest(
        "kdd2012",
        [str(training), str(users)],
        str(tmp_path / "o"),
        protocol="random",
        max_rejected_fraction=0.2,
    )
    check_dataset(meta)
    assert meta.rejected == {"field_count": 1, "sparse_id": 1}
    assert meta.rows_read == len(KDD_ROWS) + 2
    assert sum(meta.rows.values()) == len(KDD_ROWS)
    assert rejected(meta) == [
        {"source": "user.txt", "line": 2, "reason": "sparse_id", "text": "2\tx\t3"},
        {"source": "user.txt", "line": 3, "reason": "field_count", "text": "3\t2"},
    ]
    table = pa.concat_tables(read_split(meta, s) for s in meta.splits)
    depth = np.round(np.expm1(table["Depth"].to_numpy())).astype(int)
    gender = table["Gender"].to_numpy()
    # Users 2 and 3 lost their profile line: their gender is missing (id 0).
    assert set(depth[gender == 0].tolist()) == {2, 3}
    assert (gender[np.isin(depth, [1, 4])] > 1).all()


def test_kdd_user_table_rejects_count_towards_the_limit(tmp_path):
    training = tmp_path / "training.txt"
    training.write_text("\n".join(KDD_ROWS) + "\n")
    users = tmp_path / "user.txt"
    users.write_text("1\t1\t2\n2\tx\t3\n3\t2\n4\t2\t6\n")
    with pytest.raises(ValueError, match="user.txt line 2: sparse_id"):
        ingest(
            "kdd2012",
            [str(training), str(users)],
            str(tmp_path / "o"),
            protocol="random",
            max_rejected_fraction=0.01,
        )
