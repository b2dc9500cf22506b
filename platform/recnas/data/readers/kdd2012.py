"""KDD Cup 2012 track 2 (Tencent search ads).

Row files: ``training.txt`` (tab-separated, 12 fields, no header: ``Click``,
``Impression``, ``DisplayURL``, ``AdID``, ``AdvertiserID``, ``Depth``,
``Position``, ``QueryID``, ``KeywordID``, ``TitleID``, ``DescriptionID``,
``UserID``), or a CSV with a header naming the same fields in lower case
(the public test rows joined with their clicks). The label is ``Click > 0``.

The user table (``userid_profile.txt``, or ``user.txt``: ``UserID``,
``Gender``, ``Age``, tab-separated) is joined on ``UserID``; an unknown user
has missing gender and age. The token files (query, keyword, title,
description) are not used. Dense: ``Impression``, ``Depth``, ``Position``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from recnas.data.fields import Column, Rows
from recnas.data.readers.base import (
    FeatureDefs,
    Plan,
    Reader,
    RowFile,
    expand_inputs,
    first_data_line,
    ids,
    read_source,
    source_record,
)
from recnas.data.textio import Source

logger = logging.getLogger(__name__)

FIELDS = (
    "Click",
    "Impression",
    "DisplayURL",
    "AdID",
    "AdvertiserID",
    "Depth",
    "Position",
    "QueryID",
    "KeywordID",
    "TitleID",
    "DescriptionID",
    "UserID",
)
DENSE = ("Impression", "Depth", "Position")
ID_FIELDS = tuple(f for f in FIELDS if f not in DENSE and f != "Click")
SPARSE = (*ID_FIELDS, "Gender", "Age")
_KINDS = {"Click": "count", **dict.fromkeys(DENSE, "number")}
_CSV_NAMES = {f.lower(): f for f in FIELDS} | {
    "description": "DescriptionID",
    "id": "id",
}
_TOKEN_FILES = (
    "query",
    "keyword",
    "title",
    "description",
    "purchasedkeywordid_tokensid",
)


@dataclass
class Users:
    """The user table, sorted by id."""

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    gender: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    age: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))


class Kdd2012Reader(Reader):
    """Reader of KDD Cup 2012 track 2 (see the module docstring)."""

    name = "kdd2012"

    def plan(self, inputs: list[str]) -> Plan:
        files, users, side = [], Users(), []
        for src in expand_inputs(inputs):
            name = src.plain_name.lower()
            stem = name.rsplit(".", 1)[0]
            if stem in ("userid_profile", "user"):
                users = _load_users(read_source(src))
                side.append(source_record(src))
            elif stem.split("_")[0] in _TOKEN_FILES or stem in _TOKEN_FILES:
                logger.info("kdd2012: not used: %s", src.name)
            else:
                files.append(self._row_file(src))
        if not files:
            raise ValueError("kdd2012: no row file (training.txt) among the inputs")
        if not side:
            logger.warning(
                "kdd2012: no userid_profile.txt given: gender and age missing"
            )
        features = FeatureDefs(dense=DENSE, sparse=tuple((n, False) for n in SPARSE))
        return Plan(files, features, users, side)

    def _row_file(self, src: Source) -> RowFile:
        line = first_data_line(src)
        if "\t" in line:
            columns = tuple(Column(f, _KINDS.get(f, "uint")) for f in FIELDS)
            return RowFile(src, columns, "\t", layout="training")
        names = [n.strip().lower() for n in line.split(",")]
        unknown = [n for n in names if n not in _CSV_NAMES]
        missing = [f for f in FIELDS if f not in {_CSV_NAMES.get(n) for n in names}]
        if unknown or missing:
            raise ValueError(
                f"kdd2012: {src.name} is neither the 12-field training.txt nor a CSV "
                f"with a header of its fields (missing: {', '.join(missing) or '-'}; "
                f"unknown: {', '.join(unknown) or '-'})"
            )
        columns = []
        for n in names:
            canonical = _CSV_NAMES[n]
            kind = "skip" if canonical == "id" else _KINDS.get(canonical, "uint")
            columns.append(Column(canonical, kind))
        return RowFile(
            src,
            tuple(columns),
            ",",
            header=True,
            layout="csv",
            expected_header=tuple(names),
        )

    def convert(self, rows: Rows, file: RowFile, context: Users) -> dict[str, Any]:
        v = rows.values
        clicks = v["Click"].fill_null(0).to_numpy(zero_copy_only=False)
        out: dict[str, Any] = {"label": (clicks > 0).astype(np.int8)}
        out.update({n: v[n] for n in DENSE + ID_FIELDS})
        out.update(_join_users(v["UserID"], context))
        return out


def _load_users(data: bytes) -> Users:
    rows = [line.split("\t") for line in data.decode("utf-8", "replace").splitlines()]
    rows = [r for r in rows if len(r) == 3 and all(x.strip().isdigit() for x in r)]
    rows.sort(key=lambda r: int(r[0]))
    table = np.array([[int(x) for x in r] for r in rows], dtype=np.uint64).reshape(
        -1, 3
    )
    return Users(table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy())


def _join_users(user: pa.Array, users: Users) -> dict[str, pa.Array]:
    raw = user.fill_null(0).to_numpy(zero_copy_only=False)
    if len(users.ids) == 0:
        missing = np.ones(len(raw), dtype=bool)
        return {
            "Gender": ids(np.zeros(len(raw)), missing),
            "Age": ids(np.zeros(len(raw)), missing),
        }
    pos = np.minimum(np.searchsorted(users.ids, raw), len(users.ids) - 1)
    found = (users.ids[pos] == raw) & ~user.is_null().to_numpy(zero_copy_only=False)
    return {
        "Gender": ids(users.gender[pos], mask=~found),
        "Age": ids(users.age[pos], mask=~found),
    }
