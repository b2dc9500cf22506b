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
COUNTS_SCHEMA = pa.schema([("value", pa.uint64()), ("count", pa.int64())])


def count_values(values: pa.Array, rows: np.ndarray | None = None) -> pa.Table:
    """Counts of each non-null value (of the rows under the mask ``rows``).

    Returns:
        A table ``(value uint64, count int64)``.
    """
    if rows is not None:
        values = values.filter(pa.array(rows))
    if pa.types.is_dictionary(values.type):
        codes = values.indices.drop_null().to_numpy(zero_copy_only=False)
        counts = np.bincount(codes, minlength=len(values.dictionary))
        keep = np.flatnonzero(counts)
        return pa.table(
            {
                "value": values.dictionary.take(pa.array(keep)).cast(pa.uint64()),
                "count": pa.array(counts[keep].astype(np.int64)),
            }
        )
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
        return COUNTS_SCHEMA.empty_table()
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
class Lookup:
    """A sorted table from raw values to numbers (ids or counts).

    Sorted arrays and a binary search: built once on the driver, shipped to
    every task, and looked up without rebuilding any hash table.
    """

    keys: np.ndarray
    values: np.ndarray

    @classmethod
    def from_table(cls, keys: pa.Array, values: np.ndarray) -> Lookup:
        raw = keys.to_numpy(zero_copy_only=False).astype(np.uint64)
        order = np.argsort(raw, kind="stable")
        return cls(raw[order], np.asarray(values)[order])

    def find(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Looked-up values of ``raw`` (0 where absent) and whether each was found."""
        if len(self.keys) == 0:
            return np.zeros(len(raw), self.values.dtype), np.zeros(len(raw), bool)
        pos = np.minimum(np.searchsorted(self.keys, raw), len(self.keys) - 1)
        found = self.keys[pos] == raw
        return np.where(found, self.values[pos], 0), found


@dataclass
class Encoder:
    """Maps the raw values of sparse features to ids, and values to train counts.

    Attributes:
        kind: ``vocab`` or ``hash``.
        sizes: Per feature, its table size (ids 0 and 1 included).
        vocab: Per feature (vocab kind), raw value -> id.
        counts: Per counted feature, raw value -> train count, for dense counts.
    """

    kind: str
    sizes: dict[str, int]
    vocab: dict[str, Lookup] = field(default_factory=dict)
    counts: dict[str, Lookup] = field(default_factory=dict)

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
        if pa.types.is_dictionary(values.type):
            # Look up each distinct value once, then spread to the rows.
            per_value = self._ids(name, values.dictionary)
            codes = values.indices.fill_null(0).to_numpy(zero_copy_only=False)
            ids = per_value[codes] if len(per_value) else np.zeros(len(codes), np.int64)
            ids[_nulls(values)] = MISSING_ID
            return ids
        missing = _nulls(values)
        raw = values.fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64)
        if self.kind == "hash":
            span = np.uint64(self.sizes[name] - FIRST_ID)
            ids = (raw % span).astype(np.int64) + FIRST_ID
        else:
            ids, found = self.vocab[name].find(raw)
            ids = np.where(found, ids, OOV_ID).astype(np.int64)
        ids[missing] = MISSING_ID
        return ids

    def train_counts(self, name: str, values: pa.Array) -> np.ndarray:
        """Train rows holding each value of ``name`` (0 for unseen or missing)."""
        if pa.types.is_dictionary(values.type):
            per_value = self.train_counts(name, values.dictionary)
            codes = values.indices.fill_null(0).to_numpy(zero_copy_only=False)
            counts = per_value[codes] if len(per_value) else np.zeros(len(codes))
        else:
            raw = values.fill_null(0).to_numpy(zero_copy_only=False).astype(np.uint64)
            counts = self.counts[name].find(raw)[0].astype(np.float64)
        counts[_nulls(values)] = 0.0
        return counts


def _nulls(values: pa.Array) -> np.ndarray:
    if values.null_count == 0:
        return np.zeros(len(values), dtype=bool)
    return values.is_null().to_numpy(zero_copy_only=False)


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
