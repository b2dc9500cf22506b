"""Build any recnas model from a :class:`~recnas.train.config.ModelSpec`."""

from __future__ import annotations

from typing import Any

from torch import nn

from recnas.data.features import FeatureSet
from recnas.models.baselines import build_baseline
from recnas.train.config import ModelSpec


def as_spec(spec: ModelSpec | dict[str, Any]) -> ModelSpec:
    """A ModelSpec from itself or from its dict form."""
    return spec if isinstance(spec, ModelSpec) else ModelSpec.from_dict(spec)


def build_model(spec: ModelSpec | dict[str, Any], features: FeatureSet) -> nn.Module:
    """The model a spec names, with fresh weights.

    Supernets are called as ``model(batch, arch)``; subnets and baselines as
    ``model(batch)``. All return [B] logits.
    """
    spec = as_spec(spec)
    if spec.kind == "baseline":
        return build_baseline(spec.name, features, **spec.params)
    space = load_space(spec.space)
    if spec.kind == "supernet":
        from recnas.models.supernet import Supernet

        return Supernet(space, features, **spec.params)
    from recnas.models.subnet import Subnet

    return Subnet(load_architecture(spec), space, features, **spec.params)


def load_space(name_or_path: str | None) -> Any:
    """The search space of a supernet or subnet spec."""
    from recnas.space.spec import load_space as load

    return load(name_or_path)


def load_architecture(spec: ModelSpec) -> Any:
    """The Architecture of a subnet spec."""
    from recnas.space.arch import Architecture

    return Architecture.from_dict(spec.arch)
