"""Ray Train runs end to end: reports, exact metrics, checkpoints, a lost worker.

Six ``fit`` calls in all (each costs 12-16 s of Ray Train set-up here): an
uninterrupted baseline run, the same run again (it finds its final checkpoint
and stops at once), copies of it with a damaged and with a missing
checkpoint, the same run with one worker killed mid-run, and a short
supernet run.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score

from recnas.data.ingest import ingest
from recnas.data.loader import BatchLoader
from recnas.train.checkpoint import load_model, read_description
from recnas.train.config import TrainConfig
from recnas.train.launcher import Scaling, TrainingFailed, fit
from recnas.train.metrics import predict

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MOVIELENS = REPO / "datasets" / "ml-latest-small" / "ml-latest-small.zip"
# 513 evaluation rows over two workers of 256-row batches: rank 0 gets one
# batch, rank 1 two (256 + 1 rows), so the workers' shares differ in size.
EVAL_ROWS = 513


@pytest.fixture(scope="module")
def movielens(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("movielens") / "data"
    ingest("movielens", [str(MOVIELENS)], str(out), parallel="local")
    return str(out)


def _config(data: str) -> TrainConfig:
    return TrainConfig.baseline(
        data,
        "dlrm",
        params={"embed_dim": 8, "bottom": [16], "top": [32]},
        batch_size=256,
        epochs=4,
        lr=3e-3,
        log_every=4,
        checkpoint_every=8,
        early_stopping_patience=0,
        max_train_rows=8192,
        max_eval_rows=EVAL_ROWS,
        collective_timeout_s=60,
        seed=5,
    )


@pytest.fixture(scope="module")
def baseline_run(ray_cluster, movielens, tmp_path_factory):
    storage = str(tmp_path_factory.mktemp("storage"))
    reports: list[dict] = []
    result = fit(
        _config(movielens),
        Scaling(num_workers=2),
        storage=storage,
        name="dlrm",
        on_report=reports.append,
        progress=False,
    )
    return result, reports, storage


def test_eval_shards_differ_between_workers(movielens) -> None:
    config = _config(movielens)
    counts = [
        [
            len(b)
            for b in BatchLoader(
                movielens,
                "val",
                batch_size=256,
                rank=rank,
                world_size=2,
                shuffle=False,
                drop_last=False,
                max_rows=config.max_eval_rows,
            ).epoch(0)
        ]
        for rank in range(2)
    ]
    assert sum(map(sum, counts)) == EVAL_ROWS
    assert len(counts[0]) != len(counts[1])


def test_fit_reports_every_step_to_the_driver(baseline_run) -> None:
    result, reports, _ = baseline_run
    steps = [r["step"] for r in reports]
    assert steps == sorted(steps) and steps[-1] == result.metrics["steps"] == 64
    assert all(r["world_size"] == 2 and len(r["worker_pids"]) == 2 for r in reports)
    assert all(r["niceness"] == 0 for r in reports)  # not Ray's default 15
    assert all(
        math.isfinite(r["train_loss"]) and r["samples_per_s"] > 0 for r in reports
    )
    assert reports[-1]["done"] and result.history[-1]["step"] == 64
    assert [h["step"] for h in result.history] == steps


def test_uneven_shards_finish_with_exact_metrics(baseline_run, movielens) -> None:
    """Workers with shares of different sizes finish (a collective timeout of
    60 s would turn a hang into a failure), and the distributed metrics equal
    scikit-learn on the whole split scored in one process."""
    result, _, _ = baseline_run
    metrics = result.metrics
    assert metrics["val_rows"] == metrics["test_rows"] == EVAL_ROWS
    model, config = load_model(result.checkpoint)
    for split in ("val", "test"):
        loader = BatchLoader(
            movielens,
            split,
            batch_size=100,
            shuffle=False,
            drop_last=False,
            max_rows=EVAL_ROWS,
        )
        rows = predict(model, loader.epoch(0)).double().numpy()
        labels, probs = rows[:, 0], 1 / (1 + np.exp(-rows[:, 1]))
        assert abs(metrics[f"{split}_logloss"] - log_loss(labels, probs)) < 1e-6
        assert abs(metrics[f"{split}_auc"] - roc_auc_score(labels, rows[:, 1])) < 1e-6
    assert config == _config(movielens).replace(threads=1)


def test_checkpoints_live_in_storage(baseline_run) -> None:
    result, _, storage = baseline_run
    final = Path(result.checkpoint)
    assert final.parent == Path(storage) / "dlrm"
    assert final.name == "checkpoint_00000064"
    description = read_description(final)
    assert description["position"] == {
        "step": 64,
        "epoch": 3,
        "step_in_epoch": 16,
        "steps_per_epoch": 16,
        "total_steps": 64,
        "world_size": 2,
        "done": True,
    }
    kept = sorted(p.name for p in final.parent.glob("checkpoint_0*"))
    assert len(kept) == 2 and kept[-1] == final.name


def test_same_name_resumes_a_finished_run(baseline_run, movielens) -> None:
    result, _, storage = baseline_run
    reports: list[dict] = []
    again = fit(
        _config(movielens),
        Scaling(num_workers=2),
        storage=storage,
        name="dlrm",
        on_report=reports.append,
        progress=False,
    )
    assert [(r["starts"], r["resumed_from"]) for r in reports] == [(2, 64)]
    assert again.checkpoint == result.checkpoint
    assert again.metrics == result.metrics


def _copy_of_run(storage: str, tmp_path: Path) -> tuple[Path, list[Path]]:
    """A copy of the finished run's storage, and its checkpoint folders."""
    copy = tmp_path / "storage"
    shutil.copytree(storage, copy)
    return copy, sorted((copy / "dlrm").glob("checkpoint_0*"))


