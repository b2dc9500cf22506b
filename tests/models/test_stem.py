"""The feature stem: one token per sparse feature, mean-pooled lists."""

from __future__ import annotations

import torch

from recnas.data.features import Batch, FeatureSet, SparseFeature
from recnas.models.stem import FeatureStem


def test_tokens_in_feature_order_and_mean_pooling():
    features = FeatureSet(
        dense=("a", "b"),
        sparse=(
            SparseFeature("user", 10),
            SparseFeature("genres", 6, multi_valued=True, max_len=3),
            SparseFeature("movie", 8),
        ),
    )
    stem = FeatureStem(features, 4)
    batch = Batch(
        label=torch.zeros(2),
        dense=torch.tensor([[1.0, 2.0], [3.0, 4.0]]),
        sparse=torch.tensor([[3, 5], [0, 7]]),
        multi=(torch.tensor([[2, 4, 0], [0, 0, 0]]),),
    )
    dense, tokens = stem(batch)
    assert torch.equal(dense, batch.dense)
    assert tokens.shape == (2, 3, 4)
    user, genres, movie = (t.weight for t in stem.tables)
    torch.testing.assert_close(tokens[0, 0], user[3])
    torch.testing.assert_close(tokens[0, 2], movie[5])
    torch.testing.assert_close(tokens[1, 2], movie[7])
    torch.testing.assert_close(tokens[0, 1], (genres[2] + genres[4]) / 2)
    torch.testing.assert_close(tokens[1, 1], torch.zeros(4))
