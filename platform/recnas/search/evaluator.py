"""Scoring one candidate from the supernet: the body of a Ray Tune trial.

A candidate inherits its weights from the trained supernet (the standalone
subnet of its architecture, cut out of the shared weights), fine-tunes only
its head on the train split, and is scored by its log loss on a fixed prefix
of the validation split. Cost (multiply-adds, parameters) and latency come
with the score. The supernet is loaded once per worker process and kept.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import torch

from recnas.data.features import FeatureSet
from recnas.data.loader import BatchLoader
from recnas.data.meta import load_meta
from recnas.models import cost
from recnas.models.subnet import Subnet
from recnas.space.arch import Architecture
from recnas.train.checkpoint import load_model
from recnas.train.loop import run_steps
from recnas.train.metrics import evaluate

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringSettings:
    """How every candidate of one search is scored.

    Attributes:
        supernet: Checkpoint of the trained supernet.
        data: Processed dataset URI.
        finetune_steps: Head fine-tuning steps on train (NASRec: 500).
        finetune_lr: Head fine-tuning learning rate (NASRec: 0.04).
        batch_size: Batch size of fine-tuning and scoring.
        val_rows: Rows of the fixed validation prefix scored; None for all.
        latency_batch: The serving batch size latency is measured at.
        max_latency_ms: Reject, unscored, a candidate slower than this at the
            serving batch; None for no budget.
        seed: Seed of the fine-tuning data order.
    """

    supernet: str
    data: str
    finetune_steps: int = 500
    finetune_lr: float = 0.04
    batch_size: int = 512
    val_rows: int | None = 16384
    latency_batch: int = 512
    max_latency_ms: float | None = None
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=2)
def _supernet(checkpoint: str) -> torch.nn.Module:
    start = time.perf_counter()
    model, _ = load_model(checkpoint)
    model.eval()
    logger.info("supernet loaded in %.1fs", time.perf_counter() - start)
    return model


@lru_cache(maxsize=2)
def _features(data: str) -> FeatureSet:
    return load_meta(data).features


def score(arch: Architecture, settings: ScoringSettings) -> dict[str, Any]:
    """Scores one architecture; the result always has a ``status``.

    Returns:
        ``val_logloss``, ``val_auc``, ``macs``, ``params``, ``latency_ms_b1``,
        ``latency_ms_serving``, ``finetune_loss``, ``seconds`` and ``status``:
        ``ok``, ``diverged`` (non-finite loss) or ``over_latency_budget``.
    """
    start = time.perf_counter()
    features = _features(settings.data)
    model = Subnet.from_supernet(_supernet(settings.supernet), arch)
    result: dict[str, Any] = {
        "macs": cost.macs_per_example(arch, features),
        "params": cost.params(arch, features),
        "latency_ms_b1": cost.latency_ms(model, features, 1),
        "latency_ms_serving": cost.latency_ms(
            model, features, settings.latency_batch, repeats=3, warmup=1
        ),
    }
    budget = settings.max_latency_ms
    if budget is not None and result["latency_ms_serving"] > budget:
        result["status"] = "over_latency_budget"
        return result

    result["finetune_loss"] = _finetune_head(model, features, settings)
    val = BatchLoader(
        settings.data,
        "val",
        features,
        batch_size=settings.batch_size,
        shuffle=False,
        drop_last=False,
        max_rows=settings.val_rows,
    )
    metrics = evaluate(model, val)
    result["val_logloss"] = metrics["logloss"]
    result["val_auc"] = metrics["auc"]
    finite = math.isfinite(metrics["logloss"]) and math.isfinite(
        result["finetune_loss"]
    )
    result["status"] = "ok" if finite else "diverged"
    result["seconds"] = time.perf_counter() - start
    return result


def _finetune_head(
    model: Subnet, features: FeatureSet, settings: ScoringSettings
) -> float:
    if settings.finetune_steps <= 0:
        return 0.0
    for p in model.parameters():
        p.requires_grad_(False)
    head = list(model.head_parameters())
    for p in head:
        p.requires_grad_(True)
    train = BatchLoader(
        settings.data,
        "train",
        features,
        batch_size=settings.batch_size,
        shuffle=True,
        seed=settings.seed,
    )
    return run_steps(
        model, head, train, settings.finetune_steps, lr=settings.finetune_lr
    )


def score_trial(config: dict[str, Any], settings: ScoringSettings) -> None:
    """Ray Tune function trainable: scores ``config["arch"]`` and reports once."""
    from ray import tune

    arch = Architecture.from_dict(config["arch"])
    try:
        result = score(arch, settings)
    except (RuntimeError, ValueError, FloatingPointError) as error:
        logger.warning("candidate %s failed: %s", arch.arch_id, error)
        result = {"status": "failed", "error": str(error)[:500]}
    result["arch_id"] = arch.arch_id
    # Tune checks the searched metric in every result: an unscored candidate
    # reports an infinite loss, which the searchers never select.
    result.setdefault("val_logloss", math.inf)
    tune.report(result)
