"""Which stages a job runs, and what it checks before the first one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from recnas.jobs.pipeline import Pipeline
from recnas.jobs.runner import run_job
from recnas.jobs.spec import load_job
from recnas.jobs.store import JobStore


def _job_file(tmp_path: Path) -> Path:
    (tmp_path / "raw.csv").write_text("x\n")
    path = tmp_path / "job.yaml"
    path.write_text(
        "name: sel\npreset: tiny\ndataset: {name: movielens, inputs: [raw.csv]}\n"
        f"storage: {tmp_path / 'runs'}\n"
    )
    return path


class _Recorder(Pipeline):
    """The pipeline's choice of stages, with every stage's work left out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started: list[str] = []

    def _run_stage(self, stage: Any, inputs_hash: str, upstream: dict) -> dict:
        self.started.append(stage.name)
        return {"stage": stage.name}


def test_a_stage_needs_only_the_stages_it_follows(tmp_path: Path) -> None:
    job = load_job(_job_file(tmp_path))
    store = JobStore(str(tmp_path / "runs"), job.name)
    ran = _Recorder(job, store, tracker=None).run(only=["ingest", "baselines"]).ran
    assert ran == ["ingest", "baselines"]  # no supernet, search or retrain
    with pytest.raises(ValueError, match="stage 'ingest' has not run yet"):
        _Recorder(job, store, tracker=None).run(only=["baselines"])
    # A stage that is needed and missing stops the job before anything runs.
    pipeline = _Recorder(job, store, tracker=None)
    with pytest.raises(ValueError, match="stage 'supernet' has not run yet"):
        pipeline.run(only=["ingest", "search"])
    assert pipeline.started == []


def test_resources_the_cluster_lacks_stop_the_job_before_ingest(
    ray_cluster, tmp_path: Path
) -> None:
    path = _job_file(tmp_path)
    with pytest.raises(
        ValueError,
        match=r"job\.yaml \(as changed on the command line\): resources\.workers \* "
        r"resources\.cpus_per_worker: 3 CPUs needed at once, but the Ray cluster "
        r"has 2 CPUs and 0 GPUs; change them in the job file",
    ):
        run_job(path, overrides={"resources": {"workers": 3}})
    with pytest.raises(
        ValueError, match=r"resources\.use_gpu \(a GPU per worker\): 2 GPUs needed"
    ):
        run_job(path, overrides={"resources": {"use_gpu": True}})
    assert JobStore(str(tmp_path / "runs"), "sel").record("ingest") is None
