"""MovieLens ratings as a CTR task: a rating of 4 or more is a click.

Recognised files (plain, gzip-compressed, in a folder or inside a zip):

| variant | rows | movies | users |
| --- | --- | --- | --- |
| ml-latest, ml-latest-small | ``ratings.csv`` | ``movies.csv`` | - |
| ml-1m | ``ratings*.dat`` (``::``) | ``movies.dat`` | ``users.dat`` |
| ml-100k | ``u.data``, ``u1.base``, ... (tab) | ``u.item`` | ``u.user`` |
| joined | CSV ``user_id,movie_id,rating,...`` (see below) | in the row | in the row |

Features: sparse ``user``, ``movie``, ``genres`` (multi-valued), ``year``
(release year from the title, else the release date), ``hour`` and
``weekday`` of the rating (UTC), plus ``gender``, ``age``, ``occupation`` and
``zip`` where the variant has users. Dense: ``user_count`` and
``movie_count``, the number of train ratings of the row's user and movie
(made on ingest from the train split only: no label information).

A joined CSV starts with the header ``user_id,movie_id,rating,timestamp,
title,genres`` followed by the user columns.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recnas.data.fields import Column, Rows, hash_strings, plain, stable_hash
from recnas.data.readers.base import (
    FeatureDefs,
    Plan,
    Reader,
    RowFile,
    check_unique_names,
    decode_text,
    expand_inputs,
    head_line,
    hour_and_weekday,
    ids,
    line_error,
    read_source,
    source_record,
    text_lines,
)
from recnas.data.textio import Source

logger = logging.getLogger(__name__)

# "(1995)", and for series "(1993-1998)", "(1993\u20131998)", "(2014- )".
_YEAR_RE = re.compile(r"\(\s*(\d{4})\s*(?:[-\u2013]\s*\d{0,4}\s*)?\)\s*$")
# A title ending in parentheses that hold digits means to give a year.
_YEARISH_RE = re.compile(r"\(([\dxX?\-\u2013 ]*\d[\dxX?\-\u2013 ]*)\)\s*$")
_DATE_RE = re.compile(r"^\d{1,2}-[A-Za-z]{3}-(\d{4})$")
MIN_YEAR, MAX_YEAR = 1800, 2100
_100K_ITEM_FIELDS = 5 + 19
_USER_FIELDS = 5
_1M_GAPS = ("_1", "_2", "_3")
_100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
    "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
_NO_GENRES = "(no genres listed)"
_USER_FEATURES = ("gender", "age", "occupation", "zip")
_JOINED_HEADER = "user_id,movie_id,rating,timestamp,title,genres"
_IGNORED = re.compile(
    r"^(tags\.csv|links\.csv|genome-.*|readme.*|u\.info|u\.occupation|u\.genre|"
    r"allbut\.pl|mku\.sh|split_ratings\.sh|tags\.dat|notice|license.*|.*\.txt|"
    r".*\.md|.*\.html)$",
    re.IGNORECASE,
)


@dataclass
class SideTables:
    """Movies (and users) by id, for joining onto the rating rows."""

    movie_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    years: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    genres: pa.Array = field(
        default_factory=lambda: pa.array([], pa.list_(pa.uint64()))
    )
    user_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    users: dict[str, np.ndarray] = field(default_factory=dict)


def _role(src: Source) -> str:
    name = src.plain_name
    lower = name.lower()
    if lower == "ratings.csv":
        return "latest_ratings"
    if lower == "movies.csv":
        return "latest_movies"
    if re.fullmatch(r"ratings.*\.dat", lower):
        return "1m_ratings"
    if lower == "movies.dat":
        return "1m_movies"
    if lower == "users.dat":
        return "1m_users"
    if re.fullmatch(r"u\.data|u[1-5]\.(base|test)|u[ab]\.(base|test)", lower):
        return "100k_ratings"
    if lower == "u.item":
        return "100k_movies"
    if lower == "u.user":
        return "100k_users"
    head = head_line(src).decode("utf-8", "replace").lower()
    if head.startswith(_JOINED_HEADER):
        return "joined_ratings"
    if _IGNORED.match(lower):
        return "ignored"
    raise ValueError(
        f"movielens: do not know the file {src.name!r}; expected ratings.csv and "
        "movies.csv (ml-latest), ratings.dat, movies.dat and users.dat (ml-1m), "
        "u.data, u.item and u.user (ml-100k), or a joined CSV with the header "
        f"{_JOINED_HEADER},..."
    )


class MovieLensReader(Reader):
    """Reader of the MovieLens variants (see the module docstring)."""

    name = "movielens"

    def plan(self, inputs: list[str]) -> Plan:
        roles: dict[str, list[Source]] = {}
        for src in expand_inputs(inputs):
            roles.setdefault(_role(src), []).append(src)
        ignored = roles.pop("ignored", [])
        for src in ignored:
            logger.info("movielens: not used: %s", src.name)
        ratings = [r for r in roles if r.endswith("_ratings")]
        if len(ratings) != 1:
            raise ValueError(
                "movielens: give the ratings of exactly one variant; found "
                f"{', '.join(ratings) or 'none'} among {len(inputs)} input(s)"
            )
        variant = ratings[0].split("_")[0]
        others = [r for r in roles if not r.startswith(variant) and r != ratings[0]]
        if others:
            raise ValueError(
                f"movielens: files of another variant next to {variant} ratings: "
                + ", ".join(s.name for r in others for s in roles[r])
            )
        for role in (f"{variant}_movies", f"{variant}_users"):
            if len(roles.get(role, [])) > 1:
                raise ValueError(
                    f"movielens: give one {role.split('_')[1]} file, not "
                    + ", ".join(s.name for s in roles[role])
                )
        side = SideTables()
        side_files = []
        for role in (f"{variant}_movies", f"{variant}_users"):
            for src in roles.get(role, []):
                _load_side(side, role, src)
                side_files.append(source_record(src))
        if variant != "joined" and f"{variant}_movies" not in roles:
            logger.warning("movielens: no movies file given: genres and year missing")
        if variant in ("1m", "100k") and f"{variant}_users" not in roles:
            logger.warning(
                "movielens: no users file given: %s missing", ", ".join(_USER_FEATURES)
            )
        has_users = variant in ("1m", "100k", "joined")
        files = [_row_file(src, variant) for src in roles[ratings[0]]]
        sparse = [("user", False), ("movie", False), ("genres", True), ("year", False)]
        sparse += [("hour", False), ("weekday", False)]
        if has_users:
            sparse += [(name, False) for name in _USER_FEATURES]
        features = FeatureDefs(
            dense=(),
            counts=(("user_count", "user"), ("movie_count", "movie")),
            sparse=tuple(sparse),
            has_time=True,
        )
        details = {"variant": f"ml-{variant}" if variant != "joined" else variant}
        return Plan(files, features, side, side_files, details)

    def convert(self, rows: Rows, file: RowFile, context: SideTables) -> dict[str, Any]:
        v = rows.values
        if file.layout == "1m":
            stray = np.zeros(len(rows.reasons), dtype=bool)
            for name in _1M_GAPS:
                stray |= ~v[name].is_null().to_numpy(zero_copy_only=False)
            rows.reject(stray, "field_count")
        rating = v["rating"].fill_null(0.0).to_numpy(zero_copy_only=False)
        rows.reject((rating < 0) | (rating > 5), "label")
        seconds = v["timestamp"].fill_null(0).to_numpy(zero_copy_only=False)
        hour, weekday = hour_and_weekday(seconds)
        out: dict[str, Any] = {
            "label": (rating >= 4.0).astype(np.int8),
            "user": v["user"],
            "movie": v["movie"],
            "hour": ids(hour),
            "weekday": ids(weekday),
            "_time": seconds.astype(np.int64),
        }
        if file.layout == "joined":
            out.update(_joined_columns(v, rows))
        else:
            out.update(_movie_columns(v["movie"], context))
            if file.layout in ("1m", "100k"):
                out.update(_user_columns(v["user"], context))
        return out


def _row_file(src: Source, variant: str) -> RowFile:
    head_line(src)  # an unreadable file fails here, named
    if variant == "latest":
        cols = [("user", "int"), ("movie", "int"), ("rating", "rating")]
        cols.append(("timestamp", "time"))
        header = ("userid", "movieid", "rating", "timestamp")
        return RowFile(
            src,
            _columns(cols),
            ",",
            header=True,
            layout="latest",
            expected_header=header,
        )
    if variant == "1m":
        # "::" separated: split on ':' and skip the empty fields between.
        # The fields between must be empty: "1::2:3::4" is not "1::2::3::4".
        cols = [("user", "int"), ("_1", "text"), ("movie", "int"), ("_2", "text")]
        cols += [("rating", "rating"), ("_3", "text"), ("timestamp", "time")]
        return RowFile(src, _columns(cols), ":", layout="1m")
    if variant == "100k":
        cols = [("user", "int"), ("movie", "int"), ("rating", "rating")]
        cols.append(("timestamp", "time"))
        return RowFile(src, _columns(cols), "\t", layout="100k")
    head = head_line(src).decode("utf-8", "replace").lower().split(",")
    kinds = {
        "user_id": "int",
        "movie_id": "int",
        "rating": "rating",
        "timestamp": "time",
        "title": "text",
        "genres": "text",
        "gender": "str",
        "age": "int",
        "occupation": "str",
        "zip": "str",
    }
    check_unique_names("movielens", src, head)
    missing = [k for k in kinds if k not in head]
    if missing:
        raise ValueError(f"movielens: {src.name}: header lacks {', '.join(missing)}")
    rename = {"user_id": "user", "movie_id": "movie"}
    cols = [(rename.get(h, h), kinds.get(h, "skip")) for h in head]
    return RowFile(src, _columns(cols), ",", header=True, quoted=True, layout="joined")


def _columns(pairs: list[tuple[str, str]]) -> tuple[Column, ...]:
    return tuple(Column(name, kind) for name, kind in pairs)


def release_year(title: str, date: str = "") -> int | None:
    """Release year from a title ending in "(1995)", else from a date's year.

    Raises:
        ValueError: For a year outside 1800-2100, a title ending in
            parentheses that hold a malformed year (such as "(19x5)"), or a
            date not like "01-Jan-1995".
    """
    title = title.strip()
    match = _YEAR_RE.search(title)
    if match:
        return _checked_year(int(match.group(1)))
    odd = _YEARISH_RE.search(title)
    if odd:
        raise ValueError(f"malformed release year ({odd.group(1)}) in the title")
    date = date.strip()
    if not date:
        return None
    dated = _DATE_RE.match(date)
    if not dated:
        raise ValueError(f"release date {date!r} is not like 01-Jan-1995")
    return _checked_year(int(dated.group(1)))


def _checked_year(year: int) -> int:
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"release year {year} outside {MIN_YEAR}-{MAX_YEAR}")
    return year


def _genre_ids(names: list[str]) -> list[int]:
    return [stable_hash(g) for g in names if g and g != _NO_GENRES]


def _id(src: Source, line: int, text: str, what: str, value: str) -> int:
    value = value.strip()
    if not value.isdigit() or not value.isascii():
        raise line_error(src, line, f"{what} {value!r} is not a whole number", text)
    return int(value)


def _year(src: Source, line: int, text: str, title: str, date: str = "") -> int:
    try:
        return release_year(title, date) or 0
    except ValueError as err:
        raise line_error(src, line, str(err), text) from None


def _fields(src: Source, line: int, text: str, sep: str, count: int) -> list[str]:
    parts = text.split(sep)
    if len(parts) != count:
        raise line_error(
            src, line, f"{len(parts)} {sep!r}-separated fields, expected {count}", text
        )
    return parts


def _load_side(side: SideTables, role: str, src: Source) -> None:
    """Loads a movies or users file into ``side``.

    Raises:
        ValueError: Naming the file (and zip member) and the line, for an
            unreadable file, a line with the wrong number of fields, a bad id,
            age or year, or an id given twice.
    """
    data = read_source(src)
    if role == "latest_movies":
        movies = _latest_movies(src, decode_text(src, data, "utf-8"))
    elif role == "1m_movies":
        movies = []
        for line, text in text_lines(data.decode("latin-1")):
            parts = text.split("::", 2)
            if len(parts) != 3:
                raise line_error(
                    src, line, "expected MovieID::Title::Genres (3 fields)", text
                )
            movie = _id(src, line, text, "MovieID", parts[0])
            year = _year(src, line, text, parts[1])
            movies.append((line, movie, year, _genre_ids(parts[2].split("|"))))
    elif role == "100k_movies":
        movies = []
        for line, text in text_lines(data.decode("latin-1")):
            f = _fields(src, line, text, "|", _100K_ITEM_FIELDS)
            flags = f[5:]
            if any(on not in ("0", "1") for on in flags):
                raise line_error(src, line, "genre flags must be 0 or 1", text)
            names = [g for g, on in zip(_100K_GENRES, flags, strict=True) if on == "1"]
            movie = _id(src, line, text, "movie id", f[0])
            year = _year(src, line, text, f[1], f[2])
            movies.append((line, movie, year, _genre_ids(names)))
    else:
        _load_users(side, role, src, data)
        return
    if not movies:
        raise ValueError(f"movielens: {src.name} holds no movies")
    movies.sort(key=lambda m: m[1])
    _check_unique(src, [(m[0], m[1]) for m in movies], "movie id")
    side.movie_ids = np.array([m[1] for m in movies], dtype=np.uint64)
    side.years = np.array([m[2] for m in movies], dtype=np.uint64)
    side.genres = pa.array([m[3] for m in movies], type=pa.list_(pa.uint64()))


def _latest_movies(src: Source, text: str) -> list[tuple[int, int, int, list[int]]]:
    """``movies.csv`` of ml-latest: ``movieId,title,genres`` with a header."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1
    try:
        header = next(reader, [])
        names = [h.strip() for h in header]
        missing = [c for c in ("movieId", "title", "genres") if c not in names]
        if missing:
            raise line_error(
                src,
                1,
                f"the header lacks {', '.join(missing)} (expected "
                "movieId,title,genres)",
                ",".join(header),
            )
        at = {name: names.index(name) for name in ("movieId", "title", "genres")}
        movies = []
        line = reader.line_num + 1
        for record in reader:
            if not record or not "".join(record).strip():
                line = reader.line_num + 1
                continue
            raw = ",".join(record)
            if len(record) != len(header):
                raise line_error(
                    src,
                    line,
                    f"{len(record)} fields, the header has {len(header)}",
                    raw,
                )
            movie = _id(src, line, raw, "movieId", record[at["movieId"]])
            year = _year(src, line, raw, record[at["title"]])
            genres = _genre_ids(record[at["genres"]].split("|"))
            movies.append((line, movie, year, genres))
            line = reader.line_num + 1
    except csv.Error as err:
        raise ValueError(
            f"{src.name} line {line}: malformed CSV ({err}); check its quotes"
        ) from None
    return movies


