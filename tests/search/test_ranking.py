"""Kendall's tau and Spearman's rho against scipy's, ties included."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from recnas.search.ranking import kendall_tau, ranking_report, spearman_rho


@pytest.mark.parametrize("seed", range(20))
def test_matches_scipy_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 15))
    a = rng.integers(0, 4, n).astype(float)
    b = a + rng.integers(0, 3, n)
    if len(set(a)) < 2 or len(set(b)) < 2:
        pytest.skip("constant ranking")
    assert kendall_tau(a, b) == pytest.approx(stats.kendalltau(a, b).statistic)
    assert spearman_rho(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)


def test_perfect_and_reversed() -> None:
    assert kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert spearman_rho([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)


def test_report_needs_three_candidates() -> None:
    report = ranking_report([0.4, 0.5], [0.5, 0.6])
    assert report["ranked_models"] == 2 and math.isnan(report["kendall_tau"])
    assert math.isnan(report["spearman_rho"])
    report = ranking_report([0.4, 0.5, 0.45], [0.5, 0.6, 0.7])
    assert report["kendall_tau"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="differ in length"):
        kendall_tau([1, 2], [1])
