"""The one per-worker training loop for every recnas model.

Ray Train starts :func:`train_worker` on each worker; the same
:class:`WorkerLoop` also runs without Ray (:class:`~recnas.train.session.
LocalSession`) for tests and single-process use. One step::

    batch --> model(batch[, arch]) --> BCE loss --> backward
          --> sync the gradients that exist --> clip --> optimizer, schedule

(sync: dense gradients are all-reduced; with sparse embedding gradients the
touched rows are all-gathered, and made dense where the optimizer needs it.)

Supernet steps use the architecture drawn from ``(seed, step)``, the same on
every worker with no communication; during the first
``supernet_warmup_steps`` steps the full supernet is trained instead with
probability ``1 - step / S``. Weights outside the step's architecture get no
gradient: the default ``grad_sync="allreduce"`` reduces only the gradients
that exist (the same set on every worker, since the architecture is), so
unused weights neither stall nor break data-parallel training and are not
touched by the optimizer. ``grad_sync="ddp"`` uses torch DDP with
``find_unused_parameters`` instead.

Every ``log_every`` steps all workers report training loss, samples/s, the
CPU seconds their process (all its threads) has used so far, the minor page
faults it has taken so far (pages the kernel had to map in again) and its
niceness; evaluations (exact, over the whole split) and checkpoints go into
the same reports. A restarted worker group resumes from the newest
checkpoint: model, optimizer, schedule, data position, early-stopping state
and history.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import random
import resource
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from recnas.data.features import Batch
from recnas.train import checkpoint as ckpt
from recnas.train.build import build_model, load_space
from recnas.train.config import TrainConfig
from recnas.train.data import DatasetSource, DataSource
from recnas.train.metrics import batches_of, evaluate_each
from recnas.train.optim import (
    make_optimizer,
    make_schedule,
    sparse_rows_exact,
)
from recnas.train.session import LocalSession, RaySession, Session

logger = logging.getLogger(__name__)

# Gradients smaller than this are reduced together in one flat buffer.
_COALESCE_NUMEL = 1 << 20


def step_architecture(space: Any, seed: int, step: int, warmup_steps: int) -> Any:
    """The supernet architecture of ``step``: None (the full supernet) or a
    sampled Architecture, a pure function of ``(seed, step)``."""
    from recnas.space.sampling import sample

    rng = random.Random(f"recnas:{seed}:{step}")
    if warmup_steps and rng.random() < 1.0 - step / warmup_steps:
        return None
    return sample(space, rng)


def evaluation_architectures(space: Any, seed: int, count: int) -> list[Any]:
    """The fixed sampled architectures a supernet is validated on."""
    from recnas.space.sampling import sample

    return [
        sample(space, random.Random(f"recnas:{seed}:eval:{i}")) for i in range(count)
    ]


def arch_label(arch: Any) -> str:
    return "full" if arch is None else str(arch.arch_id)


def _grouped() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sync_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the existing gradients across workers.

    Parameters whose ``grad`` is None are skipped; every worker must hold
    gradients for the same parameters. Small dense gradients travel in one
    flat buffer, large ones are reduced in place; sparse gradients (embedding
    rows) are gathered from all workers, see :func:`gather_sparse_gradients`.
    """
    if not _grouped():
        return
    world = dist.get_world_size()
    small, large, sparse = [], [], []
    for p in params:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            sparse.append(p)
        elif p.grad.numel() < _COALESCE_NUMEL:
            small.append(p.grad)
        else:
            large.append(p.grad)
    if sparse:
        gather_sparse_gradients(sparse)
    if small:
        flat = torch.cat([g.reshape(-1) for g in small])
        dist.all_reduce(flat)
        flat.div_(world)
        offset = 0
        for g in small:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()
    for g in large:
        dist.all_reduce(g)
        g.div_(world)


