"""Small in-memory datasets and process-group helpers for the training tests."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from recnas.data.features import Batch, FeatureSet
from recnas.train.data import TensorSource

from ..ports import free_port

FEATURES = FeatureSet.synthetic(4, [50, 60, 70, 30], multi=1)


def learnable_rows(n: int, seed: int, features: FeatureSet = FEATURES) -> Batch:
    """Random rows whose label depends on a dense value and a sparse id."""
    rows = Batch.random(features, n, torch.Generator().manual_seed(seed))
    signal = 2.0 * rows.dense[:, 0] + (rows.sparse[:, 0] % 3 == 0).float()
    noise = torch.rand(n, generator=torch.Generator().manual_seed(seed + 1))
    rows.label = (signal + noise > 1.8).float()
    return rows


def tensor_source(
    batch_size: int = 64, n_train: int = 2048, seed: int = 0
) -> TensorSource:
    splits = {
        "train": learnable_rows(n_train, seed),
        "val": learnable_rows(700, seed + 10),
        "test": learnable_rows(500, seed + 20),
    }
    return TensorSource(FEATURES, splits, batch_size=batch_size, seed=seed)


def _entry(
    rank: int, world: int, port: int, timeout_s: float, fn: Callable, args: tuple
):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", rank=rank, world_size=world, timeout=timedelta(seconds=timeout_s)
    )
    try:
        fn(rank, *args)
    finally:
        dist.destroy_process_group()


def run_group(fn: Callable, args: tuple = (), world: int = 2, timeout_s: float = 30.0):
    """Run ``fn(rank, *args)`` in ``world`` processes joined by gloo on
    127.0.0.1; collectives fail after ``timeout_s``. ``fn`` must be importable."""
    mp.start_processes(
        _entry,
        args=(world, free_port(), timeout_s, fn, args),
        nprocs=world,
        join=True,
        start_method="spawn",
    )
