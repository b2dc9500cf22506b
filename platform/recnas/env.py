"""Every environment variable recnas reads, with its default.

No other module reads ``os.environ`` for recnas settings; they import the
functions below. Variables that belong to Ray, MLflow or AWS keep their own
names and are read by those libraries.
"""

from __future__ import annotations

import os
from pathlib import Path


def _get(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def storage_root() -> str:
    """``RECNAS_STORAGE``: where jobs write when a job file names no storage.

    Default ``./runs``.
    """
    return _get("RECNAS_STORAGE", "runs")


def tracking_uri() -> str | None:
    """``RECNAS_TRACKING_URI``: an MLflow tracking URI that overrides the job's.

    Default unset: the job's ``tracking.uri`` or a SQLite store under storage.
    """
    return os.environ.get("RECNAS_TRACKING_URI") or None


def ray_address() -> str | None:
    """``RAY_ADDRESS``: a running Ray cluster to use instead of a local one.

    Default unset: ``recnas run`` starts a local Ray sized to the machine.
    """
    return os.environ.get("RAY_ADDRESS") or None


def s3_endpoint() -> str | None:
    """``AWS_ENDPOINT_URL``: the endpoint of an S3-compatible server.

    Default unset: Amazon S3. ``AWS_ENDPOINT_URL_S3`` wins when both are set.
    """
    return (
        os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


def s3_region() -> str:
    """``AWS_REGION`` / ``AWS_DEFAULT_REGION``: the S3 region. Default us-east-1.

    A region is always passed to pyarrow so that it never looks one up remotely.
    """
    return _get("AWS_REGION", _get("AWS_DEFAULT_REGION", "us-east-1"))


def cache_dir() -> Path:
    """``RECNAS_CACHE``: local cache for files read from remote storage.

    Default ``~/.cache/recnas``.
    """
    return Path(_get("RECNAS_CACHE", str(Path.home() / ".cache" / "recnas")))
