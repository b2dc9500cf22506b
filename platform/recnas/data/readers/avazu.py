"""Avazu click logs (Kaggle 2014): CSV with a header.

Columns: ``id`` (ignored), ``click`` (the label), ``hour`` (``YYMMDDHH``),
``C1``, ``banner_pos``, nine 8-hex-digit ids (``site_id`` ... ``device_model``),
``device_type``, ``device_conn_type`` and ``C14..C21``. ``hour`` becomes the
sparse features ``hour_of_day`` and ``weekday`` and the time of the row for
the ``time`` protocol; a ``hour`` that is no real date and hour is rejected.
Dense: ``device_ip_count`` and ``device_id_count``, the number of train rows
of the row's device address and device (made on ingest from the train split
only: no label information).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recnas.data.fields import Column, Rows
from recnas.data.readers.base import (
    SECONDS_PER_DAY,
    FeatureDefs,
    Plan,
    Reader,
    RowFile,
    days_from_civil,
    expand_inputs,
    first_data_line,
    ids,
    label_array,
    valid_dates,
)
from recnas.data.textio import Source

HEX_IDS = (
    "site_id",
    "site_domain",
    "site_category",
    "app_id",
    "app_domain",
    "app_category",
    "device_id",
    "device_ip",
    "device_model",
)
INT_IDS_HEAD = ("C1", "banner_pos")
INT_IDS_TAIL = ("device_type", "device_conn_type") + tuple(
    f"C{i}" for i in range(14, 22)
)
HEADER = ("id", "click", "hour", *INT_IDS_HEAD, *HEX_IDS, *INT_IDS_TAIL)
COLUMNS = (
    Column("id", "skip"),
    Column("click", "label01"),
    Column("hour", "time"),
    *(Column(n, "int") for n in INT_IDS_HEAD),
    *(Column(n, "hex") for n in HEX_IDS),
    *(Column(n, "int") for n in INT_IDS_TAIL),
)
SPARSE = ("hour_of_day", "weekday", *INT_IDS_HEAD, *HEX_IDS, *INT_IDS_TAIL)


class AvazuReader(Reader):
    """Reader of Avazu CSV files (see the module docstring)."""

    name = "avazu"

    def plan(self, inputs: list[str]) -> Plan:
        files = []
        for src in expand_inputs(inputs):
            _check_header(src, first_data_line(src))
            files.append(
                RowFile(
                    src, COLUMNS, ",", header=True, layout="csv", expected_header=HEADER
                )
            )
        features = FeatureDefs(
            dense=(),
            counts=(("device_ip_count", "device_ip"), ("device_id_count", "device_id")),
            sparse=tuple((n, False) for n in SPARSE),
            has_time=True,
        )
        return Plan(files, features)

    def convert(self, rows: Rows, file: RowFile, context: Any) -> dict[str, Any]:
        v = rows.values
        stamp = v["hour"].fill_null(0).to_numpy(zero_copy_only=False)
        year, month = 2000 + stamp // 1_000_000, stamp // 10_000 % 100
        day, hour = stamp // 100 % 100, stamp % 100
        ok = valid_dates(year, month, day) & (hour < 24) & (stamp >= 0)
        ok &= stamp < 100_000_000
        rows.reject(~ok, "time_value")
        days = days_from_civil(
            np.where(ok, year, 1970), np.where(ok, month, 1), np.where(ok, day, 1)
        )
        out: dict[str, Any] = {
            "label": label_array(v["click"]),
            "hour_of_day": ids(np.where(ok, hour, 0)),
            "weekday": ids((days + 3) % 7),
            "_time": days * SECONDS_PER_DAY + np.where(ok, hour, 0) * 3600,
        }
        out.update({n: v[n] for n in (*INT_IDS_HEAD, *HEX_IDS, *INT_IDS_TAIL)})
        return out


def _check_header(src: Source, line: str) -> None:
    """Refuses a file that does not start with the Avazu header, naming it."""
    names = tuple(n.strip().strip('"').lower() for n in line.split(","))
    if names == tuple(h.lower() for h in HEADER):
        return
    if names == tuple(h.lower() for h in HEADER if h != "click"):
        raise ValueError(
            f"avazu: {src.name} has no click column: it is the unlabeled Kaggle "
            "test file, which cannot be ingested as training data"
        )
    if not line:
        return  # an empty file: ingest reports that it holds no rows
    raise ValueError(
        f"avazu: {src.name} line 1 should be the header {','.join(HEADER)!r}, "
        f"found {line[:200]!r}"
    )
