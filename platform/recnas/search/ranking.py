"""How far the supernet's ranking of candidates can be trusted.

After the search, the top candidates are trained from scratch. Comparing the
two orderings (supernet score against from-scratch score) with Kendall's tau
and Spearman's rho says whether the supernet ranks architectures the way
standalone training would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _ranks(values: Sequence[float]) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank."""
    x = np.asarray(values, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and x[order[j + 1]] == x[order[i]]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman_rho(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson's r of the average ranks)."""
    _check(a, b)
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denominator) if denominator else math.nan


def kendall_tau(a: Sequence[float], b: Sequence[float]) -> float:
    """Kendall's tau-b, which corrects for ties in either ordering."""
    _check(a, b)
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    dx = np.sign(x[:, None] - x[None, :])
    dy = np.sign(y[:, None] - y[None, :])
    upper = np.triu_indices(len(x), k=1)
    dx, dy = dx[upper], dy[upper]
    concordance = float((dx * dy).sum())
    denominator = math.sqrt(float((dx != 0).sum()) * float((dy != 0).sum()))
    return concordance / denominator if denominator else math.nan


def _check(a: Sequence[float], b: Sequence[float]) -> None:
    if len(a) != len(b):
        raise ValueError(f"rankings differ in length: {len(a)} and {len(b)}")


def ranking_report(
    supernet_scores: Sequence[float], scratch_scores: Sequence[float]
) -> dict[str, float]:
    """Kendall's tau and Spearman's rho; NaN with fewer than three candidates
    (two rank each other at +1 or -1 and say nothing of the supernet)."""
    _check(supernet_scores, scratch_scores)
    if len(supernet_scores) < 3:
        return {
            "kendall_tau": math.nan,
            "spearman_rho": math.nan,
            "ranked_models": len(supernet_scores),
        }
    return {
        "kendall_tau": kendall_tau(supernet_scores, scratch_scores),
        "spearman_rho": spearman_rho(supernet_scores, scratch_scores),
        "ranked_models": len(supernet_scores),
    }
