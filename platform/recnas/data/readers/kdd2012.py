"""KDD Cup 2012 track 2 (Tencent search ads).

Row files: ``training.txt`` (tab-separated, 12 fields, no header: ``Click``,
``Impression``, ``DisplayURL``, ``AdID``, ``AdvertiserID``, ``Depth``,
``Position``, ``QueryID``, ``KeywordID``, ``TitleID``, ``DescriptionID``,
``UserID``), or a CSV with a header naming the same fields in lower case
(the public test rows joined with their clicks). The label is ``Click > 0``.

The user table (``userid_profile.txt``, or ``user.txt``: ``UserID``,
``Gender``, ``Age``, tab-separated) is joined on ``UserID``; an unknown user
has missing gender and age. A line of the user table with the wrong field
count, a malformed number or an empty or repeated ``UserID`` is left out and
reported with the reason in :attr:`Plan.side_rejects`; a user table with no
usable line is an error. The token files (query, keyword, title, description)
are not used. Dense: ``Impression``, ``Depth``, ``Position``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from recnas.data.fields import REASONS, Column, Rows, fields_reason, parse_rows
from recnas.data.readers.base import (
    FeatureDefs,
    Plan,
    Reader,
    RowFile,
    SideReject,
    check_unique_names,
    expand_inputs,
    first_data_line,
    ids,
    read_source,
    source_record,
)
from recnas.data.textio import Source, line_texts

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
# query.txt, queryid_tokensid.txt, purchasedkeywordid_tokensid.txt, ...
_TOKEN_FILE = re.compile(
    r"(query|keyword|purchasedkeyword|title|description)(id)?(_tokensid)?"
)
_USER_COLUMNS = (
    Column("UserID", "uint"),
    Column("Gender", "uint"),
    Column("Age", "uint"),
)
_SHOWN_REJECTS = 5


@dataclass
class Users:
    """The user table, sorted by id; the masks mark an empty gender or age."""

    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    gender: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    age: np.ndarray = field(default_factory=lambda: np.zeros(0, np.uint64))
    gender_missing: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    age_missing: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))


class Kdd2012Reader(Reader):
    """Reader of KDD Cup 2012 track 2 (see the module docstring)."""

    name = "kdd2012"

    def plan(self, inputs: list[str]) -> Plan:
        files, users, side, rejects = [], Users(), [], []
        for src in expand_inputs(inputs):
            name = src.plain_name.lower()
            stem = name.rsplit(".", 1)[0]
            if stem in ("userid_profile", "user"):
                if side:
                    raise ValueError(
                        f"kdd2012: give one user table, not {side[0]['uri']} and "
                        f"{src.name}"
                    )
                users, rejects = load_users(src)
                side.append(source_record(src))
            elif _TOKEN_FILE.fullmatch(stem):
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
        return Plan(files, features, users, side, side_rejects=rejects)

    def _row_file(self, src: Source) -> RowFile:
        line = first_data_line(src)
        if "\t" in line or not line:  # an empty file holds no rows: ingest says so
            fields = line.count("\t") + 1
            if line and fields != len(FIELDS):
                raise ValueError(
                    f"kdd2012: {src.name} line 1 has {fields} tab-separated fields; "
                    f"training.txt has {len(FIELDS)} ({', '.join(FIELDS)}), and the "
                    "unlabeled test.txt cannot be ingested as training data"
                )
            columns = tuple(Column(f, _KINDS.get(f, "uint")) for f in FIELDS)
            return RowFile(src, columns, "\t", layout="training")
        names = [n.strip().lower() for n in line.split(",")]
        canon = [_CSV_NAMES.get(n, n) for n in names]
        check_unique_names("kdd2012", src, canon)
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


def load_users(src: Source) -> tuple[Users, list[SideReject]]:
    """The user table of ``src`` and the lines left out of it.

    Lines are parsed and checked like row files (``UserID``, ``Gender`` and
    ``Age``, tab-separated, decimal): a line with the wrong field count, a
    malformed number or no ``UserID`` is left out, as is a later line of a
    ``UserID`` already given; an empty ``Gender`` or ``Age`` is missing.

    Raises:
        ValueError: If the file cannot be read or holds no usable line.
    """
    data = read_source(src)
    if not data.strip():
        raise ValueError(
            f"kdd2012: the user table {src.name} is empty; give userid_profile.txt "
            "with UserID, Gender and Age per line, or leave it out"
        )
    rows = parse_rows(data, list(_USER_COLUMNS), "\t")
    parsed = rows.parsed
    found = [
        (int(line), fields_reason(text))
        for line, text in zip(parsed.bad_lines.tolist(), parsed.bad_texts, strict=True)
    ]
    user = rows.values["UserID"]
    rows.reject(user.is_null().to_numpy(zero_copy_only=False), "sparse_id")
    good = np.flatnonzero(rows.reasons == 0)
    raw = user.fill_null(0).to_numpy(zero_copy_only=False)[good]
    order = np.argsort(raw, kind="stable")
    sorted_ids = raw[order]
    repeated = np.zeros(len(order), dtype=bool)
    repeated[1:] = sorted_ids[1:] == sorted_ids[:-1]
    rows.reasons[good[order[repeated]]] = REASONS.index("sparse_id") + 1
    bad = np.flatnonzero(rows.reasons != 0)
    found += [(int(rows.lines[i]), REASONS[rows.reasons[i] - 1]) for i in bad.tolist()]
    found.sort()
    texts = line_texts(data, np.array([line for line, _ in found], dtype=np.int64))
    rejects = [
        SideReject(src.name, line + 1, reason, text)
        for (line, reason), text in zip(found, texts, strict=True)
    ]
    keep = order[~repeated]
    if len(keep) == 0:
        shown = "; ".join(
            f"line {r.line}: {r.reason}" for r in rejects[:_SHOWN_REJECTS]
        )
        raise ValueError(
            f"kdd2012: no usable line in the user table {src.name} ({shown}); "
            "expected UserID, Gender and Age, tab-separated"
        )
    if rejects:
        logger.warning(
            "kdd2012: %d line(s) of %s left out of the user table (first: %s)",
            len(rejects),
            src.name,
            "; ".join(f"line {r.line}: {r.reason}" for r in rejects[:_SHOWN_REJECTS]),
        )
    kept = pa.array(good[keep])
    gender = rows.values["Gender"].take(kept)
    age = rows.values["Age"].take(kept)
    users = Users(
        raw[keep].astype(np.uint64),
        gender.fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64),
        age.fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64),
        gender.is_null().to_numpy(zero_copy_only=False),
        age.is_null().to_numpy(zero_copy_only=False),
    )
    return users, rejects


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
        "Gender": ids(users.gender[pos], mask=~found | users.gender_missing[pos]),
        "Age": ids(users.age[pos], mask=~found | users.age_missing[pos]),
    }
