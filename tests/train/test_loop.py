"""The per-worker loop without Ray: resume, early stopping, DDP, uneven shards."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from recnas.models.baselines import build_baseline
from recnas.train.checkpoint import load_model, read_description
from recnas.train.config import TrainConfig
from recnas.train.data import TensorLoader, TensorSource
from recnas.train.loop import WorkerLoop, run_steps, train_local
from recnas.train.metrics import evaluate
from recnas.train.session import LocalSession

from .helpers import FEATURES, learnable_rows, run_group, tensor_source

DLRM = {"embed_dim": 8, "bottom": [16], "top": [16]}


def _config(**changes) -> TrainConfig:
    settings = {
        "params": DLRM,
        "batch_size": 64,
        "epochs": 2,
        "log_every": 5,
        "lr": 3e-3,
        "early_stopping_patience": 0,
    }
    return TrainConfig.baseline("memory", "dlrm", **{**settings, **changes})


class _CrashingSession(LocalSession):
    """Fails right after the n-th checkpoint was saved, like a lost worker."""

    def __init__(self, root: Path, crash_at: int) -> None:
        super().__init__(root)
        self.crash_at = crash_at
        self.saved = 0

    def report(self, metrics, checkpoint_dir) -> None:
        super().report(metrics, checkpoint_dir)
        self.saved += checkpoint_dir is not None
        if self.saved == self.crash_at:
            raise RuntimeError("worker lost")


def test_resume_after_crash_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    config = _config(checkpoint_every=13, schedule="cosine", warmup_fraction=0.1)
    whole, reports = train_local(config, tensor_source(), str(tmp_path / "a"))

    crashing = WorkerLoop(config, _CrashingSession(tmp_path / "b", 2), tensor_source())
    with pytest.raises(RuntimeError, match="worker lost"):
        crashing.run()
    resumed, resumed_reports = train_local(config, tensor_source(), str(tmp_path / "b"))

    assert resumed_reports[0]["resumed_from"] == 26
    assert resumed_reports[0]["step"] == 30 and resumed_reports[-1]["starts"] == 2
    for key, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert (
        whole.optimizer.state_dict()["state"][0]["step"]
        == resumed.optimizer.state_dict()["state"][0]["step"]
    )
    assert resumed_reports[-1]["test_logloss"] == reports[-1]["test_logloss"]
    final = sorted((tmp_path / "b").glob("checkpoint_*"))[-1]
    history = json.loads((final / "history.json").read_text())
    assert [h["step"] for h in history] == [h["step"] for h in reports]


def test_checkpoint_describes_itself(tmp_path: Path) -> None:
    config = _config(epochs=1)
    loop, reports = train_local(config, tensor_source(), str(tmp_path))
    final = sorted(tmp_path.glob("checkpoint_*"))[-1]
    description = read_description(final)
    assert description["position"]["step"] == reports[-1]["step"] == 32
    assert description["position"]["done"] is True
    assert description["config"] == config.to_dict()
    assert description["sampler"]["seed"] == config.seed
    model, loaded = load_model(str(final))
    assert loaded == config
    source = tensor_source()
    assert evaluate(model, source.evaluation("test", 0, 1))["logloss"] == pytest.approx(
        reports[-1]["test_logloss"], abs=1e-7
    )
    with pytest.raises(ValueError, match="not a recnas checkpoint"):
        load_model(str(tmp_path))


def test_early_stopping_keeps_the_best_weights(tmp_path: Path) -> None:
    # A large learning rate on little data overfits quickly: validation
    # log loss stops improving and the run stops after `patience` evaluations.
    source = tensor_source(n_train=512)
    config = _config(epochs=40, lr=0.05, early_stopping_patience=2, eval_every=4)
    loop, reports = train_local(config, source, str(tmp_path))
    final = reports[-1]
    assert final["steps"] < 40 * 8
    evals = [r for r in reports[:-1] if "val_logloss" in r]
    best = min(evals, key=lambda r: r["val_logloss"])
    assert final["best_step"] == best["step"]
    assert evals[-1]["val_logloss"] > best["val_logloss"]
    # The final report gives the kept (best) model's validation scores.
    assert final["val_logloss"] == best["val_logloss"]
    assert final["val_auc"] == best["val_auc"]
    assert evaluate(loop.model, source.evaluation("val", 0, 1))[
        "logloss"
    ] == pytest.approx(best["val_logloss"], abs=1e-7)


def test_run_steps_trains_only_the_chosen_parameters() -> None:
    torch.manual_seed(0)
    model = build_baseline("dnn", FEATURES, embed_dim=8, hidden=[16])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    source = tensor_source()
    loader = source.train(0, 1)
    first = run_steps(model, model.deep.out.parameters(), loader, 1, lr=0.05)
    later = run_steps(model, model.deep.out.parameters(), loader, 60, lr=0.05)
    assert math.isfinite(first) and later < first
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"deep.out.weight", "deep.out.bias"}
    assert all(p.requires_grad for p in model.parameters())


class _UnevenSource(TensorSource):
    """Rank 1 holds far fewer training rows than rank 0, and only the last
    5 rows of each evaluation split."""

    def train(self, rank: int, world_size: int) -> TensorLoader:
        rows = learnable_rows(1024 if rank == 0 else 300, 40 + rank)
        return TensorLoader(rows, self.batch_size, 0, 1, self.seed)

    def evaluation(self, split: str, rank: int, world_size: int):
        rows = self.splits[split]
        cut = len(rows) - 5
        index = torch.arange(0, cut) if rank == 0 else torch.arange(cut, len(rows))
        for start in range(0, len(index), self.batch_size):
            yield rows.take(index[start : start + self.batch_size])


def _uneven_worker(rank: int, out: str, grad_sync: str) -> None:
    config = _config(epochs=2, grad_sync=grad_sync, log_every=3)
    loop, reports = train_local(
        config, _UnevenSource(FEATURES, tensor_source().splits, 64)
    )
    weights = torch.cat([p.detach().reshape(-1) for p in loop.model.parameters()])
    digest = float(weights.double().sum())
    with open(f"{out}.{rank}", "w") as f:
        json.dump(
            {"final": reports[-1], "digest": digest, "steps": loop.total_steps}, f
        )
    dist.barrier()


@pytest.mark.parametrize("grad_sync", ["allreduce", "ddp"])
def test_uneven_shards_finish_with_identical_weights(
    tmp_path: Path, grad_sync: str
) -> None:
    run_group(_uneven_worker, (str(tmp_path / "out"), grad_sync), timeout_s=20)
    results = [json.loads((tmp_path / f"out.{r}").read_text()) for r in range(2)]
    # Both ranks take the steps of the smaller shard: 300 // 64 = 4 per epoch.
    assert results[0]["steps"] == results[1]["steps"] == 8
    assert results[0]["digest"] == results[1]["digest"]
    assert results[0]["final"]["val_rows"] == 700
    assert results[0]["final"]["test_rows"] == 500
    assert results[0]["final"]["val_auc"] == results[1]["final"]["val_auc"]
