"""Launch a training run on Ray Train and follow it from the driver.

:func:`fit` starts a ``TorchTrainer`` whose workers run
:func:`recnas.train.loop.train_worker`. Where things live::

    driver (fit)                      Ray Train controller           workers
    on_report, progress bar  <-queue- _ReportForwarder.after_report <- report()
                                                                    checkpoints
    <storage>/<name>/checkpoint_<step>/  <------------------------ (rank 0)

A run with the same ``storage`` and ``name`` as an interrupted one resumes
from its newest checkpoint; ``FailureConfig`` restarts a failed worker group
from the newest checkpoint of the same run.

Example:
    >>> result = fit(config, Scaling(num_workers=2), storage="runs", name="dlrm")
    >>> result.metrics["val_auc"], result.checkpoint  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue as queue_lib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow.fs as pafs

from recnas.data.storage import join, resolve
from recnas.train.config import TrainConfig

logger = logging.getLogger(__name__)

# What the driver's report queue holds last, and how often the driver checks
# that the run's thread still lives when no report comes.
_FINISHED = "recnas: run finished"
_END_CHECK_S = 5.0


# OpenMP settings of each wait policy; GOMP_SPINCOUNT, when set, decides how
# long GNU OpenMP spins whatever OMP_WAIT_POLICY says, so every policy sets it.
_OMP_WAIT = {
    "brief": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "1000"},
    "passive": {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0"},
    "active": {"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "infinite"},
}

# glibc malloc settings of each policy, read when the worker process starts.
# "steady": one arena (the training thread allocates from the main heap, not
# from a thread arena whose whole sub-heaps are unmapped when emptied), blocks
# up to 32 MiB (glibc's largest) from the heap rather than their own mappings,
# and up to 256 MiB of freed memory kept for the next step rather than handed
# back to the kernel.
_MALLOC = {
    "steady": {
        "MALLOC_ARENA_MAX": "1",
        "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
        "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
    },
    "default": {},
}


@dataclass(frozen=True)
class Scaling:
    """Workers and their resources, from the job.

    Attributes:
        num_workers: Data-parallel workers (Ray actors).
        cpus_per_worker: CPUs of each worker; also its torch threads unless
            the TrainConfig sets ``threads``.
        use_gpu: One GPU per worker, NCCL between them (else gloo on CPU).
        bf16: Autocast forward passes to bfloat16 (needs ``use_gpu``).
        omp_wait_policy: How the workers' idle OpenMP threads wait for the
            next parallel region: ``"brief"`` (spin about a thousand rounds,
            then sleep), ``"passive"`` (sleep at once) or ``"active"`` (spin
            until there is work). Measured on a 2-core node with a 2-thread
            DLRM worker: sleeping at once makes every one of a step's many
            small parallel regions wait for its threads to wake (0.78x the
            samples/s of brief spinning on a quiet node); long spinning
            (torch's default, 300,000 rounds) holds on to cores that other
            processes need, and with one busy process beside the worker it
            fell to 0.5x of passive. Brief spinning matched the fastest of
            the three on the quiet node and passive on the busy one. The
            spin count is GNU OpenMP's (``GOMP_SPINCOUNT``), the OpenMP of
            torch's Linux wheels.
        malloc_policy: How the worker processes' C allocator (glibc's
            malloc; other allocators ignore it) reuses memory: ``"steady"``
            keeps the memory that a training step frees for the next step,
            ``"default"`` leaves glibc's own settings. A step allocates and
            frees the same large blocks every time (a DLRM's dense embedding
            gradients are 16 MiB a step); with glibc's settings in Ray
            Train's training thread those pages went back to the kernel and
            were faulted in again in some runs and not in others (about 4,000
            page faults a step against 36, and 0.75x the samples/s, with the
            same seed), so that whole runs were fast or slow by chance.
            ``"steady"`` holds up to 256 MiB of freed memory per worker.
        niceness: Scheduling priority of the worker processes (``nice``, 0 to
            19; higher yields the CPU to others). Ray starts every worker at
            15 so that its own daemons stay responsive; a training worker is
            the run's main work and by default runs at 0, the priority of
            the driver and of any ordinary process. At 15 it got a fraction
            of a CPU as soon as any ordinary process wanted the same core
            (on a shared 2-core node a 1-CPU worker trained at 0.6x the
            speed of the same loop in a plain process).
    """

    num_workers: int = 2
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    bf16: bool = False
    omp_wait_policy: str = "brief"
    malloc_policy: str = "steady"
    niceness: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.num_workers, int) or isinstance(self.num_workers, bool):
            raise ValueError(
                f"num_workers: must be a whole number, got {self.num_workers!r}"
            )
        number = isinstance(self.cpus_per_worker, int | float)
        if not number or isinstance(self.cpus_per_worker, bool):
            raise ValueError(
                f"cpus_per_worker: must be a number, got {self.cpus_per_worker!r}"
            )
        if self.num_workers < 1:
            raise ValueError(f"num_workers: must be >= 1, got {self.num_workers}")
        if not self.cpus_per_worker > 0:
            raise ValueError(
                f"cpus_per_worker: must be > 0, got {self.cpus_per_worker}"
            )
        if self.bf16 and not self.use_gpu:
            raise ValueError(
                "bf16: autocast to bfloat16 runs on GPUs only; set use_gpu "
                "or bf16 false"
            )
        if self.omp_wait_policy not in _OMP_WAIT:
            raise ValueError(
                f"omp_wait_policy: {self.omp_wait_policy!r} is not one of "
                f"{sorted(_OMP_WAIT)}"
            )
        if self.malloc_policy not in _MALLOC:
            raise ValueError(
                f"malloc_policy: {self.malloc_policy!r} is not one of {sorted(_MALLOC)}"
            )
        if not 0 <= self.niceness <= 19:
            raise ValueError(f"niceness: must be in [0, 19], got {self.niceness}")

    def worker_env(self) -> dict[str, str]:
        """Environment of the worker processes, set before torch starts (Ray
        reads ``RAY_worker_niceness`` when it starts the worker process)."""
        return {**self.process_env(), "RAY_worker_niceness": str(self.niceness)}

    def process_env(self) -> dict[str, str]:
        """The OpenMP and malloc variables of ``omp_wait_policy`` and
        ``malloc_policy``."""
        return {**_OMP_WAIT[self.omp_wait_policy], **_MALLOC[self.malloc_policy]}

    def scaling_config(self) -> Any:
        from ray.train import ScalingConfig

        resources = {"CPU": self.cpus_per_worker}
        if self.use_gpu:
            resources["GPU"] = 1
        return ScalingConfig(
            num_workers=self.num_workers,
            use_gpu=self.use_gpu,
            resources_per_worker=resources,
        )


@dataclass
class TrainResult:
    """What a finished run gives back.

    Attributes:
        metrics: Final metrics: val_logloss/val_auc and test_logloss/test_auc
            (when those splits are set, of the kept model), steps,
            samples_per_s, run_samples_per_s, best_step, best_epoch, ...
        history: Every report of the run's surviving lineage, in order
            (reports lost to a restart are not in it).
        checkpoint: URI of the final checkpoint (see
            :func:`recnas.train.checkpoint.load_model`).
    """

    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    checkpoint: str = ""


def _report_forwarder(queue: Any) -> Any:
    from ray.train import UserCallback

    class _ReportForwarder(UserCallback):
        """Sends rank 0's metrics of every report to the driver's queue."""

        def __init__(self, queue: Any) -> None:
            self.queue = queue

        def after_report(
            self, run_context: Any, metrics: list, checkpoint: Any
        ) -> None:
            forwarded = dict(metrics[0])
            forwarded["worker_pids"] = [m.get("pid") for m in metrics]
            forwarded.pop("pid", None)
            digests = {m["arch_digest"] for m in metrics if "arch_digest" in m}
            if digests:
                forwarded["archs_agree"] = len(digests) == 1
            if checkpoint is not None:
                forwarded["checkpoint_path"] = checkpoint.path
            self.queue.put(forwarded)

    return _ReportForwarder(queue)


class _Progress:
    """A progress bar of steps on the driver."""

    def __init__(self, name: str, enabled: bool | None) -> None:
        from tqdm.auto import tqdm

        # disable=None: no bar when the output is not a terminal (logs, CI).
        self.bar = tqdm(
            desc=name,
            unit="step",
            disable=None if enabled is None else not enabled,
            dynamic_ncols=True,
        )

    def update(self, metrics: dict[str, Any]) -> None:
        self.bar.total = metrics.get("total_steps", self.bar.total)
        self.bar.n = metrics.get("step", self.bar.n)
        shown = {"loss": metrics.get("train_loss")}
        for key in ("val_auc", "samples_per_s"):
            if key in metrics:
                shown[key] = metrics[key]
        self.bar.set_postfix(
            {k: f"{v:.4g}" for k, v in shown.items() if isinstance(v, float)},
            refresh=True,
        )

    def close(self) -> None:
        self.bar.close()


def _trainer(config: TrainConfig, scaling: Scaling, storage: str, name: str, cb: Any):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    fs, path = resolve(storage)
    run_config = RunConfig(
        name=name,
        storage_path=path,
        storage_filesystem=fs,
        # Failures of the controller itself (a worker group that cannot start
        # after a loss, say) get the same budget; Ray's default is unlimited.
        failure_config=FailureConfig(
            max_failures=config.max_failures,
            controller_failure_limit=config.max_failures,
        ),
        checkpoint_config=CheckpointConfig(num_to_keep=config.num_to_keep),
        callbacks=[cb],
        worker_runtime_env={"env_vars": scaling.worker_env()},
    )
    from recnas.train.loop import train_worker

    return TorchTrainer(
        train_worker,
        train_loop_config={"train": config.to_dict(), "bf16": scaling.bf16},
        torch_config=TorchConfig(
            backend="nccl" if scaling.use_gpu else "gloo",
            timeout_s=config.collective_timeout_s,
        ),
        scaling_config=scaling.scaling_config(),
        run_config=run_config,
    )


def fit(
    config: TrainConfig,
    scaling: Scaling | None = None,
    *,
    storage: str,
    name: str,
    on_report: Callable[[dict[str, Any]], None] | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``config`` data-parallel on Ray Train and wait for the result.

    Args:
        config: What to train.
        scaling: Workers and resources (default: 2 CPU workers).
        storage: Run storage, a local folder or ``s3://bucket/prefix``;
            checkpoints land in ``<storage>/<name>/checkpoint_<step>/``.
        name: Run name; a run of the same name and storage resumes.
        on_report: Called on the driver with rank 0's metrics of every report
            (step, train_loss, samples_per_s, val_*, ...; plus worker_pids and
            checkpoint_path when one was saved).
        progress: A progress bar of steps on the driver: always (True), never
            (False) or only when stderr is a terminal (None).

    Raises:
        ValueError: When the Ray cluster can never give the workers their
            CPUs or GPUs (a cluster that autoscales only warns).
        TrainingFailed: When the run failed beyond ``config.max_failures``
            restarts, or cannot resume from what its folder holds.
    """
    import ray
    from ray.util.queue import Queue

    from recnas.runtime import check_capacity, connect

    scaling = scaling or Scaling()
    if not ray.is_initialized():
        connect()  # as recnas's commands do; it stays up for later calls
    check_capacity(
        scaling.num_workers * scaling.cpus_per_worker,
        scaling.num_workers if scaling.use_gpu else 0,
        f"Scaling(num_workers={scaling.num_workers}, cpus_per_worker="
        f"{scaling.cpus_per_worker:g}, use_gpu={scaling.use_gpu})",
        advice="ask for fewer workers or smaller ones",
    )
    if not config.threads:
        config = config.replace(threads=max(1, int(scaling.cpus_per_worker)))
    reports: Queue = Queue(actor_options={"num_cpus": 0})
    trainer = _trainer(config, scaling, storage, name, _report_forwarder(reports))
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = trainer.fit()
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error
        finally:
            # Every report is queued before fit() returns: this one is last.
            with contextlib.suppress(Exception):
                reports.put(_FINISHED)

    thread = threading.Thread(target=run, name=f"recnas-fit-{name}", daemon=True)
    thread.start()
    folder = join(storage, name)
    bar = _Progress(name, progress)
    try:
        _follow(folder, thread, reports, on_report, bar)
    finally:
        bar.close()
        ray.kill(reports.actor)
    error = outcome.get("error")
    if error is not None:
        failure = _failure(error, config, folder)
        if failure is None:
            raise error
        raise failure from error
    return _result(outcome["result"], storage)


