"""What the training loop needs from its surroundings: rank, reports, checkpoints.

:class:`RaySession` is the real one inside a Ray Train worker. :class:`LocalSession`
runs the same loop in plain processes (one, or several that already joined a
torch process group): reports go to a list, checkpoints to a local folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist


class Session(Protocol):
    rank: int
    world_size: int
    device: torch.device

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        """Report metrics (every rank, same number of calls); rank 0 may attach
        a checkpoint folder, which the session persists."""

    def latest_checkpoint(self) -> Any:
        """A context manager giving the newest checkpoint folder, or None."""


class RaySession:
    """The session of a Ray Train worker (``ray.train.report`` and friends)."""

    def __init__(self) -> None:
        import ray.train
        import ray.train.torch

        context = ray.train.get_context()
        self.rank = context.get_world_rank()
        self.world_size = context.get_world_size()
        self.device = ray.train.torch.get_device()

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        import ray.train

        checkpoint = None
        name = None
        if checkpoint_dir is not None:
            checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir)
            name = f"checkpoint_{int(metrics['step']):08d}"
        ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=name)

    @contextmanager
    def latest_checkpoint(self) -> Iterator[str | None]:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            yield None
            return
        with checkpoint.as_directory() as folder:
            yield folder


class LocalSession:
    """A session without Ray.

    Args:
        root: Folder for checkpoints (``checkpoint_<step>``); None keeps none.
        device: Device of this process.

    Rank and world size come from the torch process group when one is
    initialized. ``reports`` collects this process's reports in order.
    """

    def __init__(self, root: str | Path | None = None, device: str = "cpu") -> None:
        grouped = dist.is_available() and dist.is_initialized()
        self.rank = dist.get_rank() if grouped else 0
        self.world_size = dist.get_world_size() if grouped else 1
        self.device = torch.device(device)
        self.root = Path(root) if root is not None else None
        self.reports: list[dict[str, Any]] = []

    def report(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        self.reports.append(dict(metrics))
        if checkpoint_dir is not None and self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
            final = self.root / f"checkpoint_{int(metrics['step']):08d}"
            partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=self.root))
            shutil.copytree(checkpoint_dir, partial, dirs_exist_ok=True)
            if final.exists():
                shutil.rmtree(final)
            os.replace(partial, final)
        if self.world_size > 1:
            dist.barrier()

    @contextmanager
    def latest_checkpoint(self) -> Iterator[str | None]:
        found = sorted(self.root.glob("checkpoint_*")) if self.root else []
        yield str(found[-1]) if found else None
