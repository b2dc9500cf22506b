"""Human-readable views of an architecture: summary text, block graph, CLI.

``recnas arch show ARCH.json`` prints :func:`summary` (and draws the graph
with ``--png``); ``recnas arch sample SPACE`` prints a random architecture.
Both read recnas JSON and the official NASRec JSON. :func:`add_arch_parser`
registers the ``arch`` command on the CLI's subparsers; its handler returns
an exit code and writes to the stream it is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
from pathlib import Path
from typing import TextIO

from recnas.data.features import FeatureSet
from recnas.models import cost
from recnas.models.plan import BlockPlan, plan_architecture
from recnas.space.arch import Architecture
from recnas.space.nasrec_format import read_architecture, to_nasrec
from recnas.space.sampling import sample
from recnas.space.spec import BINARY_OPS, MERGER_TOKENS, SearchSpace, load_space

logger = logging.getLogger(__name__)

# Criteo (NASRec's main dataset): 13 dense and 26 sparse features.
DEFAULT_FEATURES = (13, 26)
# Operator names short enough for a box of the block graph.
_SHORT = {"dot_product": "dot-prod", "sigmoid_gating": "gating", "attention": "attn"}
# Table rows used when a summary measures latency (lookups barely depend on it).
_LATENCY_VOCAB = 1000


def parse_features(text: str) -> FeatureSet:
    """``"13,26"`` -> a feature set with 13 dense and 26 sparse features."""
    try:
        dense, sparse = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(
            f"--features {text!r}: expected DENSE,SPARSE counts, e.g. 13,26"
        ) from None
    if dense < 0 or sparse < 1:
        raise ValueError(f"--features {text!r}: need DENSE >= 0 and SPARSE >= 1")
    return FeatureSet.synthetic(dense, [_LATENCY_VOCAB] * sparse)


def _sources(values: tuple[int, ...]) -> str:
    return "[" + ", ".join("stem" if v == 0 else f"b{v - 1}" for v in values) + "]"


def _block_lines(block: BlockPlan, arch: Architecture) -> list[str]:
    spec = arch.blocks[block.index]
    macs = cost.block_macs(block)
    lines = []
    for op in block.dense_ops:
        if op in BINARY_OPS:
            reads = f"left {_sources((spec.left,))} right {_sources((spec.right,))}"
        else:
            reads = f"dense {_sources(block.dense_sources)}"
            if op == "dot_product":
                reads += f" sparse {_sources(block.sparse_sources)}"
        lines.append(
            f"  dense  {op:<15} d={block.width:<5} {reads:<40} {macs[op]:>12,}"
        )
    for op in block.sparse_ops:
        reads = f"sparse {_sources(block.sparse_sources)}"
        lines.append(
            f"  sparse {op:<15} s={block.tokens:<5} {reads:<40} {macs[op]:>12,}"
        )
    if block.to_sparse:
        text = f"dense->sparse (+{MERGER_TOKENS} tokens)"
        lines.append(f"  merger {text:<64} {macs['to_sparse']:>12,}")
    if block.to_dense:
        text = "sparse->dense (FM)"
        lines.append(f"  merger {text:<64} {macs['to_dense']:>12,}")
    return lines


def summary(
    arch: Architecture,
    features: FeatureSet,
    space: SearchSpace | str | None = None,
    *,
    latency: bool = False,
) -> str:
    """A block-by-block description with costs (multiply-adds per example)."""
    space = load_space(space if space is not None else arch.space)
    arch.validate(space)
    plan = plan_architecture(arch, space, features.num_dense, features.num_sparse)
    live = {b.index: b for b in plan.blocks}
    macs = cost.plan_macs(plan)
    lines = [
        f"architecture {arch.arch_id}  space {space.name} (version {space.version}), "
        f"{len(arch.blocks)} blocks, {len(live)} live",
        f"features: {features.num_dense} dense, {features.num_sparse} sparse, "
        f"E = {space.embedding_dim}",
        f"multiply-adds per example: {macs:,}",
        f"parameters (no embeddings): {cost.params(arch, features, space):,}",
    ]
    if latency:
        from recnas.models.subnet import Subnet

        model = Subnet(arch, space, features)
        for batch in (1, 512):
            ms = cost.latency_ms(model, features, batch)
            lines.append(f"latency at batch {batch}: {ms:.2f} ms")
    lines += ["", f"{'':<24}{'reads':<48}{'multiply-adds':>14}"]
    for i in range(len(arch.blocks)):
        if i not in live:
            lines.append(f"block {i}: dead (no output reaches the head)")
            continue
        lines.append(f"block {i}:")
        lines.extend(_block_lines(live[i], arch))
    last = plan.blocks[-1]
    tokens = last.tokens + (MERGER_TOKENS if last.to_sparse else 0)
    reads = (
        f"b{last.index}: dense {last.width} + {tokens} tokens x {space.embedding_dim}"
    )
    lines.append(f"head: {reads:<68} {plan.head_sizes['head_in']:>12,}")
    return "\n".join(lines)


def draw_architecture(
    arch: Architecture,
    path: str | Path,
    features: FeatureSet | None = None,
    space: SearchSpace | str | None = None,
) -> Path:
    """Draws the block graph as a PNG: blocks left to right, the head last.

    Dense connections are blue, sparse ones orange, left/right inputs of the
    binary operators green and dashed; dead blocks are grey.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    space = load_space(space if space is not None else arch.space)
    features = features or FeatureSet.synthetic(DEFAULT_FEATURES[0], [2] * 26)
    plan = plan_architecture(arch, space, features.num_dense, features.num_sparse)
    live = {b.index: b for b in plan.blocks}
    n = len(arch.blocks)
    fig, ax = plt.subplots(figsize=(1.6 * (n + 2), 1.0 + 0.5 * (n + 2)))
    xs = {k: 2.0 * k for k in range(n + 2)}  # 0 stem, k block k-1, n+1 head

    def node(k: int, text: str, color: str) -> None:
        box = FancyBboxPatch(
            (xs[k] - 0.75, -0.5), 1.5, 1.0, boxstyle="round,pad=0.05", fc=color, ec="k"
        )
        ax.add_patch(box)
        ax.text(xs[k], 0, text, ha="center", va="center", fontsize=6.5)

    def edge(src: int, dst: int, color: str, style: str, above: bool) -> None:
        # Arcs between box tops (dense) or bottoms (sparse); height grows
        # with the distance, so long connections clear the boxes between.
        y = 0.5 if above else -0.5
        shift = 0.08 * (src % 5 - 2)
        rad = -0.35 if above else 0.35
        if style == "--":
            rad *= 1.4
        ax.annotate(
            "",
            xy=(xs[dst] - 0.3 + shift, y),
            xytext=(xs[src] + 0.3 + shift, y),
            arrowprops={
                "arrowstyle": "->",
                "color": color,
                "linestyle": style,
                "linewidth": 0.9,
                "connectionstyle": f"arc3,rad={rad}",
            },
        )

    node(
        0, f"stem\n{features.num_dense} dense\n{features.num_sparse} tokens", "#dddddd"
    )
    for i, b in enumerate(arch.blocks):
        if i not in live:
            node(i + 1, f"block {i}\n(dead)", "#f2f2f2")
            continue
        p = live[i]
        parts = [f"block {i}"]
        parts += [f"{_SHORT.get(op, op)} d={p.width}" for op in p.dense_ops]
        parts += [f"{_SHORT.get(op, op)} s={p.tokens}" for op in p.sparse_ops]
        merged = ("+8 tok " if p.to_sparse else "") + ("FM" if p.to_dense else "")
        parts += [merged.strip()] if merged.strip() else []
        node(i + 1, "\n".join(parts), "#cfe2f3")
        for op in p.dense_ops:
            if op in BINARY_OPS:
                edge(b.left, i + 1, "tab:green", "--", True)
                edge(b.right, i + 1, "tab:green", "--", True)
            else:
                for s in p.dense_sources:
                    edge(s, i + 1, "tab:blue", "-", True)
        if p.sparse_ops or "dot_product" in p.dense_ops:
            for s in p.sparse_sources:
                edge(s, i + 1, "tab:orange", "-", False)
    node(n + 1, "head\n1 logit", "#d9ead3")
    ax.annotate(
        "",
        xy=(xs[n + 1] - 0.75, 0),
        xytext=(xs[n] + 0.75, 0),
        arrowprops={"arrowstyle": "->"},
    )
    ax.set_xlim(-1, xs[n + 1] + 1)
    ax.set_ylim(-0.7 - 0.18 * xs[n], 0.9 + 0.25 * xs[n])
    ax.axis("off")
    ax.set_title(
        f"{space.name} architecture {arch.arch_id}  (blue: dense, orange: sparse, "
        "green dashed: left/right)",
        fontsize=8,
    )
    path = Path(path)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _features_from_args(args: argparse.Namespace) -> FeatureSet:
    if args.features and args.data:
        raise ValueError("give --features or --data, not both")
    if args.data:
        from recnas.data.meta import load_meta

        return load_meta(args.data).features
    return parse_features(args.features or "{},{}".format(*DEFAULT_FEATURES))