def gather_sparse_gradients(params: list[nn.Parameter]) -> None:
    """Replace each sparse gradient by the mean of all workers' gradients.

    Every worker sends the rows it touched (indices and values of all tables
    in two flat buffers, padded to the longest worker's) and builds the same
    coalesced result from the same gathered data in rank order, so the
    replicas stay identical. Traffic is the touched rows, not the tables.
    """
    world = dist.get_world_size()
    grads = [p.grad for p in params]
    if any(g.sparse_dim() != 1 for g in grads):
        raise AssertionError("sparse gradients must be row-sparse (embeddings)")
    device = grads[0].device
    row_width = torch.tensor([g.shape[1:].numel() for g in grads])
    counts = torch.tensor([g._nnz() for g in grads], device=device)
    all_counts = [c.cpu() for c in _all_gather(counts, world)]
    rows = torch.cat([g._indices()[0] for g in grads])
    values = torch.cat([g._values().reshape(-1) for g in grads])
    rows = _padded(rows, max(int(c.sum()) for c in all_counts))
    values = _padded(values, max(int(c @ row_width) for c in all_counts))
    pieces: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in grads]
    gathered = zip(_all_gather(rows, world), _all_gather(values, world), strict=True)
    for n, (rank_rows, rank_values) in zip(all_counts, gathered, strict=True):
        sizes = (n * row_width).tolist()
        row_parts = rank_rows[: int(n.sum())].split(n.tolist())
        value_parts = rank_values[: sum(sizes)].split(sizes)
        for k, part in enumerate(zip(row_parts, value_parts, strict=True)):
            pieces[k].append(part)
    for p, g, parts in zip(params, grads, pieces, strict=True):
        index = torch.cat([r for r, _ in parts]).unsqueeze(0)
        value = torch.cat([v for _, v in parts]).reshape(-1, *g.shape[1:])
        p.grad = torch.sparse_coo_tensor(
            index, value / world, g.shape, check_invariants=False
        ).coalesce()


def _padded(flat: torch.Tensor, length: int) -> torch.Tensor:
    return torch.cat([flat, flat.new_zeros(length - len(flat))])


def _all_gather(tensor: torch.Tensor, world: int) -> list[torch.Tensor]:
    out = [torch.empty_like(tensor) for _ in range(world)]
    dist.all_gather(out, tensor)
    return out


