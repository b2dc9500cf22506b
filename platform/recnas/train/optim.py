"""Optimizers and learning-rate schedules built from a :class:`TrainConfig`."""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from recnas.train.config import TrainConfig


def make_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter],
    lr: float,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """``"adagrad"``, ``"adam"`` or ``"sgd"`` over ``params``.

    Uses torch's fused implementation where the parameters' device has one
    (on 2 CPU threads it halves Adam's step time for a DLRM), else the default.
    Adagrad starts its accumulators at 0, as NASRec's recipe does.
    """
    params = list(params)
    if name == "adagrad":
        cls, options = torch.optim.Adagrad, {"eps": eps}
    elif name == "adam":
        cls, options = torch.optim.Adam, {"eps": eps}
    elif name == "sgd":
        cls, options = torch.optim.SGD, {}
    else:
        raise ValueError(
            f"optimizer: {name!r} is not one of ['adagrad', 'adam', 'sgd']"
        )
    options.update(lr=lr, weight_decay=weight_decay)
    try:
        return cls(params, fused=True, **options)
    except (RuntimeError, ValueError):
        return cls(params, **options)


def lr_factor(step: int, total: int, warmup: int, schedule: str) -> float:
    """Multiplier of the peak learning rate at ``step`` (0-based) of ``total``.

    Linear warm-up from 1/warmup to 1 over ``warmup`` steps, then constant,
    cosine or linear decay towards 0 at ``total``.
    """
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / (total - warmup))
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0 - progress


def make_schedule(
    optimizer: torch.optim.Optimizer, config: TrainConfig, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """The config's warm-up and decay over ``total_steps`` steps."""
    warmup = int(config.warmup_fraction * total_steps)

    def factor(step: int) -> float:
        return lr_factor(step, total_steps, warmup, config.schedule)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
