"""The batch loader: Parquet splits -> :class:`~recnas.data.features.Batch` es.

One loader serves one worker (``rank`` of ``world_size``). The rows of the
requested splits form one stream of *pieces* (Parquet row groups), optionally
cut to its first ``max_rows`` rows::

    epoch e: pieces in a seeded order  -> one stream of N rows
             rank r takes rows [r*N//W, (r+1)*N//W) of the stream
             its rows are cut into windows of ``shuffle_buffer`` rows,
             each window is permuted (seeded by seed, epoch, rank, window)
             and cut into batches

Training (``drop_last=True``): every rank yields exactly
``steps_per_epoch = (N // W) // batch_size`` batches (at least one: a rank
with fewer rows than a batch repeats its rows), so no rank waits for another
at a collective. Evaluation (``drop_last=False``): every row of the splits is
yielded exactly once across the ranks, the last batch of a rank may be short
and ranks may differ by a batch. The same (seed, epoch, rank) always yields
the same batches, and :meth:`BatchLoader.epoch` can start mid-epoch.

A window is read and converted to tensors whole, and permuted once, on a
background thread ``prefetch`` windows ahead of the consumer; its batches are
views of those tensors, so handing out a batch costs next to nothing on the
training thread.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from recnas.data import storage
from recnas.data.features import Batch, FeatureSet
from recnas.data.meta import DatasetMeta, load_meta

logger = logging.getLogger(__name__)

_END = object()
T = TypeVar("T")


@dataclass(frozen=True)
class _Piece:
    file: int
    row_group: int
    rows: int


class BatchLoader:
    """Batches of one or more splits of a processed dataset for one worker.

    Args:
        uri: Folder of the processed dataset.
        splits: Split name or names, read in this order (e.g. ``("train", "val")``).
        features: Features to read; default the dataset's own. Table sizes must
            be at least the dataset's.
        batch_size: Rows per batch.
        rank: This worker's rank.
        world_size: Number of workers.
        shuffle: Shuffle piece order and rows within windows, per epoch.
        seed: Shuffle seed.
        max_rows: Use only the first ``max_rows`` rows of the splits (file order).
        drop_last: True for training (equal steps on every rank), False for
            evaluation (every row exactly once across ranks).
        shuffle_buffer: Rows permuted together (rounded to whole batches).
        prefetch: Windows prepared ahead on a background thread (0: none, every
            window is prepared on the consumer's thread when reached).
        meta: The dataset's record, if already loaded.

    Example:
        >>> loader = BatchLoader(uri, "train", batch_size=512, rank=0, world_size=2)
        >>> for batch in loader.epoch(0):
        ...     loss = model(batch)
    """

    def __init__(
        self,
        uri: str,
        splits: str | Sequence[str],
        features: FeatureSet | None = None,
        *,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        seed: int = 0,
        max_rows: int | None = None,
        drop_last: bool = True,
        shuffle_buffer: int = 65_536,
        prefetch: int = 1,
        meta: DatasetMeta | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        if max_rows is not None and max_rows < 1:
            raise ValueError(f"max_rows must be >= 1 or None, got {max_rows}")
        self.meta = meta or load_meta(uri)
        self.uri = uri
        self.splits = (splits,) if isinstance(splits, str) else tuple(splits)
        self.features = features or self.meta.features
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.prefetch = prefetch
        self.window = max(1, shuffle_buffer // batch_size) * batch_size
        self._check_features()
        self._files = [u for s in self.splits for u in self.meta.split_uris(s)]
        self._handles: dict[int, pq.ParquetFile] = {}
        self._pieces = self._list_pieces(max_rows)
        self.total_rows = sum(p.rows for p in self._pieces)
        self._columns = [self.features.label, *self.features.dense]
        self._columns += [f.name for f in self.features.sparse]
        if self.total_rows < world_size:
            raise ValueError(
                f"{self.total_rows} rows in {'+'.join(self.splits)} of {uri} cannot "
                f"feed {world_size} workers; use fewer workers or more data"
            )

    # -- set-up

    def _check_features(self) -> None:
        have = {f.name: f for f in self.meta.features.sparse}
        dense = set(self.meta.features.dense)
        for name in self.features.dense:
            if name not in dense:
                raise ValueError(f"dataset {self.uri} has no dense feature {name!r}")
        for f in self.features.sparse:
            if f.name not in have:
                raise ValueError(f"dataset {self.uri} has no sparse feature {f.name!r}")
            if f.vocab_size < have[f.name].vocab_size:
                raise ValueError(
                    f"sparse feature {f.name!r}: table of {f.vocab_size} rows is "
                    f"smaller than the dataset's {have[f.name].vocab_size}; build the "
                    "model from the dataset's FeatureSet (meta.features)"
                )
            if f.multi_valued != have[f.name].multi_valued:
                raise ValueError(
                    f"sparse feature {f.name!r}: multi_valued={f.multi_valued} but "
                    f"the dataset has multi_valued={have[f.name].multi_valued}"
                )

    def _parquet(self, index: int) -> pq.ParquetFile:
        handle = self._handles.get(index)
        if handle is None:
            fs, path = storage.resolve(self._files[index])
            handle = pq.ParquetFile(fs.open_input_file(path))
            self._handles[index] = handle
        return handle

    def _list_pieces(self, max_rows: int | None) -> list[_Piece]:
        pieces, total = [], 0
        for i in range(len(self._files)):
            meta = self._parquet(i).metadata
            for g in range(meta.num_row_groups):
                rows = meta.row_group(g).num_rows
                if max_rows is not None:
                    rows = min(rows, max_rows - total)
                if rows <= 0:
                    return pieces
                pieces.append(_Piece(i, g, rows))
                total += rows
        return pieces

    # -- sizes

    def _rank_range(self) -> tuple[int, int]:
        n, w, r = self.total_rows, self.world_size, self.rank
        if self.drop_last:
            share = n // w
            return r * share, (r + 1) * share
        return r * n // w, (r + 1) * n // w

    @property
    def num_rows(self) -> int:
        """Rows this rank reads per epoch (before a training epoch's cut)."""
        start, stop = self._rank_range()
        return stop - start

    @property
    def steps_per_epoch(self) -> int:
        """Batches per epoch on this rank (the same on every rank when training)."""
        if self.drop_last:
            return max(1, (self.total_rows // self.world_size) // self.batch_size)
        return -(-self.num_rows // self.batch_size)

    # -- iteration

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Batch]:
        """The batches of one epoch on this rank, from batch ``start_step`` on."""
        if not 0 <= start_step <= self.steps_per_epoch:
            raise ValueError(
                f"start_step {start_step} outside [0, {self.steps_per_epoch}]"
            )
        windows = self._prefetched(lambda: self._windows(epoch, start_step))
        return self._cut(windows)

    def __iter__(self) -> Iterator[Batch]:
        return self.epoch(0)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def _order(self, epoch: int) -> list[_Piece]:
        if not self.shuffle:
            return self._pieces
        rng = np.random.default_rng([self.seed, epoch])
        return [self._pieces[i] for i in rng.permutation(len(self._pieces))]

    def _windows(self, epoch: int, start_step: int) -> Iterator[tuple[Batch, int]]:
        """The windows of the epoch from the one holding batch ``start_step``:
        each as its rows in batch order, with the first of them to hand out."""
        order = self._order(epoch)
        bounds = np.concatenate([[0], np.cumsum([p.rows for p in order])])
        start, stop = self._rank_range()
        share = stop - start
        used = self.steps_per_epoch * self.batch_size if self.drop_last else share
        first = start_step * self.batch_size
        for w_start in range(first - first % self.window, used, self.window):
            w_stop = min(used, w_start + self.window)
            positions = (
                np.arange(w_start, w_stop) % share
            )  # wraps only if share < batch
            low = positions.min()
            table = self._read(order, bounds, start + low, start + positions.max() + 1)
            index = positions - low
            if self.shuffle:
                rng = np.random.default_rng([self.seed, epoch, self.rank, w_start])
                index = index[rng.permutation(len(index))]
            if self.shuffle or len(index) != table.num_rows:
                table = table.take(pa.array(index))
            yield self._to_batch(table), max(0, first - w_start)

    def _cut(self, windows: Iterator[tuple[Batch, int]]) -> Iterator[Batch]:
        """Batches as views of the windows' tensors."""
        with contextlib.closing(windows):
            for rows, skip in windows:
                for b in range(skip, len(rows), self.batch_size):
                    yield rows.rows(b, b + self.batch_size)

    def _read(
        self, order: list[_Piece], bounds: np.ndarray, a: int, b: int
    ) -> pa.Table:
        """Rows [a, b) of the epoch's stream of pieces."""
        parts = []
        k = int(np.searchsorted(bounds, a, side="right")) - 1
        while k < len(order) and bounds[k] < b:
            piece = order[k]
            table = self._parquet(piece.file).read_row_group(
                piece.row_group, columns=self._columns
            )
            lo, hi = max(a, bounds[k]) - bounds[k], min(b, bounds[k + 1]) - bounds[k]
            parts.append(table.slice(int(lo), int(hi - lo)))
            k += 1
        return pa.concat_tables(parts).combine_chunks()

    def _to_batch(self, table: pa.Table) -> Batch:
        n = table.num_rows
        label = torch.from_numpy(_numpy(table, self.features.label, np.float32))
        if self.features.dense:
            dense = np.stack(
                [_numpy(table, c, np.float32) for c in self.features.dense], 1
            )
        else:
            dense = np.zeros((n, 0), dtype=np.float32)
        single = [f.name for f in self.features.single]
        if single:
            sparse = np.stack([_numpy(table, c, np.int64) for c in single], axis=1)
        else:
            sparse = np.zeros((n, 0), dtype=np.int64)
        multi = tuple(
            torch.from_numpy(pad_lists(table.column(f.name), f.max_len))
            for f in self.features.multi
        )
        return Batch(label, torch.from_numpy(dense), torch.from_numpy(sparse), multi)

    def _prefetched(self, make: Callable[[], Iterator[T]]) -> Iterator[T]:
        if self.prefetch <= 0:
            yield from make()
            return
        items: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    items.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            try:
                for item in make():
                    if not put(item):
                        return
                put(_END)
            except BaseException as err:  # handed to the consumer
                put(err)

        thread = threading.Thread(target=work, name="recnas-loader", daemon=True)
        thread.start()
        try:
            while True:
                item = items.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join(timeout=10)


def _numpy(table: pa.Table, name: str, dtype: type) -> np.ndarray:
    """A column as a writable numpy array of ``dtype``."""
    return table.column(name).to_numpy().astype(dtype, copy=True)


def pad_lists(column: pa.ChunkedArray | pa.Array, max_len: int) -> np.ndarray:
    """A list<int> column as an int64 [rows, max_len] array padded with id 0."""
    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    n = len(arr)
    out = np.zeros((n, max_len), dtype=np.int64)
    if n == 0:
        return out
    offsets = arr.offsets.to_numpy()
    values = arr.values.to_numpy(zero_copy_only=False)
    lengths = np.minimum(np.diff(offsets), max_len)
    rows = np.repeat(np.arange(n), lengths)
    cols = np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = values[offsets[:-1][rows] + cols]
    return out
