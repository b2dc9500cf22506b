"""Connecting to Ray: the cluster named by ``--address``/``RAY_ADDRESS``, or a
local one started for this process, listening on 127.0.0.1 only.

Every command that needs Ray (``recnas run``, ``recnas data ingest --ray``)
connects through :func:`ray_session`; ``fit`` called with no Ray running
connects through :func:`connect`.
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
    """Uses a running Ray, or connects (see :func:`connect`) for the duration."""
    if ray.is_initialized():
        yield
        return
    connect(address, num_cpus)
    try:
        yield
    finally:
        ray.shutdown()


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connects this process to Ray, until it exits or ``ray.shutdown()``.

    Args:
        address: A Ray cluster address (``ray://...`` or ``HOST:PORT``);
            default ``RAY_ADDRESS``; None starts a local Ray.
        num_cpus: CPUs of a local Ray; default all of this machine's.
    """
    address = address or env.ray_address()
    if address:
        logger.info("connecting to Ray at %s", address)
        ray.init(address=address, logging_level="WARNING")
        return
    # A local Ray for one job: every listener on loopback, no dashboard.
    _loopback_only()
    # A worker's report waits until the controller has taken its previous
    # one, which it does at each poll: poll often.
    os.environ.setdefault("RAY_TRAIN_HEALTH_CHECK_INTERVAL_S", "0.2")
    cpus = num_cpus or os.cpu_count() or 1
    logger.info("starting a local Ray with %d CPUs", cpus)
    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
    )


def _loopback_only() -> None:
    """Makes the Ray started next listen on 127.0.0.1 only.

    Ray reads ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` once, when it is
    imported, into a module constant; this process has imported it already,
    so the constant is set too (the variable serves the processes it starts).
    A user who set the variable to 1 keeps their choice.
    """
    from ray._private import ray_constants

    os.environ.setdefault(ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR, "0")
    if os.environ[ray_constants.ENABLE_RAY_CLUSTERS_ENV_VAR] == "0":
        ray_constants.ENABLE_RAY_CLUSTER = False


def check_capacity(
    cpus: float, gpus: float, what: str, advice: str = "change them in the job file"
) -> None:
    """Refuses work that the running Ray cluster can never place.

    Ray would wait forever for resources that a fixed cluster lacks; a
    cluster that autoscales (``RAY_ADDRESS`` pointing at KubeRay, say) may
    grow, so there the shortfall is only a warning.

    Args:
        cpus: CPUs the work needs at once.
        gpus: GPUs the work needs at once.
        what: The settings that make the request, for the message.
        advice: What to do about it, for the message.
    """
    total = ray.cluster_resources()
    have_cpus, have_gpus = total.get("CPU", 0.0), total.get("GPU", 0.0)
    if cpus <= have_cpus and gpus <= have_gpus:
        return
    asked = " and ".join(
        f"{n:g} {unit}" for n, unit in ((cpus, "CPUs"), (gpus, "GPUs")) if n
    )
    message = (
        f"{what}: {asked} needed at once, but the Ray cluster has "
        f"{have_cpus:g} CPUs and {have_gpus:g} GPUs"
    )
    if env.ray_address():
        logger.warning("%s; waiting for the cluster to grow", message)
        return
    raise ValueError(f"{message}; {advice}")
