"""Criteo display advertising data (Kaggle 2014 and the 1 TB logs).

Layouts, recognised from the first line of each file:

- the training files: tab-separated, 40 fields, no header: ``label``,
  ``I1..I13`` (integer counts, may be empty or negative) and ``C1..C26``
  (8-hex-digit ids, may be empty);
- the Kaggle test file: the same with 39 fields and no label. It is refused
  with a message rather than read one field off;
- CSV with a header naming the same columns (``label`` or ``Label``; an
  ``Id`` column is ignored), as in DeepCTR's sample.

Rows are in time order in the original files, so the ``time`` protocol keeps
file order.
"""

from __future__ import annotations

import logging
from typing import Any

from recnas.data.fields import Column, Rows
from recnas.data.readers.base import (
    FeatureDefs,
    Plan,
    Reader,
    RowFile,
    check_unique_names,
    expand_inputs,
    first_data_line,
    label_array,
)
from recnas.data.textio import Source

logger = logging.getLogger(__name__)

DENSE = tuple(f"I{i}" for i in range(1, 14))
SPARSE = tuple(f"C{i}" for i in range(1, 27))
TSV_COLUMNS = (
    (Column("label", "label01"),)
    + tuple(Column(n, "number") for n in DENSE)
    + tuple(Column(n, "hex") for n in SPARSE)
)


class CriteoReader(Reader):
    """Reader of Criteo files (see the module docstring)."""

    name = "criteo"

    def plan(self, inputs: list[str]) -> Plan:
        files = [self._row_file(src) for src in expand_inputs(inputs)]
        features = FeatureDefs(dense=DENSE, sparse=tuple((n, False) for n in SPARSE))
        return Plan(files, features, details={"time_order": "file order"})

    def _row_file(self, src: Source) -> RowFile:
        line = first_data_line(src)
        if "\t" in line or not line:
            fields = line.count("\t") + 1
            if fields == 39:
                raise ValueError(
                    f"criteo: {src.name} has 39 tab-separated fields: it is the "
                    "unlabeled Kaggle test file, which cannot be ingested as "
                    "training data (rows need a label in field 1)"
                )
            if fields != 40 and line:
                raise ValueError(
                    f"criteo: {src.name} line 1 has {fields} tab-separated fields; "
                    "Criteo training files have 40 (label, I1..I13, C1..C26)"
                )
            return RowFile(src, TSV_COLUMNS, "\t", layout="tsv")
        return self._csv_file(src, line)

    def _csv_file(self, src: Source, header: str) -> RowFile:
        names = [n.strip().strip('"') for n in header.split(",")]
        check_unique_names("criteo", src, names)
        kinds = {"label": "label01", "id": "skip"}
        kinds.update(dict.fromkeys((n.lower() for n in DENSE), "number"))
        kinds.update(dict.fromkeys((n.lower() for n in SPARSE), "hex"))
        missing = [
            n
            for n in ("label", *DENSE, *SPARSE)
            if n.lower() not in map(str.lower, names)
        ]
        unknown = [n for n in names if n.lower() not in kinds]
        if missing or unknown:
            raise ValueError(
                f"criteo: {src.name} is neither a 40-field TSV nor a CSV with the "
                f"header label,I1..I13,C1..C26 (missing: {', '.join(missing) or '-'}; "
                f"unknown: {', '.join(unknown) or '-'})"
            )
        if "id" in map(str.lower, names):
            logger.warning(
                "criteo: %s has an Id column, like the Kaggle test files whose "
                "Label is a placeholder (always 0): its labels are taken as given",
                src.name,
            )
        columns = []
        for n in names:
            canonical = next(
                (c for c in ("label", *DENSE, *SPARSE) if c.lower() == n.lower()), n
            )
            columns.append(Column(canonical, kinds[n.lower()]))
        return RowFile(
            src,
            tuple(columns),
            ",",
            header=True,
            quoted=True,
            layout="csv",
            expected_header=tuple(names),
        )

    def convert(self, rows: Rows, file: RowFile, context: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"label": label_array(rows.values["label"])}
        out.update({n: rows.values[n] for n in DENSE + SPARSE})
        return out
