"""The one door to MLflow: a tracker over ``MlflowClient``, used by the driver.

Nothing here touches MLflow's global state (no ``set_tracking_uri``, no active
run): every call names its run. The layout it writes:

    experiment  = job name
    +-- run "supernet"            (one parent run per stage, tag recnas.stage)
    +-- run "search"
    |   +-- run "cand-3f2a9c01b7e4"   (a child per candidate, tag mlflow.parentRunId)
    |   +-- ...
    +-- run "retrain"  -> children per retrained architecture
    +-- run "baselines" -> children per baseline
    +-- run "report"   -> leaderboard, plots, the registered model
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import tempfile
import time
import types
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

logger = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
_MAX_PARAM_LENGTH = 500
_BATCH = 900  # MLflow accepts at most 1000 metrics per batch


def default_tracking_uri(storage: str) -> str:
    """The embedded store for a storage folder: SQLite beside the runs."""
    if "://" in storage and not storage.startswith("file://"):
        raise ValueError(
            f"storage {storage!r} is remote, so there is no local folder for an "
            "embedded MLflow store: set tracking.uri in the job file (or "
            "RECNAS_TRACKING_URI) to your MLflow server"
        )
    root = Path(storage.removeprefix("file://")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


@dataclass(frozen=True)
class RunRef:
    """A handle on one MLflow run."""

    run_id: str
    name: str


class Tracker:
    """Records stages, candidates and baselines of one job in one experiment.

    Args:
        tracking_uri: MLflow tracking URI (``sqlite:///...``, ``http://...``).
        experiment: Experiment name, the job name.
        artifact_location: Where new experiments keep artifacts; default: a
            folder ``mlartifacts`` beside a SQLite store, the server's default
            otherwise.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment: str,
        artifact_location: str | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        if artifact_location is None and tracking_uri.startswith("sqlite:///"):
            db = Path(tracking_uri.removeprefix("sqlite:///"))
            artifact_location = (db.parent / "mlartifacts" / experiment).as_uri()
        # Two processes creating one SQLite store at once break its schema
        # migration for good: the first to arrive creates it, the other waits.
        with _store_lock(tracking_uri):
            found = self.client.get_experiment_by_name(experiment)
            if found is None:
                self.experiment_id = self.client.create_experiment(
                    experiment, artifact_location=artifact_location
                )
                logger.info("created MLflow experiment %r", experiment)
            else:
                self.experiment_id = found.experiment_id

    # Runs -------------------------------------------------------------------

    def start_run(
        self,
        name: str,
        *,
        parent: RunRef | None = None,
        tags: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> RunRef:
        """Creates a run (a child of ``parent`` when given)."""
        all_tags = {k: str(v) for k, v in (tags or {}).items()}
        if parent is not None:
            all_tags[PARENT_TAG] = parent.run_id
        run = self.client.create_run(self.experiment_id, tags=all_tags, run_name=name)
        ref = RunRef(run.info.run_id, name)
        if params:
            self.log_params(ref, params)
        logger.debug("started run %s (%s)", name, ref.run_id)
        return ref

    def end_run(self, run: RunRef, status: str = "FINISHED") -> None:
        """Marks a run FINISHED, FAILED or KILLED."""
        self.client.set_terminated(run.run_id, status=status)

    def reopen(self, run: RunRef) -> None:
        """Marks an interrupted or failed run RUNNING again, to resume into it."""
        self.client.update_run(run.run_id, status="RUNNING")

    def find_run(
        self,
        tags: Mapping[str, str],
        parent: RunRef | None = None,
        unfinished: bool = False,
    ) -> RunRef | None:
        """The newest run of this experiment carrying all ``tags``, if any.

        Args:
            tags: Tags the run must carry.
            parent: Only children of this run.
            unfinished: Only runs not marked FINISHED (interrupted or failed).
        """
        clauses = [f"tags.`{k}` = '{v}'" for k, v in tags.items()]
        if parent is not None:
            clauses.append(f"tags.`{PARENT_TAG}` = '{parent.run_id}'")
        if unfinished:
            clauses.append("attributes.status != 'FINISHED'")
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=" and ".join(clauses),
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            return None
        return RunRef(runs[0].info.run_id, runs[0].info.run_name)

    def children(self, parent: RunRef) -> list[dict[str, Any]]:
        """Name, tags and metrics of every child run of ``parent``."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_TAG}` = '{parent.run_id}'",
            max_results=50000,
        )
        return [
            {
                "run_id": r.info.run_id,
                "name": r.info.run_name,
                "tags": dict(r.data.tags),
                "metrics": dict(r.data.metrics),
            }
            for r in runs
        ]

    # Values -----------------------------------------------------------------

    def log_params(self, run: RunRef, params: Mapping[str, Any]) -> None:
        """Logs short scalar params; long values are cut with a warning."""
        items = []
        for key, value in params.items():
            text = str(value)
            if len(text) > _MAX_PARAM_LENGTH:
                logger.warning("param %s is %d chars; cut", key, len(text))
                text = text[:_MAX_PARAM_LENGTH]
            items.append(Param(key, text))
        for i in range(0, len(items), 100):
            self.client.log_batch(run.run_id, params=items[i : i + 100])

    def set_tags(self, run: RunRef, tags: Mapping[str, Any]) -> None:
        items = [RunTag(k, str(v)) for k, v in tags.items()]
        self.client.log_batch(run.run_id, tags=items)

    def log_metrics(
        self, run: RunRef, metrics: Mapping[str, Any], step: int | None = None
    ) -> None:
        """Logs every finite numeric value of ``metrics``; skips the rest."""
        now = int(time.time() * 1000)
        items = [
            Metric(key, float(value), now, step or 0)
            for key, value in metrics.items()
            if _is_number(value) and math.isfinite(float(value))
        ]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(run.run_id, metrics=items[i : i + _BATCH])

    def log_history(self, run: RunRef, history: list[Mapping[str, Any]]) -> None:
        """Logs a list of reports as metric curves, each at its ``step``."""
        now = int(time.time() * 1000)
        items = [
            Metric(key, float(value), now, int(row.get("step", i)))
            for i, row in enumerate(history)
            for key, value in row.items()
            if key != "step" and _is_number(value) and math.isfinite(float(value))
        ]
        for i in range(0, len(items), _BATCH):
            self.client.log_batch(run.run_id, metrics=items[i : i + _BATCH])

    # Artifacts --------------------------------------------------------------

    def log_json(self, run: RunRef, obj: Any, artifact_file: str) -> None:
        self.client.log_text(run.run_id, json.dumps(obj, indent=2), artifact_file)

    def log_text(self, run: RunRef, text: str, artifact_file: str) -> None:
        self.client.log_text(run.run_id, text, artifact_file)

    def log_file(
        self, run: RunRef, path: str, artifact_path: str | None = None
    ) -> None:
        self.client.log_artifact(run.run_id, path, artifact_path)

    def log_figure(self, run: RunRef, figure: Any, artifact_file: str) -> None:
        self.client.log_figure(run.run_id, figure, artifact_file)

    def log_pyfunc_model(
        self,
        run: RunRef,
        name: str,
        python_model: Any,
        artifacts: Mapping[str, str],
        *,
        input_example: Any,
        register_as: str | None = None,
        pip_requirements: list[str] | None = None,
    ) -> str:
        """Logs a pyfunc model with a signature; registers it when asked.

        Returns:
            The model URI (``models:/<id>``), or the registered version's URI.
        """
        import mlflow.pyfunc
        from mlflow.models import infer_signature

        logged = self.client.create_logged_model(
            self.experiment_id, name=name, source_run_id=run.run_id
        )
        with tempfile.TemporaryDirectory() as tmp, _quiet_mlflow():
            context = types.SimpleNamespace(artifacts=dict(artifacts))
            python_model.load_context(context)
            output = python_model.predict(context, input_example)
            local = os.path.join(tmp, name)
            mlflow.pyfunc.save_model(
                local,
                python_model=python_model,
                artifacts=dict(artifacts),
                signature=infer_signature(input_example, output),
                input_example=input_example,
                pip_requirements=pip_requirements or ["recnas"],
            )
            self.client.log_model_artifacts(logged.model_id, local)
        self.client.finalize_logged_model(logged.model_id, "READY")
        self.set_tags(run, {"recnas.model_id": logged.model_id})
        if register_as is None:
            return f"models:/{logged.model_id}"
        return self._register(register_as, logged, run)

    def _register(self, name: str, logged: Any, run: RunRef) -> str:
        if not self.client.search_registered_models(f"name = '{name}'"):
            self.client.create_registered_model(name)
        version = self.client.create_model_version(
            name,
            source=logged.artifact_location,
            run_id=run.run_id,
            model_id=logged.model_id,
        )
        logger.info("registered %s version %s", name, version.version)
        return f"models:/{name}/{version.version}"


@contextlib.contextmanager
def _store_lock(tracking_uri: str) -> Iterator[None]:
    """An exclusive lock beside a SQLite store; nothing for other stores."""
    if not tracking_uri.startswith("sqlite:///"):
        yield
        return
    import fcntl

    path = Path(tracking_uri.removeprefix("sqlite:///") + ".lock")
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Silences MLflow's advice and progress bars while a model is saved."""
    mlflow_logger = logging.getLogger("mlflow")
    level = mlflow_logger.level
    previous = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    mlflow_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            yield
    finally:
        mlflow_logger.setLevel(level)
        if previous is None:
            os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
        else:
            os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = previous


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_ui_port(host: str, port: int) -> None:
    """Refuses a port the MLflow UI cannot listen on (MLflow itself would exit
    with status 0 when the port is taken).

    Raises:
        ValueError: For a port out of range or already in use.
    """
    import socket

    if not 0 < port < 65536:
        raise ValueError(f"--port {port}: give a port number from 1 to 65535")
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ValueError(
                f"cannot serve the MLflow UI on {host}:{port} ({error.strerror}); "
                "pass another --port"
            ) from error


def serve_ui(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000) -> None:
    """Replaces this process with the MLflow UI on ``host:port``.

    The process becomes ``mlflow ui`` itself, so that a signal sent to it
    (Ctrl-C, SIGTERM) reaches the server and its workers.
    """
    import sys

    if host not in ("127.0.0.1", "localhost"):
        logger.warning("the MLflow UI listens on %s, not only this machine", host)
    check_ui_port(host, port)
    command = [
        sys.executable, "-m", "mlflow", "ui",
        "--backend-store-uri", tracking_uri,
        "--host", host, "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, env)
