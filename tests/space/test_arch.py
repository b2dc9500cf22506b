"""The architecture encoding: JSON, validation errors, canonical form and ids."""

from __future__ import annotations

import dataclasses
import random

import pytest

from recnas.space import Architecture, Block, load_space, sample

SMALL = load_space("nasrec_small")
FULL = load_space("nasrec_full")


def _block(**changes) -> Block:
    base = Block(
        dense_sources=(0,),
        sparse_sources=(0,),
        left=0,
        right=0,
        dense_op="fc",
        sparse_op="efc",
        width=64,
        tokens=16,
        dense_to_sparse=False,
        sparse_to_dense=False,
    )
    return dataclasses.replace(base, **changes)


def _chain(*blocks: Block, space=SMALL) -> Architecture:
    return Architecture(space.name, space.version, tuple(blocks))


def _seven(**last) -> list[Block]:
    """Seven blocks, each reading only its predecessor."""
    blocks = [_block(dense_sources=(i,), sparse_sources=(i,)) for i in range(7)]
    blocks[-1] = dataclasses.replace(blocks[-1], **last)
    return blocks


def test_json_round_trip():
    arch = sample(FULL, random.Random(1))
    assert Architecture.from_json(arch.to_json()) == arch
    assert Architecture.from_dict(arch.to_dict()).arch_id == arch.arch_id


def test_from_dict_names_block_and_field():
    data = sample(SMALL, random.Random(0)).to_dict()
    data["blocks"][3]["width"] = "wide"
    with pytest.raises(ValueError, match=r"block 3\.width: must be an integer"):
        Architecture.from_dict(data)
    data = sample(SMALL, random.Random(0)).to_dict()
    data["blocks"][2]["colour"] = "red"
    with pytest.raises(ValueError, match=r"block 2: unknown field\(s\) \['colour'\]"):
        Architecture.from_dict(data)
    data = sample(SMALL, random.Random(0)).to_dict()
    data["blocks"][1]["dense_sources"] = [0, 5]
    with pytest.raises(ValueError, match=r"block 1: dense_sources \[0, 5\] has \[5\]"):
        Architecture.from_dict(data)
    with pytest.raises(ValueError, match="official NASRec form"):
        Architecture.from_dict({"macro": [], "micro": []})


def test_differences_list_every_misfit():
    arch = sample(FULL, random.Random(2))
    blocks = list(arch.blocks)
    blocks[0] = dataclasses.replace(blocks[0], dense_op="sum", sparse_op="attention")
    blocks[4] = dataclasses.replace(
        blocks[4], width=100, sparse_sources=(0, 1, 2, 3, 4)
    )
    arch = Architecture("nasrec_full", 1, tuple(blocks))
    diffs = arch.differences(SMALL)
    assert "architecture is for space 'nasrec_full', not 'nasrec_small'" in diffs
    assert (
        "block 0: dense_op 'sum' is not in space 'nasrec_small'; "
        "allowed: ['fc', 'dot_product']"
    ) in diffs
    assert (
        "block 0: sparse_op 'attention' is not in space 'nasrec_small'; "
        "allowed: ['efc']"
    ) in diffs
    assert any(d.startswith("block 4: width 100 is not in space") for d in diffs)
    assert (
        "block 4: sparse_sources has 5 sources; space 'nasrec_small' allows at most 4"
    ) in diffs
    with pytest.raises(ValueError, match="does not fit search space 'nasrec_small'"):
        arch.validate(SMALL)
    short = Architecture("nasrec_small", 1, arch.blocks[:3])
    assert "architecture has 3 blocks, space 'nasrec_small' has 7" in short.differences(
        SMALL
    )


