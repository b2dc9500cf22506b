"""Search-space specs: which operators, widths and connections a space offers.

A spec is a small YAML file in ``search_spaces/`` (shipped in the wheel as the
package ``recnas.search_spaces``). :func:`load_space` finds one by name
(``nasrec_full``, ``nasrec_small``) or by path and validates every key:

.. code-block:: yaml

    name: nasrec_small
    version: 1
    num_blocks: 7
    embedding_dim: 16
    dense_ops: [fc, dot_product]
    sparse_ops: [efc]
    dense_widths: [16, 32, 64, 128, 256, 512, 768, 1024]
    sparse_tokens: [16, 32, 48, 64]
    max_sources: 4
    mergers: {dense_to_sparse: [false, true], sparse_to_dense: [false, true]}
    nasrec: {config: autoctr, nodes: [fc, dot_product, efc]}

A merger whose choices are ``[false, true]`` is searched; ``[true]`` or
``[false]`` fixes it. ``nasrec`` (optional) gives the node numbering of the
official NASRec JSON format, for import and export.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from recnas import yamlio

logger = logging.getLogger(__name__)

DENSE_OPS = ("fc", "dot_product", "sigmoid_gating", "sum")
SPARSE_OPS = ("efc", "attention")
# Dense operators that read the block's left and right sources, not its dense set.
BINARY_OPS = ("sigmoid_gating", "sum")
MERGERS = ("dense_to_sparse", "sparse_to_dense")
# Tokens appended by the dense->sparse merger, and attention heads.
MERGER_TOKENS = 8
ATTENTION_HEADS = 8

_KEYS = {
    "name",
    "version",
    "num_blocks",
    "embedding_dim",
    "dense_ops",
    "sparse_ops",
    "dense_widths",
    "sparse_tokens",
    "max_sources",
    "mergers",
    "nasrec",
}
_OPTIONAL = {"nasrec", "mergers"}


@dataclass(frozen=True)
class NasrecNumbering:
    """Node numbers of the official NASRec JSON format for one space.

    Attributes:
        config: The official ``config`` name (``xlarge``, ``autoctr``).
        nodes: Operator name of node 0, 1, 2, ...
    """

    config: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space.

    Attributes:
        name: Space name, recorded in every architecture of the space.
        version: Spec version, recorded next to the name.
        num_blocks: Blocks per architecture.
        embedding_dim: E, the width of one token.
        dense_ops: Dense operators a block may pick (one per block).
        sparse_ops: Sparse operators a block may pick (one per block).
        dense_widths: Choices of the dense output width d.
        sparse_tokens: Choices of the sparse output token count s.
        max_sources: Most dense (and most sparse) sources a block may read.
        mergers: Allowed values of each merger switch.
        nasrec: Node numbering of the official JSON format, or None.
        source: Where the spec came from, for messages.
    """

    name: str
    version: int | str
    num_blocks: int
    embedding_dim: int
    dense_ops: tuple[str, ...]
    sparse_ops: tuple[str, ...]
    dense_widths: tuple[int, ...]
    sparse_tokens: tuple[int, ...]
    max_sources: int = 4
    mergers: dict[str, tuple[bool, ...]] = field(
        default_factory=lambda: {m: (False, True) for m in MERGERS}
    )
    nasrec: NasrecNumbering | None = None
    source: str = "<dict>"

    def __hash__(self) -> int:
        return hash((self.name, self.version, self.source))

    @property
    def max_width(self) -> int:
        return max(self.dense_widths)

    @property
    def max_tokens(self) -> int:
        return max(self.sparse_tokens)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "num_blocks": self.num_blocks,
            "embedding_dim": self.embedding_dim,
            "dense_ops": list(self.dense_ops),
            "sparse_ops": list(self.sparse_ops),
            "dense_widths": list(self.dense_widths),
            "sparse_tokens": list(self.sparse_tokens),
            "max_sources": self.max_sources,
            "mergers": {k: list(v) for k, v in self.mergers.items()},
        }
        if self.nasrec is not None:
            data["nasrec"] = {
                "config": self.nasrec.config,
                "nodes": list(self.nasrec.nodes),
            }
        return data

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> SearchSpace:
        """Validates a spec mapping; errors name ``source`` and the key."""
        if not isinstance(data, dict):
            raise ValueError(f"{source}: a search-space spec must be a mapping")
        _check_keys(data, source)

        def ints(key: str) -> tuple[int, ...]:
            return _positive_ints(data[key], key, source)

        space = cls(
            name=_string(data["name"], "name", source),
            version=_version(data["version"], source),
            num_blocks=_positive_int(data["num_blocks"], "num_blocks", source),
            embedding_dim=_positive_int(data["embedding_dim"], "embedding_dim", source),
            dense_ops=_ops(data["dense_ops"], "dense_ops", DENSE_OPS, source),
            sparse_ops=_ops(data["sparse_ops"], "sparse_ops", SPARSE_OPS, source),
            dense_widths=ints("dense_widths"),
            sparse_tokens=ints("sparse_tokens"),
            max_sources=_positive_int(data["max_sources"], "max_sources", source),
            mergers=_mergers(data.get("mergers"), source),
            nasrec=_numbering(data.get("nasrec"), data, source),
            source=source,
        )
        if space.embedding_dim % ATTENTION_HEADS and "attention" in space.sparse_ops:
            raise ValueError(
                f"{source}: key 'embedding_dim': attention needs a multiple of "
                f"{ATTENTION_HEADS} heads, got {space.embedding_dim}"
            )
        return space


