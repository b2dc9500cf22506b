"""The feature set of a processed dataset and the batch the models eat.

A processed dataset (see :mod:`recnas.data.meta`) has dense features (float32,
already transformed), single-valued sparse features (int32 ids) and
multi-valued sparse features (lists of int32 ids). Id 0 is missing, id 1 is
out-of-vocabulary. :class:`FeatureSet` is all a model needs to know about them;
:class:`Batch` is what the loader hands to a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

MISSING_ID = 0
OOV_ID = 1


@dataclass(frozen=True)
class SparseFeature:
    """One sparse feature and its embedding table.

    Attributes:
        name: Column name in the Parquet splits.
        vocab_size: Rows of its embedding table, ids 0 and 1 included.
        multi_valued: Whether a row holds a list of ids (pooled to one token).
        max_len: Padded list length in a batch; 1 for single-valued features.
    """

    name: str
    vocab_size: int
    multi_valued: bool = False
    max_len: int = 1

    def __post_init__(self) -> None:
        if self.vocab_size < 2:
            raise ValueError(
                f"sparse feature {self.name!r}: vocab_size must be at least 2 "
                f"(ids 0 missing and 1 out-of-vocabulary), got {self.vocab_size}"
            )
        if self.max_len < 1:
            raise ValueError(
                f"sparse feature {self.name!r}: max_len must be >= 1, "
                f"got {self.max_len}"
            )


@dataclass(frozen=True)
class FeatureSet:
    """The features a model reads, in column order.

    Sparse features are tokens in the order of ``sparse``; a batch carries the
    single-valued ones in ``Batch.sparse`` and the multi-valued ones in
    ``Batch.multi``, each group in this order.

    Example:
        >>> fs = FeatureSet(dense=("age",), sparse=(SparseFeature("user", 100),))
        >>> fs.num_dense, fs.num_sparse
        (1, 1)
    """

    dense: tuple[str, ...]
    sparse: tuple[SparseFeature, ...]
    label: str = "label"

    @property
    def num_dense(self) -> int:
        return len(self.dense)

    @property
    def num_sparse(self) -> int:
        return len(self.sparse)

    @property
    def single(self) -> tuple[SparseFeature, ...]:
        """Single-valued sparse features, the columns of ``Batch.sparse``."""
        return tuple(f for f in self.sparse if not f.multi_valued)

    @property
    def multi(self) -> tuple[SparseFeature, ...]:
        """Multi-valued sparse features, the tensors of ``Batch.multi``."""
        return tuple(f for f in self.sparse if f.multi_valued)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "dense": list(self.dense),
            "sparse": [
                {
                    "name": f.name,
                    "vocab_size": f.vocab_size,
                    "multi_valued": f.multi_valued,
                    "max_len": f.max_len,
                }
                for f in self.sparse
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSet:
        return cls(
            dense=tuple(data["dense"]),
            sparse=tuple(SparseFeature(**f) for f in data["sparse"]),
            label=data.get("label", "label"),
        )

    @classmethod
    def synthetic(
        cls, num_dense: int, vocab_sizes: list[int], multi: int = 0
    ) -> FeatureSet:
        """A feature set with generic names, for cost figures and tests.

        Args:
            num_dense: Number of dense features, named ``I1``, ``I2``, ...
            vocab_sizes: Table sizes of the sparse features ``C1``, ``C2``, ...
            multi: How many of the last sparse features are multi-valued.
        """
        n = len(vocab_sizes)
        sparse = tuple(
            SparseFeature(
                f"C{i + 1}",
                size,
                multi_valued=i >= n - multi,
                max_len=4 if i >= n - multi else 1,
            )
            for i, size in enumerate(vocab_sizes)
        )
        return cls(dense=tuple(f"I{i + 1}" for i in range(num_dense)), sparse=sparse)


@dataclass
class Batch:
    """A batch of examples as tensors.

    Attributes:
        label: [B] float32, 0 or 1.
        dense: [B, F_dense] float32.
        sparse: [B, F_single] int64 ids of the single-valued sparse features.
        multi: One [B, L_k] int64 tensor per multi-valued feature, padded with
            id 0 (missing).
    """

    label: torch.Tensor
    dense: torch.Tensor
    sparse: torch.Tensor
    multi: tuple[torch.Tensor, ...] = field(default_factory=tuple)

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def take(self, index: torch.Tensor) -> Batch:
        """The rows ``index`` (copies)."""
        return Batch(
            label=self.label[index],
            dense=self.dense[index],
            sparse=self.sparse[index],
            multi=tuple(m[index] for m in self.multi),
        )

    def rows(self, start: int, stop: int) -> Batch:
        """Rows ``[start, stop)`` as views of this batch's tensors."""
        return Batch(
            label=self.label[start:stop],
            dense=self.dense[start:stop],
            sparse=self.sparse[start:stop],
            multi=tuple(m[start:stop] for m in self.multi),
        )

    def to(self, device: torch.device | str) -> Batch:
        return Batch(
            label=self.label.to(device, non_blocking=True),
            dense=self.dense.to(device, non_blocking=True),
            sparse=self.sparse.to(device, non_blocking=True),
            multi=tuple(m.to(device, non_blocking=True) for m in self.multi),
        )

    @classmethod
    def random(
        cls, features: FeatureSet, size: int, generator: torch.Generator | None = None
    ) -> Batch:
        """A batch of random valid ids and values, for tests and benchmarks."""
        g = generator

        def ids(f: SparseFeature, shape: tuple[int, ...]) -> torch.Tensor:
            return torch.randint(0, f.vocab_size, shape, generator=g)

        single = [ids(f, (size,)) for f in features.single]
        sparse = (
            torch.stack(single, dim=1)
            if single
            else torch.zeros(size, 0, dtype=torch.int64)
        )
        return cls(
            label=torch.randint(0, 2, (size,), generator=g).float(),
            dense=torch.rand(size, features.num_dense, generator=g),
            sparse=sparse,
            multi=tuple(ids(f, (size, f.max_len)) for f in features.multi),
        )
