"""The job file: one dataset, one search space, the settings of every stage.

A job file is YAML. ``preset`` (``tiny``, ``demo`` or ``paper``) fills in every
stage setting the file leaves out; the file's own keys win. Unknown keys and
bad values are refused with the file name and the dotted key. Example::

    name: movielens-demo
    preset: demo
    dataset:
      name: movielens
      inputs: [datasets/ml-latest-small/ml-latest-small.zip]
    space: nasrec_small
    search:
      budget: 32
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recnas import env, yamlio
from recnas.data import storage
from recnas.jobs.presets import PRESETS
from recnas.jobs.schema import build, check_range, deep_merge

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class DatasetSection:
    """Which raw data to ingest and how to split it.

    Attributes:
        name: ``criteo``, ``avazu``, ``kdd2012`` or ``movielens``.
        inputs: Raw files (local paths or ``s3://`` URIs). Relative paths are
            looked up in the working directory, then beside the job file and
            in its parent folder.
        protocol: How rows are split: ``autoctr_811``, ``random`` or ``time``;
            None for the dataset's default.
        options: Further ingest settings (vocabulary, hashing, rejects).
    """

    name: str
    inputs: list[str]
    protocol: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrackingSection:
    """Where MLflow records go.

    Attributes:
        uri: MLflow tracking URI; None for a SQLite store under storage.
        register_as: Registered model name of the winner; None for
            ``<job name>-best``.
    """

    uri: str | None = None
    register_as: str | None = None


@dataclass(frozen=True)
class ResourcesSection:
    """Ray Train workers for every training stage.

    Attributes:
        workers: Data-parallel workers.
        cpus_per_worker: CPUs reserved per worker (fractions allowed).
        use_gpu: One GPU per worker (NCCL); CPU workers use gloo.
        bf16: bf16 autocast on GPU.
    """

    workers: int = 2
    cpus_per_worker: float = 1.0
    use_gpu: bool = False
    bf16: bool = False

    def __post_init__(self) -> None:
        check_range(self, "workers", minimum=1)
        check_range(self, "cpus_per_worker", minimum=0, strict=True)
        if self.bf16 and not self.use_gpu:
            raise ValueError(
                "bf16: autocast to bfloat16 runs on GPUs only; set use_gpu: true "
                "or bf16: false"
            )


@dataclass(frozen=True)
class SupernetSection:
    """Supernet training (NASRec: Adagrad lr 0.12, batch 512, one epoch).

    Attributes:
        epochs: Passes over the train split.
        max_steps: Stop after this many steps; None for whole epochs.
        batch_size: Global batch size, split over the workers.
        optimizer: ``adagrad`` (NASRec's, tuned for long runs on Criteo-sized
            data) or ``adam`` (better for short runs on small data).
        lr: Peak learning rate.
        warmup_steps: Steps of the full-supernet warm-up phase (S).
        layernorm: LayerNorm after FC layers in the supernet.
        checkpoint_every: Steps between checkpoints.
    """

    epochs: int = 1
    max_steps: int | None = None
    batch_size: int = 512
    optimizer: str = "adagrad"
    lr: float = 0.12
    warmup_steps: int = 0
    layernorm: bool = True
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        check_range(
            self, "epochs", "max_steps", "batch_size", "checkpoint_every", minimum=1
        )
        check_range(self, "warmup_steps", minimum=0)
        check_range(self, "lr", minimum=0, strict=True)
        if self.optimizer not in ("adagrad", "adam"):
            raise ValueError(
                f"optimizer: unknown {self.optimizer!r}; use adagrad or adam"
            )


@dataclass(frozen=True)
class SearchSection:
    """The evolutionary search and the scoring of each candidate.

    Attributes:
        searcher: ``regularized_evolution``, ``evolution`` or ``random``.
        budget: Candidates scored, exactly.
        population_size: P.
        sample_size: S, the tournament size.
        children: C, children per generation.
        concurrency: Candidates scored at once.
        cpus_per_trial: CPUs per scoring trial.
        finetune_steps: Head fine-tuning steps per candidate.
        finetune_lr: Head fine-tuning learning rate.
        val_rows: Rows of the fixed validation prefix; None for all.
        latency_batch: Serving batch size for latency.
        max_macs: Multiply-add budget per example; None for none.
        max_latency_ms: Latency budget at the serving batch; None for none.
    """

    searcher: str = "regularized_evolution"
    budget: int = 2048
    population_size: int = 128
    sample_size: int = 64
    children: int = 8
    concurrency: int = 2
    cpus_per_trial: float = 1.0
    finetune_steps: int = 500
    finetune_lr: float = 0.04
    val_rows: int | None = 16384
    latency_batch: int = 512
    max_macs: int | None = None
    max_latency_ms: float | None = None

    def __post_init__(self) -> None:
        check_range(
            self,
            "budget",
            "population_size",
            "children",
            "concurrency",
            "val_rows",
            "latency_batch",
            "max_macs",
            minimum=1,
        )
        check_range(self, "finetune_steps", minimum=0)
        check_range(
            self,
            "cpus_per_trial",
            "finetune_lr",
            "max_latency_ms",
            minimum=0,
            strict=True,
        )
        if not 1 <= self.sample_size <= self.population_size:
            raise ValueError(
                f"sample_size: must be between 1 and population_size "
                f"({self.population_size}), got {self.sample_size}"
            )


@dataclass(frozen=True)
class TrainSection:
    """From-scratch training of retrained candidates or baselines.

    Attributes:
        epochs: Most passes over the training splits.
        max_steps: Stop after this many steps; None for whole epochs.
        batch_size: Global batch size.
        lr: Adam learning rate.
        patience: Evaluations without improvement before early stopping.
    """

    epochs: int = 4
    max_steps: int | None = None
    batch_size: int = 512
    lr: float = 1e-3
    patience: int = 1

    def __post_init__(self) -> None:
        check_range(self, "epochs", "max_steps", "batch_size", minimum=1)
        check_range(self, "patience", minimum=0)
        check_range(self, "lr", minimum=0, strict=True)


@dataclass(frozen=True)
class RetrainSection(TrainSection):
    """Retraining: the top K candidates from scratch, then the best on
    train+validation.

    Attributes:
        top_k: Candidates retrained.
    """

    top_k: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self, "top_k", minimum=1)


@dataclass(frozen=True)
class BaselinesSection(TrainSection):
    """The baselines trained on the same splits.

    Attributes:
        models: Baseline names.
        params: Hyperparameters per baseline name.
    """

    models: list[str] = field(default_factory=lambda: ["dnn", "dlrm"])
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.models:
            raise ValueError("models: name at least one baseline, e.g. [dnn, dlrm]")


@dataclass(frozen=True)
class JobSpec:
    """A whole job. See the module docstring for the file format."""

    name: str
    dataset: DatasetSection
    preset: str = "demo"
    space: str = "nasrec_small"
    seed: int = 2018
    storage: str | None = None
    tracking: TrackingSection = field(default_factory=TrackingSection)
    resources: ResourcesSection = field(default_factory=ResourcesSection)
    supernet: SupernetSection = field(default_factory=SupernetSection)
    search: SearchSection = field(default_factory=SearchSection)
    retrain: RetrainSection = field(default_factory=RetrainSection)
    baselines: BaselinesSection = field(default_factory=BaselinesSection)

    def __post_init__(self) -> None:
        if self.storage is not None:
            try:
                root = storage.local_or_s3(self.storage)
            except ValueError as error:
                raise ValueError(f"storage: {error}") from error
            object.__setattr__(self, "storage", root)
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"seed: must be in 0..2**32-1, got {self.seed}")
        if not _NAME.match(self.name):
            raise ValueError(
                f"name: {self.name!r} is not a valid job name; use letters, digits, "
                "'-', '_' or '.', at most 64 characters"
            )

    @property
    def storage_root(self) -> str:
        """Storage URI of all jobs; the job writes under ``<root>/<name>``."""
        return self.storage or storage.local_or_s3(env.storage_root())

    def section(self, name: str) -> dict[str, Any]:
        """One section (or top-level value) as plain data, for hashing and logs."""
        value = getattr(self, name)
        return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def digest(self, *sections: str) -> str:
        """A hash of the named sections, for stage completion records."""
        payload = {s: self.section(s) for s in sections}
        text = json.dumps(payload, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_job(
    path: str | Path,
    overrides: dict[str, Any] | None = None,
    *,
    resolve_inputs: bool = True,
) -> JobSpec:
    """Reads, merges with its preset, and validates a job file.

    Args:
        path: The YAML job file.
        overrides: Values that win over the file (e.g. from the command line),
            as a nested mapping.
        resolve_inputs: Turn relative input paths into absolute ones (and fail
            when one is missing); off when the job runs elsewhere.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"job file {path} does not exist")
    data = yamlio.parse(path.read_text(), str(path)) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    build(JobSpec, data, str(path))  # the file's own keys: errors name the file
    source = job_source(path, overrides)
    if overrides:
        data = deep_merge(data, overrides)
        build(JobSpec, data, source)
    preset = data.get("preset", "demo")
    if preset not in PRESETS:
        raise ValueError(
            f"{source}: preset: unknown {preset!r}; use one of {', '.join(PRESETS)}"
        )
    job = build(JobSpec, deep_merge(PRESETS[preset], data), source)
    check_job(job, source)
    if not resolve_inputs:
        return job
    inputs = [_resolve_input(p, path) for p in job.dataset.inputs]
    return dataclasses.replace(
        job, dataset=dataclasses.replace(job.dataset, inputs=inputs)
    )