def test_dead_blocks_do_not_change_the_id():
    blocks = _seven()
    arch = _chain(*blocks)
    # Block 6 reads only block 5: replace what it ignores.
    dead = dataclasses.replace(blocks[6], dense_sources=(6,), sparse_sources=(6,))
    other = list(blocks)
    other[6] = dead
    other[2] = dataclasses.replace(blocks[2], width=1024, dense_op="dot_product")
    # With block 6 reading only block 5 (source 6), blocks 0..5 stay live; so make
    # a variant where block 6 reads the stem only: blocks 0..5 are dead.
    stem_only = list(blocks)
    stem_only[6] = dataclasses.replace(
        blocks[6], dense_sources=(0,), sparse_sources=(0,)
    )
    changed = list(stem_only)
    changed[1] = dataclasses.replace(changed[1], width=512, tokens=64)
    changed[3] = dataclasses.replace(changed[3], dense_op="dot_product")
    a, b = _chain(*stem_only), _chain(*changed)
    assert a.arch_id == b.arch_id
    assert len(a.canonical().blocks) == 1
    assert arch.arch_id != a.arch_id


def test_unused_left_right_and_source_order_do_not_change_the_id():
    blocks = _seven(dense_sources=(6, 0), sparse_sources=(0, 6))
    a = _chain(*blocks)
    swapped = list(blocks)
    swapped[6] = dataclasses.replace(
        blocks[6], dense_sources=(0, 6), sparse_sources=(6, 0), left=3, right=5
    )
    assert _chain(*swapped).arch_id == a.arch_id
    # A binary operator reads left/right, so there they matter, and its dense
    # set does not.
    gating = list(blocks)
    gating[6] = dataclasses.replace(
        blocks[6], dense_op="sigmoid_gating", left=6, right=0
    )
    other = list(gating)
    other[6] = dataclasses.replace(gating[6], dense_sources=(1, 2))
    assert _chain(*gating, space=FULL).arch_id == _chain(*other, space=FULL).arch_id
    flipped = list(gating)
    flipped[6] = dataclasses.replace(gating[6], left=0, right=6)
    assert _chain(*flipped, space=FULL).arch_id != _chain(*gating, space=FULL).arch_id
    # Sum is symmetric.
    summed = [dataclasses.replace(b, dense_op="sum") for b in (gating[6], flipped[6])]
    ids = {_chain(*gating[:6], s, space=FULL).arch_id for s in summed}
    assert len(ids) == 1


def test_dead_halves_and_unread_mergers_do_not_change_the_id():
    blocks = _seven()
    # Block 6 reads block 5's dense output only: block 5's sparse half is dead.
    blocks[6] = dataclasses.replace(blocks[6], sparse_sources=(0,))
    a = _chain(*blocks)
    changed = list(blocks)
    changed[5] = dataclasses.replace(blocks[5], tokens=64, dense_to_sparse=True)
    assert _chain(*changed).arch_id == a.arch_id
    # ... unless the FM merger feeds the sparse half into the dense output.
    fm = list(changed)
    fm[5] = dataclasses.replace(changed[5], sparse_to_dense=True)
    assert _chain(*fm).arch_id != a.arch_id


def test_the_same_live_network_at_other_positions_shares_the_id():
    blocks = _seven()
    blocks[6] = dataclasses.replace(blocks[6], dense_sources=(2,), sparse_sources=(2,))
    moved = _seven()
    moved[4] = dataclasses.replace(moved[4], dense_sources=(0,), sparse_sources=(0,))
    # stem -> b0 -> b1 -> b6 and stem -> b4 -> b5 -> b6
    assert _chain(*blocks).arch_id == _chain(*moved).arch_id


@pytest.mark.parametrize("space", [SMALL, FULL], ids=lambda s: s.name)
def test_ids_are_unique_per_network_in_10000_samples(space):
    rng = random.Random(7)
    forms: dict[str, str] = {}
    for _ in range(10_000):
        arch = sample(space, rng)
        form = arch.canonical().to_json()
        assert forms.setdefault(arch.arch_id, form) == form
    assert len(forms) > 9_900
