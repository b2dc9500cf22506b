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

import io
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recnas.data.fields import Column, Rows, hash_strings, plain, stable_hash
from recnas.data.readers.base import (
    FeatureDefs,
    Plan,
    Reader,
    RowFile,
    expand_inputs,
    hour_and_weekday,
    ids,
    read_source,
    source_record,
)
from recnas.data.textio import Source, first_line

logger = logging.getLogger(__name__)

_YEAR_RE = re.compile(r"\((\d{4})(?:[-\u2013]\d{0,4})?\)\s*$")
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
    r"allbut\.pl|mku\.sh|notice|license.*|.*\.txt|.*\.md)$",
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
    head = first_line(src).decode("utf-8", "replace").lower()
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
        side = SideTables()
        side_files = []
        for role in (f"{variant}_movies", f"{variant}_users"):
            for src in roles.get(role, []):
                _load_side(side, role, read_source(src))
                side_files.append(source_record(src))
        if variant != "joined" and f"{variant}_movies" not in roles:
            logger.warning("movielens: no movies file given: genres and year missing")
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
            out.update(_joined_columns(v))
        else:
            out.update(_movie_columns(v["movie"], context))
            if file.layout in ("1m", "100k"):
                out.update(_user_columns(v["user"], context))
        return out


def _row_file(src: Source, variant: str) -> RowFile:
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
        cols = [("user", "int"), ("_1", "skip"), ("movie", "int"), ("_2", "skip")]
        cols += [("rating", "rating"), ("_3", "skip"), ("timestamp", "time")]
        return RowFile(src, _columns(cols), ":", layout="1m")
    if variant == "100k":
        cols = [("user", "int"), ("movie", "int"), ("rating", "rating")]
        cols.append(("timestamp", "time"))
        return RowFile(src, _columns(cols), "\t", layout="100k")
    head = first_line(src).decode("utf-8", "replace").lower().split(",")
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
    missing = [k for k in kinds if k not in head]
    if missing:
        raise ValueError(f"movielens: {src.name}: header lacks {', '.join(missing)}")
    rename = {"user_id": "user", "movie_id": "movie"}
    cols = [(rename.get(h, h), kinds.get(h, "skip")) for h in head]
    return RowFile(src, _columns(cols), ",", header=True, quoted=True, layout="joined")


def _columns(pairs: list[tuple[str, str]]) -> tuple[Column, ...]:
    return tuple(Column(name, kind) for name, kind in pairs)


def release_year(title: str, date: str = "") -> int | None:
    """Release year from a title ending in "(1995)", else from a date's year."""
    match = _YEAR_RE.search(title.strip())
    if match:
        return int(match.group(1))
    tail = date.strip()[-4:]
    return int(tail) if tail.isdigit() else None


def _genre_ids(names: list[str]) -> list[int]:
    return [stable_hash(g) for g in names if g and g != _NO_GENRES]


def _load_side(side: SideTables, role: str, data: bytes) -> None:
    if role == "latest_movies":
        table = pacsv.read_csv(
            io.BytesIO(data),
            convert_options=pacsv.ConvertOptions(
                column_types={"movieId": pa.uint64(), "title": pa.string()},
                include_columns=["movieId", "title", "genres"],
            ),
        )
        rows = zip(
            table["movieId"].to_pylist(),
            table["title"].to_pylist(),
            table["genres"].to_pylist(),
            strict=True,
        )
        movies = [
            (m, release_year(t or ""), _genre_ids((g or "").split("|")))
            for m, t, g in rows
        ]
    elif role == "1m_movies":
        movies = []
        for line in data.decode("latin-1").splitlines():
            if line.strip():
                movie, title, genres = line.split("::", 2)
                movies.append(
                    (int(movie), release_year(title), _genre_ids(genres.split("|")))
                )
    elif role == "100k_movies":
        movies = []
        for line in data.decode("latin-1").splitlines():
            if line.strip():
                f = line.split("|")
                flags = [
                    g for g, on in zip(_100K_GENRES, f[5:], strict=False) if on == "1"
                ]
                movies.append((int(f[0]), release_year(f[1], f[2]), _genre_ids(flags)))
    else:
        _load_users(side, role, data)
        return
    movies.sort(key=lambda m: m[0])
    side.movie_ids = np.array([m[0] for m in movies], dtype=np.uint64)
    side.years = np.array(
        [m[1] if m[1] is not None else 0 for m in movies], dtype=np.uint64
    )
    side.genres = pa.array([m[2] for m in movies], type=pa.list_(pa.uint64()))


def _load_users(side: SideTables, role: str, data: bytes) -> None:
    if role == "1m_users":
        # UserID::Gender::Age::Occupation::Zip-code
        records = [
            line.split("::") for line in data.decode("latin-1").splitlines() if line
        ]
        user_col, gender, age, occ, zip_code = 0, 1, 2, 3, 4
    else:
        # user id | age | gender | occupation | zip code
        records = [
            line.split("|") for line in data.decode("latin-1").splitlines() if line
        ]
        user_col, age, gender, occ, zip_code = 0, 1, 2, 3, 4
    records.sort(key=lambda r: int(r[user_col]))
    side.user_ids = np.array([int(r[user_col]) for r in records], dtype=np.uint64)
    side.users = {
        "gender": np.array([stable_hash(r[gender]) for r in records], dtype=np.uint64),
        "age": np.array([int(r[age]) for r in records], dtype=np.uint64),
        "occupation": np.array([stable_hash(r[occ]) for r in records], dtype=np.uint64),
        "zip": np.array([stable_hash(r[zip_code]) for r in records], dtype=np.uint64),
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


def _joined_columns(v: dict[str, pa.Array]) -> dict[str, Any]:
    titles = v["title"].fill_null("").to_pylist()
    years = np.array([release_year(t) or 0 for t in titles], dtype=np.uint64)
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
