"""Cost of a model: multiply-adds per example, parameters, latency.

Multiply-adds count every matrix product a forward pass runs, per example:
linear layers (bias and elementwise work not counted), Dot-Product's batched
products of all (t+1)^2 token pairs, attention's query-key and
attention-value products, and the head. Embedding lookups, LayerNorms,
activations, the FM's sums of squares and additions are not counted. Dead
blocks and dead block halves are not run, so they cost nothing.

The same convention holds for any ``nn.Module`` through :func:`module_macs`,
which counts the products torch actually runs (``FlopCounterMode``), so a
baseline's figure compares with an architecture's. For every architecture,
``macs_per_example(arch, ...) == module_macs(Subnet(arch, ...), ...)``.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Mapping

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from recnas.data.features import Batch, FeatureSet
from recnas.models import ops
from recnas.models.plan import BlockPlan, NetPlan, plan_architecture
from recnas.space.arch import Architecture
from recnas.space.spec import SearchSpace, load_space


def _op_macs(op: str, z: Mapping[str, int]) -> int:
    e, d, s = z["E"], z["d"], z["s"]
    if op == "fc":
        return d * z["dense_in"]
    if op == "efc":
        return e * z["tokens_in"] * s
    if op == "attention":
        return e * z["tokens_in"] * s + 2 * s * s * e + 6 * s * e * e
    if op == "dot_product":
        t = z["t"]
        total = (t + 1) * (t + 1) * e
        if z["dense_in"] != e:
            total += e * z["dense_in"]
        if z["tokens_in"] != t:
            total += e * z["tokens_in"] * t
        if z["pairs"] != d:
            total += z["pairs"] * d
        return total
    if op == "sum":
        return z["D"] * d if z["D"] != d else 0
    if op == "sigmoid_gating":
        return z["D"] * z["D"] + (z["D"] * d if z["D"] != d else 0)
    if op == "to_sparse":
        return d * z["8E"] if d != z["8E"] else 0
    if op == "to_dense":
        return e * d if d != e else 0
    raise AssertionError(f"unknown operator {op}")


def block_macs(block: BlockPlan) -> dict[str, int]:
    """Multiply-adds per example of each operator (and merger) of a block."""
    return {op: _op_macs(op, block.sizes) for op in block.op_keys()}


def plan_macs(plan: NetPlan) -> int:
    """Multiply-adds per example of a plan, head included."""
    total = sum(sum(block_macs(b).values()) for b in plan.blocks)
    return total + plan.head_sizes["head_in"]


def _space_of(arch: Architecture, space: SearchSpace | str | None) -> SearchSpace:
    return load_space(space if space is not None else arch.space)


def macs_per_example(
    arch: Architecture, features: FeatureSet, space: SearchSpace | str | None = None
) -> int:
    """Multiply-adds per example of an architecture (no embedding lookups).

    Args:
        arch: The architecture.
        features: The dataset's features (their counts set the stem widths).
        space: Its space; by default the shipped space named ``arch.space``.
    """
    space = _space_of(arch, space)
    plan = plan_architecture(
        arch.validate(space), space, features.num_dense, features.num_sparse
    )
    return plan_macs(plan)


def _numel(op: str, sizes: Mapping[str, int], layernorm: bool) -> int:
    return sum(
        math.prod(sizes[a] for a in p.axes)
        for p in ops.PARAMS[op].values()
        if ops.holds(p, sizes, layernorm)
    )


def params(
    arch: Architecture,
    features: FeatureSet,
    space: SearchSpace | str | None = None,
    *,
    layernorm: bool = True,
) -> int:
    """Parameters of an architecture's standalone model, embeddings excluded."""
    space = _space_of(arch, space)
    plan = plan_architecture(
        arch.validate(space), space, features.num_dense, features.num_sparse
    )
    total = _numel("head", plan.head_sizes, layernorm)
    for block in plan.blocks:
        total += sum(_numel(op, block.sizes, layernorm) for op in block.op_keys())
    return total


def _call(model: nn.Module, batch: Batch, arch: Architecture | None):
    return model(batch) if arch is None else model(batch, arch)


def module_macs(
    model: nn.Module,
    features: FeatureSet,
    *,
    arch: Architecture | None = None,
    batch_size: int = 4,
) -> int:
    """Multiply-adds per example that a model's forward pass runs.

    Works for any model called as ``model(batch)`` (or ``model(batch, arch)``
    with ``arch``): it counts the matrix products torch executes on a random
    batch and divides by the batch size.
    """
    batch = Batch.random(features, batch_size, torch.Generator().manual_seed(0))
    training = model.training
    model.eval()
    try:
        counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)
        with torch.no_grad(), counter:
            _call(model, batch, arch)
    finally:
        model.train(training)
    return round(counter.get_total_flops() / 2 / batch_size)


def _cpu_attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of CPU flash attention, which torch's counter does not know."""
    return sdpa_flop_count(query, key, value)


_EXTRA_FORMULAS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops
}


def module_params(model: nn.Module) -> int:
    """Parameters of a model outside its embedding tables."""
    embedded = {
        id(p)
        for m in model.modules()
        if isinstance(m, (nn.Embedding, nn.EmbeddingBag))
        for p in m.parameters()
    }
    return sum(p.numel() for p in model.parameters() if id(p) not in embedded)


def latency_ms(
    model: nn.Module,
    features: FeatureSet,
    batch_size: int,
    *,
    arch: Architecture | None = None,
    repeats: int = 10,
    warmup: int = 2,
    threads: int | None = 1,
) -> float:
    """Median wall time of one inference forward pass, in milliseconds.

    Measured on the model's device (CPU here) with random ids and values,
    in eval mode without gradients, after ``warmup`` untimed passes. On the
    CPU the measurement uses ``threads`` torch threads (None: the current
    setting): a fixed count keeps figures comparable, and one thread is what
    a serving replica usually gets.
    """
    device = next(model.parameters()).device
    if device.type == "cpu" and threads is not None:
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return latency_ms(
                model,
                features,
                batch_size,
                arch=arch,
                repeats=repeats,
                warmup=warmup,
                threads=None,
            )
        finally:
            torch.set_num_threads(previous)
    batch = Batch.random(features, batch_size, torch.Generator().manual_seed(0))
    batch = batch.to(device)
    training = model.training
    model.eval()
    times = []
    try:
        with torch.no_grad():
            for i in range(warmup + repeats):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                start = time.perf_counter()
                _call(model, batch, arch)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000.0)
    finally:
        model.train(training)
    return statistics.median(times)
