"""The whole pipeline at the tiny preset on the shipped MovieLens data.

Real local Ray (the session's), real MLflow store in a temporary folder, real
data: ingest, supernet on Ray Train, evolutionary search on Ray Tune, retrain,
baselines, report. Then a second run that reuses every stage.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow.pyfunc
import pytest
from mlflow import MlflowClient

from recnas.cli import main
from recnas.jobs.presets import TINY

REPO = Path(__file__).resolve().parents[1]
DEMO_DATA = REPO / "datasets" / "ml-latest-small" / "ml-latest-small.zip"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    path = root / "tiny.yaml"
    path.write_text(
        f"name: tiny-movielens\npreset: tiny\nstorage: {root / 'runs'}\n"
        f"dataset:\n  name: movielens\n  inputs: [{DEMO_DATA}]\n  protocol: random\n"
    )
    return path


@pytest.fixture(scope="module")
def first_run(job: Path, ray_cluster) -> Path:  # noqa: ANN001
    assert main(["run", str(job)]) == 0
    return job


def runs_by_stage(client: MlflowClient, experiment_id: str) -> dict[str, list]:
    runs = client.search_runs([experiment_id], max_results=1000)
    parents = {r.info.run_id: r for r in runs if "recnas.stage" in r.data.tags}
    children: dict[str, list] = {
        r.data.tags["recnas.stage"]: [] for r in parents.values()
    }
    for r in runs:
        parent = r.data.tags.get("mlflow.parentRunId")
        if parent in parents:
            children[parents[parent].data.tags["recnas.stage"]].append(r)
    return children


def test_every_stage_lands_in_mlflow(first_run: Path) -> None:
    db = first_run.parent / "runs" / "mlflow.db"
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("tiny-movielens")
    children = runs_by_stage(client, experiment.experiment_id)
    assert set(children) == {
        "ingest",
        "supernet",
        "search",
        "retrain",
        "baselines",
        "report",
    }
    budget = TINY["search"]["budget"]
    candidates = children["search"]
    assert len(candidates) == budget
    assert len({c.data.tags["recnas.arch_id"] for c in candidates}) == budget
    for c in candidates:
        assert c.data.tags["recnas.protocol"] == "random"
        assert "recnas.split_md5.train" in c.data.tags
        assert [a.path for a in client.list_artifacts(c.info.run_id)] == [
            "architecture.json"
        ]
    scored = [c for c in candidates if c.data.tags["recnas.status"] == "ok"]
    # Which children evolution breeds depends on the order trials finish in;
    # a child that inherits a poor mix of supernet weights may score badly,
    # but every scored one has a real log loss.
    losses = [c.data.metrics["val_logloss"] for c in scored]
    assert scored and all(math.isfinite(v) and v > 0 for v in losses), losses
    assert len(children["retrain"]) == TINY["retrain"]["top_k"] + 1
    assert {r.info.run_name for r in children["baselines"]} == {
        "baseline-dnn",
        "baseline-dlrm",
    }
    for run in children["retrain"] + children["baselines"]:
        assert 0 < run.data.metrics["test_logloss"] < 5
        assert 0 <= run.data.metrics["test_auc"] <= 1


def test_winner_is_registered_and_scores_rows(first_run: Path) -> None:
    import pyarrow.parquet as pq

    db = first_run.parent / "runs" / "mlflow.db"
    uri = f"sqlite:///{db}"
    client = MlflowClient(uri, registry_uri=uri)
    version = client.get_model_version("tiny-movielens-best", "1")
    model = mlflow.pyfunc.load_model(version.source)
    ingest = first_run.parent / "runs" / "tiny-movielens" / "ingest" / "complete.json"
    test_dir = Path(json.loads(ingest.read_text())["outputs"]["data"]) / "test"
    frame = pq.read_table(sorted(test_dir.glob("*.parquet"))[0]).slice(0, 64)
    frame = frame.drop_columns(["label"]).to_pandas()
    probabilities = model.predict(frame)
    assert probabilities.shape == (64,)
    assert ((probabilities > 0) & (probabilities < 1)).all()


def test_second_run_reuses_every_stage(first_run: Path, capsys) -> None:  # noqa: ANN001
    db = first_run.parent / "runs" / "mlflow.db"
    client = MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("tiny-movielens")
    before = len(client.search_runs([experiment.experiment_id], max_results=1000))
    assert main(["run", str(first_run)]) == 0
    out = capsys.readouterr().out
    assert (
        "reused finished stages: ingest, supernet, search, retrain, baselines, report"
        in out
    )
    assert "nasrec-" in out and "dlrm" in out and "test logloss" in out
    after = len(client.search_runs([experiment.experiment_id], max_results=1000))
    assert after == before


def test_changed_setting_reruns_its_stage_and_those_after(
    first_run: Path, capsys
) -> None:  # noqa: ANN001
    store = first_run.parent / "runs" / "tiny-movielens"
    before = json.loads((store / "baselines" / "complete.json").read_text())
    assert main(["run", str(first_run), "--set", "baselines.lr=0.003"]) == 0
    out = capsys.readouterr().out
    assert "reused finished stages: ingest, supernet, search, retrain\n" in out
    after = json.loads((store / "baselines" / "complete.json").read_text())
    assert after["inputs_hash"] != before["inputs_hash"]
    old = {r["checkpoint"] for r in before["outputs"]["results"]}
    new = {r["checkpoint"] for r in after["outputs"]["results"]}
    assert not old & new
    # Only the work folder of the current settings is kept.
    folders = [p.name for p in (store / "baselines").iterdir() if p.is_dir()]
    assert folders == [after["inputs_hash"]]
