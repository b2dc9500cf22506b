"""``meta.json``: what a processed dataset holds and where it came from.

A processed dataset is a folder (local or ``s3://``)::

    meta.json          this record
    train/ val/ test/  Parquet parts, file order kept: part-00000-000.parquet, ...
    rejected/          rejected rows: source, line, reason, text
    vocab/             one Parquet table per sparse feature (vocabulary encoding)

Every run that reads a dataset logs ``protocol`` and :meth:`DatasetMeta.split_md5`
so that results from different splits are never compared unmarked.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from recnas.data import storage
from recnas.data.features import FeatureSet

META_FILE = "meta.json"
FORMAT_VERSION = 1
_REQUIRED = ("dataset", "features", "protocol", "rows", "files")


@dataclass
class DatasetMeta:
    """The record of one processed dataset.

    Attributes:
        dataset: Reader name: criteo, avazu, kdd2012 or movielens.
        features: Feature names and table sizes, in column order.
        protocol: How rows were split, e.g. ``{"name": "autoctr_811", "seed": 2018}``.
        rows: Rows per split.
        files: Per split, its Parquet parts in order: ``{path, md5, rows}`` with
            ``path`` relative to the dataset folder.
        rows_read: Raw data rows read (written + rejected).
        rejected: Rejected rows by reason.
        rejected_files: Parts of ``rejected/``, as ``files``.
        encoding: Sparse id settings: ``{"kind": "vocab", "min_count": m}`` or
            ``{"kind": "hash", "sizes": {...}}``.
        transform: Dense transform settings.
        sources: Input files: ``{uri, bytes}``.
        synthetic: True for data made by the scale generator.
        details: Reader-specific facts (variant, derived features, ...).
        version: recnas version that wrote the dataset.
        uri: Where the record was loaded from (not stored).
    """

    dataset: str
    features: FeatureSet
    protocol: dict[str, Any]
    rows: dict[str, int]
    files: dict[str, list[dict[str, Any]]]
    rows_read: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    rejected_files: list[dict[str, Any]] = field(default_factory=list)
    encoding: dict[str, Any] = field(default_factory=dict)
    transform: dict[str, Any] = field(default_factory=dict)
    sources: list[dict[str, Any]] = field(default_factory=list)
    synthetic: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    version: str = ""
    uri: str = ""

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(self.files)

    def split_md5(self, split: str) -> str:
        """One md5 over the files of a split: their paths, md5s and row counts."""
        if split not in self.files:
            raise ValueError(
                f"dataset {self.uri or self.dataset!r} has no split {split!r}; "
                f"splits: {', '.join(self.files)}"
            )
        digest = hashlib.md5()
        for f in self.files[split]:
            digest.update(f"{f['path']}\t{f['md5']}\t{f['rows']}\n".encode())
        return digest.hexdigest()

    def split_uris(self, split: str) -> list[str]:
        """The Parquet parts of a split as URIs, in order."""
        self.split_md5(split)  # validates the name
        return [storage.join(self.uri, f["path"]) for f in self.files[split]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "dataset": self.dataset,
            "synthetic": self.synthetic,
            "protocol": self.protocol,
            "rows": self.rows,
            "rows_read": self.rows_read,
            "rejected": self.rejected,
            "features": self.features.to_dict(),
            "encoding": self.encoding,
            "transform": self.transform,
            "details": self.details,
            "files": self.files,
            "rejected_files": self.rejected_files,
            "sources": self.sources,
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], uri: str = "") -> DatasetMeta:
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise ValueError(
                f"{storage.join(uri, META_FILE) if uri else META_FILE}: missing "
                f"key(s) {', '.join(missing)}; rewrite it with `recnas data ingest`"
            )
        return cls(
            dataset=data["dataset"],
            features=FeatureSet.from_dict(data["features"]),
            protocol=dict(data["protocol"]),
            rows={k: int(v) for k, v in data["rows"].items()},
            files={k: list(v) for k, v in data["files"].items()},
            rows_read=int(data.get("rows_read", 0)),
            rejected=dict(data.get("rejected", {})),
            rejected_files=list(data.get("rejected_files", [])),
            encoding=dict(data.get("encoding", {})),
            transform=dict(data.get("transform", {})),
            sources=list(data.get("sources", [])),
            synthetic=bool(data.get("synthetic", False)),
            details=dict(data.get("details", {})),
            version=str(data.get("version", "")),
            uri=uri,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    def save(self, uri: str) -> None:
        """Writes ``meta.json`` into the dataset folder ``uri``."""
        storage.write_bytes(storage.join(uri, META_FILE), self.to_json().encode())


def load_meta(uri: str) -> DatasetMeta:
    """Reads the ``meta.json`` of the processed dataset at ``uri``.

    Raises:
        ValueError: If there is no dataset at ``uri`` or its record is unreadable.
    """
    path = storage.join(uri, META_FILE)
    if not storage.exists(path):
        raise ValueError(
            f"no processed dataset at {uri!r} ({META_FILE} is missing); "
            "create one with `recnas data ingest DATASET INPUT... --out URI`"
        )
    try:
        data = json.loads(storage.read_bytes(path))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); ingest again") from err
    return DatasetMeta.from_dict(data, uri=uri)
