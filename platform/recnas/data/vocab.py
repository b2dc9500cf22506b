"""Sparse ids: vocabularies counted on the train split, or modulo hashing.

Either way id 0 is missing and id 1 is out-of-vocabulary, and every id is
checked to lie in its table before it is written.

- ``vocab``: values seen at least ``min_count`` times in train get ids 2, 3,
  ... in order of falling count (ties by value); rarer values and values never
  seen in train get id 1.
- ``hash``: NASRec's modulo hashing: ``2 + value % (size - 2)`` for a table
  of ``size`` rows (the raw value of a hex id is the id itself, of a string a
  stable 64-bit hash).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recnas.data.features import MISSING_ID, OOV_ID

ENCODINGS = ("vocab", "hash")
FIRST_ID = 2


def count_values(values: pa.Array) -> pa.Table:
    """Counts of each non-null value: a table ``(value uint64, count int64)``."""
    if pa.types.is_list(values.type):
        values = pc.list_flatten(values)
    counts = pc.value_counts(values.drop_null())
    return pa.table(
        {
            "value": counts.field("values").cast(pa.uint64()),
            "count": counts.field("counts").cast(pa.int64()),
        }
    )


def merge_counts(tables: list[pa.Table]) -> pa.Table:
    """Sums the counts of several ``(value, count)`` tables."""
    if not tables:
        return pa.table(
            {"value": pa.array([], pa.uint64()), "count": pa.array([], pa.int64())}
        )
    if len(tables) == 1:
        return tables[0]
    merged = pa.concat_tables(tables).group_by("value").aggregate([("count", "sum")])
    return merged.rename_columns(["value", "count"])


def build_vocab(counts: pa.Table, min_count: int) -> pa.Table:
    """The vocabulary ``(value, id, count)`` of one feature, in id order."""
    kept = counts.filter(pc.greater_equal(counts["count"], min_count))
    order = pc.sort_indices(
        kept, sort_keys=[("count", "descending"), ("value", "ascending")]
    )
    kept = kept.take(order)
    ids = pa.array(np.arange(FIRST_ID, FIRST_ID + kept.num_rows, dtype=np.int32))
    return pa.table({"value": kept["value"], "id": ids, "count": kept["count"]})


@dataclass
class Encoder:
    """Maps the raw values of sparse features to ids, and values to train counts.

    Attributes:
        kind: ``vocab`` or ``hash``.
        vocab: Per feature (vocab kind), its values in id order.
        sizes: Per feature, its table size (ids 0 and 1 included).
        counts: Per counted feature, ``(values, train counts)``, for dense counts.
    """

    kind: str
    sizes: dict[str, int]
    vocab: dict[str, pa.Array] = field(default_factory=dict)
    counts: dict[str, tuple[pa.Array, np.ndarray]] = field(default_factory=dict)

    def encode(self, name: str, values: pa.Array) -> pa.Array:
        """int32 ids (or list<int32> for a list array) of a feature's raw values."""
        if pa.types.is_list(values.type):
            flat = self.encode(name, pc.list_flatten(values))
            offsets = values.offsets
            if values.offset or offsets[0].as_py() != 0:
                offsets = pc.subtract(offsets, offsets[0])
            return pa.ListArray.from_arrays(offsets, flat)
        ids = self._ids(name, values)
        size = self.sizes[name]
        if len(ids) and (ids.min() < 0 or ids.max() >= size):
            raise AssertionError(f"feature {name}: id outside its table of {size}")
        return pa.array(ids, type=pa.int32())

    def _ids(self, name: str, values: pa.Array) -> np.ndarray:
        missing = values.is_null().to_numpy(zero_copy_only=False)
        if self.kind == "hash":
            raw = values.fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64)
            span = np.uint64(self.sizes[name] - FIRST_ID)
            ids = (raw % span).astype(np.int64) + FIRST_ID
        else:
            pos = pc.index_in(values, value_set=self.vocab[name])
            found = ~pos.is_null().to_numpy(zero_copy_only=False)
            ids = pos.fill_null(OOV_ID - FIRST_ID).to_numpy(zero_copy_only=False)
            ids = ids.astype(np.int64) + FIRST_ID
            ids[~found] = OOV_ID
        ids[missing] = MISSING_ID
        return ids

    def train_counts(self, name: str, values: pa.Array) -> np.ndarray:
        """Train rows holding each value of ``name`` (0 for unseen or missing)."""
        keys, counts = self.counts[name]
        pos = pc.index_in(values, value_set=keys)
        found = ~pos.is_null().to_numpy(zero_copy_only=False)
        idx = pos.fill_null(0).to_numpy(zero_copy_only=False)
        out = np.zeros(len(values), dtype=np.float64)
        if len(counts):
            out[found] = counts[idx[found]]
        return out


def hash_sizes(features: tuple[str, ...], hash_size: Any) -> dict[str, int]:
    """Table sizes for modulo hashing from an int (all features) or a mapping.

    Raises:
        ValueError: If a feature has no size or a size below 3.
    """
    if isinstance(hash_size, int):
        sizes = dict.fromkeys(features, hash_size)
    elif isinstance(hash_size, dict):
        unknown = sorted(set(hash_size) - set(features) - {"*"})
        if unknown:
            raise ValueError(
                f"hash_size names unknown feature(s) {', '.join(unknown)}; "
                f"features: {', '.join(features)}"
            )
        default = hash_size.get("*")
        sizes = {f: int(hash_size.get(f, default or 0)) for f in features}
    else:
        raise ValueError(
            "encoding 'hash' needs hash_size: one table size for every feature "
            "(e.g. 1000000) or a mapping feature -> size"
        )
    small = [f for f, s in sizes.items() if s < 3]
    if small:
        raise ValueError(
            f"hash_size for {', '.join(small)} must be at least 3 "
            "(ids 0 and 1 are reserved)"
        )
    return sizes
