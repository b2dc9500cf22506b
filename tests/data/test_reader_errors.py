"""Readers on malformed raw files: errors name the file (and zip member) and
the line, and side-table lines that are left out are reported, not lost."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from recnas.data.readers import get_reader
from recnas.data.readers.avazu import HEADER
from recnas.data.readers.kdd2012 import _join_users
from recnas.data.readers.movielens import release_year

from ..conftest import shared_data

LATEST_RATINGS = "userId,movieId,rating,timestamp\n1,1,4.0,964982703\n"
RATINGS_DAT = "1::1193::5::978300760\n"
U_DATA = "1\t1\t5\t881250949\n"
KDD_ROW = "\t".join(["0"] + ["1"] * 11) + "\n"
FLAGS = "|".join(["0"] * 18 + ["1"])


def write(folder: Path, files: dict[str, str | bytes]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        paths.append(str(path))
    return paths


def plan_error(dataset: str, paths: list[str]) -> str:
    with pytest.raises(ValueError) as info:
        get_reader(dataset).plan(paths)
    return str(info.value)


def zipped(members: dict[str, str | bytes], stored: bool = False) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(buf, "w", method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


# -- MovieLens side files


@pytest.mark.parametrize(
    ("movies", "line", "words"),
    [
        (
            'movieId,title,genres\n1,A (1995),Comedy\n2,"B (1995),Drama\n3,C,D\n',
            3,
            "malformed CSV",
        ),
        ("movieId,title,genres\n1,A (1995),Comedy\n2,B (1996)\n", 3, "2 fields"),
        ("movieId,title,genres\n1,A (1995),Comedy,Extra\n", 2, "4 fields"),
        ("movieId,title\n1,A (1995)\n", 1, "header lacks genres"),
        ("movieId,title,genres\n1,A (1995),C\nabc,B (1995),C\n", 3, "'abc'"),
        ("movieId,title,genres\n1,Toy Story (19x5),Comedy\n", 2, "(19x5)"),
        ("movieId,title,genres\n1,Toy Story (0995),Comedy\n", 2, "year 995"),
        ("movieId,title,genres\n\n7,A (1995),C\n\n7,B (1996),C\n", 5, "line 3"),
        (b"movieId,title,genres\n1,Caf\xe9 (1995),Comedy\n", 2, "utf-8"),
    ],
    ids=[
        "open-quote",
        "short",
        "long",
        "no-genres",
        "bad-id",
        "bad-year",
        "year-range",
        "repeated-id",
        "latin1",
    ],
)
def test_movies_csv_errors_name_line(tmp_path, movies, line, words):
    paths = write(tmp_path, {"ratings.csv": LATEST_RATINGS, "movies.csv": movies})
    message = plan_error("movielens", paths)
    assert f"movies.csv line {line}" in message
    assert words in message


def test_movies_csv_titles_without_year_are_fine(tmp_path):
    movies = "movieId,title,genres\n1,Babylon 5,Sci-Fi\n2,Movie (Part Two),Drama\n"
    paths = write(tmp_path, {"ratings.csv": LATEST_RATINGS, "movies.csv": movies})
    side = get_reader("movielens").plan(paths).context
    assert side.movie_ids.tolist() == [1, 2]
    assert side.years.tolist() == [0, 0]  # missing


@pytest.mark.parametrize(
    ("movies", "line", "words"),
    [
        ("1::Toy Story (1995)::Animation\n2 Jumanji (1995) Adventure\n", 2, "3 fields"),
        ("1::A (1995)::Drama\nx::Toy Story (1995)::Animation\n", 2, "'x'"),
        ("1::Toy Story (199)::Animation\n", 1, "(199)"),
        ("1::Star Wars: A (1977)::Sci-Fi\n1::B (1980)::Drama\n", 2, "given already"),
    ],
    ids=["no-separator", "bad-id", "bad-year", "repeated-id"],
)
def test_movies_dat_errors_name_line(tmp_path, movies, line, words):
    paths = write(tmp_path, {"ratings.dat": RATINGS_DAT, "movies.dat": movies})
    message = plan_error("movielens", paths)
    assert f"movies.dat line {line}" in message
    assert words in message


def test_movies_dat_title_with_colons(tmp_path):
    movies = "260::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n"
    paths = write(tmp_path, {"ratings.dat": RATINGS_DAT, "movies.dat": movies})
    side = get_reader("movielens").plan(paths).context
    assert side.years.tolist() == [1977]
    assert len(side.genres[0]) == 2


@pytest.mark.parametrize(
    ("users", "line", "words"),
    [
        ("1::F::1::10::48067\n2::M::56\n", 2, "3 '::'-separated fields, expected 5"),
        ("1::F::1::10::48067\n2::M::x::16::70072\n", 2, "age 'x'"),
        ("1::F::1::10::48067::extra\n", 1, "6 '::'"),
        ("1::F::1::10::48067\n1::M::56::16::70072\n", 2, "user id 1 was given"),
    ],
    ids=["short", "bad-age", "long", "repeated-id"],
)
def test_users_dat_errors_name_line(tmp_path, users, line, words):
    paths = write(tmp_path, {"ratings.dat": RATINGS_DAT, "users.dat": users})
    message = plan_error("movielens", paths)
    assert f"users.dat line {line}" in message
    assert words in message


@pytest.mark.parametrize(
    ("name", "text", "line", "words"),
    [
        ("u.item", "1|Toy Story (1995)|01-Jan-1995\n", 1, "expected 24"),
        ("u.item", f"1|A (1995)|01-Jan-1995||url|{FLAGS[:-1]}2\n", 1, "0 or 1"),
        ("u.item", f"1|Toy Story|1995/01/01||url|{FLAGS}\n", 1, "01-Jan-1995"),
        ("u.item", f"1|A (1995)|01-Jan-1995||u|{FLAGS}\n\nq|B|||u|{FLAGS}\n", 3, "q"),
        ("u.user", "1|24|M|technician|85711\n2|53\n", 2, "expected 5"),
        ("u.user", "1|24|M|technician|85711\n2|old|F|other|94043\n", 2, "'old'"),
    ],
    ids=["item-short", "item-flag", "item-date", "item-id", "user-short", "user-age"],
)
def test_100k_side_files_name_line(tmp_path, name, text, line, words):
    paths = write(tmp_path, {"u.data": U_DATA, name: text})
    message = plan_error("movielens", paths)
    assert f"{name} line {line}" in message
    assert words in message


def test_100k_side_files_load(tmp_path):
    item = f"1|Toy Story (1995)|01-Jan-1995||url|{FLAGS}\n"
    item += f"2|Untitled|4-Feb-1971||u|{FLAGS}\n"
    user = "1|24|M|technician|85711\n"
    paths = write(tmp_path, {"u.data": U_DATA, "u.item": item, "u.user": user})
    side = get_reader("movielens").plan(paths).context
    assert side.years.tolist() == [1995, 1971]
    assert side.user_ids.tolist() == [1] and side.users["age"].tolist() == [24]


def test_side_file_errors_name_the_zip_member(tmp_path):
    archive = zipped(
        {
            "ml/ratings.csv": LATEST_RATINGS,
            "ml/movies.csv": "movieId,title,genres\n1,A (1995),C\nzz,B,C\n",
        }
    )
    paths = write(tmp_path, {"ml.zip": archive})
    message = plan_error("movielens", paths)
    assert "ml.zip!ml/movies.csv line 3" in message
    assert "'zz'" in message


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"", "0 bytes"),
        (b"PK\x03\x04 not really a zip" + bytes(64), "not a readable zip"),
        ("truncated", "not a readable zip"),
        (zipped({}), "holds no files"),
    ],
    ids=["empty", "garbage", "truncated", "no-members"],
)
def test_broken_zip_is_named(tmp_path, data, words):
    if data == "truncated":
        whole = zipped({"ml/ratings.csv": LATEST_RATINGS * 50})
        data = whole[: len(whole) // 2]
    paths = write(tmp_path, {"ml-latest-small.zip": data})
    message = plan_error("movielens", paths)
    assert message.startswith("ml-latest-small.zip: ")
    assert words in message


def test_damaged_zip_member_is_named(tmp_path):
    movies = "movieId,title,genres\n1,Toy Story (1995),Comedy\n"
    archive = bytearray(
        zipped({"ml/ratings.csv": LATEST_RATINGS, "ml/movies.csv": movies}, True)
    )
    at = bytes(archive).index(b"Toy Story")
    archive[at] ^= 0x20  # the stored bytes no longer match their CRC-32
    paths = write(tmp_path, {"ml.zip": bytes(archive)})
    message = plan_error("movielens", paths)
    assert "member 'ml/movies.csv' of ml.zip" in message
    assert "CRC" in message


def test_corrupt_gzip_is_named(tmp_path):
    paths = write(tmp_path, {"u.data.gz": b"\x1f\x8b not gzip at all"})
    message = plan_error("movielens", paths)
    assert message.startswith("u.data.gz: cannot read the file")


@pytest.mark.parametrize("dataset", ["criteo", "avazu", "kdd2012"])
def test_corrupt_gzip_row_file_is_named(tmp_path, dataset):
    data = gzip.compress(b"some text\n")
    paths = write(tmp_path, {"train.txt.gz": data[:12] + b"\xff" * 8})
    message = plan_error(dataset, paths)
    assert "train.txt.gz: cannot read the file" in message


def test_one_movies_file_per_variant(tmp_path):
    movies = "movieId,title,genres\n1,A (1995),C\n"
    paths = write(tmp_path / "a", {"ratings.csv": LATEST_RATINGS, "movies.csv": movies})
    paths += write(tmp_path / "b", {"movies.csv": movies})
    assert "give one movies file" in plan_error("movielens", paths)


def test_10m_layout_accepted(tmp_path):
    """ml-10m: ratings.dat, movies.dat and tags.dat, no users.dat."""
    paths = write(
        tmp_path,
        {
            "ratings.dat": "1::122::5::838985046\n",
            "movies.dat": "122::Boomerang (1992)::Comedy|Romance\n",
            "tags.dat": "15::4973::excellent!::1215184630\n",
        },
    )
    plan = get_reader("movielens").plan(paths)
    assert [f.source.plain_name for f in plan.files] == ["ratings.dat"]
    assert plan.context.years.tolist() == [1992]


def test_release_year():
    assert release_year("Toy Story (1995)") == 1995
    assert release_year("Babylon 5 (1993-1998)") == 1993
    assert release_year("Babylon 5 (1993\u20131998)") == 1993
    assert release_year("A Series (2014- )") == 2014
    assert release_year("Movie (Part Two)") is None
    assert release_year("Babylon 5") is None
    assert release_year("Unknown", "01-Jan-1995") == 1995
    assert release_year("Unknown", "") is None
    for title in ("A (19x5)", "A (0000)", "A (3001)", "A (95)"):
        with pytest.raises(ValueError, match="year"):
            release_year(title)
    with pytest.raises(ValueError, match="01-Jan-1995"):
        release_year("A", "Jan 1995")


# -- KDD 2012 user table


def test_kdd_user_table_bad_lines_are_reported(tmp_path):
    users = "1\t1\t2\n\n2\tx\t3\n3\t1\n4\t\t\n\t1\t1\n1\t2\t2\r\n5\t1\t1"
    paths = write(tmp_path, {"training.txt": KDD_ROW, "user.txt": users})
    plan = get_reader("kdd2012").plan(paths)
    got = [(r.source, r.line, r.reason, r.text) for r in plan.side_rejects]
    assert got == [
        ("user.txt", 2, "blank_line", ""),
        ("user.txt", 3, "sparse_id", "2\tx\t3"),
        ("user.txt", 4, "field_count", "3\t1"),
        ("user.txt", 6, "sparse_id", "\t1\t1"),
        ("user.txt", 7, "sparse_id", "1\t2\t2"),  # user 1 again: the first wins
    ]
    users_table = plan.context
    assert users_table.ids.tolist() == [1, 4, 5]
    # Every line is either in the table or reported.
    assert len(users_table.ids) + len(plan.side_rejects) == 8
    joined = _join_users(pa.array([1, 2, 4, 5, 9], pa.uint64()), users_table)
    assert joined["Gender"].to_pylist() == [1, None, None, 1, None]
    assert joined["Age"].to_pylist() == [2, None, None, 1, None]


@pytest.mark.parametrize(
    ("users", "words"),
    [
        ("", "is empty"),
        ("\n\n", "is empty"),
        ("UserID,Gender,Age\n1,1,2\n", "no usable line"),
    ],
    ids=["empty", "blank", "csv"],
)
def test_kdd_unusable_user_table_is_an_error(tmp_path, users, words):
    paths = write(tmp_path, {"training.txt": KDD_ROW, "userid_profile.txt": users})
    message = plan_error("kdd2012", paths)
    assert "userid_profile.txt" in message and words in message


def test_kdd_one_user_table(tmp_path):
    paths = write(tmp_path / "a", {"training.txt": KDD_ROW, "user.txt": "1\t1\t1\n"})
    paths += write(tmp_path / "b", {"userid_profile.txt": "1\t1\t1\n"})
    assert "one user table" in plan_error("kdd2012", paths)


# -- real samples


def test_real_kdd_user_table_is_clean():
    folder = shared_data("kdd2012_track2")
    plan = get_reader("kdd2012").plan([str(folder)])
    assert plan.side_rejects == []
    assert plan.context.ids.tolist() == list(range(1, 12))


@pytest.mark.parametrize(
    ("inputs", "movies", "users"),
    [
        (["movielens-latest-small/ml-latest-small.zip"], 9742, 0),
        (["movielens-100k/u.data.gz", "movielens-100k/u.item.gz"], 1682, 0),
        (["movielens-100k/u1.base.gz", "movielens-100k/u.user"], 0, 943),
        (
            [
                "movielens-1m-partial/ratings_head10k.dat.gz",
                "movielens-1m-partial/movies.dat.gz",
                "movielens-1m-partial/users.dat.gz",
            ],
            3883,
            6040,
        ),
    ],
    ids=["latest-small", "100k-items", "100k-users", "1m"],
)
def test_real_movielens_side_files_load(inputs, movies, users):
    paths = [str(shared_data(p)) for p in inputs]
    side = get_reader("movielens").plan(paths).context
    assert len(side.movie_ids) == movies
    assert len(side.user_ids) == users
    if movies:
        assert np.all(np.diff(side.movie_ids.astype(np.int64)) > 0)


# -- headers and file kinds, told apart before ingest starts


def test_avazu_header_checked_when_planned(tmp_path):
    header = ",".join(HEADER)
    test_file = ",".join(h for h in HEADER if h != "click")
    paths = write(tmp_path / "a", {"test.csv": test_file + "\n"})
    assert "unlabeled Kaggle test file" in plan_error("avazu", paths)
    paths = write(tmp_path / "b", {"train.csv": header.replace("hour", "hr") + "\n"})
    message = plan_error("avazu", paths)
    assert "train.csv line 1 should be the header" in message
    paths = write(tmp_path / "c", {"train.csv": header + "\n"})
    assert len(get_reader("avazu").plan(paths).files) == 1


def test_kdd_token_files_and_test_file(tmp_path):
    names = (
        "queryid_tokensid.txt",
        "purchasedkeywordid_tokensid.txt",
        "titleid_tokensid.txt",
        "descriptionid_tokensid.txt",
        "query.txt",
    )
    files = {name: "1\t23|45\n" for name in names}
    paths = write(tmp_path / "a", {"training.txt": KDD_ROW, **files})
    plan = get_reader("kdd2012").plan(paths)
    assert [f.source.name for f in plan.files] == ["training.txt"]
    eleven = "\t".join(["1"] * 11) + "\n"
    paths = write(tmp_path / "b", {"test.txt": eleven})
    message = plan_error("kdd2012", paths)
    assert "test.txt line 1 has 11 tab-separated fields" in message


def test_repeated_header_columns_are_refused(tmp_path):
    names = [
        "label",
        *(f"I{i}" for i in range(1, 14)),
        *(f"C{i}" for i in range(1, 27)),
    ]
    paths = write(tmp_path / "a", {"c.csv": ",".join([*names, "I1"]) + "\n"})
    assert "c.csv line 1: the header names I1 more than once" in plan_error(
        "criteo", paths
    )
    kdd = "click,impression,displayurl,adid,advertiserid,depth,position,queryid,"
    kdd += "keywordid,titleid,descriptionid,userid,description"
    paths = write(tmp_path / "b", {"t.csv": kdd + "\n"})
    assert "names DescriptionID more than once" in plan_error("kdd2012", paths)
    joined = "user_id,movie_id,rating,timestamp,title,genres,gender,age,occupation,"
    joined += "zip,age"
    paths = write(tmp_path / "c", {"j.csv": joined + "\n"})
    assert "j.csv line 1: the header names age more than once" in plan_error(
        "movielens", paths
    )


def test_system_files_are_not_inputs(tmp_path):
    archive = zipped(
        {
            "ml/ratings.csv": LATEST_RATINGS,
            "__MACOSX/ml/._ratings.csv": b"\x00\x05\x16\x07 resource fork",
            "ml/.DS_Store": b"\x00\x00\x00\x01Bud1",
        }
    )
    paths = write(tmp_path / "a", {"ml.zip": archive})
    plan = get_reader("movielens").plan(paths)
    assert [f.source.member for f in plan.files] == ["ml/ratings.csv"]
    write(tmp_path / "b", {"ratings.csv": LATEST_RATINGS, ".DS_Store": b"\x00Bud1"})
    plan = get_reader("movielens").plan([str(tmp_path / "b")])
    assert [f.source.name for f in plan.files] == ["ratings.csv"]
