"""Supernet step cost: sliced supernet and masked full width, against the subnet.

For each of 24 sampled NASRec-Full architectures at batch 512 it times one
training step (forward, BCE, backward, gradient clipping, Adagrad) of

- the recnas supernet running that architecture (weight slicing),
- the standalone subnet of the same architecture,
- a masked full-width supernet in the style of the official NASRec code:
  every block reads all earlier outputs at full width with zeros for the
  unselected ones, runs its operators at the largest width and multiplies
  the outputs by masks,

and prints, per architecture and overall, supernet / subnet and masked /
subnet step-time ratios (goal for the first: at most 1.3). Run with
``pytest -s -m benchmark tests/benchmarks/bench_supernet.py``; lines with the
figures start with ``BENCH``. Timings depend on the machine and its load; the
steps of the three models are interleaved so that load hits all of them.
"""

from __future__ import annotations

import math
import random
import statistics
import time

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from recnas.data.features import Batch, FeatureSet
from recnas.models import ops
from recnas.models.stem import FeatureStem
from recnas.models.subnet import Subnet
from recnas.models.supernet import Supernet
from recnas.space import Architecture, load_space, sample
from recnas.space.spec import BINARY_OPS, MERGER_TOKENS, SearchSpace

pytestmark = pytest.mark.benchmark

CRITEO = FeatureSet.synthetic(13, [10_000] * 26)
BATCH = 512
ARCHS = 24
ROUNDS = 3
THREADS = 1


class MaskedSupernet(nn.Module):
    """The official formulation: full-width inputs and outputs behind masks."""

    def __init__(self, space: SearchSpace, features: FeatureSet) -> None:
        super().__init__()
        self.space = space
        self.stem = FeatureStem(features, space.embedding_dim)
        e, d, s = space.embedding_dim, space.max_width, space.max_tokens
        self.blocks = nn.ModuleList()
        for i in range(space.num_blocks):
            wide = features.num_dense + d * i
            tokens = features.num_sparse + (s + MERGER_TOKENS) * i
            t = ops.dot_tokens(d)
            sizes = {"E": e, "3E": 3 * e, "8E": MERGER_TOKENS * e, "1": 1, "d": d}
            sizes |= {"s": s, "t": t, "pairs": ops.pairs(t), "D": wide}
            sizes |= {"dense_in": wide, "tokens_in": tokens}
            names = [*space.dense_ops, *space.sparse_ops, "to_sparse", "to_dense"]
            self.blocks.append(nn.ModuleDict({op: _params(op, sizes) for op in names}))
        head = {"1": 1, "head_in": d + (s + MERGER_TOKENS) * e}
        self.head = _params("head", head)

    def forward(self, batch: Batch, arch: Architecture) -> torch.Tensor:
        e, d, s = self.space.embedding_dim, self.space.max_width, self.space.max_tokens
        dense, tokens = self.stem(batch)
        dense_outs, sparse_outs = [dense], [tokens]
        zero_tokens = tokens.new_zeros(len(batch), MERGER_TOKENS, e)
        for i, b in enumerate(arch.blocks):
            p = self.blocks[i]

            def pick(outs, chosen):
                return [
                    x if j in chosen else torch.zeros_like(x)
                    for j, x in enumerate(outs)
                ]

            dense_in = torch.cat(pick(dense_outs, b.dense_sources), dim=1)
            sparse_in = torch.cat(pick(sparse_outs, b.sparse_sources), dim=1)
            if b.dense_op in BINARY_OPS:
                left = torch.cat(pick(dense_outs, (b.left,)), dim=1)
                right = torch.cat(pick(dense_outs, (b.right,)), dim=1)
                y = ops.BINARY_KERNELS[b.dense_op](p[b.dense_op], left, right)
            elif b.dense_op == "fc":
                y = ops.fc(p["fc"], dense_in)
            else:
                y = ops.dot_product(p["dot_product"], dense_in, sparse_in)
            width_mask = (torch.arange(d) < b.width).to(y.dtype)
            y = y * width_mask
            z = ops.SPARSE_KERNELS[b.sparse_op](p[b.sparse_op], sparse_in)
            z = z * (torch.arange(s) < b.tokens).to(z.dtype)[None, :, None]
            merged = zero_tokens
            if b.dense_to_sparse:
                merged = ops.to_sparse(p["to_sparse"], y, e)
            if b.sparse_to_dense:
                y = y + ops.to_dense(p["to_dense"], z) * width_mask
            dense_outs.append(y)
            sparse_outs.append(torch.cat([z, merged], dim=1))
        return ops.head(self.head, dense_outs[-1], sparse_outs[-1])


