"""Cost: multiply-adds per example, parameters and latency."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from torch import nn

from recnas.data.features import Batch, FeatureSet
from recnas.models import cost
from recnas.models.subnet import Subnet
from recnas.models.supernet import Supernet
from recnas.space import Architecture, Block, load_space, sample
from recnas.space.nasrec_format import read_architecture

# NASRec's Criteo table sizes (26 sparse features) and its 13 dense features.
CRITEO_VOCAB = [
    1461, 584, 10131227, 2202609, 306, 25, 12518, 634, 4, 93146, 5684, 8351593,
    3195, 28, 14993, 5461307, 11, 5653, 2174, 5, 7046548, 19, 16, 286182, 106,
    142573,
]  # fmt: skip
CRITEO = FeatureSet.synthetic(13, CRITEO_VOCAB)
REPO = Path(__file__).resolve().parents[2]
FIXTURE = (
    REPO.parent / "shared" / "fixtures" / "nasrec" / "criteo_nasrec_small_best.json"
)
PUBLISHED_MACS = 2.208e6

# The best NASRec-Small architecture on Criteo, as NASRec published it.
_ROWS = [
    # dense, sparse, left, right, dense op, d, s, dense->sparse, FM
    ((0,), (0,), 0, 0, "fc", 256, 48, True, False),
    ((1,), (0, 1), 1, 0, "dot_product", 1024, 48, True, True),
    ((2, 0), (2, 1, 0), 0, 0, "fc", 128, 16, True, False),
    ((2,), (0, 2), 1, 2, "fc", 16, 48, False, True),
    ((0, 2, 4, 3), (4, 2), 2, 0, "dot_product", 128, 32, False, False),
    ((5, 2, 0, 1), (5, 2, 1), 3, 5, "fc", 16, 64, True, False),
    ((3, 0, 5), (5, 2, 1, 0), 0, 5, "fc", 1024, 64, False, False),
]
NASREC_SMALL_BEST = Architecture(
    "nasrec_small",
    1,
    tuple(
        Block(dense, sparse, left, right, op, "efc", d, s, d2s, fm)
        for dense, sparse, left, right, op, d, s, d2s, fm in _ROWS
    ),
)


def test_published_architecture_costs_2_21_m_multiply_adds():
    macs = cost.macs_per_example(NASREC_SMALL_BEST, CRITEO)
    assert abs(macs / PUBLISHED_MACS - 1) < 0.01
    assert macs == 2_207_808


def test_shared_fixture_is_that_architecture():
    if not FIXTURE.exists():
        pytest.skip(f"fixture {FIXTURE} is absent")
    assert read_architecture(FIXTURE) == NASREC_SMALL_BEST
    assert json.loads(FIXTURE.read_text())["config"] == "autoctr"


@pytest.mark.parametrize("name", ["nasrec_small", "nasrec_full"])
def test_analytic_cost_equals_counted_cost(name):
    space = load_space(name)
    features = FeatureSet.synthetic(4, [11] * 7, multi=2)
    supernet = Supernet(space, features, layernorm=True)
    rng = random.Random(1)
    for _ in range(12):
        arch = sample(space, rng)
        model = Subnet(arch, space, features)
        macs = cost.macs_per_example(arch, features)
        assert macs == cost.module_macs(model, features)
        assert macs == cost.module_macs(supernet, features, arch=arch)
        assert cost.params(arch, features) == cost.module_params(model)
        off = Subnet(arch, space, features, layernorm=False)
        assert cost.params(arch, features, layernorm=False) == cost.module_params(off)


def test_dead_blocks_cost_nothing():
    macs = cost.macs_per_example(NASREC_SMALL_BEST, CRITEO)
    blocks = list(NASREC_SMALL_BEST.blocks)
    blocks[5] = Block((0,), (0,), 0, 0, "dot_product", "efc", 1024, 64, True, True)
    changed = Architecture("nasrec_small", 1, tuple(blocks))
    assert cost.macs_per_example(changed, CRITEO) == macs


class _TinyMLP(nn.Module):
    def __init__(self, features: FeatureSet) -> None:
        super().__init__()
        self.emb = nn.Embedding(100, 8)
        self.fc1 = nn.Linear(features.num_dense + 8, 32)
        self.fc2 = nn.Linear(32, 1)

    def forward(self, batch: Batch) -> torch.Tensor:
        x = torch.cat([batch.dense, self.emb(batch.sparse[:, 0] % 100)], 1)
        return self.fc2(torch.relu(self.fc1(x))).squeeze(1)


def test_any_module_gets_macs_params_and_latency():
    features = FeatureSet.synthetic(5, [50, 60])
    model = _TinyMLP(features)
    assert cost.module_macs(model, features) == 13 * 32 + 32
    assert cost.module_params(model) == 13 * 32 + 32 + 32 + 1
    assert cost.latency_ms(model, features, 1) > 0
    assert model.training
    subnet = Subnet(
        sample(load_space("nasrec_small"), random.Random(0)), "nasrec_small", features
    )
    assert (
        0
        < cost.latency_ms(subnet, features, 1)
        < cost.latency_ms(subnet, features, 512) * 10
    )
