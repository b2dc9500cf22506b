"""Sampling and mutation: every result valid, NASRec's distributions."""

from __future__ import annotations

import random
import statistics

import pytest

from recnas.space import load_space, mutate, mutation_schedule, sample
from recnas.space.sampling import CONNECTION_FIELDS

SPACES = [load_space("nasrec_small"), load_space("nasrec_full")]


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_10000_mutations_are_all_valid(space):
    rng = random.Random(11)
    arch = sample(space, rng)
    changed = 0
    for i in range(10_000):
        child = mutate(arch, space, rng, num_mutations=1 + i % 3)
        assert not child.differences(space)
        changed += child != arch
        arch = child if i % 50 else sample(space, rng)
    assert changed > 7_000


@pytest.mark.parametrize("space", SPACES, ids=lambda s: s.name)
def test_samples_follow_the_sampling_rule(space):
    rng = random.Random(3)
    counts = {i: [] for i in range(space.num_blocks)}
    widths, d2s = [], []
    for _ in range(2_000):
        arch = sample(space, rng)
        assert not arch.differences(space)
        for i, b in enumerate(arch.blocks):
            counts[i].append(len(b.dense_sources))
            assert list(b.dense_sources) == sorted(set(b.dense_sources))
            widths.append(b.width)
            d2s.append(b.dense_to_sparse)
    # 1 + Binomial(min(n - 1, 3), 0.5) sources out of n = i + 1.
    for i, values in counts.items():
        expected = 1 + min(i, 3) / 2
        assert abs(statistics.mean(values) - expected) < 0.1
        assert max(values) <= min(i + 1, 4)
    assert set(widths) == set(space.dense_widths)
    assert 0.45 < statistics.mean(d2s) < 0.55


def test_one_mutation_changes_one_field_of_one_block():
    space = SPACES[1]
    rng = random.Random(5)
    for _ in range(500):
        parent = sample(space, rng)
        child = mutate(parent, space, rng)
        diffs = [
            (i, f)
            for i, (a, b) in enumerate(zip(parent.blocks, child.blocks, strict=True))
            for f in a.to_dict()
            if getattr(a, f) != getattr(b, f)
        ]
        assert len({i for i, _ in diffs}) <= 1
        fields = {f for _, f in diffs}
        assert len(fields) <= 1 or fields <= {"dense_op", "sparse_op"}
        assert not fields or fields <= set(CONNECTION_FIELDS) | {
            "dense_op",
            "sparse_op",
            "width",
            "tokens",
            "dense_to_sparse",
            "sparse_to_dense",
        }


def test_mutate_refuses_misfits_and_schedule_decreases():
    small = SPACES[0]
    full_arch = sample(SPACES[1], random.Random(0))
    with pytest.raises(ValueError, match="does not fit search space 'nasrec_small'"):
        mutate(full_arch, small, random.Random(0))
    with pytest.raises(ValueError, match="num_mutations must be at least 1"):
        mutate(sample(small, random.Random(0)), small, random.Random(0), 0)
    schedule = [mutation_schedule(g, 240) for g in range(240)]
    assert schedule[0] == 6 and schedule[-1] == 1
    assert schedule == sorted(schedule, reverse=True)
    assert mutation_schedule(5, 10) == 1
