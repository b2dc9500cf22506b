"""BatchLoader: equal steps on every rank, every row once in evaluation."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from recnas.data.ingest import ingest
from recnas.data.loader import BatchLoader, pad_lists

ZIP = (
    Path(__file__).resolve().parents[2]
    / "datasets"
    / "ml-latest-small"
    / "ml-latest-small.zip"
)


@pytest.fixture(scope="module")
def uri(tmp_path_factory):
    out = tmp_path_factory.mktemp("loader") / "ds"
    # Small row groups so that piece shuffling and rank cuts cross many pieces.
    ingest("movielens", [str(ZIP)], str(out), protocol="random", row_group_rows=3000)
    return str(out)


def _keys(batch) -> list[tuple[int, ...]]:
    """An identity per row: all its sparse ids plus its dense values."""
    cols = [batch.sparse, *batch.multi, (batch.dense * 1e4).long()]
    return [tuple(row) for row in torch.cat(cols, dim=1).tolist()]


@pytest.mark.parametrize("world", [1, 2, 3])
def test_eval_yields_every_row_once_across_ranks(uri, world):
    keys, total = [], 0
    for rank in range(world):
        loader = BatchLoader(
            uri,
            "val",
            batch_size=700,
            rank=rank,
            world_size=world,
            shuffle=False,
            drop_last=False,
        )
        batches = list(loader.epoch(0))
        assert len(batches) == loader.steps_per_epoch
        assert all(len(b) == 700 for b in batches[:-1])
        total += sum(len(b) for b in batches)
        keys += [k for b in batches for k in _keys(b)]
    reference = BatchLoader(
        uri, "val", batch_size=10**6, shuffle=False, drop_last=False
    )
    assert total == reference.meta.rows["val"]
    assert sorted(keys) == sorted(_keys(next(iter(reference.epoch(0)))))


def test_training_gives_equal_steps_and_disjoint_rows(uri):
    loaders = [
        BatchLoader(
            uri,
            "train",
            batch_size=512,
            rank=r,
            world_size=3,
            seed=7,
            shuffle_buffer=4096,
        )
        for r in range(3)
    ]
    steps = {loader.steps_per_epoch for loader in loaders}
    n = loaders[0].total_rows
    assert steps == {(n // 3) // 512}
    seen = []
    for loader in loaders:
        batches = list(loader.epoch(1))
        assert len(batches) == loader.steps_per_epoch
        assert all(len(b) == 512 for b in batches)
        seen.append(batches)
    # Ranks read disjoint rows: no row key appears in two ranks more often than
    # duplicates in the data allow.
    all_keys = [k for batches in seen for b in batches for k in _keys(b)]
    assert len(all_keys) == 3 * loaders[0].steps_per_epoch * 512
    assert len(set(all_keys)) > 0.99 * len(all_keys)


def test_epochs_are_seeded_and_resumable(uri):
    loader = BatchLoader(uri, "train", batch_size=256, seed=3, shuffle_buffer=2048)
    first = list(loader.epoch(0))
    again = list(loader.epoch(0))
    other = list(loader.epoch(1))
    assert all(
        torch.equal(a.sparse, b.sparse) for a, b in zip(first, again, strict=True)
    )
    assert not torch.equal(first[0].sparse, other[0].sparse)
    tail = list(loader.epoch(0, start_step=37))
    assert len(tail) == len(first) - 37
    assert all(
        torch.equal(a.sparse, b.sparse) for a, b in zip(tail, first[37:], strict=True)
    )
    labels = torch.cat([b.label for b in first])
    assert 0.3 < labels.mean().item() < 0.7  # shuffled: not one class in a row


def test_a_rank_with_less_than_a_batch_still_yields_one_full_batch(uri):
    loader = BatchLoader(
        uri, "val", batch_size=4096, rank=2, world_size=3, max_rows=900
    )
    batches = list(loader.epoch(0))
    assert loader.steps_per_epoch == 1 and len(batches) == 1
    assert len(batches[0]) == 4096


def test_max_rows_takes_a_prefix(uri):
    loader = BatchLoader(
        uri,
        ["val", "test"],
        batch_size=100,
        shuffle=False,
        drop_last=False,
        max_rows=250,
    )
    assert loader.total_rows == 250
    assert [len(b) for b in loader.epoch(0)] == [100, 100, 50]


def test_batch_shapes_match_the_feature_set(uri):
    loader = BatchLoader(uri, "test", batch_size=64, shuffle=False, drop_last=False)
    batch = next(iter(loader.epoch(0)))
    fs = loader.features
    assert batch.label.dtype == torch.float32 and batch.label.shape == (64,)
    assert batch.dense.shape == (64, fs.num_dense)
    assert (
        batch.sparse.shape == (64, len(fs.single)) and batch.sparse.dtype == torch.int64
    )
    assert [m.shape for m in batch.multi] == [(64, f.max_len) for f in fs.multi]


def test_stopping_early_releases_the_prefetch_thread(uri):
    before = set(threading.enumerate())
    loader = BatchLoader(uri, "train", batch_size=32, prefetch=2)
    iterator = loader.epoch(0)
    next(iterator)
    started = [t for t in threading.enumerate() if t not in before]
    assert [t.name for t in started] == ["recnas-loader"]
    iterator.close()  # must not hang
    assert not started[0].is_alive()


def test_background_and_inline_preparation_give_the_same_batches(uri):
    def batches(prefetch: int) -> list:
        loader = BatchLoader(
            uri, "train", batch_size=300, seed=5, shuffle_buffer=2000, prefetch=prefetch
        )
        return list(loader.epoch(2, start_step=3))

    inline, background = batches(0), batches(1)
    assert len(inline) == len(background) > 10
    for a, b in zip(inline, background, strict=True):
        assert torch.equal(a.sparse, b.sparse) and torch.equal(a.dense, b.dense)
        assert all(torch.equal(x, y) for x, y in zip(a.multi, b.multi, strict=True))


def test_bad_arguments_are_named(uri):
    with pytest.raises(ValueError, match="rank 3 is not in"):
        BatchLoader(uri, "val", batch_size=8, rank=3, world_size=3)
    with pytest.raises(ValueError, match="has no split 'dev'"):
        BatchLoader(uri, "dev", batch_size=8)
    small = BatchLoader(uri, "val", batch_size=8).features
    shrunk = type(small)(dense=small.dense, sparse=(type(small.sparse[0])("user", 5),))
    with pytest.raises(ValueError, match="smaller than the dataset's"):
        BatchLoader(uri, "val", shrunk, batch_size=8)


def test_pad_lists_pads_and_truncates():
    import pyarrow as pa

    column = pa.array([[3, 4], [], None, [5, 6, 7, 8]], pa.list_(pa.int32()))
    expected = np.array([[3, 4, 0], [0, 0, 0], [0, 0, 0], [5, 6, 7]])
    np.testing.assert_array_equal(pad_lists(column, 3), expected)
