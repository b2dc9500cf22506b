"""The MLflow adapter against a real SQLite store in a temporary folder."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from recnas.tracking.mlflow_tracker import Tracker, default_tracking_uri


class Halver(mlflow.pyfunc.PythonModel):
    def predict(
        self, context: object, model_input: pd.DataFrame, params: object = None
    ) -> np.ndarray:
        return np.asarray(model_input["x"], dtype=np.float32) / 2


@pytest.fixture
def tracker(tmp_path: Path) -> Tracker:
    return Tracker(default_tracking_uri(str(tmp_path / "runs")), "job-a")


def test_store_lives_under_storage(tmp_path: Path) -> None:
    uri = default_tracking_uri(str(tmp_path / "runs"))
    assert uri == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    with pytest.raises(ValueError, match="tracking.uri"):
        default_tracking_uri("s3://bucket/runs")


def test_parent_children_metrics_and_artifacts(tracker: Tracker) -> None:
    parent = tracker.start_run("search", tags={"recnas.stage": "search"})
    child = tracker.start_run("cand-1", parent=parent, params={"index": 0})
    tracker.log_metrics(child, {"val_logloss": 0.5, "nan": math.nan, "ok": True})
    tracker.log_history(child, [{"step": 1, "loss": 0.9}, {"step": 2, "loss": 0.7}])
    tracker.log_json(child, {"blocks": []}, "architecture.json")
    tracker.end_run(child)

    kids = tracker.children(parent)
    assert [k["name"] for k in kids] == ["cand-1"]
    assert kids[0]["metrics"] == {"val_logloss": 0.5, "loss": 0.7}
    client = MlflowClient(tracker.tracking_uri)
    history = client.get_metric_history(child.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(1, 0.9), (2, 0.7)]
    artifacts = [a.path for a in client.list_artifacts(child.run_id)]
    assert artifacts == ["architecture.json"]


def test_find_run_sees_only_unfinished_when_asked(tracker: Tracker) -> None:
    run = tracker.start_run("supernet", tags={"recnas.stage": "supernet"})
    assert tracker.find_run({"recnas.stage": "supernet"}, unfinished=True) == run
    tracker.end_run(run)
    assert tracker.find_run({"recnas.stage": "supernet"}, unfinished=True) is None
    assert tracker.find_run({"recnas.stage": "supernet"}) == run


def test_model_is_logged_with_signature_and_registered(tracker: Tracker) -> None:
    run = tracker.start_run("report")
    example = pd.DataFrame({"x": [1.0, 4.0]})
    uri = tracker.log_pyfunc_model(
        run, "winner", Halver(), {}, input_example=example, register_as="job-a-best"
    )
    assert uri == "models:/job-a-best/1"
    client = MlflowClient(tracker.tracking_uri, registry_uri=tracker.tracking_uri)
    version = client.get_model_version("job-a-best", "1")
    model = mlflow.pyfunc.load_model(version.source)
    assert model.metadata.signature is not None
    assert list(model.predict(example)) == [0.5, 2.0]
