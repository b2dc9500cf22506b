"""Shared fixtures: one real local Ray for the whole session, data locations."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from .ports import free_port

# Ray and MLflow settings for every test process (and the Ray workers it starts).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.pop("RAY_ADDRESS", None)


# S3 tests use a moto server of their own on this port (see tests/data). The
# settings are made here, before any test starts Ray, so that Ray's workers
# inherit them whichever test starts Ray first; they also keep every test
# away from a real AWS account.
S3_PORT = free_port()
os.environ.update(
    AWS_ENDPOINT_URL=f"http://127.0.0.1:{S3_PORT}",
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_REGION="us-east-1",
)
for _key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
    os.environ.pop(_key, None)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(relative: str) -> Path:
    """A file under ``../shared/data``; skips the test when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real data sample {path} is absent (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray with 2 CPUs on 127.0.0.1, shared by the session."""
    import ray

    temp_dir = tempfile.mkdtemp(prefix="rn", dir="/tmp")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
        _temp_dir=temp_dir,
    )
    yield ray
    ray.shutdown()
    shutil.rmtree(temp_dir, ignore_errors=True)
