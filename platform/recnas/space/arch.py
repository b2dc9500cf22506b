"""The architecture encoding: one small, JSON-able description of a network.

An architecture is a chain of blocks. Every block reads earlier outputs and
produces a dense tensor [B, d] and a sparse tensor [B, tokens, E]::

    source 0 = input stem (dense features, one token per sparse feature)
    source k = output of block k-1           (block i may read sources 0..i)

                 dense sources --> dense op --+--------------> dense out
    block i:     left, right  --/             |  (+ FM of sparse) ^
                 sparse sources -> sparse op -+-(+8 tokens)--> sparse out

Only the last block feeds the head. Example (one block of a 7-block chain)::

    {"dense_sources": [0, 2], "sparse_sources": [1], "left": 0, "right": 0,
     "dense_op": "fc", "sparse_op": "efc", "width": 256, "tokens": 48,
     "dense_to_sparse": true, "sparse_to_dense": false}

The canonical form sorts source sets, keeps left/right only for the binary
dense operators (and the dense set only for the others), drops every block
and every block half whose output never reaches the head, and renumbers the
remaining blocks. The architecture id hashes it, so encodings of one network
share one id.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from recnas.space.spec import BINARY_OPS, DENSE_OPS, MERGERS, SPARSE_OPS

if TYPE_CHECKING:
    from recnas.space.spec import SearchSpace

_BLOCK_FIELDS = (
    "dense_sources",
    "sparse_sources",
    "left",
    "right",
    "dense_op",
    "sparse_op",
    "width",
    "tokens",
    "dense_to_sparse",
    "sparse_to_dense",
)


@dataclass(frozen=True)
class Block:
    """One block of an architecture.

    Attributes:
        dense_sources: Sources concatenated (in increasing order) on the
            feature axis as the dense input of FC and Dot-Product.
        sparse_sources: Sources concatenated (in increasing order) on the
            token axis as the sparse input of the sparse operator and of
            Dot-Product.
        left: Left source of Sigmoid Gating and Sum (ignored by the others).
        right: Right source of Sigmoid Gating and Sum (ignored by the others).
        dense_op: ``fc``, ``dot_product``, ``sigmoid_gating`` or ``sum``.
        sparse_op: ``efc`` or ``attention``.
        width: Dense output width d.
        tokens: Sparse output tokens s (before the dense->sparse merger).
        dense_to_sparse: Append 8 tokens projected from the dense output.
        sparse_to_dense: Add a factorization machine of the sparse output to
            the dense output.
    """

    dense_sources: tuple[int, ...]
    sparse_sources: tuple[int, ...]
    left: int
    right: int
    dense_op: str
    sparse_op: str
    width: int
    tokens: int
    dense_to_sparse: bool
    sparse_to_dense: bool

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["dense_sources"] = list(self.dense_sources)
        data["sparse_sources"] = list(self.sparse_sources)
        return data

    @classmethod
    def from_dict(cls, data: Any, where: str = "block") -> Block:
        """Reads a block mapping; errors name ``where`` and the field."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: must be a mapping with {list(_BLOCK_FIELDS)}")
        unknown = sorted(set(data) - set(_BLOCK_FIELDS))
        missing = [f for f in _BLOCK_FIELDS if f not in data]
        if unknown or missing:
            raise ValueError(
                f"{where}: unknown field(s) {unknown}, missing field(s) {missing}; "
                f"a block has exactly {list(_BLOCK_FIELDS)}"
            )
        return cls(
            dense_sources=_int_list(data["dense_sources"], f"{where}.dense_sources"),
            sparse_sources=_int_list(data["sparse_sources"], f"{where}.sparse_sources"),
            left=_int(data["left"], f"{where}.left"),
            right=_int(data["right"], f"{where}.right"),
            dense_op=_str(data["dense_op"], f"{where}.dense_op"),
            sparse_op=_str(data["sparse_op"], f"{where}.sparse_op"),
            width=_int(data["width"], f"{where}.width"),
            tokens=_int(data["tokens"], f"{where}.tokens"),
            dense_to_sparse=_bool(data["dense_to_sparse"], f"{where}.dense_to_sparse"),
            sparse_to_dense=_bool(data["sparse_to_dense"], f"{where}.sparse_to_dense"),
        )


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: must be an integer, got {value!r}")
    return value


def _int_list(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"{where}: must be a list of integers, got {value!r}")
    return tuple(_int(v, where) for v in value)


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where}: must be a string, got {value!r}")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where}: must be true or false, got {value!r}")
    return value


@dataclass(frozen=True)
class Usage:
    """Which outputs of a block reach the head (see :func:`block_runs`).

    Attributes:
        dense_out: Some later block (or the head) reads the dense output.
        sparse_out: Some later block (or the head) reads the sparse output.
    """

    dense_out: bool
    sparse_out: bool

    @property
    def live(self) -> bool:
        return self.dense_out or self.sparse_out