def _check_unique(src: Source, keyed: list[tuple[int, int]], what: str) -> None:
    """Raises for an id given twice; ``keyed`` holds (line, id) sorted by id."""
    for (line_a, a), (line_b, b) in zip(keyed, keyed[1:], strict=False):
        if a == b:
            first, second = sorted((line_a, line_b))
            raise ValueError(
                f"{src.name} line {second}: {what} {a} was given already on line "
                f"{first}; remove one of the two lines"
            )


def _load_users(side: SideTables, role: str, src: Source, data: bytes) -> None:
    if role == "1m_users":
        # UserID::Gender::Age::Occupation::Zip-code
        sep, user_col, gender, age, occ, zip_code = "::", 0, 1, 2, 3, 4
    else:
        # user id | age | gender | occupation | zip code
        sep, user_col, age, gender, occ, zip_code = "|", 0, 1, 2, 3, 4
    records = []
    for line, text in text_lines(data.decode("latin-1")):
        f = _fields(src, line, text, sep, _USER_FIELDS)
        user = _id(src, line, text, "user id", f[user_col])
        years = _id(src, line, text, "age", f[age])
        records.append((line, user, f[gender], years, f[occ], f[zip_code]))
    if not records:
        raise ValueError(f"movielens: {src.name} holds no users")
    records.sort(key=lambda r: r[1])
    _check_unique(src, [(r[0], r[1]) for r in records], "user id")
    side.user_ids = np.array([r[1] for r in records], dtype=np.uint64)
    side.users = {
        "gender": np.array([stable_hash(r[2]) for r in records], dtype=np.uint64),
        "age": np.array([r[3] for r in records], dtype=np.uint64),
        "occupation": np.array([stable_hash(r[4]) for r in records], dtype=np.uint64),
        "zip": np.array([stable_hash(r[5]) for r in records], dtype=np.uint64),
    }


