"""Exact log loss and AUC against scikit-learn, in one process and gathered."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from recnas.train.metrics import auc, binary_metrics, evaluate, gather_rows, logloss

from .helpers import run_group


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_equal_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 5000
    labels = rng.integers(0, 2, n)
    # Rounded logits make many ties, which AUC must treat as sklearn does.
    logits = np.round(rng.normal(size=n) + labels * 0.7, 1)
    assert len(np.unique(logits)) < n / 10
    assert abs(logloss(labels, logits) - log_loss(labels, _sigmoid(logits))) < 1e-9
    assert abs(auc(labels, logits) - roc_auc_score(labels, logits)) < 1e-12


def test_auc_all_tied_and_one_class() -> None:
    labels = np.array([0, 1, 0, 1, 1])
    assert auc(labels, np.zeros(5)) == pytest.approx(0.5)
    assert np.isnan(auc(np.ones(4), np.arange(4.0)))
    assert binary_metrics(labels, np.zeros(5))["rows"] == 5


def test_evaluate_single_process_matches_sklearn() -> None:
    from recnas.models.baselines import build_baseline

    from .helpers import FEATURES, tensor_source

    torch.manual_seed(0)
    model = build_baseline("deepfm", FEATURES, embed_dim=4, hidden=[8])
    source = tensor_source(batch_size=97)
    scores = evaluate(model, source.evaluation("val", 0, 1))
    rows = source.splits["val"]
    with torch.no_grad():
        logits = model.eval()(rows).double().numpy()
    assert scores["rows"] == len(rows)
    assert abs(scores["logloss"] - log_loss(rows.label, _sigmoid(logits))) < 1e-6
    assert abs(scores["auc"] - roc_auc_score(rows.label, logits)) < 1e-6


def _gather_uneven(rank: int, out: str) -> None:
    # Rank 0 holds 1000 rows, rank 1 holds 3: very different shares.
    rng = np.random.default_rng(rank)
    n = 1000 if rank == 0 else 3
    local = torch.tensor(
        np.stack([rng.integers(0, 2, n), rng.normal(size=n)], axis=1),
        dtype=torch.float32,
    )
    gathered = gather_rows(local).double().numpy()
    metrics = binary_metrics(gathered[:, 0], gathered[:, 1])
    with open(f"{out}.{rank}", "w") as f:
        json.dump({"metrics": metrics, "rows": gathered.tolist()}, f)


def test_gathered_metrics_across_workers_equal_sklearn(tmp_path) -> None:
    run_group(_gather_uneven, (str(tmp_path / "out"),))
    results = [json.loads((tmp_path / f"out.{r}").read_text()) for r in range(2)]
    assert results[0] == results[1]
    rows = np.array(results[0]["rows"])
    assert len(rows) == 1003
    metrics = results[0]["metrics"]
    assert abs(metrics["logloss"] - log_loss(rows[:, 0], _sigmoid(rows[:, 1]))) < 1e-6
    assert abs(metrics["auc"] - roc_auc_score(rows[:, 0], rows[:, 1])) < 1e-6
