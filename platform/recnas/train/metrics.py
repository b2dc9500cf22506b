"""Exact log loss and AUC over a whole split, in one process or across workers.

Scores are never averaged over batches or workers: every worker predicts its
share of the split, the predictions are gathered (uneven shares included), and
log loss and AUC are computed once over all of them in float64. AUC treats
tied scores as scikit-learn's ``roc_auc_score`` does (average ranks).

Example:
    >>> import numpy as np
    >>> auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from recnas.data.features import Batch


def logloss(labels: np.ndarray, logits: np.ndarray) -> float:
    """Mean binary cross-entropy of ``sigmoid(logits)`` against 0/1 labels."""
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if z.size == 0:
        return math.nan
    losses = np.maximum(z, 0.0) - z * y + np.log1p(np.exp(-np.abs(z)))
    return float(losses.mean())


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present.

    Equal to the Mann-Whitney statistic with average ranks for ties, which is
    what the trapezoidal ROC area of scikit-learn gives.
    """
    y = np.asarray(labels) > 0.5
    s = np.asarray(scores, dtype=np.float64)
    positives = int(y.sum())
    negatives = y.size - positives
    if positives == 0 or negatives == 0:
        return math.nan
    order = np.argsort(s, kind="mergesort")
    sorted_scores = s[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(sorted_scores)) + 1])
    ends = np.concatenate([starts[1:], [s.size]])
    ranks = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    rank_sum = ranks[y[order]].sum()
    return float(
        (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)
    )


def binary_metrics(labels: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """``{"logloss", "auc", "rows"}`` of one set of predictions."""
    return {
        "logloss": logloss(labels, logits),
        "auc": auc(labels, logits),
        "rows": int(np.asarray(labels).size),
    }


def batches_of(loader: Any, epoch: int = 0) -> Iterator[Batch]:
    """The batches of a loader: a ``BatchLoader`` (its ``epoch(epoch)``) or any
    iterable of :class:`Batch`."""
    if hasattr(loader, "epoch"):
        return iter(loader.epoch(epoch))
    return iter(loader)


@torch.no_grad()
def predict(
    model: torch.nn.Module,
    batches: Iterable[Batch],
    *,
    archs: Sequence[Any] = (None,),
    max_rows: int | None = None,
    device: torch.device | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Labels and logits of ``batches`` as one [N, 1 + len(archs)] float32
    tensor on ``device``: the label, then one column of logits per entry of
    ``archs``. Every batch is read once, whatever the number of architectures.

    Args:
        model: Called as ``model(batch)`` for an entry None, else as
            ``model(batch, arch)`` (a supernet).
        batches: Batches to score.
        archs: Architectures to score (None: the model as it is).
        max_rows: Stop after this many rows (the first ones).
        device: Where the model lives (default: CPU).
        autocast_dtype: Run the forward pass under autocast to this dtype.
    """
    device = device or torch.device("cpu")
    was_training = model.training
    model.eval()
    parts, rows = [], 0
    for batch in batches:
        if max_rows is not None and rows >= max_rows:
            break
        batch = batch.to(device)
        columns = [batch.label.float()]
        with torch.autocast(
            device.type, autocast_dtype, enabled=autocast_dtype is not None
        ):
            for arch in archs:
                logits = model(batch) if arch is None else model(batch, arch)
                columns.append(logits.float())
        parts.append(torch.stack(columns, dim=1))
        rows += len(batch)
    model.train(was_training)
    width = 1 + len(archs)
    out = torch.cat(parts) if parts else torch.zeros(0, width, device=device)
    return out if max_rows is None else out[:max_rows]


def gather_rows(local: torch.Tensor) -> torch.Tensor:
    """Concatenate every worker's rows of ``local`` [n_r, ...] in rank order.

    Workers may hold different numbers of rows (zero included). Runs two
    all-gathers, so every worker must call it. Without a process group it
    returns ``local``.
    """
    if (
        not (dist.is_available() and dist.is_initialized())
        or dist.get_world_size() == 1
    ):
        return local
    world = dist.get_world_size()
    count = torch.tensor([local.shape[0]], dtype=torch.int64, device=local.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    sizes = [int(c.item()) for c in counts]
    padded = local.new_zeros((max(sizes), *local.shape[1:]))
    padded[: local.shape[0]] = local
    gathered = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    return torch.cat([g[:n] for g, n in zip(gathered, sizes, strict=True)])


def evaluate(
    model: torch.nn.Module,
    loader: Any,
    *,
    arch: Any = None,
    max_rows: int | None = None,
    device: torch.device | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Exact ``{"logloss", "auc", "rows"}`` of ``model`` on a split.

    In one process this scores every batch of ``loader``. Under an initialized
    process group each worker scores its own shard and the metrics are taken
    over the predictions gathered from all workers (every worker gets the same
    figures).

    Args:
        model: The model (a supernet needs ``arch``).
        loader: A ``BatchLoader`` for evaluation or any iterable of batches.
        arch: Architecture for a supernet.
        max_rows: Score only the first rows of this worker's shard.
        device: Where the model lives.
        autocast_dtype: Forward pass under autocast to this dtype.
    """
    return evaluate_each(
        model,
        loader,
        [arch],
        max_rows=max_rows,
        device=device,
        autocast_dtype=autocast_dtype,
    )[0]


def evaluate_each(
    model: torch.nn.Module,
    loader: Any,
    archs: Sequence[Any],
    *,
    max_rows: int | None = None,
    device: torch.device | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> list[dict[str, float]]:
    """:func:`evaluate` for each of ``archs`` (None: the model as it is), in
    one pass over the split and one gather of the predictions."""
    local = predict(
        model,
        batches_of(loader),
        archs=archs,
        max_rows=max_rows,
        device=device,
        autocast_dtype=autocast_dtype,
    )
    rows = gather_rows(local).double().cpu().numpy()
    return [binary_metrics(rows[:, 0], rows[:, 1 + i]) for i in range(len(archs))]
