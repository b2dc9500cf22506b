"""Execution plans: what a network computes, independent of where weights live.

A :class:`NetPlan` lists the blocks whose outputs reach the head, which half
of each must run, its sources and every axis size its operators need. The
supernet and the standalone subnet both run :func:`run_plan`; they differ only
in how they hand out parameters (slices of shared weights, or exact tensors).

Segments: the supernet lays out each input axis as one segment per possible
source. On a dense input, segment k is source k. On a token axis, segment 0
is the stem's tokens, segment 2k-1 the operator tokens of block k-1 and
segment 2k its 8 merger tokens. The head's input has three segments: dense,
operator tokens (x E) and merger tokens (x E).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from recnas.models import ops
from recnas.space.arch import Architecture, block_runs
from recnas.space.spec import BINARY_OPS, MERGER_TOKENS, SearchSpace

Part = tuple[int, int]  # (segment, size)


@dataclass(frozen=True)
class Source:
    """What one source hands to later blocks.

    Attributes:
        width: Dense output width.
        tokens: Operator tokens of the sparse output.
        merged: Merger tokens appended after them (0 or 8).
    """

    width: int
    tokens: int
    merged: int


@dataclass(frozen=True)
class BlockPlan:
    """One block to run.

    Attributes:
        index: Block position in the architecture (keys the shared weights).
        dense_ops: Dense operators to run, outputs summed (one for an
            architecture, all of the space's for the full supernet).
        sparse_ops: Sparse operators to run, outputs summed.
        width: d. tokens: s.
        dense_sources, sparse_sources: Sorted sources of the dense input and
            of the sparse input.
        left, right: Sources of the binary dense operators, or None.
        to_sparse, to_dense: Whether each merger runs.
        keep_dense, keep_sparse: Whether a later block or the head reads the
            dense / sparse output.
        sizes: Axis sizes (see :mod:`recnas.models.ops`).
        parts: Per axis, the (segment, size) parts of the supernet layout.
    """

    index: int
    dense_ops: tuple[str, ...]
    sparse_ops: tuple[str, ...]
    width: int
    tokens: int
    dense_sources: tuple[int, ...]
    sparse_sources: tuple[int, ...]
    left: int | None
    right: int | None
    to_sparse: bool
    to_dense: bool
    keep_dense: bool
    keep_sparse: bool
    sizes: Mapping[str, int]
    parts: Mapping[str, tuple[Part, ...]]

    def op_keys(self) -> list[str]:
        keys = list(self.dense_ops) + list(self.sparse_ops)
        if self.to_sparse:
            keys.append("to_sparse")
        if self.to_dense:
            keys.append("to_dense")
        return keys


@dataclass(frozen=True)
class NetPlan:
    """Blocks to run in order, the head's sizes and the stem's shape."""

    blocks: tuple[BlockPlan, ...]
    head_sizes: Mapping[str, int]
    head_parts: Mapping[str, tuple[Part, ...]]
    embedding_dim: int
    num_dense: int
    num_sparse: int


def _fixed_sizes(embedding_dim: int) -> dict[str, int]:
    e = embedding_dim
    return {"E": e, "3E": 3 * e, "8E": MERGER_TOKENS * e, "1": 1}


def _token_parts(sources: tuple[int, ...], outs: list[Source]) -> tuple[Part, ...]:
    parts: list[Part] = []
    for k in sources:
        if k == 0:
            parts.append((0, outs[0].tokens))
            continue
        parts.append((2 * k - 1, outs[k].tokens))
        if outs[k].merged:
            parts.append((2 * k, outs[k].merged))
    return tuple(parts)


def _block_plan(
    index: int,
    spec: dict,
    outs: list[Source],
    embedding_dim: int,
) -> BlockPlan:
    width, tokens = spec["width"], spec["tokens"]
    dense_sources = tuple(sorted(spec["dense_sources"]))
    sparse_sources = tuple(sorted(spec["sparse_sources"]))
    sizes = _fixed_sizes(embedding_dim) | {"d": width, "s": tokens}
    sizes["t"] = ops.dot_tokens(width)
    sizes["pairs"] = ops.pairs(sizes["t"])
    sizes["dense_in"] = sum(outs[k].width for k in dense_sources)
    token_parts = _token_parts(sparse_sources, outs)
    sizes["tokens_in"] = sum(n for _, n in token_parts)
    left = right = None
    if any(op in BINARY_OPS for op in spec["dense_ops"]):
        left, right = spec["left"], spec["right"]
        sizes["D"] = max(outs[left].width, outs[right].width)
    else:
        sizes["D"] = 0
    parts = {name: ((0, size),) for name, size in sizes.items()}
    parts["dense_in"] = tuple((k, outs[k].width) for k in dense_sources)
    parts["tokens_in"] = token_parts
    return BlockPlan(
        index=index,
        dense_ops=tuple(spec["dense_ops"]),
        sparse_ops=tuple(spec["sparse_ops"]),
        width=width,
        tokens=tokens,
        dense_sources=dense_sources,
        sparse_sources=sparse_sources,
        left=left,
        right=right,
        to_sparse=spec["to_sparse"],
        to_dense=spec["to_dense"],
        keep_dense=spec["keep_dense"],
        keep_sparse=spec["keep_sparse"],
        sizes=sizes,
        parts=parts,
    )


def _net_plan(
    specs: list[dict], num_dense: int, num_sparse: int, embedding_dim: int
) -> NetPlan:
    outs = [Source(num_dense, num_sparse, 0)]
    blocks = []
    for spec in specs:
        while len(outs) <= spec["index"]:
            outs.append(Source(0, 0, 0))  # a dead block: never read
        plan = _block_plan(spec["index"], spec, outs, embedding_dim)
        merged = MERGER_TOKENS if plan.to_sparse else 0
        outs.append(Source(plan.width, plan.tokens, merged))
        blocks.append(plan)
    last = blocks[-1]
    e = embedding_dim
    head_parts = [(0, last.width), (1, last.tokens * e)]
    if last.to_sparse:
        head_parts.append((2, MERGER_TOKENS * e))
    head_sizes = {"1": 1, "head_in": sum(n for _, n in head_parts)}
    return NetPlan(
        blocks=tuple(blocks),
        head_sizes=head_sizes,
        head_parts={"1": ((0, 1),), "head_in": tuple(head_parts)},
        embedding_dim=embedding_dim,
        num_dense=num_dense,
        num_sparse=num_sparse,
    )


def plan_architecture(
    arch: Architecture, space: SearchSpace, num_dense: int, num_sparse: int
) -> NetPlan:
    """The plan of one architecture: live blocks and live halves only."""
    specs = []
    usage = arch.usage()
    for i, (block, use) in enumerate(zip(arch.blocks, usage, strict=True)):
        if not use.live:
            continue
        runs_dense, runs_sparse = block_runs(block, use)
        specs.append(
            {
                "index": i,
                "dense_ops": (block.dense_op,) if runs_dense else (),
                "sparse_ops": (block.sparse_op,) if runs_sparse else (),
                "width": block.width,
                "tokens": block.tokens,
                "dense_sources": block.dense_sources,
                "sparse_sources": block.sparse_sources,
                "left": block.left,
                "right": block.right,
                "to_sparse": use.sparse_out and block.dense_to_sparse,
                "to_dense": use.dense_out and block.sparse_to_dense,
                "keep_dense": use.dense_out,
                "keep_sparse": use.sparse_out,
            }
        )
    return _net_plan(specs, num_dense, num_sparse, space.embedding_dim)


def plan_full(space: SearchSpace, num_dense: int, num_sparse: int) -> NetPlan:
    """The plan of the full supernet (the warm-up phase).

    Every block reads every earlier source, runs all of the space's dense
    operators (outputs summed) and all of its sparse operators (summed) at
    the largest width and token count, and runs each merger that the space
    allows. The binary operators read left = the previous block (or the
    stem, in block 0) and right = the stem.
    """
    specs = []
    for i in range(space.num_blocks):
        specs.append(
            {
                "index": i,
                "dense_ops": space.dense_ops,
                "sparse_ops": space.sparse_ops,
                "width": space.max_width,
                "tokens": space.max_tokens,
                "dense_sources": tuple(range(i + 1)),
                "sparse_sources": tuple(range(i + 1)),
                "left": i,
                "right": 0,
                "to_sparse": max(space.mergers["dense_to_sparse"]),
                "to_dense": max(space.mergers["sparse_to_dense"]),
                "keep_dense": True,
                "keep_sparse": True,
            }
        )
    return _net_plan(specs, num_dense, num_sparse, space.embedding_dim)


ParamsFor = Callable[[BlockPlan | None, str], ops.Params]


def _accumulate(total: torch.Tensor | None, value: torch.Tensor) -> torch.Tensor:
    return value if total is None else total + value


def run_block(
    block: BlockPlan,
    params_for: ParamsFor,
    dense_outs: dict[int, torch.Tensor],
    sparse_outs: dict[int, torch.Tensor],
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Runs one block on earlier outputs; returns its (dense, sparse) outputs."""
    needs_dense_in = any(op in ops.DENSE_KERNELS for op in block.dense_ops)
    needs_sparse_in = bool(block.sparse_ops) or "dot_product" in block.dense_ops
    dense_in = sparse_in = None
    if needs_dense_in:
        dense_in = torch.cat([dense_outs[k] for k in block.dense_sources], dim=1)
    if needs_sparse_in:
        sparse_in = torch.cat([sparse_outs[k] for k in block.sparse_sources], dim=1)

    dense = None
    for op in block.dense_ops:
        p = params_for(block, op)
        if op == "fc":
            y = ops.fc(p, dense_in)
        elif op == "dot_product":
            y = ops.dot_product(p, dense_in, sparse_in)
        else:
            left, right = dense_outs[block.left], dense_outs[block.right]
            y = ops.BINARY_KERNELS[op](p, left, right)
        dense = _accumulate(dense, y)
    sparse = None
    for op in block.sparse_ops:
        sparse = _accumulate(
            sparse, ops.SPARSE_KERNELS[op](params_for(block, op), sparse_in)
        )

    sparse_out = sparse
    if block.to_sparse:
        merged = ops.to_sparse(params_for(block, "to_sparse"), dense, block.sizes["E"])
        sparse_out = torch.cat([sparse, merged], dim=1)
    if block.to_dense:
        dense = dense + ops.to_dense(params_for(block, "to_dense"), sparse)
    return dense, sparse_out


def run_plan(
    plan: NetPlan,
    params_for: ParamsFor,
    stem_dense: torch.Tensor,
    stem_sparse: torch.Tensor,
) -> torch.Tensor:
    """Runs the blocks and the head; returns logits [B].

    Args:
        plan: What to compute.
        params_for: Gives the parameters of ``(block, op)``; the head is
            asked as ``(None, "head")``.
        stem_dense: [B, F_dense] dense features.
        stem_sparse: [B, F_sparse, E] one token per sparse feature.
    """
    dense_outs = {0: stem_dense}
    sparse_outs = {0: stem_sparse}
    dense = sparse = None
    for block in plan.blocks:
        dense, sparse = run_block(block, params_for, dense_outs, sparse_outs)
        if block.keep_dense:
            dense_outs[block.index + 1] = dense
        if block.keep_sparse:
            sparse_outs[block.index + 1] = sparse
    return ops.head(params_for(None, "head"), dense, sparse)
