"""Split protocols: autoctr_811 matches scikit-learn's StratifiedKFold exactly."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from recnas.data import protocols


def _sklearn_codes(labels: np.ndarray) -> np.ndarray:
    folds = np.empty(len(labels), dtype=np.int64)
    kfold = StratifiedKFold(n_splits=10, shuffle=True, random_state=2018)
    for fold, (_, test) in enumerate(kfold.split(np.zeros(len(labels)), labels)):
        folds[test] = fold
    return protocols.FOLD_TO_SPLIT[folds]


def _chunked_codes(labels: np.ndarray, cuts: list[int]) -> np.ndarray:
    """Codes computed the way ingest does: per chunk, from per-class folds."""
    classes = [int(labels[0])] + sorted(set(labels.tolist()) - {int(labels[0])})
    folds = protocols.autoctr_class_folds([int((labels == c).sum()) for c in classes])
    offsets = dict.fromkeys(classes, 0)
    out = []
    for part in np.split(labels, cuts):
        plan_folds = []
        for c, f in zip(classes, folds, strict=True):
            n = int((part == c).sum())
            plan_folds.append(f[offsets[c] : offsets[c] + n])
            offsets[c] += n
        out.append(
            protocols.chunk_codes(part, {"classes": classes, "folds": plan_folds})
        )
    return np.concatenate(out)


@pytest.mark.parametrize(
    ("n", "rate", "seed"),
    [(25, 0.5, 0), (997, 0.2, 1), (5003, 0.03, 2), (20_000, 0.7, 3)],
)
def test_autoctr_matches_stratified_kfold(n, rate, seed):
    labels = (np.random.default_rng(seed).random(n) < rate).astype(np.int8)
    labels[0] = seed % 2  # both orders of first appearance
    cuts = sorted(np.random.default_rng(seed).choice(np.arange(1, n), 3, replace=False))
    np.testing.assert_array_equal(_chunked_codes(labels, cuts), _sklearn_codes(labels))


def test_autoctr_refuses_too_few_rows():
    with pytest.raises(ValueError, match="use --protocol random or time"):
        protocols.autoctr_class_folds([4, 5])


def test_random_split_is_exact_and_seeded():
    codes = protocols.random_codes(1001, (0.8, 0.1, 0.1), seed=5)
    assert np.bincount(codes).tolist() == [801, 100, 100]
    np.testing.assert_array_equal(
        codes, protocols.random_codes(1001, (0.8, 0.1, 0.1), 5)
    )
    assert not np.array_equal(codes, protocols.random_codes(1001, (0.8, 0.1, 0.1), 6))


def test_time_split_orders_by_time_then_file_order():
    times = np.array([5, 1, 5, 3, 2, 9, 0, 5, 5, 4])
    codes = protocols.time_codes(10, (0.6, 0.2, 0.2), times)
    # Sorted: 0,1,2,3,4 | 5(idx0) 5(idx2) ... ; train = 6 oldest, ties by file order.
    assert codes.tolist() == [0, 0, 1, 0, 0, 2, 0, 1, 2, 0]
    assert protocols.time_codes(5, (0.6, 0.2, 0.2), None).tolist() == [0, 0, 0, 1, 2]


def test_bad_protocol_settings_are_named():
    with pytest.raises(ValueError, match="unknown protocol 'kfold'"):
        protocols.Protocol("kfold")
    with pytest.raises(ValueError, match="sum to 1"):
        protocols.Protocol("random", ratios=(0.5, 0.5, 0.5))
