"""Self-describing checkpoints: everything needed to rebuild and resume a run.

A checkpoint is a folder (persisted by Ray Train into the run's storage)::

    recnas.json       format, config, features, model spec, architecture,
                      step, data position, sampler, versions
    model.pt          the model's state_dict
    train_state.pt    optimizer, schedule, best-so-far weights, history, counters
    history.json      every report of the run so far

Resume reads the architecture and config from ``recnas.json``, never from
flags. :func:`load_model` rebuilds the trained model from a checkpoint URI
(a local folder or ``s3://...``).
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from torch import nn

from recnas.data.features import FeatureSet
from recnas.train.build import build_model
from recnas.train.config import TrainConfig

FORMAT = 1
DESCRIPTION = "recnas.json"
MODEL = "model.pt"
STATE = "train_state.pt"
HISTORY = "history.json"


def recnas_version() -> str:
    try:
        return version("recnas")
    except PackageNotFoundError:
        return "unknown"


@dataclass
class Position:
    """Where a run stands: global step and place in the data.

    Attributes:
        step: Optimizer steps done.
        epoch: Current epoch.
        step_in_epoch: Batches of ``epoch`` already consumed.
        steps_per_epoch: Steps per epoch on every worker.
        total_steps: Steps the run will take in all.
        world_size: Workers that shared the data.
        done: Whether training finished.
    """

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    steps_per_epoch: int = 0
    total_steps: int = 0
    world_size: int = 1
    done: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def write_checkpoint(
    folder: str | Path,
    *,
    config: TrainConfig,
    features: FeatureSet,
    model: nn.Module,
    position: Position,
    train_state: dict[str, Any],
) -> None:
    """Write a checkpoint into ``folder`` (which must exist)."""
    folder = Path(folder)
    description = {
        "format": FORMAT,
        "config": config.to_dict(),
        "features": features.to_dict(),
        "model": config.model.to_dict(),
        "arch": config.model.arch,
        "position": {k: v for k, v in vars(position).items() if k != "extra"},
        "sampler": {
            "kind": "architecture drawn from (seed, step)",
            "seed": config.seed,
            "supernet_warmup_steps": config.supernet_warmup_steps,
        },
        "data": {"uri": config.data, "seed": config.seed, "shuffle": "per epoch"},
        "recnas_version": recnas_version(),
        "torch_version": torch.__version__,
        **position.extra,
    }
    torch.save(model.state_dict(), folder / MODEL)
    torch.save(train_state, folder / STATE)
    (folder / HISTORY).write_text(json.dumps(train_state.get("history", [])))
    (folder / DESCRIPTION).write_text(json.dumps(description, indent=1))


def read_description(folder: str | Path) -> dict[str, Any]:
    """The ``recnas.json`` of a local checkpoint folder."""
    path = Path(folder) / DESCRIPTION
    if not path.exists():
        raise ValueError(
            f"{folder}: not a recnas checkpoint (no {DESCRIPTION}); pass the "
            "folder of a checkpoint written by recnas.train"
        )
    description = json.loads(path.read_text())
    if description.get("format") != FORMAT:
        raise ValueError(
            f"{path}: checkpoint format {description.get('format')} is not "
            f"{FORMAT}; load it with the recnas version that wrote it "
            f"({description.get('recnas_version')})"
        )
    return description


def read_position(folder: str | Path) -> Position:
    return Position(**read_description(folder)["position"])


class UnreadableCheckpoint(ValueError):
    """A checkpoint file that exists but cannot be loaded (damaged)."""


def _load(path: Path, weights_only: bool) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises several kinds for a damaged file
        # Only the kind: torch's own text may suggest loading it unsafely.
        raise UnreadableCheckpoint(
            f"checkpoint file {path} cannot be read ({type(error).__name__}: "
            "damaged or not a checkpoint); the run cannot "
            "resume from it: start it over under a new name or after deleting "
            "its folder (recnas run: --force STAGE)"
        ) from error


def read_train_state(folder: str | Path) -> dict[str, Any]:
    return _load(Path(folder) / STATE, weights_only=False)


def read_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    return _load(Path(folder) / MODEL, weights_only=True)


@contextmanager
def local_copy(checkpoint: str):
    """A local folder with the checkpoint's files (downloaded when remote)."""
    if "://" not in checkpoint:
        yield checkpoint
        return
    import pyarrow.fs as pafs

    from recnas.data.storage import resolve

    fs, path = resolve(checkpoint)
    with tempfile.TemporaryDirectory(prefix="recnas-ckpt-") as tmp:
        pafs.copy_files(path, tmp, source_filesystem=fs)
        yield tmp


def load_model(checkpoint: str) -> tuple[nn.Module, TrainConfig]:
    """The trained model of a checkpoint, in eval mode, and its TrainConfig.

    Args:
        checkpoint: A checkpoint folder or URI, e.g. ``TrainResult.checkpoint``.
    """
    with local_copy(os.fspath(checkpoint)) as folder:
        description = read_description(folder)
        config = TrainConfig.from_dict(description["config"])
        features = FeatureSet.from_dict(description["features"])
        model = build_model(config.model, features)
        model.load_state_dict(read_weights(folder))
    model.eval()
    return model, config
