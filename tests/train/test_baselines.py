"""Every deep baseline: shapes, gradients, learning, and the builder's errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from recnas.data.features import Batch, FeatureSet
from recnas.models.baselines import BASELINES, build_baseline

from .helpers import FEATURES, learnable_rows

SMALL = {"embed_dim": 8}
HIDDEN = {"hidden": [16]}
PARAMS = {
    "lr": {},
    "fm": SMALL,
    "dnn": {**SMALL, **HIDDEN},
    "wide_deep": {**SMALL, **HIDDEN},
    "deepfm": {**SMALL, **HIDDEN},
    "xdeepfm": {**SMALL, **HIDDEN, "cin_layers": [8, 8]},
    "dcn": {**SMALL, **HIDDEN, "cross_layers": 2},
    "dcn_v2": {**SMALL, **HIDDEN, "cross_layers": 2, "rank": 4},
    "autoint_plus": {**SMALL, **HIDDEN, "attention_layers": 1, "heads": 2},
    "dlrm": {**SMALL, "bottom": [16], "top": [16]},
}


def test_all_design_baselines_exist() -> None:
    assert set(PARAMS) == set(BASELINES)


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_shapes_and_gradients(name: str) -> None:
    torch.manual_seed(0)
    model = build_baseline(name, FEATURES, **PARAMS[name])
    batch = Batch.random(FEATURES, 6, torch.Generator().manual_seed(1))
    logits = model(batch)
    assert logits.shape == (6,) and logits.dtype == torch.float32
    logits.sum().backward()
    assert any(
        p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters()
    )


@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baseline_learns(name: str) -> None:
    torch.manual_seed(0)
    model = build_baseline(name, FEATURES, **PARAMS[name])
    rows = learnable_rows(1024, seed=5)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(60):
        loss = F.binary_cross_entropy_with_logits(model(rows), rows.label)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]


def test_multi_valued_padding_is_ignored() -> None:
    features = FeatureSet.synthetic(1, [10, 10], multi=1)
    model = build_baseline("dnn", features, embed_dim=4, hidden=[4]).eval()
    batch = Batch.random(features, 3, torch.Generator().manual_seed(0))
    ids = torch.tensor([[5, 0, 0, 0], [5, 5, 0, 0], [5, 5, 5, 5]])
    batch.multi = (ids,)
    batch.sparse[:] = 2
    batch.dense[:] = 0.5
    out = model(batch)
    assert torch.allclose(out, out[0].expand(3))


def test_builder_errors() -> None:
    with pytest.raises(ValueError, match="unknown baseline 'gbdt'; choose one of"):
        build_baseline("gbdt", FEATURES)
    with pytest.raises(ValueError, match=r"baseline 'dnn' takes no \['depth'\]"):
        build_baseline("dnn", FEATURES, depth=3)
    with pytest.raises(ValueError, match="must be a multiple of heads 3"):
        build_baseline("autoint_plus", FEATURES, embed_dim=8, heads=3)