@dataclass(frozen=True)
class Canonical:
    """The canonical form of an architecture: its live blocks, renumbered.

    Attributes:
        blocks: One JSON-able mapping per live block (see
            :meth:`Architecture.canonical`).
    """

    blocks: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        return {"blocks": list(self.blocks)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Architecture:
    """A network of a search space, as a chain of blocks.

    Attributes:
        space: Name of the search space it belongs to.
        version: Version of that space's spec.
        blocks: The blocks, in order; the last one feeds the head.
    """

    space: str
    version: int | str
    blocks: tuple[Block, ...]

    # Serialization.

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "version": self.version,
            "blocks": [b.to_dict() for b in self.blocks],
        }

    @classmethod
    def from_dict(cls, data: Any) -> Architecture:
        """Reads the recnas JSON form; errors name the block and field."""
        if not isinstance(data, dict) or set(data) != {"space", "version", "blocks"}:
            keys = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(
                f"an architecture must be a mapping with exactly 'space', "
                f"'version' and 'blocks' (got {keys}); the official NASRec form "
                f"with 'macro'/'micro' is read by recnas.space.nasrec_format"
            )
        if not isinstance(data["blocks"], list) or not data["blocks"]:
            raise ValueError("architecture 'blocks': must be a non-empty list")
        version = data["version"]
        if isinstance(version, bool) or not isinstance(version, (int, str)):
            raise ValueError("architecture 'version': must be an integer or string")
        blocks = tuple(
            Block.from_dict(b, where=f"block {i}") for i, b in enumerate(data["blocks"])
        )
        arch = cls(space=_str(data["space"], "space"), version=version, blocks=blocks)
        errors = arch.structure_errors()
        if errors:
            raise ValueError("invalid architecture:\n  " + "\n  ".join(errors))
        return arch

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Architecture:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"architecture JSON does not parse: {err}") from err
        return cls.from_dict(data)

    # Validation.

    def structure_errors(self) -> list[str]:
        """Errors that make the encoding meaningless in any space."""
        errors = []
        for i, b in enumerate(self.blocks):
            allowed = f"0..{i}"
            for name in ("dense_sources", "sparse_sources"):
                sources = getattr(b, name)
                if not sources:
                    errors.append(
                        f"block {i}: {name} is empty; give 1 or more of {allowed}"
                    )
                if len(set(sources)) != len(sources):
                    errors.append(f"block {i}: {name} {list(sources)} repeats a source")
                bad = [s for s in sources if not 0 <= s <= i]
                if bad:
                    errors.append(
                        f"block {i}: {name} {list(sources)} has {bad}; "
                        f"block {i} may read sources {allowed}"
                    )
            for name in ("left", "right"):
                value = getattr(b, name)
                if not 0 <= value <= i:
                    errors.append(
                        f"block {i}: {name} is {value}; block {i} may read {allowed}"
                    )
            if b.dense_op not in DENSE_OPS:
                errors.append(
                    f"block {i}: dense_op {b.dense_op!r} is unknown; known: "
                    f"{list(DENSE_OPS)}"
                )
            if b.sparse_op not in SPARSE_OPS:
                errors.append(
                    f"block {i}: sparse_op {b.sparse_op!r} is unknown; known: "
                    f"{list(SPARSE_OPS)}"
                )
            for name in ("width", "tokens"):
                if getattr(b, name) < 1:
                    errors.append(f"block {i}: {name} must be positive")
        return errors

    def differences(self, space: SearchSpace) -> list[str]:
        """Every way in which this architecture does not fit ``space``."""
        diffs = []
        if self.space != space.name:
            diffs.append(
                f"architecture is for space {self.space!r}, not {space.name!r}"
            )
        if str(self.version) != str(space.version):
            diffs.append(
                f"architecture is for version {self.version!r} of the space, "
                f"the spec is version {space.version!r}"
            )
        if len(self.blocks) != space.num_blocks:
            diffs.append(
                f"architecture has {len(self.blocks)} blocks, space {space.name!r} "
                f"has {space.num_blocks}"
            )
        diffs.extend(self.structure_errors())
        for i, b in enumerate(self.blocks):
            diffs.extend(_block_differences(i, b, space))
        return diffs

    def validate(self, space: SearchSpace) -> Architecture:
        """Checks that the architecture fits ``space``.

        Returns:
            The architecture itself, for chaining.

        Raises:
            ValueError: Listing every difference (which block, which field,
                what the space allows).
        """
        diffs = self.differences(space)
        if diffs:
            # An id needs a well-formed encoding; a broken one has none.
            name = "the architecture" if self.structure_errors() else self.arch_id
            raise ValueError(
                f"{name} does not fit search space "
                f"{space.name!r} ({space.source}):\n  " + "\n  ".join(diffs)
            )
        return self

    # Liveness, canonical form and id.

    def usage(self) -> tuple[Usage, ...]:
        """Which outputs of each block reach the head (the last block's both do)."""
        n = len(self.blocks)
        dense_out = [False] * n
        sparse_out = [False] * n
        dense_out[-1] = sparse_out[-1] = True

        def need(sources: tuple[int, ...], flags: list[bool]) -> None:
            for s in sources:
                if s > 0:
                    flags[s - 1] = True

        for i in range(n - 1, -1, -1):
            b = self.blocks[i]
            runs_dense, runs_sparse = _runs(b, dense_out[i], sparse_out[i])
            if runs_dense:
                if b.dense_op in BINARY_OPS:
                    need((b.left, b.right), dense_out)
                else:
                    need(b.dense_sources, dense_out)
                if b.dense_op == "dot_product":
                    need(b.sparse_sources, sparse_out)
            if runs_sparse:
                need(b.sparse_sources, sparse_out)
        return tuple(Usage(d, s) for d, s in zip(dense_out, sparse_out, strict=True))

    def canonical(self) -> Canonical:
        """The canonical form that the id hashes.

        Only live blocks remain, renumbered in order (source 0 stays the stem);
        a block lists its dense half only if the dense operator runs, its
        sparse half only if the sparse operator runs, and each merger only
        where its output is read. The space name is not part of it: the same
        network has the same id in every space.
        """
        usage = self.usage()
        live = [i for i, u in enumerate(usage) if u.live]
        renumber = {0: 0} | {i + 1: k + 1 for k, i in enumerate(live)}

        def sources(values: tuple[int, ...]) -> list[int]:
            return sorted(renumber[s] for s in set(values))

        blocks = []
        for i in live:
            b, u = self.blocks[i], usage[i]
            runs_dense, runs_sparse = _runs(b, u.dense_out, u.sparse_out)
            entry: dict[str, Any] = {}
            if runs_dense:
                dense: dict[str, Any] = {"op": b.dense_op, "width": b.width}
                if b.dense_op in BINARY_OPS:
                    left, right = renumber[b.left], renumber[b.right]
                    if b.dense_op == "sum":
                        left, right = sorted((left, right))
                    dense |= {"left": left, "right": right}
                else:
                    dense["sources"] = sources(b.dense_sources)
                if b.dense_op == "dot_product":
                    dense["sparse_sources"] = sources(b.sparse_sources)
                entry["dense"] = dense
            if runs_sparse:
                entry["sparse"] = {
                    "op": b.sparse_op,
                    "tokens": b.tokens,
                    "sources": sources(b.sparse_sources),
                }
            if u.sparse_out:
                entry["dense_to_sparse"] = b.dense_to_sparse
            if u.dense_out:
                entry["sparse_to_dense"] = b.sparse_to_dense
            blocks.append(entry)
        return Canonical(tuple(blocks))

    @functools.cached_property
    def arch_id(self) -> str:
        """12 hex digits of the SHA-256 of the canonical form."""
        text = self.canonical().to_json()
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def replace_block(self, index: int, block: Block) -> Architecture:
        blocks = list(self.blocks)
        blocks[index] = block
        return Architecture(self.space, self.version, tuple(blocks))