class TrainingFailed(RuntimeError):
    """A run that failed for good: its workers failed more often than the run
    may restart them, or its folder holds nothing it can resume from."""


def _first_line(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"
    line = next((line for line in text.splitlines() if line.strip()), text)
    return line.rstrip(". ")


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and the errors it wraps (Ray's wrappers and Python's causes)."""
    found: list[BaseException] = []
    todo: list[Any] = [error]
    while todo:
        item = todo.pop()
        if isinstance(item, BaseException) and all(item is not e for e in found):
            found.append(item)
            todo += [
                getattr(item, name, None)
                for name in ("controller_failure", "cause", "__cause__")
            ]
    return found


def _failure(
    error: BaseException, config: TrainConfig, folder: str
) -> TrainingFailed | None:
    """The error ``fit`` raises for a failed Ray Train run: one that says what
    failed and what to do, instead of Ray's pages of worker tracebacks (None
    for errors that are not a failed run)."""
    from ray.train import ControllerError, WorkerGroupError
    from ray.train.v2._internal.exceptions import CheckpointManagerInitializationError

    from recnas.train.checkpoint import UnreadableCheckpoint

    # Ray Train's controller reads the run's record of checkpoints when it
    # starts. A broken record comes back as a controller error, or, when the
    # controller could not start at all, as its death with the cause as text.
    broken = CheckpointManagerInitializationError
    if any(isinstance(e, broken) or broken.__name__ in str(e) for e in _chain(error)):
        return TrainingFailed(
            f"run {folder} cannot resume: its record of checkpoints names one "
            "that is gone or unreadable; delete the run's folder to train from "
            "step 0 (recnas run: --force STAGE)"
        )
    if isinstance(error, WorkerGroupError):
        # Ray hands a worker's own exception back wrapped, with its traceback
        # as the text; the exception itself says what went wrong in one line.
        failures = [getattr(e, "_base_exc", e) for e in error.worker_failures.values()]
    elif isinstance(error, ControllerError):
        failures = [error.controller_failure]
    else:
        return None
    unreadable = [e for e in failures if isinstance(e, UnreadableCheckpoint)]
    if unreadable:
        return TrainingFailed(f"run {folder}: {unreadable[0]}")
    causes = sorted({_first_line(e) for e in failures}) or [_first_line(error)]
    return TrainingFailed(
        f"run {folder}: training failed after {config.max_failures} "
        f"restart(s); {'; '.join(causes)}. Run it again to resume from its "
        "newest checkpoint"
    )


def _follow(
    folder: str,
    thread: threading.Thread,
    reports: Any,
    on_report: Any,
    bar: _Progress,
) -> None:
    """Hand every forwarded report to the bar and to ``on_report``, and say
    when the run resumed from a checkpoint or started over.

    Each wait for a report is one call to the queue's actor that returns as
    soon as a report (or the end of the run) arrives; the timeout only bounds
    how late a lost end-of-run marker is noticed, so that following costs the
    workers' cores next to nothing.
    """
    starts, step = None, -1
    while True:
        alive = thread.is_alive()
        try:
            metrics = reports.get(timeout=_END_CHECK_S)
        except queue_lib.Empty:
            if not alive:
                return
            continue
        if metrics == _FINISHED:
            return
        resumed_from = metrics.get("resumed_from", 0)
        if metrics.get("starts") != starts and resumed_from:
            logger.info(
                "run %s: resumed from its checkpoint at step %d", folder, resumed_from
            )
        elif metrics.get("step", 0) < step:
            logger.info("run %s: started over from step 0 (no checkpoint yet)", folder)
        starts, step = metrics.get("starts"), metrics.get("step", 0)
        bar.update(metrics)
        if on_report is not None:
            on_report(metrics)


def _result(result: Any, storage: str) -> TrainResult:
    if result.checkpoint is None:
        raise RuntimeError(f"run {result.path}: finished without a checkpoint")
    fs, _ = resolve(storage)
    path = result.checkpoint.path
    with fs.open_input_stream(f"{path}/history.json") as stream:
        history = json.loads(stream.read())
    final = history[-1] if history else dict(result.metrics or {})
    uri = f"s3://{path}" if isinstance(fs, pafs.S3FileSystem) else path
    return TrainResult(metrics=final, history=history, checkpoint=uri)