def _check_keys(data: dict[str, Any], source: str) -> None:
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {unknown}; allowed keys: {sorted(_KEYS)}"
        )
    missing = sorted(_KEYS - _OPTIONAL - set(data))
    if missing:
        raise ValueError(f"{source}: missing key(s) {missing}")


def _string(value: Any, key: str, source: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{source}: key {key!r} must be a non-empty string")
    return value


def _version(value: Any, source: str) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{source}: key 'version' must be an integer or a string")
    return value


def _positive_int(value: Any, key: str, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{source}: key {key!r} must be a positive integer, got {value!r}"
        )
    return value


def _positive_ints(value: Any, key: str, source: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{source}: key {key!r} must be a non-empty list")
    items = tuple(_positive_int(v, key, source) for v in value)
    if list(items) != sorted(set(items)):
        raise ValueError(
            f"{source}: key {key!r} must list distinct values in increasing "
            f"order, got {list(items)}"
        )
    return items


def _ops(value: Any, key: str, known: tuple[str, ...], source: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{source}: key {key!r} must be a non-empty list")
    for op in value:
        if op not in known:
            raise ValueError(
                f"{source}: key {key!r}: unknown operator {op!r}; known: {list(known)}"
            )
    if len(set(value)) != len(value):
        raise ValueError(f"{source}: key {key!r} lists an operator twice")
    return tuple(value)


def _mergers(value: Any, source: str) -> dict[str, tuple[bool, ...]]:
    if value is None:
        return {m: (False, True) for m in MERGERS}
    if not isinstance(value, dict) or set(value) != set(MERGERS):
        raise ValueError(
            f"{source}: key 'mergers' must map exactly {list(MERGERS)} to lists "
            f"of allowed values, e.g. [false, true]"
        )
    result = {}
    for name in MERGERS:
        choices = value[name]
        ok = isinstance(choices, list) and choices
        if not ok or any(not isinstance(c, bool) for c in choices):
            raise ValueError(
                f"{source}: key 'mergers.{name}' must be a non-empty list of "
                f"booleans, got {choices!r}"
            )
        result[name] = tuple(sorted(set(choices)))
    return result


def _numbering(value: Any, data: dict[str, Any], source: str) -> NasrecNumbering | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"config", "nodes"}:
        raise ValueError(
            f"{source}: key 'nasrec' must hold exactly 'config' and 'nodes'"
        )
    nodes = value["nodes"]
    ops = list(data["dense_ops"]) + list(data["sparse_ops"])
    if not isinstance(nodes, list) or sorted(nodes) != sorted(ops):
        raise ValueError(
            f"{source}: key 'nasrec.nodes' must number each operator of "
            f"dense_ops and sparse_ops exactly once, got {nodes!r}"
        )
    return NasrecNumbering(
        config=_string(value["config"], "nasrec.config", source), nodes=tuple(nodes)
    )


def available_spaces() -> list[str]:
    """Names of the specs shipped with recnas."""
    folder = resources.files("recnas.search_spaces")
    names = (p.name for p in folder.iterdir())
    return sorted(n[: -len(".yaml")] for n in names if n.endswith(".yaml"))


@functools.lru_cache(maxsize=32)
def _load_cached(name_or_path: str) -> SearchSpace:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ValueError(f"search space file {name_or_path!r} does not exist")
        text, source = path.read_text(), str(path)
    else:
        resource = resources.files("recnas.search_spaces") / f"{name_or_path}.yaml"
        if not resource.is_file():
            raise ValueError(
                f"unknown search space {name_or_path!r}; shipped spaces: "
                f"{available_spaces()}, or give the path of a YAML spec"
            )
        text, source = resource.read_text(), f"{name_or_path}.yaml"
    data = yamlio.parse(text, source)
    space = SearchSpace.from_dict(data, source=source)
    logger.debug("loaded search space %s from %s", space.name, source)
    return space


def load_space(name_or_path: str | Path | SearchSpace) -> SearchSpace:
    """Loads and validates a search space by name or YAML path.

    Args:
        name_or_path: A shipped name (``nasrec_full``, ``nasrec_small``), the
            path of a YAML spec, or a :class:`SearchSpace` (returned as is).

    Raises:
        ValueError: The name is unknown or the spec is invalid; the message
            names the file and the key.
    """
    if isinstance(name_or_path, SearchSpace):
        return name_or_path
    return _load_cached(str(name_or_path))
