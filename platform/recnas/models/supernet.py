"""The weight-sharing supernet, trained by slicing, not by masking.

::

    stem -+-> block 0 -+-> block 1 -+-> ... -> block n-1 -> head -> logit
          |            |            |              ^
          +------------+------------+--------------+  any earlier output

    block i holds, at the largest size, one set of weights per operator of
    the space (fc, dot_product, ..., efc, attention) and per merger. An
    architecture uses a slice of each weight it needs:

        W_fc[i]  [d_max, |src 0| + |src 1| + ... + |src i|]
                  ^^^^^  ^^^^^^^            ^^^^^^^
                  first d rows; only the columns of the selected sources,
                  only the first width(src) of each

A forward pass for an architecture costs what its standalone subnet costs,
and its output equals the subnet's after weight inheritance
(:meth:`recnas.models.subnet.Subnet.from_supernet`), LayerNorm on or off:
LayerNorm statistics are taken over the sliced width, as in the subnet.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import torch
from torch import nn

from recnas.data.features import Batch, FeatureSet
from recnas.models import ops
from recnas.models.elastic import ElasticTensor
from recnas.models.plan import (
    BlockPlan,
    NetPlan,
    plan_architecture,
    plan_full,
    run_plan,
)
from recnas.models.stem import FeatureStem
from recnas.space.arch import Architecture
from recnas.space.spec import MERGER_TOKENS, SearchSpace, load_space

logger = logging.getLogger(__name__)

_PLAN_CACHE = 512


def axis_layouts(
    space: SearchSpace, features: FeatureSet, block: int
) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Per axis name, the segments and their request sizes in block ``block``."""
    e = space.embedding_dim
    widths = space.dense_widths
    tokens = space.sparse_tokens
    dots = tuple(sorted({ops.dot_tokens(w) for w in widths}))
    source_widths = tuple(sorted({features.num_dense, *widths} - {0}))
    dense_in = [(features.num_dense,)] + [widths] * block
    tokens_in = [(features.num_sparse,)]
    for _ in range(block):
        tokens_in += [tokens, (MERGER_TOKENS,)]
    return {
        "E": ((e,),),
        "3E": ((3 * e,),),
        "8E": ((MERGER_TOKENS * e,),),
        "1": ((1,),),
        "d": (widths,),
        "s": (tokens,),
        "t": (dots,),
        "pairs": (tuple(ops.pairs(t) for t in dots),),
        "D": (source_widths,),
        "dense_in": tuple(dense_in),
        "tokens_in": tuple(tokens_in),
        "head_in": (widths, tuple(s * e for s in tokens), (MERGER_TOKENS * e,)),
    }


class ElasticOp(nn.Module):
    """The shared weights of one operator (or merger, or the head)."""

    def __init__(
        self,
        op: str,
        layouts: dict[str, tuple[tuple[int, ...], ...]],
        layernorm: bool,
    ) -> None:
        super().__init__()
        self.layernorm = layernorm
        self.decl = {}
        self.weights = nn.ModuleDict()
        for name, param in ops.PARAMS[op].items():
            if ("ln" in param.when and not layernorm) or (
                "no_ln" in param.when and layernorm
            ):
                continue
            fan_axis = param.fan or param.axes[-1]
            fan_in = max(max(b) for b in layouts[fan_axis])
            self.decl[name] = param
            self.weights[name] = ElasticTensor(
                tuple(layouts[a] for a in param.axes), param, fan_in
            )

    def get(self, sizes, parts) -> dict[str, torch.Tensor]:
        return {
            name: self.weights[name].get(*(parts[a] for a in param.axes))
            for name, param in self.decl.items()
            if ops.holds(param, sizes, self.layernorm)
        }


class Supernet(nn.Module):
    """NASRec's weight-sharing supernet over a search space.

    Args:
        space: The search space (or its name).
        features: The dataset's features.
        layernorm: LayerNorm after the projections (NASRec trains with it).

    Shapes:
        forward(batch, arch) -> logits [B].
    """

    def __init__(
        self,
        space: SearchSpace | str,
        features: FeatureSet,
        *,
        layernorm: bool = True,
    ) -> None:
        super().__init__()
        self.space = load_space(space)
        self.features = features
        self.layernorm = layernorm
        self.stem = FeatureStem(features, self.space.embedding_dim)
        ops_per_block = [*self.space.dense_ops, *self.space.sparse_ops]
        ops_per_block += ["to_sparse", "to_dense"]
        self.blocks = nn.ModuleList()
        for i in range(self.space.num_blocks):
            layouts = axis_layouts(self.space, features, i)
            self.blocks.append(
                nn.ModuleDict(
                    {op: ElasticOp(op, layouts, layernorm) for op in ops_per_block}
                )
            )
        self.head = ElasticOp("head", axis_layouts(self.space, features, 0), layernorm)
        self._plans: OrderedDict[Architecture, NetPlan] = OrderedDict()
        self._full_plan = plan_full(self.space, features.num_dense, features.num_sparse)

    def plan(self, arch: Architecture | None) -> NetPlan:
        """The execution plan of ``arch`` (None: the full supernet)."""
        if arch is None:
            return self._full_plan
        plan = self._plans.get(arch)
        if plan is None:
            arch.validate(self.space)
            plan = plan_architecture(
                arch, self.space, self.features.num_dense, self.features.num_sparse
            )
            self._plans[arch] = plan
            if len(self._plans) > _PLAN_CACHE:
                self._plans.popitem(last=False)
        return plan

    def op_params(
        self, plan: NetPlan, block: BlockPlan | None, op: str
    ) -> dict[str, torch.Tensor]:
        """The slices of the shared weights that ``op`` of ``block`` uses.

        ``block=None`` asks for the head of ``plan``.
        """
        if block is None:
            return self.head.get(plan.head_sizes, plan.head_parts)
        return self.blocks[block.index][op].get(block.sizes, block.parts)

    def forward(self, batch: Batch, arch: Architecture | None = None) -> torch.Tensor:
        """Logits [B] of architecture ``arch``, or of the full supernet.

        With ``arch`` given, only the weight slices of that architecture take
        part (its live blocks, its widths, its sources). With ``arch=None``,
        the full supernet of the warm-up phase runs: every block reads all
        earlier outputs, runs every operator of the space at the largest size
        (dense outputs summed, sparse outputs summed) and both mergers; the
        binary operators read left = the previous block, right = the stem.
        """
        plan = self.plan(arch)
        dense, tokens = self.stem(batch)

        def params_for(block: BlockPlan | None, op: str) -> dict[str, torch.Tensor]:
            return self.op_params(plan, block, op)

        return run_plan(plan, params_for, dense, tokens)

    def head_parameters(self) -> list[nn.Parameter]:
        """The head's shared weights (fine-tuned alone when scoring candidates)."""
        return list(self.head.parameters())

    def embedding_parameters(self) -> list[nn.Parameter]:
        """The embedding tables."""
        return list(self.stem.parameters())