def show(args: argparse.Namespace) -> str:
    """The text of ``recnas arch show``; draws the PNG when ``--png`` is set."""
    arch = read_architecture(args.arch, args.space)
    features = _features_from_args(args)
    text = summary(arch, features, args.space, latency=args.latency)
    if args.png:
        path = draw_architecture(arch, args.png, features, args.space)
        text += f"\n\nblock graph: {path}"
    return text


def sample_text(args: argparse.Namespace) -> str:
    """The text of ``recnas arch sample``: one random architecture as JSON."""
    space = load_space(args.space)
    arch = sample(space, random.Random(args.seed))
    data = to_nasrec(arch, space) if args.format == "nasrec" else arch.to_dict()
    return json.dumps(data, indent=2)


def run_arch(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handler of ``recnas arch show|sample``; writes its text to ``out``."""
    out = out or sys.stdout
    text = show(args) if args.arch_command == "show" else sample_text(args)
    out.write(text + "\n")
    return 0


def add_arch_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Registers ``arch show`` and ``arch sample`` on the CLI's subparsers."""
    parser = subparsers.add_parser("arch", help="show or sample architectures")
    commands = parser.add_subparsers(dest="arch_command", required=True)

    show_p = commands.add_parser(
        "show", help="block-by-block summary with costs (recnas or NASRec JSON)"
    )
    show_p.add_argument("arch", help="architecture JSON file (recnas or NASRec format)")
    show_p.add_argument(
        "--features",
        help="DENSE,SPARSE feature counts for the costs (default: Criteo's 13,26)",
    )
    show_p.add_argument("--data", help="a processed dataset URI to take features from")
    show_p.add_argument("--space", help="check against this space (name or YAML path)")
    show_p.add_argument("--png", help="also draw the block graph to this PNG file")
    show_p.add_argument(
        "--latency", action="store_true", help="also measure latency (batch 1, 512)"
    )

    sample_p = commands.add_parser("sample", help="print a random valid architecture")
    sample_p.add_argument(
        "space", help="space name (nasrec_full, nasrec_small) or YAML"
    )
    sample_p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sample_p.add_argument(
        "--format",
        choices=("recnas", "nasrec"),
        default="recnas",
        help="JSON format to print (default recnas)",
    )
    parser.set_defaults(func=run_arch)
    return parser
