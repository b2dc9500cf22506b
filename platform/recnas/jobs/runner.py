"""``recnas run``: load a job, connect Ray and MLflow, run the pipeline."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recnas import env
from recnas.jobs.pipeline import Pipeline, PipelineResult, check_stage_names
from recnas.jobs.spec import JobSpec, job_source, load_job
from recnas.jobs.store import JobStore
from recnas.runtime import ray_session
from recnas.tracking.mlflow_tracker import Tracker, default_tracking_uri

logger = logging.getLogger(__name__)


@dataclass
class JobResult(PipelineResult):
    """A pipeline result plus where its MLflow records are."""

    tracking_uri: str = ""


def tracking_uri_for(job: JobSpec) -> str:
    """The job's MLflow store: env override, the job's, or SQLite under storage."""
    return (
        env.tracking_uri() or job.tracking.uri or default_tracking_uri(job.storage_root)
    )


def run_job(
    path: str | Path,
    *,
    overrides: dict[str, Any] | None = None,
    address: str | None = None,
    stages: Sequence[str] | None = None,
    force: Sequence[str] = (),
) -> JobResult:
    """Runs (or resumes) the job in ``path``; see :class:`Pipeline`."""
    check_stage_names([*(stages or ()), *force])  # before anything is written
    job = load_job(path, overrides)
    uri = tracking_uri_for(job)
    store = JobStore(job.storage_root, job.name)
    logger.info("job %s: storage %s, MLflow %s", job.name, store.base, uri)
    with contextlib.ExitStack() as stack:
        stack.enter_context(store.lock())
        tracker = Tracker(uri, job.name)
        # Ray starts only when a stage has work to do.
        connect = functools.partial(stack.enter_context, ray_session(address))
        pipeline = Pipeline(
            job,
            store,
            tracker,
            before_first_stage=connect,
            source=job_source(path, overrides),
        )
        result = pipeline.run(only=stages, force=force)
    return JobResult(
        outputs=result.outputs,
        ran=result.ran,
        skipped=result.skipped,
        tracking_uri=uri,
    )