def test_a_damaged_checkpoint_fails_the_run_naming_the_file(
    baseline_run, movielens, tmp_path
) -> None:
    _, _, storage = baseline_run
    copy, checkpoints = _copy_of_run(storage, tmp_path)
    damaged = checkpoints[-1] / "model.pt"
    damaged.write_bytes(b"these bytes are not a torch checkpoint")
    with pytest.raises(
        TrainingFailed,
        match=rf"^run {copy}/dlrm: checkpoint file {damaged} cannot be read "
        r"\(.*\); the run cannot resume from it: .*\(recnas run: --force STAGE\)$",
    ):
        fit(
            _config(movielens).replace(max_failures=0),
            Scaling(num_workers=2),
            storage=str(copy),
            name="dlrm",
            progress=False,
        )


def test_a_missing_checkpoint_says_how_to_start_over(
    baseline_run, movielens, tmp_path
) -> None:
    _, _, storage = baseline_run
    copy, checkpoints = _copy_of_run(storage, tmp_path)
    for folder in checkpoints:
        shutil.rmtree(folder)
    with pytest.raises(
        TrainingFailed,
        match=rf"run {copy}/dlrm cannot resume: .* delete the run's folder",
    ):
        fit(
            _config(movielens),
            Scaling(num_workers=2),
            storage=str(copy),
            name="dlrm",
            progress=False,
        )


def test_more_workers_than_the_cluster_can_hold_are_refused(movielens) -> None:
    with pytest.raises(ValueError, match=r"num_workers=3, .*: 3 CPUs needed at once"):
        fit(_config(movielens), Scaling(num_workers=3), storage="unused", name="x")


def test_a_run_that_fails_for_good_says_why_in_one_line() -> None:
    from ray.train import WorkerGroupError

    from recnas.train.launcher import _failure

    lost = WorkerGroupError("2 workers failed", {0: RuntimeError("boom\nmore")})
    failure = _failure(lost, TrainConfig.baseline("d", "dnn"), "runs/dnn")
    assert str(failure) == (
        "run runs/dnn: training failed after 2 restart(s); RuntimeError: boom. "
        "Run it again to resume from its newest checkpoint"
    )
    assert _failure(KeyboardInterrupt(), TrainConfig.baseline("d", "dnn"), "x") is None