def _runs(block: Block, dense_out: bool, sparse_out: bool) -> tuple[bool, bool]:
    """Whether the dense and the sparse operator of a block must run."""
    runs_dense = dense_out or (sparse_out and block.dense_to_sparse)
    runs_sparse = sparse_out or (dense_out and block.sparse_to_dense)
    return runs_dense, runs_sparse


def block_runs(block: Block, usage: Usage) -> tuple[bool, bool]:
    """(dense operator runs, sparse operator runs) for a block and its usage."""
    return _runs(block, usage.dense_out, usage.sparse_out)


def _block_differences(i: int, b: Block, space: SearchSpace) -> list[str]:
    diffs = []
    checks = (
        ("dense_op", b.dense_op, space.dense_ops),
        ("sparse_op", b.sparse_op, space.sparse_ops),
        ("width", b.width, space.dense_widths),
        ("tokens", b.tokens, space.sparse_tokens),
    )
    for name, value, allowed in checks:
        if value not in allowed:
            diffs.append(
                f"block {i}: {name} {value!r} is not in space {space.name!r}; "
                f"allowed: {list(allowed)}"
            )
    for name in MERGERS:
        value = getattr(b, name)
        if value not in space.mergers[name]:
            diffs.append(
                f"block {i}: {name} {value!r} is not allowed in space "
                f"{space.name!r}; allowed: {list(space.mergers[name])}"
            )
    for name in ("dense_sources", "sparse_sources"):
        count = len(getattr(b, name))
        if count > space.max_sources:
            diffs.append(
                f"block {i}: {name} has {count} sources; space {space.name!r} "
                f"allows at most {space.max_sources}"
            )
    return diffs