def _params(op: str, sizes: dict[str, int]) -> nn.ParameterDict:
    params = nn.ParameterDict()
    for name, param in ops.PARAMS[op].items():
        if ops.holds(param, sizes, True):
            tensor = torch.empty(tuple(sizes[a] for a in param.axes))
            ops.init_param(tensor, param, sizes[param.fan or param.axes[-1]])
            params[name] = nn.Parameter(tensor)
    return params


class _Stepper:
    """One training step of a model: forward, BCE, backward, clip, Adagrad.

    Returns the CPU time of the step (one torch thread: the work it cost,
    whatever else runs on the machine) and its wall time.
    """

    def __init__(self, model: nn.Module, call) -> None:
        self.params = list(model.parameters())
        self.call = call
        self.opt = torch.optim.Adagrad(self.params, lr=0.01, eps=1e-2)

    def __call__(self, batch: Batch) -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        self.opt.zero_grad(set_to_none=True)
        loss = F.binary_cross_entropy_with_logits(self.call(batch), batch.label)
        loss.backward()
        grads = [p for p in self.params if p.grad is not None]
        nn.utils.clip_grad_norm_(grads, 5.0)
        self.opt.step()
        return time.process_time() - cpu, time.perf_counter() - wall


def _geomean(values: list[float]) -> float:
    return math.exp(statistics.mean(math.log(v) for v in values))


@pytest.mark.timeout(3600)
def test_supernet_step_costs_about_what_the_subnet_costs():
    threads = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        _run()
    finally:
        torch.set_num_threads(threads)


def _run() -> None:
    space = load_space("nasrec_full")
    torch.manual_seed(0)
    supernet = Supernet(space, CRITEO, layernorm=True)
    masked = MaskedSupernet(space, CRITEO)
    batch = Batch.random(CRITEO, BATCH, torch.Generator().manual_seed(0))
    rng = random.Random(2024)
    ratios = {"supernet": [], "masked": []}
    walls = {"supernet": [], "masked": []}
    print(
        f"\nBENCH supernet step, {ARCHS} NASRec-Full archs, batch {BATCH}, "
        f"{THREADS} thread(s); CPU time per step (wall time in brackets)"
    )
    for k in range(ARCHS):
        arch = sample(space, rng)
        subnet = Subnet.from_supernet(supernet, arch)
        steppers = {
            "supernet": _Stepper(supernet, lambda b, a=arch: supernet(b, a)),
            "subnet": _Stepper(subnet, subnet),
            "masked": _Stepper(masked, lambda b, a=arch: masked(b, a)),
        }
        for step in steppers.values():  # warm-up: plans, allocator, optimizer
            step(batch)
        times = {name: [] for name in steppers}
        for _ in range(ROUNDS):
            for name, step in steppers.items():
                times[name].append(step(batch))
        cpu = {n: statistics.median(c for c, _ in t) for n, t in times.items()}
        wall = {n: statistics.median(w for _, w in t) for n, t in times.items()}
        for name in ratios:
            ratios[name].append(cpu[name] / cpu["subnet"])
            walls[name].append(wall[name] / wall["subnet"])
        print(
            f"BENCH arch {k:2d} {arch.arch_id}  subnet {cpu['subnet'] * 1e3:7.1f} ms  "
            f"supernet {cpu['supernet'] * 1e3:7.1f} ms "
            f"{ratios['supernet'][-1]:5.2f}x ({walls['supernet'][-1]:5.2f}x)  "
            f"masked {cpu['masked'] * 1e3:8.1f} ms "
            f"{ratios['masked'][-1]:6.2f}x ({walls['masked'][-1]:6.2f}x)"
        )
    for name, label in (("supernet", "supernet"), ("masked", "masked full-width")):
        median = statistics.median(ratios[name])
        wall = statistics.median(walls[name])
        print(
            f"BENCH {label}/subnet step time: median {median:.2f}x, geometric "
            f"mean {_geomean(ratios[name]):.2f}x, max {max(ratios[name]):.2f}x "
            f"(wall: median {wall:.2f}x)"
        )
    assert statistics.median(ratios["supernet"]) <= 1.3
    assert statistics.median(ratios["masked"]) > statistics.median(ratios["supernet"])