def test_the_driver_stops_following_at_the_end_marker() -> None:
    """The marker ends the wait at once, even while the trainer's thread is
    still finishing; every report before it reaches ``on_report``."""
    import queue
    import threading

    from recnas.train.launcher import _FINISHED, _follow, _Progress

    reports: queue.Queue = queue.Queue()
    for step in (1, 2):
        reports.put({"step": step, "starts": 1, "total_steps": 2})
    reports.put(_FINISHED)
    still_running = threading.Event()
    trainer = threading.Thread(target=still_running.wait, daemon=True)
    trainer.start()
    seen: list[object] = []

    def follow() -> None:
        bar = _Progress("x", False)
        _follow("runs/x", trainer, reports, lambda m: seen.append(m["step"]), bar)
        seen.append("returned")

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    follower.join(timeout=3)
    still_running.set()
    assert seen == [1, 2, "returned"]


def test_killed_worker_resumes_from_checkpoint(
    baseline_run, movielens, tmp_path, caplog
) -> None:
    caplog.set_level(logging.INFO, logger="recnas.train.launcher")
    uninterrupted, _, _ = baseline_run
    reports: list[dict] = []
    killed: dict = {}

    def kill_after_first_checkpoint(metrics: dict) -> None:
        reports.append(metrics)
        if not killed and metrics.get("checkpoint_path"):
            killed.update(step=metrics["step"], pid=metrics["worker_pids"][1])
            os.kill(killed["pid"], signal.SIGKILL)

    result = fit(
        _config(movielens),
        Scaling(num_workers=2),
        storage=str(tmp_path),
        name="dlrm",
        on_report=kill_after_first_checkpoint,
        progress=False,
    )
    assert killed["step"] == 8
    restarted = [r for r in reports if r["starts"] == 2]
    assert restarted, "the worker group was not restarted"
    first = restarted[0]
    checkpointed = {r["step"] for r in reports if r.get("checkpoint_path")}
    assert first["resumed_from"] in checkpointed and first["resumed_from"] >= 8
    assert first["step"] == first["resumed_from"] + 4
    assert killed["pid"] not in first["worker_pids"]
    resumed = f"dlrm: resumed from its checkpoint at step {first['resumed_from']}"
    assert resumed in caplog.text
    final, clean = result.metrics, uninterrupted.metrics
    assert final["steps"] == 64 and final["resumed_from"] == first["resumed_from"]
    for key in ("val_logloss", "val_auc", "test_logloss", "test_auc"):
        assert math.isfinite(final[key])
        assert abs(final[key] - clean[key]) < 5e-3, key


def test_supernet_fit_agrees_on_architectures(
    ray_cluster, movielens, tmp_path, capfd
) -> None:
    config = TrainConfig.nasrec_supernet(
        movielens,
        space="nasrec_small",
        batch_size=128,
        max_steps=12,
        log_every=3,
        supernet_warmup_steps=4,
        max_train_rows=4096,
        max_eval_rows=EVAL_ROWS,
        collective_timeout_s=60,
    )
    reports: list[dict] = []
    result = fit(
        config,
        Scaling(num_workers=2, niceness=3),
        storage=str(tmp_path),
        name="supernet",
        on_report=reports.append,
        progress=True,
    )
    bar = capfd.readouterr().err
    assert "supernet" in bar and "12/12" in bar
    assert [r["step"] for r in reports] == [3, 6, 9, 12]
    assert all(r["archs_agree"] for r in reports)
    assert all(r["niceness"] == 3 for r in reports)
    assert math.isfinite(result.metrics["val_logloss"])
    model, loaded = load_model(result.checkpoint)
    assert type(model).__name__ == "Supernet" and loaded.model.kind == "supernet"
    assert torch.isfinite(next(model.parameters())).all()
