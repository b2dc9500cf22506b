"""Shared checks for processed datasets."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from recnas.data.meta import DatasetMeta


def read_split(meta: DatasetMeta, split: str) -> pa.Table:
    """All parts of a split, in order, as one table."""
    uris = meta.split_uris(split)
    if not uris:
        return pa.table({})
    return pa.concat_tables(pq.read_table(u) for u in uris)


def check_dataset(meta: DatasetMeta) -> None:
    """Counts, schema, id ranges and finiteness of every split."""
    assert meta.rows_read == sum(meta.rows.values()) + sum(meta.rejected.values())
    fs = meta.features
    for split in meta.splits:
        table = read_split(meta, split)
        assert (
            table.num_rows
            == meta.rows[split]
            == sum(f["rows"] for f in meta.files[split])
        )
        if table.num_rows == 0:
            continue
        assert table.schema.field("label").type == pa.float32()
        labels = table["label"].to_numpy()
        assert set(np.unique(labels).tolist()) <= {0.0, 1.0}
        for name in fs.dense:
            assert table.schema.field(name).type == pa.float32()
            values = table[name].to_numpy()
            assert np.isfinite(values).all() and (values >= 0).all(), name
        for f in fs.sparse:
            column = table[f.name]
            if f.multi_valued:
                assert table.schema.field(f.name).type.value_type == pa.int32()
                column = pc.list_flatten(column)
            else:
                assert table.schema.field(f.name).type == pa.int32()
            assert column.null_count == 0
            if len(column):
                assert pc.min(column).as_py() >= 0, f.name
                assert pc.max(column).as_py() < f.vocab_size, f.name


def write_criteo(path, rows: int, seed: int = 0) -> None:
    """A random Criteo training file (40 tab-separated fields) of ``rows`` lines."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < 0.25).astype(int)
    dense = rng.integers(-1, 1000, size=(rows, 13))
    dense_missing = rng.random((rows, 13)) < 0.2
    sparse = rng.integers(0, 2**32, size=(rows, 26), dtype=np.uint64) % rng.integers(
        2, 5000, size=26, dtype=np.uint64
    )
    sparse_missing = rng.random((rows, 26)) < 0.1
    lines = []
    for i in range(rows):
        d = ["" if dense_missing[i, j] else str(dense[i, j]) for j in range(13)]
        s = [
            ""
            if sparse_missing[i, j]
            else f"{int(sparse[i, j]) * 2654435761 % 2**32:08x}"
            for j in range(26)
        ]
        lines.append("\t".join([str(labels[i]), *d, *s]))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def rejected_rows(meta) -> list[dict]:
    """Every row of a dataset's rejected-rows files, in file order."""
    rows = []
    for part in meta.rejected_files:
        rows += pq.read_table(f"{meta.uri}/{part['path']}").to_pylist()
    return rows
