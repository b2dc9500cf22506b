"""The registered model: an MLflow pyfunc that scores processed rows.

Its input is a table with the columns of the processed Parquet splits (dense
features as floats, sparse ids as integers, multi-valued features as lists of
ids); its output is the click probability of every row.
"""

from __future__ import annotations

import importlib
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
import torch

from recnas.data.features import Batch, FeatureSet


def frame_to_batch(frame: Any, features: FeatureSet) -> Batch:
    """A pandas DataFrame of processed rows as a :class:`Batch` (label 0)."""
    n = len(frame)
    dense = (
        torch.tensor(frame[list(features.dense)].to_numpy(np.float32))
        if features.dense
        else torch.zeros(n, 0)
    )
    single = [torch.tensor(frame[f.name].to_numpy(np.int64)) for f in features.single]
    sparse = torch.stack(single, 1) if single else torch.zeros(n, 0, dtype=torch.int64)
    multi = []
    for f in features.multi:
        padded = np.zeros((n, f.max_len), dtype=np.int64)
        for i, ids in enumerate(frame[f.name]):
            values = list(ids if ids is not None else [])[: f.max_len]
            padded[i, : len(values)] = values
        multi.append(torch.from_numpy(padded))
    return Batch(torch.zeros(n), dense, sparse, tuple(multi))


class CtrPredictor(mlflow.pyfunc.PythonModel):
    """Click probabilities from a recnas checkpoint.

    Args:
        features: ``FeatureSet.to_dict()`` of the dataset the model was
            trained on.
        loader: ``module:function`` that rebuilds a model from a checkpoint
            folder and returns ``(model, config)``.
    """

    def __init__(
        self,
        features: dict[str, Any],
        loader: str = "recnas.train.checkpoint:load_model",
    ) -> None:
        self.features = features
        self.loader = loader
        self.model: torch.nn.Module | None = None

    def __getstate__(self) -> dict[str, Any]:
        # The weights travel as the checkpoint artifact, never in the pickle.
        return {**self.__dict__, "model": None}

    def load_context(self, context: Any) -> None:
        module, _, name = self.loader.partition(":")
        load = getattr(importlib.import_module(module), name)
        self.model, _ = load(context.artifacts["checkpoint"])
        self.model.eval()

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: Any = None
    ) -> np.ndarray:
        if self.model is None:
            self.load_context(context)
        batch = frame_to_batch(model_input, FeatureSet.from_dict(self.features))
        with torch.no_grad():
            return torch.sigmoid(self.model(batch)).numpy().astype(np.float32)
