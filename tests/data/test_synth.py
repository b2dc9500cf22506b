"""The scale generator: real schema, real missing rates, skewed ids, reproducible."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

from recnas.data.ingest import ingest
from recnas.data.synth import CRITEO_SPARSE_MISSING, synthesize, write_raw

from .helpers import check_dataset, read_split


@pytest.mark.parametrize("like", ["criteo", "avazu", "kdd2012"])
def test_raw_files_ingest_without_rejects_and_are_reproducible(like, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    write_raw(like, 3_000, str(a), seed=5, block_rows=1_000)
    write_raw(like, 3_000, str(b), seed=5, block_rows=1_000)
    assert a.read_bytes() == b.read_bytes()
    meta = ingest(like, [str(a)], str(tmp_path / "o"), max_rejected_fraction=0.0)
    check_dataset(meta)
    assert meta.rows_read == 3_000


def test_criteo_missing_rates_and_skew(tmp_path):
    path = tmp_path / "train.txt"
    stats = write_raw("criteo", 20_000, str(path), seed=1)
    assert 0.2 < stats["positives"] / 20_000 < 0.35
    lines = [line.split("\t") for line in path.read_text().splitlines()]
    assert {len(f) for f in lines} == {40}
    for j, rate in enumerate(CRITEO_SPARSE_MISSING):
        missing = sum(1 for f in lines if f[14 + j] == "") / len(lines)
        assert abs(missing - rate) < 0.02, f"C{j + 1}"
    # Zipf-like: the most frequent C3 value is far above uniform over 10 M values.
    values, counts = np.unique([f[16] for f in lines if f[16]], return_counts=True)
    assert counts.max() > 200 and len(values) > 1_000


def test_synthesize_marks_the_dataset_synthetic(tmp_path):
    meta = synthesize("criteo", 2_000, str(tmp_path / "s"), seed=2)
    assert meta.synthetic and meta.details["synthetic"]["like"] == "criteo"
    assert not (tmp_path / "s" / "_raw").exists()
    table = read_split(meta, "train")
    assert pc.max(table["C1"]).as_py() < meta.features.sparse[0].vocab_size


def test_unknown_like_is_refused(tmp_path):
    with pytest.raises(ValueError, match="use one of criteo, avazu, kdd2012"):
        write_raw("movielens", 10, str(tmp_path / "x"))
