"""The standalone model of one architecture.

It holds exactly the weights its architecture uses: its live blocks only
(dead blocks and dead block halves removed), each operator at its exact
width, each projection reading only its selected sources. It runs the same
operator code as the supernet (:mod:`recnas.models.ops`), so after
:meth:`Subnet.from_supernet` both give the same logits.
"""

from __future__ import annotations

import torch
from torch import nn

from recnas.data.features import Batch, FeatureSet
from recnas.models import ops
from recnas.models.plan import BlockPlan, NetPlan, plan_architecture, run_plan
from recnas.models.stem import FeatureStem
from recnas.space.arch import Architecture
from recnas.space.spec import SearchSpace, load_space


def _exact_params(op: str, sizes, layernorm: bool) -> nn.ParameterDict:
    params = nn.ParameterDict()
    for name, param in ops.PARAMS[op].items():
        if not ops.holds(param, sizes, layernorm):
            continue
        tensor = torch.empty(tuple(sizes[a] for a in param.axes))
        ops.init_param(tensor, param, sizes[param.fan or param.axes[-1]])
        params[name] = nn.Parameter(tensor)
    return params


def _key(block: BlockPlan, op: str) -> str:
    return f"b{block.index}_{op}"


class Subnet(nn.Module):
    """A standalone network for one architecture.

    Args:
        arch: The architecture (validated against ``space``).
        space: Its search space (or the space's name).
        features: The dataset's features.
        layernorm: LayerNorm after the projections, as in the supernet.

    Shapes:
        forward(batch) -> logits [B].
    """

    def __init__(
        self,
        arch: Architecture,
        space: SearchSpace | str,
        features: FeatureSet,
        *,
        layernorm: bool = True,
    ) -> None:
        super().__init__()
        self.space = load_space(space)
        self.arch = arch.validate(self.space)
        self.features = features
        self.layernorm = layernorm
        self.stem = FeatureStem(features, self.space.embedding_dim)
        self.plan: NetPlan = plan_architecture(
            arch, self.space, features.num_dense, features.num_sparse
        )
        self.ops = nn.ModuleDict()
        for block in self.plan.blocks:
            for op in block.op_keys():
                self.ops[_key(block, op)] = _exact_params(op, block.sizes, layernorm)
        self.head = _exact_params("head", self.plan.head_sizes, layernorm)

    def _params_for(self, block: BlockPlan | None, op: str) -> ops.Params:
        if block is None:
            return self.head
        return self.ops[_key(block, op)]

    def forward(self, batch: Batch) -> torch.Tensor:
        dense, tokens = self.stem(batch)
        return run_plan(self.plan, self._params_for, dense, tokens)

    def head_parameters(self) -> list[nn.Parameter]:
        """The head's weights."""
        return list(self.head.parameters())

    def embedding_parameters(self) -> list[nn.Parameter]:
        """The embedding tables."""
        return list(self.stem.parameters())

    @classmethod
    def from_supernet(cls, supernet: nn.Module, arch: Architecture) -> Subnet:
        """The subnet of ``arch`` with the supernet's weights (copied).

        Args:
            supernet: A :class:`recnas.models.supernet.Supernet`.
            arch: An architecture of the supernet's space.
        """
        model = cls(
            arch, supernet.space, supernet.features, layernorm=supernet.layernorm
        )
        model.stem.load_state_dict(supernet.stem.state_dict())
        plan = supernet.plan(arch)
        with torch.no_grad():
            for block in model.plan.blocks:
                for op in block.op_keys():
                    shared = supernet.op_params(plan, block, op)
                    _copy(model.ops[_key(block, op)], shared, _key(block, op))
            _copy(model.head, supernet.op_params(plan, None, "head"), "head")
        return model


def _copy(
    target: nn.ParameterDict, source: dict[str, torch.Tensor], where: str
) -> None:
    if set(target.keys()) != set(source):
        raise AssertionError(f"{where}: {sorted(target.keys())} != {sorted(source)}")
    for name, value in source.items():
        target[name].copy_(value)
