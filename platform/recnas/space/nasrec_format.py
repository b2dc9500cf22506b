"""The official NASRec JSON format, imported and exported without loss.

NASRec (facebookresearch/NasRec) stores an architecture as two lists with
one entry per block::

    {"macro": [{"dense_idx": [0], "sparse_idx": [0],
                "dense_left_idx": [0], "dense_right_idx": [0]}, ...],
     "micro": [{"active_nodes": [0, 2], "dense_in_dims": 256,
                "sparse_in_dims": 48, "dense_sparse_interact": 1,
                "deep_fm": 0}, ...],
     "num_blocks": 7, "use_layernorm": 1, "config": "autoctr"}

Indices mean what recnas's sources mean (0 = the stem, k = block k-1).
``active_nodes`` names one dense and one sparse operator by node number
(``config`` xlarge = NASRec-Full: 0 FC, 1 Dot-Product, 2 Sigmoid Gating,
3 Sum, 4 Attention, 5 EFC; autoctr = NASRec-Small: 0 FC, 1 Dot-Product,
2 EFC; the numbering lives in each space's spec). Source lists keep their
order both ways, so an import followed by an export gives the same lists.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from recnas.space.arch import Architecture, Block
from recnas.space.spec import SearchSpace, available_spaces, load_space

logger = logging.getLogger(__name__)

_TOP_KEYS = {"macro", "micro", "num_blocks", "use_layernorm", "config"}
# Result fields that NASRec writes next to an architecture; ignored on import.
_RESULT_KEY = re.compile(r"^(test|val|train)_|^(latency|hash_token|flops|params)$")
_MACRO_KEYS = ("dense_idx", "sparse_idx", "dense_left_idx", "dense_right_idx")
_MICRO_KEYS = (
    "active_nodes",
    "dense_in_dims",
    "sparse_in_dims",
    "dense_sparse_interact",
    "deep_fm",
)


def is_nasrec(data: Any) -> bool:
    """Whether a mapping is in the official NASRec format."""
    return isinstance(data, dict) and "macro" in data and "micro" in data


def space_for_config(config: str) -> SearchSpace:
    """The shipped space whose official ``config`` name is ``config``."""
    for name in available_spaces():
        space = load_space(name)
        if space.nasrec is not None and space.nasrec.config == config:
            return space
    raise ValueError(
        f"NASRec config {config!r} matches no shipped search space; give the "
        f"space explicitly (shipped: {available_spaces()})"
    )


def _ints(value: Any, where: str) -> list[int]:
    if not isinstance(value, list) or any(
        isinstance(v, bool) or not isinstance(v, int) for v in value
    ):
        raise ValueError(f"{where}: must be a list of integers, got {value!r}")
    return value


def _single(value: Any, where: str) -> int:
    items = _ints(value, where)
    if len(items) != 1:
        raise ValueError(
            f"{where}: must hold exactly one source (a single architecture), "
            f"got {items}"
        )
    return items[0]


def _flag(value: Any, where: str) -> bool:
    if value not in (0, 1) or isinstance(value, float):
        raise ValueError(f"{where}: must be 0 or 1, got {value!r}")
    return bool(value)


def _block(macro: Any, micro: Any, i: int, space: SearchSpace) -> Block:
    for part, keys, name in (
        (macro, _MACRO_KEYS, "macro"),
        (micro, _MICRO_KEYS, "micro"),
    ):
        if not isinstance(part, dict) or set(part) != set(keys):
            got = sorted(part) if isinstance(part, dict) else part
            raise ValueError(f"{name}[{i}]: must have exactly {list(keys)}, got {got}")
    nodes = space.nasrec.nodes
    active = _ints(micro["active_nodes"], f"micro[{i}].active_nodes")
    bad = [n for n in active if not 0 <= n < len(nodes)]
    if bad:
        raise ValueError(
            f"micro[{i}].active_nodes: node(s) {bad} do not exist in config "
            f"{space.nasrec.config!r} (nodes 0..{len(nodes) - 1}: {list(nodes)})"
        )
    dense = [nodes[n] for n in active if nodes[n] in space.dense_ops]
    sparse = [nodes[n] for n in active if nodes[n] in space.sparse_ops]
    if len(dense) != 1 or len(sparse) != 1 or len(active) != 2:
        raise ValueError(
            f"micro[{i}].active_nodes {active}: a block activates exactly one "
            f"dense and one sparse node (nodes: {list(nodes)})"
        )
    return Block(
        dense_sources=tuple(_ints(macro["dense_idx"], f"macro[{i}].dense_idx")),
        sparse_sources=tuple(_ints(macro["sparse_idx"], f"macro[{i}].sparse_idx")),
        left=_single(macro["dense_left_idx"], f"macro[{i}].dense_left_idx"),
        right=_single(macro["dense_right_idx"], f"macro[{i}].dense_right_idx"),
        dense_op=dense[0],
        sparse_op=sparse[0],
        width=_single([micro["dense_in_dims"]], f"micro[{i}].dense_in_dims"),
        tokens=_single([micro["sparse_in_dims"]], f"micro[{i}].sparse_in_dims"),
        dense_to_sparse=_flag(
            micro["dense_sparse_interact"], f"micro[{i}].dense_sparse_interact"
        ),
        sparse_to_dense=_flag(micro["deep_fm"], f"micro[{i}].deep_fm"),
    )


def from_nasrec(data: Any, space: SearchSpace | str | None = None) -> Architecture:
    """Imports an official NASRec architecture.

    Args:
        data: The parsed JSON mapping.
        space: The space it belongs to; by default the shipped space whose
            official config name is ``data["config"]``.

    Raises:
        ValueError: A malformed entry (named by list and block) or an
            architecture that does not fit the space (every difference).
    """
    if not is_nasrec(data):
        raise ValueError("not a NASRec architecture: 'macro' and 'micro' are required")
    unknown = sorted(k for k in set(data) - _TOP_KEYS if not _RESULT_KEY.match(k))
    if unknown:
        raise ValueError(
            f"NASRec architecture: unknown key(s) {unknown}; known: {sorted(_TOP_KEYS)}"
        )
    if space is None:
        if "config" not in data:
            raise ValueError("NASRec architecture has no 'config': give the space")
        space = space_for_config(data["config"])
    space = load_space(space)
    if space.nasrec is None:
        raise ValueError(
            f"search space {space.name!r} ({space.source}) has no 'nasrec' node "
            f"numbering, so NASRec JSON cannot be read into it"
        )
    if "config" in data and data["config"] != space.nasrec.config:
        raise ValueError(
            f"NASRec config {data['config']!r} is not the config "
            f"{space.nasrec.config!r} of space {space.name!r}"
        )
    macro, micro = data["macro"], data["micro"]
    if (
        not isinstance(macro, list)
        or not isinstance(micro, list)
        or len(macro) != len(micro)
    ):
        raise ValueError("NASRec 'macro' and 'micro' must be lists of equal length")
    if "num_blocks" in data and data["num_blocks"] != len(macro):
        raise ValueError(
            f"NASRec 'num_blocks' is {data['num_blocks']} but there are "
            f"{len(macro)} blocks"
        )
    pairs = enumerate(zip(macro, micro, strict=True))
    blocks = tuple(_block(a, b, i, space) for i, (a, b) in pairs)
    arch = Architecture(space=space.name, version=space.version, blocks=blocks)
    return arch.validate(space)


def to_nasrec(
    arch: Architecture,
    space: SearchSpace | str | None = None,
    *,
    use_layernorm: bool = True,
) -> dict[str, Any]:
    """Exports an architecture in the official NASRec format.

    Args:
        arch: The architecture.
        space: Its space (default: the shipped space named ``arch.space``);
            it must carry a NASRec node numbering.
        use_layernorm: The ``use_layernorm`` flag written next to it.
    """
    space = load_space(space or arch.space)
    arch.validate(space)
    if space.nasrec is None:
        raise ValueError(
            f"search space {space.name!r} has no 'nasrec' node numbering to export with"
        )
    nodes = space.nasrec.nodes
    macro, micro = [], []
    for b in arch.blocks:
        macro.append(
            {
                "dense_idx": list(b.dense_sources),
                "sparse_idx": list(b.sparse_sources),
                "dense_left_idx": [b.left],
                "dense_right_idx": [b.right],
            }
        )
        micro.append(
            {
                "active_nodes": sorted(
                    [nodes.index(b.dense_op), nodes.index(b.sparse_op)]
                ),
                "dense_in_dims": b.width,
                "sparse_in_dims": b.tokens,
                "dense_sparse_interact": int(b.dense_to_sparse),
                "deep_fm": int(b.sparse_to_dense),
            }
        )
    return {
        "micro": micro,
        "macro": macro,
        "num_blocks": len(arch.blocks),
        "use_layernorm": int(use_layernorm),
        "config": space.nasrec.config,
    }


def read_architecture(
    source: str | Path | dict[str, Any], space: SearchSpace | str | None = None
) -> Architecture:
    """Reads an architecture in either format, from a JSON file or a mapping.

    Args:
        source: A path to a JSON file, or the parsed mapping.
        space: Check the architecture against this space (by default the
            space it names, or, for NASRec JSON, the one its config names).

    Raises:
        ValueError: The file is missing or malformed, or the architecture does
            not fit the space; the message says which and where.
    """
    where = "<mapping>"
    if not isinstance(source, dict):
        where = str(source)
        path = Path(source)
        if not path.is_file():
            raise ValueError(f"architecture file {where!r} does not exist")
        try:
            source = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON: {err}") from err
    try:
        if is_nasrec(source):
            return from_nasrec(source, space)
        arch = Architecture.from_dict(source)
        if space is not None:
            return arch.validate(load_space(space))
        if arch.space in available_spaces():
            arch.validate(load_space(arch.space))
        return arch
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from err
