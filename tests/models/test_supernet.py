"""Supernet and standalone subnet: shapes, slicing, weight inheritance."""

from __future__ import annotations

import random

import pytest
import torch

from recnas.data.features import Batch, FeatureSet
from recnas.models.subnet import Subnet
from recnas.models.supernet import Supernet
from recnas.space import load_space, sample

FEATURES = FeatureSet.synthetic(5, [30, 7, 12, 9, 40], multi=2)


def _batch(size: int = 6, seed: int = 0) -> Batch:
    return Batch.random(FEATURES, size, torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("space_name", ["nasrec_small", "nasrec_full"])
@pytest.mark.parametrize("layernorm", [False, True])
def test_supernet_matches_subnet_after_inheritance(space_name, layernorm):
    space = load_space(space_name)
    torch.manual_seed(0)
    supernet = Supernet(space, FEATURES, layernorm=layernorm)
    batch = _batch()
    for seed in range(8):
        arch = sample(space, random.Random(seed))
        expected = supernet(batch, arch)
        subnet = Subnet.from_supernet(supernet, arch)
        assert expected.shape == (6,)
        torch.testing.assert_close(subnet(batch), expected, atol=1e-5, rtol=0)


def test_full_supernet_runs_and_touches_every_block():
    space = load_space("nasrec_small")
    supernet = Supernet(space, FEATURES, layernorm=True)
    logits = supernet(_batch(), None)
    assert logits.shape == (6,)
    logits.sum().backward()
    for block in supernet.blocks:
        for op in block.values():
            assert any(p.grad is not None for p in op.parameters())


def test_step_updates_only_the_sampled_slices():
    space = load_space("nasrec_full")
    supernet = Supernet(space, FEATURES, layernorm=True)
    arch = sample(space, random.Random(3))
    supernet(_batch(), arch).sum().backward()
    used = sum(p.numel() for p in supernet.parameters() if p.grad is not None)
    subnet = Subnet(arch, space, FEATURES, layernorm=True)
    exact = sum(p.numel() for p in subnet.parameters())
    # Only small untiled tensors (vectors, token-axis weights) are used whole.
    assert exact <= used < exact * 1.05 + 50_000