def clip_gradients(params: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """``clip_grad_norm_`` that also takes sparse gradients (coalesced here, so
    that repeated rows count once with their summed value)."""
    dense, values = [], []
    for p in params:
        if p.grad is None:
            continue
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            values.append(p.grad._values())
        else:
            dense.append(p)
    total = nn.utils.get_total_norm([p.grad for p in dense] + values)
    if dense:
        nn.utils.clip_grads_with_norm_(dense, max_norm, total)
    if values:
        scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
        for v in values:
            v.mul_(scale)
    return total


def densify_gradients(params: Iterable[nn.Parameter]) -> None:
    """Make every sparse gradient dense (for optimizers that move every row)."""
    for p in params:
        if p.grad is not None and p.grad.is_sparse:
            p.grad = p.grad.to_dense()


def sparse_embeddings(model: nn.Module) -> None:
    """Switch every embedding table of ``model`` to sparse gradients."""
    for module in model.modules():
        if isinstance(module, nn.Embedding | nn.EmbeddingBag):
            module.sparse = True


def broadcast_weights(model: nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every worker."""
    if not _grouped():
        return
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)


def _min_across(value: int, device: torch.device) -> int:
    if not _grouped():
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return int(t.item())


class WorkerLoop:
    """Training state and loop of one worker.

    Args:
        config: The run's configuration.
        session: Rank, reports and checkpoints.
        data: Batches; default: the dataset at ``config.data``.
        bf16: Autocast forward passes to bfloat16 (CUDA only).
        record_archs: Keep the label of every step's architecture in
            ``self.archs`` (tests).
    """

    def __init__(
        self,
        config: TrainConfig,
        session: Session,
        data: DataSource | None = None,
        *,
        bf16: bool = False,
        record_archs: bool = False,
    ) -> None:
        self.config = config
        self.session = session
        self.rank, self.world = session.rank, session.world_size
        self.device = torch.device(session.device)
        self.autocast = torch.bfloat16 if bf16 and self.device.type == "cuda" else None
        self.data = data if data is not None else DatasetSource(config)
        self.features = self.data.features
        self.archs: list[str] | None = [] if record_archs else None
        self._build()
        self._init_state()

    def _build(self) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.model, self.features).to(self.device)
        broadcast_weights(self.model)
        self.space = (
            load_space(cfg.model.space) if cfg.model.kind == "supernet" else None
        )
        # What score() runs: the model itself, or a supernet's fixed archs.
        self.eval_archs: list[Any] = [None]
        if self.space is not None:
            self.eval_archs = evaluation_architectures(
                self.space, cfg.seed, cfg.supernet_eval_archs
            )
        self.net: nn.Module = self.model
        if cfg.grad_sync == "ddp" and _grouped():
            self.net = nn.parallel.DistributedDataParallel(
                self.model, find_unused_parameters=True, broadcast_buffers=False
            )
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self._sparse_tables()
        self.optimizer = make_optimizer(
            cfg.optimizer, self.params, cfg.lr, cfg.eps, cfg.weight_decay
        )
        self.loader = self.data.train(self.rank, self.world)
        self.steps_per_epoch = _min_across(self.loader.steps_per_epoch, self.device)
        if self.steps_per_epoch < 1:
            raise ValueError(
                f"train_splits {list(cfg.train_splits)}: fewer rows than "
                f"{self.world} worker(s) x batch_size {cfg.batch_size}; lower "
                "batch_size or use more data"
            )
        total = cfg.epochs * self.steps_per_epoch
        self.total_steps = min(total, cfg.max_steps) if cfg.max_steps else total
        self.schedule = make_schedule(self.optimizer, cfg, self.total_steps)

    def _sparse_tables(self) -> None:
        """Switch the embedding tables to sparse gradients where the gradient
        sync is ours (not torch DDP) and either the optimizer updates rows
        exactly from them, or there are other workers to exchange touched
        rows with (the gradients are then made dense again before the
        optimizer, see ``densify``)."""
        cfg = self.config
        self.densify = False
        if not (cfg.sparse_gradients and cfg.grad_sync == "allreduce"):
            return
        if sparse_rows_exact(cfg.optimizer, cfg.weight_decay):
            sparse_embeddings(self.model)
        elif _grouped():
            sparse_embeddings(self.model)
            self.densify = True

    def _init_state(self) -> None:
        self.position = ckpt.Position(
            steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps,
            world_size=self.world,
        )
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"val_logloss": math.inf, "step": 0, "epoch": 0}
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.bad_evals = 0
        self.starts = 1
        self.resumed_from = 0
        self.train_time = 0.0
        self.samples = 0
        self._interval_reset()
        self.pending: dict[str, Any] | None = None

    def _interval_reset(self) -> None:
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self.interval_steps = 0
        self.interval_time = 0.0
        self.interval_archs = hashlib.sha1()

    # ----------------------------------------------------------------- resume

    def restore(self, folder: str) -> None:
        """Load the full training state from a checkpoint folder."""
        description = ckpt.read_description(folder)
        if description["model"] != self.config.model.to_dict():
            raise ValueError(
                f"checkpoint {folder} holds a different model "
                f"({description['model']}); start a run with a new name"
            )
        self.model.load_state_dict(ckpt.read_weights(folder))
        state = ckpt.read_train_state(folder)
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        for key in ("history", "best", "best_weights", "bad_evals", "train_time"):
            setattr(self, key, state[key])
        self.samples = state["samples"]
        self.starts = state["starts"] + 1
        saved = ckpt.read_position(folder)
        self.position.step = saved.step
        self.position.done = saved.done
        self._place(saved)
        self.resumed_from = saved.step
        if self.rank == 0:
            logger.info(
                "resuming from checkpoint at step %d (epoch %d, batch %d), start %d",
                saved.step,
                self.position.epoch,
                self.position.step_in_epoch,
                self.starts,
            )

    def _place(self, saved: ckpt.Position) -> None:
        """Set the data position of the restored step."""
        if (
            saved.world_size == self.world
            and saved.steps_per_epoch == self.steps_per_epoch
        ):
            self.position.epoch = saved.epoch
            self.position.step_in_epoch = saved.step_in_epoch
            return
        logger.warning(
            "checkpoint was written by %d worker(s) with %d steps per epoch, now "
            "%d and %d: continuing at the same global step with a new data order",
            saved.world_size,
            saved.steps_per_epoch,
            self.world,
            self.steps_per_epoch,
        )
        self.position.epoch = saved.step // self.steps_per_epoch
        self.position.step_in_epoch = saved.step % self.steps_per_epoch

    def train_state(self) -> dict[str, Any]:
        return {
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "history": self.history,
            "best": self.best,
            "best_weights": self.best_weights,
            "bad_evals": self.bad_evals,
            "train_time": self.train_time,
            "samples": self.samples,
            "starts": self.starts,
        }

    # ------------------------------------------------------------------- step

    def architecture(self, step: int) -> Any:
        if self.space is None:
            return None
        cfg = self.config
        return step_architecture(self.space, cfg.seed, step, cfg.supernet_warmup_steps)

    def train_step(self, batch: Batch, arch: Any = None) -> torch.Tensor:
        """One optimizer step on ``batch``; returns the detached loss."""
        batch = batch.to(self.device)
        enabled = self.autocast is not None
        with torch.autocast(self.device.type, self.autocast, enabled=enabled):
            logits = self.net(batch) if self.space is None else self.net(batch, arch)
        loss = F.binary_cross_entropy_with_logits(logits.float(), batch.label)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.net is self.model:
            sync_gradients(self.params)
        if self.densify:
            densify_gradients(self.params)
        if self.config.clip_norm:
            clip_gradients(self.params, self.config.clip_norm)
        self.optimizer.step()
        self.schedule.step()
        return loss.detach()

    # ------------------------------------------------------------------- loop

    def run(self) -> dict[str, Any]:
        """Train to the end (or early stop); returns the final metrics."""
        with self.session.latest_checkpoint() as folder:
            if folder is not None:
                self.restore(folder)
        if self.position.done:
            final = dict(self.history[-1]) if self.history else {}
            again = {"starts": self.starts, "resumed_from": self.resumed_from}
            self.session.report({**final, **again, "checkpoint": False}, None)
            return final
        stopped = False
        while not stopped and self.position.step < self.total_steps:
            stopped = self._epoch(self.position.epoch)
        return self._finish()

    def _epoch(self, epoch: int) -> bool:
        """Train the rest of ``epoch``; True when training must stop."""
        pos = self.position
        if pos.step_in_epoch >= self.steps_per_epoch:
            pos.epoch, pos.step_in_epoch = epoch + 1, 0
            return False
        batches = iter(self.loader.epoch(epoch, start_step=pos.step_in_epoch))
        while pos.step_in_epoch < self.steps_per_epoch and pos.step < self.total_steps:
            started = time.perf_counter()
            batch = next(batches)
            arch = self.architecture(pos.step)
            self.loss_sum += self.train_step(batch, arch)
            elapsed = time.perf_counter() - started
            self._count(arch, elapsed, len(batch))
            pos.step += 1
            pos.step_in_epoch += 1
            if self._after_step(epoch_end=pos.step_in_epoch == self.steps_per_epoch):
                return True
        return False

    def _count(self, arch: Any, elapsed: float, rows: int) -> None:
        label = arch_label(arch)
        self.interval_archs.update(label.encode())
        if self.archs is not None:
            self.archs.append(label)
        self.interval_steps += 1
        self.interval_time += elapsed
        self.train_time += elapsed
        self.samples += rows * self.world

    def _after_step(self, epoch_end: bool) -> bool:
        """Report, evaluate and checkpoint as due; True when training must stop."""
        cfg, step = self.config, self.position.step
        last = step >= self.total_steps
        eval_due = bool(cfg.eval_split) and (
            (cfg.eval_every and step % cfg.eval_every == 0)
            or (not cfg.eval_every and epoch_end)
            or last
        )
        checkpoint_due = (
            step % cfg.checkpoint_every == 0
            if cfg.checkpoint_every
            else eval_due or epoch_end
        )
        if not (step % cfg.log_every == 0 or eval_due or checkpoint_due or last):
            return False
        metrics = self._train_metrics()
        if eval_due:
            metrics.update(self._validate())
        patience = cfg.early_stopping_patience
        stop = bool(patience) and self.bad_evals >= patience
        if last or stop:
            self.pending = metrics
            return True
        self._report(metrics, checkpoint=bool(checkpoint_due))
        return False

    def _train_metrics(self) -> dict[str, Any]:
        totals = torch.stack(
            [
                self.loss_sum,
                torch.tensor(
                    float(self.interval_steps), dtype=torch.float64, device=self.device
                ),
            ]
        )
        if _grouped():
            dist.all_reduce(totals)
        loss = (totals[0] / totals[1].clamp(min=1)).item()
        rows = self.interval_steps * self.config.batch_size * self.world
        metrics = {
            "step": self.position.step,
            "epoch": self.position.epoch,
            "total_steps": self.total_steps,
            "train_loss": loss,
            "lr": self.schedule.get_last_lr()[0],
            "samples_per_s": rows / self.interval_time if self.interval_time else 0.0,
            "world_size": self.world,
            "resumed_from": self.resumed_from,
            "starts": self.starts,
            "pid": os.getpid(),
            "niceness": os.nice(0),
            "process_cpu_s": time.process_time(),
            "minor_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt,
        }
        if self.space is not None:
            metrics["arch_digest"] = self.interval_archs.hexdigest()[:12]
        self._interval_reset()
        return metrics

    def _validate(self) -> dict[str, Any]:
        cfg = self.config
        scores = self.score(cfg.eval_split)
        value = scores["logloss"]
        if value < self.best["val_logloss"]:
            self.best = {
                "val_logloss": value,
                "val_auc": scores["auc"],
                "step": self.position.step,
                "epoch": self.position.epoch,
            }
            self.bad_evals = 0
            if cfg.early_stopping_patience:
                self.best_weights = {
                    k: v.detach().to("cpu", copy=True)
                    for k, v in self.model.state_dict().items()
                }
        else:
            self.bad_evals += 1
        return {
            "val_logloss": value,
            "val_auc": scores["auc"],
            "val_rows": scores["rows"],
            "best_step": self.best["step"],
            "best_epoch": self.best["epoch"],
            "best_val_logloss": self.best["val_logloss"],
        }

    def score(self, split: str) -> dict[str, float]:
        """Exact metrics over the whole split, gathered from all workers; for a
        supernet, their mean over its evaluation architectures."""
        runs = evaluate_each(
            self.model,
            self.data.evaluation(split, self.rank, self.world),
            self.eval_archs,
            device=self.device,
            autocast_dtype=self.autocast,
        )
        mean = {k: sum(r[k] for r in runs) / len(runs) for k in ("logloss", "auc")}
        return {**mean, "rows": runs[0]["rows"]}

    def _finish(self) -> dict[str, Any]:
        metrics = self.pending if self.pending is not None else self._train_metrics()
        if self.best_weights is not None:
            # The kept model is the best one: report its validation scores.
            self.model.load_state_dict(self.best_weights)
            metrics.update(
                val_logloss=self.best["val_logloss"],
                val_auc=self.best["val_auc"],
            )
        if self.config.test_split:
            scores = self.score(self.config.test_split)
            metrics.update(
                test_logloss=scores["logloss"],
                test_auc=scores["auc"],
                test_rows=scores["rows"],
            )
        metrics.update(
            steps=self.position.step,
            run_samples_per_s=self.samples / self.train_time
            if self.train_time
            else 0.0,
            done=True,
        )
        self.position.done = True
        self._report(metrics, checkpoint=True)
        return metrics

    def _report(self, metrics: dict[str, Any], checkpoint: bool) -> None:
        metrics["checkpoint"] = checkpoint
        self.history.append(dict(metrics))
        folder = None
        if checkpoint and self.rank == 0:
            folder = tempfile.mkdtemp(prefix="recnas-ckpt-")
            ckpt.write_checkpoint(
                folder,
                config=self.config,
                features=self.features,
                model=self.model,
                position=self.position,
                train_state=self.train_state(),
            )
        try:
            self.session.report(metrics, folder)
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)


def run_worker(
    config: TrainConfig,
    session: Session,
    data: DataSource | None = None,
    *,
    bf16: bool = False,
) -> dict[str, Any]:
    """Train one worker's share of a run; returns its final metrics."""
    if config.threads:
        torch.set_num_threads(config.threads)
    return WorkerLoop(config, session, data, bf16=bf16).run()


def train_worker(loop_config: dict[str, Any]) -> None:
    """Ray Train's per-worker function: ``{"train": TrainConfig dict, "bf16"}``."""
    config = TrainConfig.from_dict(loop_config["train"])
    run_worker(config, RaySession(), bf16=loop_config.get("bf16", False))


def train_local(
    config: TrainConfig,
    data: DataSource | None = None,
    checkpoint_root: str | None = None,
) -> tuple[WorkerLoop, list[dict[str, Any]]]:
    """Run the loop in this process (one worker, or the caller's process
    group); returns the loop and this worker's reports."""
    session = LocalSession(checkpoint_root)
    if config.threads:
        torch.set_num_threads(config.threads)
    loop = WorkerLoop(config, session, data)
    loop.run()
    return loop, session.reports


# --------------------------------------------------- single-process helpers


def cycle_batches(loader: Any) -> Iterator[Batch]:
    """Batches of ``loader`` epoch after epoch, without end."""
    epoch = 0
    while True:
        empty = True
        for batch in batches_of(loader, epoch):
            empty = False
            yield batch
        if empty:
            raise ValueError("run_steps: the loader yields no batches")
        epoch += 1


def run_steps(
    model: nn.Module,
    params: Iterable[nn.Parameter],
    loader: Any,
    steps: int,
    lr: float,
    optimizer: str = "adagrad",
    *,
    arch: Any = None,
    eps: float = 1e-8,
    clip_norm: float = 0.0,
    device: torch.device | None = None,
) -> float:
    """Train only ``params`` of ``model`` for ``steps`` steps in this process.

    Other parameters keep their values and get no gradients (they are frozen
    for the duration). Used to fine-tune a candidate's head on supernet
    weights before scoring it.

    Args:
        model: Called as ``model(batch)``, or ``model(batch, arch)`` with arch.
        params: The parameters to train.
        loader: A training ``BatchLoader`` or any re-iterable of batches.
        steps: Optimizer steps.
        lr: Constant learning rate.
        optimizer: ``"adagrad"``, ``"adam"`` or ``"sgd"``.
        arch: Architecture for a supernet.
        eps: Optimizer epsilon.
        clip_norm: Gradient-norm clip (0: off).
        device: Where the model lives (default: CPU).

    Returns:
        The mean training loss over the steps (NaN when it diverged).
    """
    device = device or torch.device("cpu")
    params = list(params)
    chosen = {id(p) for p in params}
    frozen = [p for p in model.parameters() if id(p) not in chosen and p.requires_grad]
    opt = make_optimizer(optimizer, params, lr, eps)
    total = torch.zeros((), dtype=torch.float64)
    for p in frozen:
        p.requires_grad_(False)
    model.train()
    try:
        batches = cycle_batches(loader)
        for _ in range(steps):
            batch = next(batches).to(device)
            logits = model(batch) if arch is None else model(batch, arch)
            loss = F.binary_cross_entropy_with_logits(logits.float(), batch.label)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip_norm:
                nn.utils.clip_grad_norm_(params, clip_norm)
            opt.step()
            total += loss.detach().double().cpu()
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return float(total / max(steps, 1))
