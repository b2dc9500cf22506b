"""Connecting to Ray: the cluster named by ``--address``/``RAY_ADDRESS``, or a
local one started for this process, listening on 127.0.0.1 only.

Every command that needs Ray (``recnas run``, ``recnas data ingest --ray``)
connects through :func:`ray_session`.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import ray

from recnas import env

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def ray_session(
    address: str | None = None, num_cpus: int | None = None
) -> Iterator[None]:
    """Uses a running Ray, or starts a local one for the duration.

    Args:
        address: A Ray cluster address (``ray://...`` or ``HOST:PORT``);
            default ``RAY_ADDRESS``; None starts a local Ray.
        num_cpus: CPUs of a local Ray; default all of this machine's.
    """
    if ray.is_initialized():
        yield
        return
    address = address or env.ray_address()
    if address:
        logger.info("connecting to Ray at %s", address)
        ray.init(address=address, logging_level="WARNING")
    else:
        # A local Ray for one job: every listener on loopback, no dashboard.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # Every Train report waits for the controller's poll: poll often.
        os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
        cpus = num_cpus or os.cpu_count() or 1
        logger.info("starting a local Ray with %d CPUs", cpus)
        ray.init(
            num_cpus=cpus,
            include_dashboard=False,
            logging_level="WARNING",
            log_to_driver=False,
        )
    try:
        yield
    finally:
        ray.shutdown()
