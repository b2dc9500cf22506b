"""Optimizers and learning-rate schedules built from a :class:`TrainConfig`."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch

from recnas.train.config import TrainConfig


def sparse_rows_exact(name: str, weight_decay: float) -> bool:
    """Whether optimizer ``name`` trains embedding tables from sparse gradients
    (the rows a batch touched) exactly as from dense ones.

    True for Adagrad without weight decay: a row with a zero gradient keeps its
    weight and its accumulator. Adam moves every row through its moments and
    must see dense gradients.
    """
    return name == "adagrad" and weight_decay == 0.0


class RowAdagrad(torch.optim.Adagrad):
    """torch's Adagrad that applies sparse gradients row by row.

    A parameter with a sparse (row) gradient is updated with a few index
    operations on the touched rows only, the same arithmetic as torch's sparse
    Adagrad at a fraction of its cost; dense gradients take torch's own
    (fused) path. The state is torch's (``sum`` and ``step`` per parameter),
    so checkpoints load into either class.
    """

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        if closure is not None:
            raise NotImplementedError("RowAdagrad.step takes no closure")
        held = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.is_sparse:
                    self._update_rows(p, group)
                    held.append((p, p.grad))
                    p.grad = None
        try:
            return super().step()
        finally:
            for p, grad in held:
                p.grad = grad

    def _update_rows(self, p: torch.nn.Parameter, group: dict[str, Any]) -> None:
        if group["weight_decay"] or group["maximize"]:
            raise ValueError(
                "RowAdagrad: sparse gradients need weight_decay 0 and maximize off"
            )
        state = self.state[p]
        state["step"] += 1
        clr = group["lr"] / (1 + (float(state["step"]) - 1) * group["lr_decay"])
        grad = p.grad.coalesce()
        rows, values = grad._indices()[0], grad._values()
        total = state["sum"].index_select(0, rows).addcmul_(values, values)
        state["sum"].index_copy_(0, rows, total)
        std = total.sqrt_().add_(group["eps"])
        p.index_copy_(0, rows, p.index_select(0, rows).add_(values / std, alpha=-clr))


def make_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter],
    lr: float,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """``"adagrad"`` (:class:`RowAdagrad`), ``"adam"`` or ``"sgd"`` over ``params``.

    Uses torch's fused implementation where the parameters' device has one
    (on 2 CPU threads it halves Adam's step time for a DLRM), else the default.
    Adagrad starts its accumulators at 0, as NASRec's recipe does.
    """
    params = list(params)
    if name == "adagrad":
        cls, options = RowAdagrad, {"eps": eps}
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
