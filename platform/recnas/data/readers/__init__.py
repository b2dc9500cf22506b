"""Dataset readers, by name."""

from __future__ import annotations

from recnas.data.readers.base import Reader

DATASETS = ("criteo", "avazu", "kdd2012", "movielens")


def get_reader(dataset: str) -> Reader:
    """The reader of a dataset.

    Raises:
        ValueError: For an unknown dataset name.
    """
    if dataset == "movielens":
        from recnas.data.readers.movielens import MovieLensReader

        return MovieLensReader()
    if dataset == "criteo":
        from recnas.data.readers.criteo import CriteoReader

        return CriteoReader()
    if dataset == "avazu":
        from recnas.data.readers.avazu import AvazuReader

        return AvazuReader()
    if dataset == "kdd2012":
        from recnas.data.readers.kdd2012 import Kdd2012Reader

        return Kdd2012Reader()
    raise ValueError(f"unknown dataset {dataset!r}: use one of {', '.join(DATASETS)}")
