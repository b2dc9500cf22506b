"""Random architectures and mutations (NASRec's single-operator, any-connection).

Sampling draws each block independently. Block i has n = i + 1 sources to
read; its dense and its sparse source sets each hold
``1 + Binomial(min(n - 1, max_sources - 1), 0.5)`` sources drawn without
replacement; left and right are uniform over the n sources; the two
operators, d, s and each merger switch are uniform over the space's choices.

Mutation picks a block, then with probability 0.5 redraws one of its
connection fields (dense set, sparse set, left, right) and otherwise one of
its operator pair, d, s or a merger switch, with the sampling distribution.
A redraw may return the old value, as in NASRec; callers that need a new
network compare architecture ids.
"""

from __future__ import annotations

import dataclasses
import random

from recnas.space.arch import Architecture, Block
from recnas.space.spec import MERGERS, SearchSpace

CONNECTION_FIELDS = ("dense_sources", "sparse_sources", "left", "right")
OPERATION_FIELDS = ("ops", "width", "tokens", *MERGERS)


def _source_set(n: int, space: SearchSpace, rng: random.Random) -> tuple[int, ...]:
    trials = min(n - 1, space.max_sources - 1)
    count = 1 + sum(rng.random() < 0.5 for _ in range(trials))
    return tuple(sorted(rng.sample(range(n), count)))


def sample_block(index: int, space: SearchSpace, rng: random.Random) -> Block:
    """A random block at position ``index`` (it may read sources 0..index)."""
    n = index + 1
    return Block(
        dense_sources=_source_set(n, space, rng),
        sparse_sources=_source_set(n, space, rng),
        left=rng.randrange(n),
        right=rng.randrange(n),
        dense_op=rng.choice(space.dense_ops),
        sparse_op=rng.choice(space.sparse_ops),
        width=rng.choice(space.dense_widths),
        tokens=rng.choice(space.sparse_tokens),
        dense_to_sparse=rng.choice(space.mergers["dense_to_sparse"]),
        sparse_to_dense=rng.choice(space.mergers["sparse_to_dense"]),
    )


def sample(space: SearchSpace, rng: random.Random) -> Architecture:
    """A random architecture of ``space``.

    Example:
        >>> from recnas.space import load_space
        >>> arch = sample(load_space("nasrec_small"), random.Random(0))
        >>> len(arch.blocks)
        7
    """
    blocks = tuple(sample_block(i, space, rng) for i in range(space.num_blocks))
    return Architecture(space=space.name, version=space.version, blocks=blocks)


def _mutate_once(
    arch: Architecture, space: SearchSpace, rng: random.Random
) -> Architecture:
    index = rng.randrange(len(arch.blocks))
    block = arch.blocks[index]
    fresh = sample_block(index, space, rng)
    if rng.random() < 0.5:
        name = rng.choice(CONNECTION_FIELDS)
        changes = {name: getattr(fresh, name)}
    else:
        name = rng.choice(OPERATION_FIELDS)
        if name == "ops":
            changes = {"dense_op": fresh.dense_op, "sparse_op": fresh.sparse_op}
        else:
            changes = {name: getattr(fresh, name)}
    return arch.replace_block(index, dataclasses.replace(block, **changes))


def mutate(
    arch: Architecture,
    space: SearchSpace,
    rng: random.Random,
    num_mutations: int = 1,
) -> Architecture:
    """A child of ``arch`` with ``num_mutations`` single-field redraws.

    Raises:
        ValueError: ``arch`` does not fit ``space``, or num_mutations < 1.
    """
    if num_mutations < 1:
        raise ValueError(f"num_mutations must be at least 1, got {num_mutations}")
    arch.validate(space)
    for _ in range(num_mutations):
        arch = _mutate_once(arch, space, rng)
    return arch


def mutation_schedule(generation: int, generations: int) -> int:
    """NASRec's mutations per child: more early in a search, one at the end.

    Args:
        generation: The current generation, from 0.
        generations: Generations in the whole search.
    """
    remaining = max(generations - generation, 0)
    return remaining // max(20, generations // 5) + 1
