"""What to train and how: :class:`ModelSpec` and :class:`TrainConfig`.

Both are plain, JSON-able dataclasses validated where they are built. They
travel to every Ray Train worker as a dict and are written into every
checkpoint, so a checkpoint alone says how to rebuild and resume its run.

Example:
    >>> cfg = TrainConfig.nasrec_supernet("runs/criteo", space="nasrec_small")
    >>> cfg.optimizer, cfg.lr, cfg.eps, cfg.clip_norm, cfg.batch_size
    ('adagrad', 0.12, 0.01, 5.0, 512)
    >>> TrainConfig.from_dict(cfg.to_dict()) == cfg
    True
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

MODEL_KINDS = ("supernet", "subnet", "baseline")
OPTIMIZERS = ("adagrad", "adam", "sgd")
SCHEDULES = ("constant", "cosine", "linear")
GRAD_SYNCS = ("allreduce", "ddp")


def _check_keys(cls: type, data: dict[str, Any], where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {unknown}; valid keys are {sorted(known)}"
        )


def _choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{key}: {value!r} is not one of {list(choices)}")


@dataclass(frozen=True)
class ModelSpec:
    """Which model to build (see :func:`recnas.train.build.build_model`).

    Attributes:
        kind: ``"supernet"`` (needs ``space``), ``"subnet"`` (needs ``arch`` and
            ``space``) or ``"baseline"`` (needs ``name``, one of
            :data:`recnas.models.baselines.BASELINES`).
        name: Baseline name; for other kinds a free label.
        arch: The architecture as ``Architecture.to_dict()``, for subnets.
        space: Search-space name or YAML path, for supernets and subnets.
        params: Keyword arguments of the model's constructor, e.g.
            ``{"embed_dim": 16, "hidden": [512, 256]}`` for a baseline.
    """

    kind: str
    name: str = ""
    arch: dict[str, Any] | None = None
    space: str | None = None
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _choice("model.kind", self.kind, MODEL_KINDS)
        if self.kind == "baseline" and not self.name:
            raise ValueError("model.name: a baseline needs a name, e.g. 'dlrm'")
        if self.kind in ("supernet", "subnet") and not self.space:
            raise ValueError(
                f"model.space: a {self.kind} needs a search space, e.g. 'nasrec_small'"
            )
        if self.kind == "subnet" and not self.arch:
            raise ValueError(
                "model.arch: a subnet needs an architecture (Architecture.to_dict())"
            )
        if not isinstance(self.params, dict):
            raise ValueError(f"model.params: expected a mapping, got {self.params!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelSpec:
        _check_keys(cls, data, "model")
        return cls(**data)


# Baselines and retrained subnets: Adam, early stopping on validation.
_FROM_SCRATCH: dict[str, Any] = {
    "optimizer": "adam",
    "lr": 1e-3,
    "epochs": 5,
    "batch_size": 512,
    "early_stopping_patience": 2,
}


@dataclass(frozen=True)
class TrainConfig:
    """How one model is trained, evaluated and checkpointed.

    Attributes:
        model: The model to build.
        data: URI of a processed dataset (local folder or ``s3://``).
        train_splits: Splits trained on, e.g. ``("train", "val")`` for the
            final retrain.
        eval_split: Split for validation metrics and early stopping; None
            for none.
        test_split: Split scored once at the end with the kept model; None
            for none.
        batch_size: Examples per step on each worker.
        epochs: Passes over the training splits.
        max_steps: Stop after this many steps in all (0: no limit).
        optimizer: ``"adagrad"``, ``"adam"`` or ``"sgd"``.
        lr: Peak learning rate.
        eps: Optimizer epsilon (Adagrad, Adam).
        weight_decay: L2 penalty of the optimizer.
        schedule: ``"constant"``, ``"cosine"`` or ``"linear"`` decay after
            the warm-up.
        warmup_fraction: Share of all steps with a linear warm-up from 0.
        clip_norm: Clip the global gradient norm to this (0: off).
        eval_every: Evaluate every this many steps (0: at each epoch end).
        log_every: Report training loss and samples/s every this many steps.
        early_stopping_patience: Stop after this many evaluations without a
            better validation log loss and keep the best weights (0: off).
        checkpoint_every: Checkpoint every this many steps (0: at each
            evaluation and at the end).
        num_to_keep: Checkpoints kept in storage (the newest).
        max_failures: Times a failed worker group is restarted from the last
            checkpoint.
        seed: Seed of the weights, the data order and the sampled
            architectures.
        supernet_warmup_steps: S: step t < S trains the full supernet with
            probability 1 - t/S instead of a sampled architecture.
        supernet_eval_archs: A supernet is validated and tested as the mean
            log loss and AUC of this many fixed sampled architectures (the
            same at every evaluation), the models the search will score; the
            full supernet is not one of them.
        max_train_rows: Read at most this many training rows (None: all).
        max_eval_rows: Score at most this many rows of val and test.
        grad_sync: ``"allreduce"`` (one coalesced all-reduce of the dense
            gradients that exist, the touched embedding rows gathered, see
            ``sparse_gradients``; unused weights cost nothing) or ``"ddp"``
            (torch DDP with ``find_unused_parameters``).
        collective_timeout_s: Timeout of every collective; a hang becomes an
            error after this long.
        sparse_gradients: Give embedding tables sparse gradients (only the
            rows a batch touched) with ``grad_sync="allreduce"``. Under
            Adagrad without weight decay (the update stays exactly the dense
            one) workers exchange and update the touched rows only, not
            every row of every table. Under other optimizers (Adam moves
            every row) and with more than one worker, workers still exchange
            only the touched rows and make the mean gradient dense again
            before the optimizer, the same update as a dense all-reduce.
        threads: Torch intra-op threads per worker (0: its CPUs).
    """

    model: ModelSpec
    data: str
    train_splits: tuple[str, ...] = ("train",)
    eval_split: str | None = "val"
    test_split: str | None = "test"
    batch_size: int = 512
    epochs: int = 1
    max_steps: int = 0
    optimizer: str = "adam"
    lr: float = 1e-3
    eps: float = 1e-8
    weight_decay: float = 0.0
    schedule: str = "constant"
    warmup_fraction: float = 0.0
    clip_norm: float = 0.0
    eval_every: int = 0
    log_every: int = 50
    early_stopping_patience: int = 0
    checkpoint_every: int = 0
    num_to_keep: int = 2
    max_failures: int = 2
    seed: int = 0
    supernet_warmup_steps: int = 0
    supernet_eval_archs: int = 4
    max_train_rows: int | None = None
    max_eval_rows: int | None = None
    grad_sync: str = "allreduce"
    collective_timeout_s: int = 1800
    sparse_gradients: bool = True
    threads: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.model, dict):
            object.__setattr__(self, "model", ModelSpec.from_dict(self.model))
        if isinstance(self.train_splits, str):
            object.__setattr__(self, "train_splits", (self.train_splits,))
        object.__setattr__(self, "train_splits", tuple(self.train_splits))
        if not self.data:
            raise ValueError("data: give the URI of a processed dataset")
        if not self.train_splits:
            raise ValueError("train_splits: name at least one split, e.g. 'train'")
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("grad_sync", self.grad_sync, GRAD_SYNCS)
        self._check_numbers()

    def _check_numbers(self) -> None:
        positive = (
            "batch_size",
            "epochs",
            "log_every",
            "collective_timeout_s",
            "supernet_eval_archs",
        )
        for key in positive:
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1, got {getattr(self, key)}")
        non_negative = (
            "max_steps",
            "eps",
            "weight_decay",
            "clip_norm",
            "eval_every",
            "early_stopping_patience",
            "checkpoint_every",
            "max_failures",
            "supernet_warmup_steps",
            "threads",
        )
        for key in non_negative:
            if getattr(self, key) < 0:
                raise ValueError(f"{key}: must be >= 0, got {getattr(self, key)}")
        if not self.lr > 0:
            raise ValueError(f"lr: must be > 0, got {self.lr}")
        if not 0.0 <= self.warmup_fraction < 1.0:
            raise ValueError(
                f"warmup_fraction: must be in [0, 1), got {self.warmup_fraction}"
            )
        if self.num_to_keep < 1:
            raise ValueError(f"num_to_keep: must be >= 1, got {self.num_to_keep}")
        for key in ("max_train_rows", "max_eval_rows"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ValueError(f"{key}: must be >= 1 or None, got {value}")
        if self.early_stopping_patience and not self.eval_split:
            raise ValueError(
                "early_stopping_patience: needs an eval_split to watch; "
                "set eval_split or patience 0"
            )
        if self.model.kind == "supernet" and self.early_stopping_patience:
            raise ValueError(
                "early_stopping_patience: a supernet trains a fixed budget; set it to 0"
            )

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["train_splits"] = list(self.train_splits)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        _check_keys(cls, data, "train config")
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def nasrec_supernet(
        cls, data: str, space: str = "nasrec_small", **overrides: Any
    ) -> TrainConfig:
        """NASRec's supernet recipe: Adagrad lr 0.12 eps 1e-2, 10 % linear
        warm-up then cosine decay, gradient-norm clip 5, batch 512, one epoch.
        """
        settings: dict[str, Any] = {
            "model": ModelSpec(kind="supernet", name="supernet", space=space),
            "data": data,
            "optimizer": "adagrad",
            "lr": 0.12,
            "eps": 1e-2,
            "schedule": "cosine",
            "warmup_fraction": 0.1,
            "clip_norm": 5.0,
            "batch_size": 512,
            "epochs": 1,
            "test_split": None,
        }
        return cls(**{**settings, **overrides})

    @classmethod
    def baseline(cls, data: str, name: str, **overrides: Any) -> TrainConfig:
        """A deep baseline: Adam lr 1e-3, early stopping on validation log loss."""
        params = overrides.pop("params", {})
        model = ModelSpec(kind="baseline", name=name, params=params)
        return cls(**{**_FROM_SCRATCH, "model": model, "data": data, **overrides})

    @classmethod
    def retrain(
        cls, data: str, arch: dict[str, Any], space: str, **overrides: Any
    ) -> TrainConfig:
        """A subnet trained from scratch: Adam, early stopping on validation."""
        model = ModelSpec(kind="subnet", name="subnet", arch=arch, space=space)
        return cls(**{**_FROM_SCRATCH, "model": model, "data": data, **overrides})
