"""Property tests over both spaces (bounded): any architecture of a space
validates, round-trips through both JSON formats, builds, runs, and the
supernet's output equals the standalone subnet's after weight inheritance."""

from __future__ import annotations

import functools
import random

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recnas.data.features import Batch, FeatureSet
from recnas.models import cost
from recnas.models.subnet import Subnet
from recnas.models.supernet import Supernet
from recnas.space import Architecture, Block, load_space, mutate, sample
from recnas.space.nasrec_format import from_nasrec, to_nasrec

SPACES = ("nasrec_small", "nasrec_full")
# 16 dense features make the stem exactly E wide (Dot-Product's identity case).
FEATURES = {
    dense: FeatureSet.synthetic(dense, [13, 5, 9, 21], multi=1) for dense in (0, 3, 16)
}
BOUNDED = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@functools.cache
def _supernet(name: str, dense: int) -> Supernet:
    torch.manual_seed(0)
    return Supernet(load_space(name), FEATURES[dense], layernorm=False)


@st.composite
def architectures(draw, name: str):
    """Any architecture of a space (not only what the sampler favours)."""
    space = load_space(name)
    blocks = []
    for i in range(space.num_blocks):
        n = min(i + 1, space.max_sources)
        sources = st.lists(st.integers(0, i), min_size=1, max_size=n, unique=True)
        blocks.append(
            Block(
                dense_sources=tuple(draw(sources)),
                sparse_sources=tuple(draw(sources)),
                left=draw(st.integers(0, i)),
                right=draw(st.integers(0, i)),
                dense_op=draw(st.sampled_from(space.dense_ops)),
                sparse_op=draw(st.sampled_from(space.sparse_ops)),
                width=draw(st.sampled_from(space.dense_widths)),
                tokens=draw(st.sampled_from(space.sparse_tokens)),
                dense_to_sparse=draw(st.booleans()),
                sparse_to_dense=draw(st.booleans()),
            )
        )
    return Architecture(space.name, space.version, tuple(blocks))


def _any_arch():
    return st.sampled_from(SPACES).flatmap(
        lambda name: st.one_of(
            architectures(name),
            st.integers(0, 2**32 - 1).map(
                lambda seed: sample(load_space(name), random.Random(seed))
            ),
        )
    )


@BOUNDED
@given(arch=_any_arch(), dense=st.sampled_from(sorted(FEATURES)))
def test_any_architecture_round_trips_builds_and_matches_the_supernet(arch, dense):
    space = load_space(arch.space)
    assert arch.validate(space) is arch
    assert Architecture.from_json(arch.to_json()) == arch
    assert from_nasrec(to_nasrec(arch)) == arch
    assert Architecture.from_dict(arch.to_dict()).arch_id == arch.arch_id

    features = FEATURES[dense]
    supernet = _supernet(arch.space, dense)
    batch = Batch.random(features, 3, torch.Generator().manual_seed(dense))
    with torch.no_grad():
        expected = supernet(batch, arch)
        subnet = Subnet.from_supernet(supernet, arch)
        logits = subnet(batch)
    assert logits.shape == (3,) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()
    # The two compute the same sums in different orders: float32 rounding
    # grows with the logits' size.
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
    assert cost.macs_per_example(arch, features) == cost.module_macs(subnet, features)


@BOUNDED
@given(arch=_any_arch(), seed=st.integers(0, 2**32 - 1), count=st.integers(1, 6))
def test_mutations_of_any_architecture_are_valid(arch, seed, count):
    space = load_space(arch.space)
    child = mutate(arch, space, random.Random(seed), count)
    assert not child.differences(space)
    assert from_nasrec(to_nasrec(child)) == child