def job_source(path: str | Path, overrides: dict[str, Any] | None) -> str:
    """How errors name a job: its file, and whether the command line changed it."""
    return f"{path} (as changed on the command line)" if overrides else str(path)


def check_job(job: JobSpec, source: str) -> None:
    """Checks the names and numbers that only later stages would trip over.

    Everything a job refers to (dataset reader, protocol, ingest options,
    search space, searcher, baselines) is checked here, so that a mistake
    stops the job before any stage runs.
    """
    from recnas.data.ingest import IngestOptions
    from recnas.data.readers import DATASETS
    from recnas.models.baselines import BASELINES, baseline_params
    from recnas.search.searchers import SEARCHERS
    from recnas.space.spec import load_space

    def fail(key: str, problem: str) -> None:
        raise ValueError(f"{source}: {key}: {problem}")

    d = job.dataset
    if d.name not in DATASETS:
        fail("dataset.name", f"unknown {d.name!r}; use one of {', '.join(DATASETS)}")
    if not d.inputs:
        fail("dataset.inputs", "name at least one raw file, folder or zip")
    try:
        options = {k: v for k, v in d.options.items() if k != "protocol"}
        IngestOptions.from_kwargs(d.protocol or "autoctr_811", options)
    except (TypeError, ValueError) as error:
        fail("dataset", str(error))
    try:
        load_space(job.space)
    except ValueError as error:
        fail("space", str(error))
    s = job.search
    if s.searcher not in SEARCHERS:
        fail(
            "search.searcher",
            f"unknown {s.searcher!r}; use one of {', '.join(SEARCHERS)}",
        )
    if s.searcher != "random" and s.budget < s.population_size:
        logger.warning(
            "%s: search.budget %d is below search.population_size %d: every "
            "candidate will be a random sample",
            source,
            s.budget,
            s.population_size,
        )
    unknown = [m for m in job.baselines.models if m not in BASELINES]
    if unknown:
        fail(
            "baselines.models",
            f"unknown {unknown[0]!r}; use any of {', '.join(BASELINES)}",
        )
    stray = sorted(set(job.baselines.params) - set(job.baselines.models))
    if stray:
        fail("baselines.params", f"{stray[0]!r} is not in baselines.models")
    for name, params in job.baselines.params.items():
        if not isinstance(params, dict):
            fail(f"baselines.params.{name}", "expected a mapping of hyperparameters")
        unknown = sorted(set(params) - baseline_params(name))
        if unknown:
            fail(
                f"baselines.params.{name}",
                f"{name} takes no {unknown[0]!r}; it "
                f"takes {', '.join(sorted(baseline_params(name)))}",
            )


def _resolve_input(value: str, job_file: Path) -> str:
    if "://" in value:
        return value
    if Path(value).is_absolute():
        if not Path(value).exists():
            raise ValueError(f"{job_file}: dataset.inputs: {value!r} does not exist")
        return value
    for base in (Path.cwd(), job_file.parent, job_file.parent.parent):
        candidate = base / value
        if candidate.exists():
            return str(candidate.resolve())
    raise ValueError(
        f"{job_file}: dataset.inputs: {value!r} was found neither in the working "
        f"directory nor beside the job file"
    )
