"""Sparse ids: vocabularies counted on the train split, or modulo hashing.

Either way id 0 is missing and id 1 is out-of-vocabulary, and every id is
checked to lie in its table before it is written.

- ``vocab``: values seen at least ``min_count`` times in train get ids 2, 3,
  ... in order of falling count (ties by value); rarer values and values never
  seen in train get id 1.
- ``hash``: NASRec's modulo hashing: ``2 + value % (size - 2)`` for a table
  of ``size`` rows (the raw value of a hex id is the id itself, of a string a
  stable 64-bit hash).

Counting works on the dictionaries of the staged blocks: each block's
dictionary entries get their train counts (:func:`entry_counts`), and
:class:`Groups` merges the entries of every block into groups of equal values,
remembering each entry's group. Ids and train counts are then known per group,
and a block's rows get theirs through its entries' groups: no value is looked
up row by row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from recnas.data.features import MISSING_ID, OOV_ID
from recnas.data.fields import fixed_values, null_mask

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


def entry_counts(values: pa.Array, rows: np.ndarray) -> pa.Table:
    """Counts of some rows per dictionary entry of ``values``.

    For a dictionary array the table has one row per dictionary entry, in
    dictionary order, zero counts included (an entry's position is its
    dictionary index). For other arrays it is :func:`count_values`.

    Args:
        values: Raw values.
        rows: Positions of the rows to count (int), in increasing order.
    """
    if not pa.types.is_dictionary(values.type):
        mask = np.zeros(len(values), dtype=bool)
        mask[rows] = True
        return count_values(values, mask)
    size = len(values.dictionary)
    # Null rows count in an extra bin past the end, dropped.
    codes = values.indices.fill_null(size).to_numpy(zero_copy_only=False)
    counts = np.bincount(codes[rows], minlength=size + 1)[:size]
    return pa.table(
        {
            "value": values.dictionary.cast(pa.uint64()),
            "count": pa.array(counts.astype(np.int64)),
        }
    )


class Groups:
    """Distinct values met so far with their summed counts.

    Values keep the group (position) they first got as more tables are
    added, so the groups handed out earlier stay valid. Groups are numbered
    in order of first appearance. Known values are found again through a
    sorted index (a binary search), so an added table costs a hash of its own
    entries only, not of every value met before: tables can be added a few
    at a time (bounded memory) at little extra cost.
    """

    def __init__(self) -> None:
        self.values = pa.array([], pa.uint64())
        self.counts = np.zeros(0, dtype=np.int64)
        self._sorted = np.zeros(0, dtype=np.uint64)  # known values, sorted
        self._sorted_groups = np.zeros(0, dtype=np.int32)  # and their groups

    def add(self, tables: list[pa.Table]) -> list[np.ndarray]:
        """Adds ``(value, count)`` tables; returns the group of each table row."""
        known = len(self.values)
        parts = [t["value"].combine_chunks().cast(pa.uint64()) for t in tables]
        values = pa.concat_arrays(parts) if parts else pa.array([], pa.uint64())
        hashed = values
        if len(values) and pc.max(values).as_py() < 2**32:
            hashed = values.cast(pa.uint32())  # a smaller, faster hash table
        encoded = pc.dictionary_encode(hashed)
        distinct = encoded.dictionary.to_numpy(zero_copy_only=False)
        distinct = distinct.astype(np.uint64)
        codes = encoded.indices.to_numpy(zero_copy_only=False)
        group_of = np.empty(len(distinct), dtype=np.int32)
        found = np.zeros(len(distinct), dtype=bool)
        if known and len(distinct):
            at = np.minimum(np.searchsorted(self._sorted, distinct), known - 1)
            found = self._sorted[at] == distinct
            group_of[found] = self._sorted_groups[at[found]]
        fresh = np.flatnonzero(~found)  # in order of first appearance
        group_of[fresh] = np.arange(known, known + len(fresh), dtype=np.int32)
        groups = group_of[codes]
        weights = np.concatenate(
            [t["count"].to_numpy().astype(np.int64) for t in tables]
            or [np.zeros(0, np.int64)]
        )
        # Float sums of integers are exact below 2**53 counts.
        sums = np.bincount(groups, weights=weights, minlength=known + len(fresh))
        self.counts = np.concatenate(
            [self.counts, np.zeros(len(fresh), np.int64)]
        ) + sums.astype(np.int64)
        new_values = distinct[fresh]
        self.values = pa.concat_arrays([self.values, pa.array(new_values, pa.uint64())])
        order = np.argsort(new_values, kind="stable")
        where = np.searchsorted(self._sorted, new_values[order])
        self._sorted = np.insert(self._sorted, where, new_values[order])
        self._sorted_groups = np.insert(
            self._sorted_groups, where, group_of[fresh][order]
        )
        bounds = np.cumsum([0] + [t.num_rows for t in tables])
        return [groups[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def vocab_order(values: np.ndarray, counts: np.ndarray, min_count: int) -> np.ndarray:
    """Positions of the (distinct) values that get an id, in id order.

    Values counted at least ``min_count`` times, by falling count, ties by value.
    """
    kept = np.flatnonzero(counts >= min_count)
    v, c = values[kept].astype(np.uint64), counts[kept]
    if len(kept) and v.max() < 2**32 and c.max() < 2**31:
        # Both keys in one: (2**31 - count) in the high half, value in the low.
        key = ((np.uint64(2**31) - c.astype(np.uint64)) << np.uint64(32)) | v
        return kept[np.argsort(key)]
    by_value = np.argsort(v, kind="stable")
    return kept[by_value[np.argsort(-c[by_value], kind="stable")]]


def group_vocab(groups: Groups, min_count: int) -> tuple[pa.Table, np.ndarray]:
    """The vocabulary ``(value, id, count)`` of merged groups, and each group's id."""
    values = groups.values.to_numpy(zero_copy_only=False)
    order = vocab_order(values, groups.counts, min_count)
    ids = np.full(len(values), OOV_ID, dtype=np.int32)
    ids[order] = np.arange(FIRST_ID, FIRST_ID + len(order), dtype=np.int32)
    table = pa.table(
        {
            "value": pa.array(values[order], pa.uint64()),
            "id": pa.array(ids[order]),
            "count": pa.array(groups.counts[order]),
        }
    )
    return table, ids


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
    values = counts["value"].to_numpy().astype(np.uint64)
    numbers = counts["count"].to_numpy().astype(np.int64)
    order = vocab_order(values, numbers, min_count)
    ids = np.arange(FIRST_ID, FIRST_ID + len(order), dtype=np.int32)
    return pa.table(
        {
            "value": pa.array(values[order], pa.uint64()),
            "id": pa.array(ids),
            "count": pa.array(numbers[order]),
        }
    )


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
        group_ids: Per feature (vocab kind), the id of every group of
            :class:`Groups`; used for dictionary arrays whose entries' groups
            are given.
        group_counts: Per counted feature, the train count of every group.
    """

    kind: str
    sizes: dict[str, int]
    vocab: dict[str, Lookup] = field(default_factory=dict)
    counts: dict[str, Lookup] = field(default_factory=dict)
    group_ids: dict[str, np.ndarray] = field(default_factory=dict)
    group_counts: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def grouped(self) -> tuple[str, ...]:
        """Features whose dictionary entries' groups the encoder needs."""
        return tuple(sorted(set(self.group_ids) | set(self.group_counts)))

    def encode(
        self, name: str, values: pa.Array, groups: np.ndarray | None = None
    ) -> pa.Array:
        """int32 ids (or list<int32> for a list array) of a feature's raw values.

        Args:
            name: The feature.
            values: Raw values: uint64, dictionary-encoded or a list array.
            groups: For a dictionary array, the group of each dictionary entry.
        """
        if pa.types.is_list(values.type):
            flat = self.encode(name, pc.list_flatten(values))
            offsets = values.offsets
            if values.offset or offsets[0].as_py() != 0:
                offsets = pc.subtract(offsets, offsets[0])
            return pa.ListArray.from_arrays(offsets, flat)
        ids = self._ids(name, values, groups)
        size = self.sizes[name]
        if len(ids) and (ids.min() < 0 or ids.max() >= size):
            raise AssertionError(f"feature {name}: id outside its table of {size}")
        return pa.array(ids.astype(np.int32, copy=False), type=pa.int32())

    def _ids(
        self, name: str, values: pa.Array, groups: np.ndarray | None = None
    ) -> np.ndarray:
        if pa.types.is_dictionary(values.type):
            # Each distinct value's id once (by its group when known), then
            # spread to the rows.
            if groups is not None and self.kind == "vocab":
                per_value = self.group_ids[name][groups]
            else:
                per_value = self._ids(name, values.dictionary)
            return _spread(per_value, values, MISSING_ID)
        raw = fixed_values(values.cast(pa.uint64()))  # anything under nulls
        if self.kind == "hash":
            span = np.uint64(self.sizes[name] - FIRST_ID)
            ids = (raw % span).astype(np.int32)  # table sizes fit int32
            ids += FIRST_ID
        else:
            ids, found = self.vocab[name].find(raw)
            ids = np.where(found, ids, OOV_ID).astype(np.int32)
        if values.null_count:
            ids[null_mask(values)] = MISSING_ID
        return ids

    def train_counts(
        self, name: str, values: pa.Array, groups: np.ndarray | None = None
    ) -> np.ndarray:
        """Train rows holding each value of ``name`` (0 for unseen or missing)."""
        if pa.types.is_dictionary(values.type):
            if groups is not None:
                per_value = self.group_counts[name][groups].astype(np.float64)
            else:
                per_value = self.train_counts(name, values.dictionary)
            return _spread(per_value, values, 0.0)
        raw = fixed_values(values.cast(pa.uint64()))  # anything under nulls
        counts = self.counts[name].find(raw)[0].astype(np.float64)
        if values.null_count:
            counts[null_mask(values)] = 0.0
        return counts


def _spread(
    per_value: np.ndarray, values: pa.DictionaryArray, missing: Any
) -> np.ndarray:
    """Per-entry numbers of a dictionary array spread to its rows."""
    if len(per_value) == 0:
        return np.full(len(values), missing, dtype=per_value.dtype)
    # Null rows take an extra entry past the end.
    table = np.append(per_value, np.array(missing, dtype=per_value.dtype))
    codes = values.indices.fill_null(len(per_value))
    return table[codes.to_numpy(zero_copy_only=False)]


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
    large = [f for f, s in sizes.items() if s > 2**31 - 1]
    if large:
        raise ValueError(
            f"hash_size for {', '.join(large)} must be below 2**31 (ids are int32)"
        )
    return sizes