def _lookup(keys: np.ndarray, values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``values`` in the sorted ``keys`` and whether each was found."""
    raw = values.fill_null(0).to_numpy(zero_copy_only=False)
    if len(keys) == 0:
        return np.zeros(len(raw), dtype=np.int64), np.zeros(len(raw), dtype=bool)
    pos = np.minimum(np.searchsorted(keys, raw), len(keys) - 1)
    found = (keys[pos] == raw) & ~values.is_null().to_numpy(zero_copy_only=False)
    return pos, found


def _movie_columns(movie: pa.Array, side: SideTables) -> dict[str, Any]:
    pos, found = _lookup(side.movie_ids, movie)
    if len(side.movie_ids) == 0:
        empty = pa.array([[]] * len(movie), type=pa.list_(pa.uint64()))
        return {"genres": empty, "year": ids(np.zeros(len(movie)), mask=~found)}
    years = side.years[pos]
    genres = side.genres.take(pa.array(pos))
    genres = pc.if_else(pa.array(found), genres, pa.scalar([], genres.type))
    return {"genres": genres, "year": ids(years, mask=~found | (years == 0))}


def _user_columns(user: pa.Array, side: SideTables) -> dict[str, Any]:
    pos, found = _lookup(side.user_ids, user)
    out = {}
    for name in _USER_FEATURES:
        values = side.users.get(name)
        if values is None or len(values) == 0:
            out[name] = ids(np.zeros(len(user)), mask=np.ones(len(user), dtype=bool))
        else:
            out[name] = ids(values[pos], mask=~found)
    return out


def _joined_columns(v: dict[str, pa.Array], rows: Rows) -> dict[str, Any]:
    titles = v["title"].fill_null("").to_pylist()
    years = np.zeros(len(titles), dtype=np.uint64)
    bad = np.zeros(len(titles), dtype=bool)
    for i, title in enumerate(titles):
        try:
            years[i] = release_year(title) or 0
        except ValueError:
            bad[i] = True
    # A malformed year in the title is a bad id of the ``year`` feature.
    rows.reject(bad, "sparse_id")
    names = pc.split_pattern(v["genres"].fill_null(""), "|")
    flat = pc.list_flatten(names)
    keep = pc.and_(pc.not_equal(flat, ""), pc.not_equal(flat, _NO_GENRES))
    hashed = plain(hash_strings(flat))
    offsets = names.offsets
    # Drop empty and "(no genres listed)" entries, keeping one list per row.
    counts = pc.list_value_length(names).to_numpy(zero_copy_only=False)
    row_of = np.repeat(np.arange(len(names)), counts)
    kept = keep.to_numpy(zero_copy_only=False)
    new_counts = np.bincount(row_of[kept], minlength=len(names))
    new_offsets = np.concatenate([[0], np.cumsum(new_counts)]).astype(np.int32)
    values = hashed.filter(pa.array(kept))
    del offsets
    genres = pa.ListArray.from_arrays(pa.array(new_offsets), values)
    return {
        "genres": genres,
        "year": ids(years, mask=years == 0),
        "gender": v["gender"],
        "age": v["age"],
        "occupation": v["occupation"],
        "zip": v["zip"],
    }
