"""Where the training loop gets its batches.

A :class:`DataSource` hands each worker its shard of the training splits (an
equal number of steps per epoch on every worker) and of an evaluation split
(every row exactly once across workers, shares may differ). Runs read a
processed dataset through :class:`DatasetSource`; :class:`TensorSource` serves
batches held in memory (single-process scoring, benchmarks, small tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Protocol

import torch

from recnas.data.features import Batch, FeatureSet
from recnas.train.config import TrainConfig


class TrainLoader(Protocol):
    """Training batches of one worker: ``steps_per_epoch`` batches per epoch."""

    steps_per_epoch: int

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]: ...


class DataSource(Protocol):
    """The features and the per-worker loaders of one dataset."""

    features: FeatureSet

    def train(self, rank: int, world_size: int) -> TrainLoader: ...

    def evaluation(self, split: str, rank: int, world_size: int) -> Iterable[Batch]: ...


class DatasetSource:
    """A processed dataset (local folder or ``s3://``) read by ``BatchLoader``."""

    def __init__(self, config: TrainConfig) -> None:
        from recnas.data.meta import load_meta

        self.config = config
        self.meta = load_meta(config.data)
        self.features = self.meta.features

    def train(self, rank: int, world_size: int) -> TrainLoader:
        from recnas.data.loader import BatchLoader

        cfg = self.config
        return BatchLoader(
            cfg.data,
            list(cfg.train_splits),
            self.features,
            batch_size=cfg.batch_size,
            rank=rank,
            world_size=world_size,
            shuffle=True,
            seed=cfg.seed,
            max_rows=cfg.max_train_rows,
            meta=self.meta,
        )

    def evaluation(self, split: str, rank: int, world_size: int) -> Iterable[Batch]:
        from recnas.data.loader import BatchLoader

        cfg = self.config
        loader = BatchLoader(
            cfg.data,
            split,
            self.features,
            batch_size=cfg.batch_size,
            rank=rank,
            world_size=world_size,
            shuffle=False,
            drop_last=False,
            max_rows=cfg.max_eval_rows,
            meta=self.meta,
        )
        return loader.epoch(0)


class TensorLoader:
    """Training batches of one worker from in-memory rows.

    Rows ``rank::world_size`` belong to the worker; each epoch shuffles them
    with ``(seed, epoch)`` and drops the last partial batch. ``steps_per_epoch``
    uses the smallest shard, so every worker takes the same number of steps.
    """

    def __init__(
        self, rows: Batch, batch_size: int, rank: int, world_size: int, seed: int
    ) -> None:
        n = len(rows)
        self.rows = rows.take(torch.arange(rank, n, world_size))
        self.batch_size = batch_size
        self.seed = seed
        self.steps_per_epoch = (n // world_size) // batch_size

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.rows), generator=g)
        for step in range(start_step, self.steps_per_epoch):
            index = order[step * self.batch_size : (step + 1) * self.batch_size]
            yield self.rows.take(index)


class TensorSource:
    """Splits held in memory as one :class:`Batch` of rows each.

    Args:
        features: The features of the rows.
        splits: Split name -> all its rows.
        batch_size: Examples per batch.
        seed: Shuffle seed of the training rows.
        train_splits: Splits concatenated for training.
    """

    def __init__(
        self,
        features: FeatureSet,
        splits: dict[str, Batch],
        batch_size: int,
        seed: int = 0,
        train_splits: tuple[str, ...] = ("train",),
    ) -> None:
        self.features = features
        self.splits = splits
        self.batch_size = batch_size
        self.seed = seed
        self.train_splits = train_splits

    def train(self, rank: int, world_size: int) -> TensorLoader:
        parts = [self.splits[s] for s in self.train_splits]
        rows = parts[0] if len(parts) == 1 else _concat(parts)
        return TensorLoader(rows, self.batch_size, rank, world_size, self.seed)

    def evaluation(self, split: str, rank: int, world_size: int) -> Iterator[Batch]:
        rows = self.splits[split]
        mine = rows.take(torch.arange(rank, len(rows), world_size))
        for start in range(0, len(mine), self.batch_size):
            yield mine.rows(start, start + self.batch_size)


def _concat(parts: list[Batch]) -> Batch:
    return Batch(
        label=torch.cat([p.label for p in parts]),
        dense=torch.cat([p.dense for p in parts]),
        sparse=torch.cat([p.sparse for p in parts]),
        multi=tuple(
            torch.cat(ms) for ms in zip(*(p.multi for p in parts), strict=True)
        ),
    )
