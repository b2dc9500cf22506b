"""``recnas submit``: run a job on a Ray cluster through the Ray Jobs API.

The project folder holding the job file (its parent when the file sits in
``jobs/``) travels as the job's working directory, so relative data paths
resolve on the cluster as they do here. Settings that point at shared
services (MLflow, S3, storage) travel as environment variables.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from recnas.jobs.spec import load_job

logger = logging.getLogger(__name__)

FORWARDED_ENV = (
    "RECNAS_STORAGE",
    "RECNAS_TRACKING_URI",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_REGION",
    "MLFLOW_S3_ENDPOINT_URL",
)
EXCLUDES = [".venv", ".git", "runs", "mlruns", "*.egg-info", "__pycache__"]


def submit_job(path: str | Path, *, address: str, wait: bool = False) -> str:
    """Submits ``recnas run`` of the job file to the cluster at ``address``.

    Args:
        path: The job file; it is validated here before anything is sent.
        address: The cluster's dashboard, e.g. ``http://HEAD:8265``.
        wait: Block until the job ends and raise if it failed.

    Returns:
        The submission id.
    """
    import os

    from ray.job_submission import JobStatus, JobSubmissionClient

    path = Path(path).resolve()
    job = load_job(path, resolve_inputs=False)
    root = path.parent.parent if path.parent.name == "jobs" else path.parent
    client = JobSubmissionClient(address)
    env_vars = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    submission_id = client.submit_job(
        entrypoint=f"recnas run {path.relative_to(root)}",
        submission_id=f"recnas-{job.name}-{int(time.time())}",
        runtime_env={
            "working_dir": str(root),
            "excludes": EXCLUDES,
            "env_vars": env_vars,
        },
    )
    logger.info("submitted %s", submission_id)
    if not wait:
        return submission_id
    status = client.get_job_status(submission_id)
    while not status.is_terminal():
        time.sleep(2)
        status = client.get_job_status(submission_id)
    logger.info("job %s ended %s", submission_id, status)
    if status != JobStatus.SUCCEEDED:
        logs = client.get_job_logs(submission_id)[-4000:]
        raise RuntimeError(f"job {submission_id} ended {status}; last logs:\n{logs}")
    return submission_id
