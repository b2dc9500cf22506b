"""Protocols: how the rows of a dataset are split into train, val and test.

- ``autoctr_811``: NASRec's split. Stratified 10 folds on the label, shuffled
  with seed 2018, exactly as scikit-learn's ``StratifiedKFold(n_splits=10,
  shuffle=True, random_state=2018)`` assigns them over the labels in file
  order; folds 0-7 train, 8 val, 9 test. Rows keep their file order inside a
  split.
- ``random``: a seeded permutation; exactly ``round(n * ratio)`` rows go to
  val and test, the rest to train.
- ``time``: rows ordered by timestamp (file order where the data has none,
  ties broken by file order); the oldest go to train, the newest to test.

Ingest works on chunks, so the split of a row is computed on the driver as an
int8 code per row (0 train, 1 val, 2 test) and handed to each chunk as a
slice; for ``autoctr_811`` the driver hands each chunk the folds of its rows of
each class, which is all the class-blocked assignment of scikit-learn needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

SPLITS = ("train", "val", "test")
PROTOCOLS = ("autoctr_811", "random", "time")
AUTOCTR_FOLDS = 10
AUTOCTR_SEED = 2018
# Folds 0-7 train, 8 val, 9 test.
FOLD_TO_SPLIT = np.array([0] * 8 + [1, 2], dtype=np.int8)


@dataclass(frozen=True)
class Protocol:
    """A split protocol and its settings.

    Attributes:
        name: One of ``PROTOCOLS``.
        seed: Shuffle seed (``autoctr_811`` always uses 2018).
        ratios: Train, val and test fractions (``random`` and ``time``).
    """

    name: str = "autoctr_811"
    seed: int = AUTOCTR_SEED
    ratios: tuple[float, float, float] = field(default=(0.8, 0.1, 0.1))

    def __post_init__(self) -> None:
        if self.name not in PROTOCOLS:
            raise ValueError(
                f"unknown protocol {self.name!r}: use one of {', '.join(PROTOCOLS)}"
            )
        ratios = tuple(float(r) for r in self.ratios)
        if len(ratios) != 3 or min(ratios) < 0 or abs(sum(ratios) - 1.0) > 1e-6:
            raise ValueError(
                f"protocol ratios {self.ratios!r}: give three non-negative "
                "fractions for train, val and test that sum to 1, e.g. 0.8,0.1,0.1"
            )
        object.__setattr__(self, "ratios", ratios)
        if self.name == "autoctr_811":
            object.__setattr__(self, "seed", AUTOCTR_SEED)
            object.__setattr__(self, "ratios", (0.8, 0.1, 0.1))

    def to_dict(self) -> dict[str, Any]:
        if self.name == "autoctr_811":
            return {
                "name": self.name,
                "seed": self.seed,
                "folds": AUTOCTR_FOLDS,
                "train_folds": list(range(8)),
                "val_folds": [8],
                "test_folds": [9],
                "stratify": "label",
            }
        return {"name": self.name, "seed": self.seed, "ratios": list(self.ratios)}


def split_sizes(n: int, ratios: tuple[float, float, float]) -> tuple[int, int, int]:
    """Rows of train, val and test: val and test rounded, train the rest."""
    n_val = int(round(n * ratios[1]))
    n_test = min(int(round(n * ratios[2])), n - n_val)
    return n - n_val - n_test, n_val, n_test


def _codes_by_rank(n: int, ratios: tuple[float, float, float]) -> np.ndarray:
    n_train, n_val, _ = split_sizes(n, ratios)
    codes = np.full(n, 2, dtype=np.int8)
    codes[:n_train] = 0
    codes[n_train : n_train + n_val] = 1
    return codes


def random_codes(n: int, ratios: tuple[float, float, float], seed: int) -> np.ndarray:
    """Split codes of ``n`` rows in file order for the ``random`` protocol."""
    by_rank = _codes_by_rank(n, ratios)
    codes = np.empty(n, dtype=np.int8)
    codes[np.random.default_rng(seed).permutation(n)] = by_rank
    return codes


def time_codes(
    n: int, ratios: tuple[float, float, float], times: np.ndarray | None
) -> np.ndarray:
    """Split codes for the ``time`` protocol; ``times`` None means file order."""
    by_rank = _codes_by_rank(n, ratios)
    if times is None:
        return by_rank
    if len(times) != n:
        raise AssertionError(f"{len(times)} timestamps for {n} rows")
    codes = np.empty(n, dtype=np.int8)
    codes[np.argsort(times, kind="stable")] = by_rank
    return codes


def autoctr_class_folds(class_counts: list[int]) -> list[np.ndarray]:
    """The test fold of each row of each class, classes in order of appearance.

    This is the class-blocked, shuffled fold assignment of scikit-learn's
    ``StratifiedKFold(n_splits=10, shuffle=True, random_state=2018)``: the
    i-th row (in file order) of the k-th class to appear gets ``folds[k][i]``.

    Raises:
        ValueError: If no class has 10 rows, as scikit-learn refuses too.
    """
    counts = np.asarray(class_counts, dtype=np.int64)
    n_splits = AUTOCTR_FOLDS
    if counts.sum() < n_splits or np.all(counts < n_splits):
        raise ValueError(
            f"protocol autoctr_811 needs at least {n_splits} rows of one label "
            f"(label counts: {counts.tolist()}); use --protocol random or time "
            "for so small a dataset"
        )
    # Round robin over the labels sorted by class: the same per-fold allocation
    # scikit-learn computes with bincount over y_order[i::n_splits].
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    allocation = np.zeros((n_splits, len(counts)), dtype=np.int64)
    for k, (start, count) in enumerate(zip(starts, counts, strict=True)):
        # Positions start..start+count-1 of the sorted labels belong to class k;
        # position p falls into fold p % n_splits.
        first = (np.arange(n_splits) - start) % n_splits
        allocation[:, k] = np.maximum(0, (count - first + n_splits - 1) // n_splits)
    rng = np.random.RandomState(AUTOCTR_SEED)
    folds = []
    for k in range(len(counts)):
        folds_for_class = np.arange(n_splits).repeat(allocation[:, k])
        rng.shuffle(folds_for_class)
        folds.append(folds_for_class.astype(np.int8))
    return folds


def chunk_codes(labels: np.ndarray, plan: dict[str, Any]) -> np.ndarray:
    """Split codes of one chunk's rows from the plan the driver made for it.

    Args:
        labels: The chunk's labels (0 or 1), in file order.
        plan: ``{"codes": int8 array}``, or for ``autoctr_811``
            ``{"classes": [label, ...], "folds": [int8 array per class]}`` with
            the folds of this chunk's rows of each class.
    """
    if "codes" in plan:
        codes = plan["codes"]
        if len(codes) != len(labels):
            raise AssertionError(f"{len(codes)} split codes for {len(labels)} rows")
        return codes
    codes = np.empty(len(labels), dtype=np.int8)
    for label, folds in zip(plan["classes"], plan["folds"], strict=True):
        mask = labels == label
        if int(mask.sum()) != len(folds):
            raise AssertionError(f"{len(folds)} folds for {int(mask.sum())} rows")
        codes[mask] = FOLD_TO_SPLIT[folds]
    return codes
