"""TrainConfig and ModelSpec: presets, round trips, and the errors users see."""

from __future__ import annotations

import math

import pytest

from recnas.train.config import ModelSpec, TrainConfig
from recnas.train.launcher import Scaling
from recnas.train.optim import lr_factor


def test_nasrec_supernet_preset() -> None:
    cfg = TrainConfig.nasrec_supernet("data/x", space="nasrec_full", seed=3)
    assert (cfg.optimizer, cfg.lr, cfg.eps) == ("adagrad", 0.12, 1e-2)
    assert (cfg.schedule, cfg.warmup_fraction, cfg.clip_norm) == ("cosine", 0.1, 5.0)
    assert (cfg.batch_size, cfg.epochs, cfg.seed) == (512, 1, 3)
    assert cfg.model == ModelSpec(kind="supernet", name="supernet", space="nasrec_full")


def test_round_trip_and_presets() -> None:
    for cfg in (
        TrainConfig.nasrec_supernet("d"),
        TrainConfig.baseline("d", "dlrm", params={"embed_dim": 8}, epochs=2),
        TrainConfig.retrain(
            "d", {"space": "nasrec_small", "blocks": []}, "nasrec_small"
        ),
    ):
        assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    base = TrainConfig.baseline("d", "dnn")
    assert base.optimizer == "adam" and base.early_stopping_patience == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"optimizer": "rmsprop"}, r"optimizer: 'rmsprop' is not one of"),
        ({"batch_size": 0}, r"batch_size: must be >= 1"),
        ({"warmup_fraction": 1.0}, r"warmup_fraction: must be in \[0, 1\)"),
        ({"lr": 0.0}, r"lr: must be > 0"),
        ({"eval_split": None}, r"early_stopping_patience: needs an eval_split"),
        ({"grad_sync": "nccl"}, r"grad_sync: 'nccl' is not one of"),
        ({"max_eval_rows": 0}, r"max_eval_rows: must be >= 1 or None"),
    ],
)
def test_bad_values_name_the_key(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig.baseline("d", "dnn", **changes)


def test_bad_keys_and_specs() -> None:
    data = TrainConfig.baseline("d", "dnn").to_dict()
    data["learning_rate"] = 0.1
    with pytest.raises(ValueError, match=r"unknown key\(s\) \['learning_rate'\]"):
        TrainConfig.from_dict(data)
    with pytest.raises(ValueError, match="model.kind: 'tree' is not one of"):
        ModelSpec(kind="tree")
    with pytest.raises(ValueError, match="model.space: a supernet needs"):
        ModelSpec(kind="supernet")
    with pytest.raises(ValueError, match="model.arch: a subnet needs"):
        ModelSpec(kind="subnet", space="nasrec_small")
    with pytest.raises(ValueError, match="a supernet trains a fixed budget"):
        TrainConfig.nasrec_supernet("d", early_stopping_patience=1)


def test_scaling_rejects_bf16_on_cpu() -> None:
    with pytest.raises(ValueError, match="bf16: autocast to bfloat16 runs on GPUs"):
        Scaling(bf16=True)
    with pytest.raises(ValueError, match="num_workers: must be >= 1"):
        Scaling(num_workers=0)
    with pytest.raises(ValueError, match="omp_wait_policy: 'spin' is not one of"):
        Scaling(omp_wait_policy="spin")
    with pytest.raises(ValueError, match="malloc_policy: 'tcmalloc' is not one of"):
        Scaling(malloc_policy="tcmalloc")
    with pytest.raises(ValueError, match=r"niceness: must be in \[0, 19\], got 20"):
        Scaling(niceness=20)
    with pytest.raises(
        ValueError, match="num_workers: must be a whole number, got '2'"
    ):
        Scaling(num_workers="2")
    with pytest.raises(ValueError, match="cpus_per_worker: must be a number, got '1'"):
        Scaling(cpus_per_worker="1")


def test_workers_start_with_the_openmp_wait_policy(tmp_path) -> None:
    import queue

    from recnas.train.launcher import _report_forwarder, _trainer

    config = TrainConfig.baseline("d", "dnn")
    expected = {
        "brief": ("PASSIVE", "1000"),
        "passive": ("PASSIVE", "0"),
        "active": ("ACTIVE", "infinite"),
    }
    assert Scaling().omp_wait_policy == "brief"
    for policy, (wait, spins) in expected.items():
        scaling = Scaling(num_workers=1, omp_wait_policy=policy)
        cb = _report_forwarder(queue.Queue())
        trainer = _trainer(config, scaling, str(tmp_path), "run", cb)
        env = trainer.run_config.worker_runtime_env["env_vars"]
        assert (env["OMP_WAIT_POLICY"], env["GOMP_SPINCOUNT"]) == (wait, spins)
        assert env["RAY_worker_niceness"] == "0"


def test_workers_start_with_the_malloc_policy(tmp_path) -> None:
    import queue

    from recnas.train.launcher import _report_forwarder, _trainer

    config = TrainConfig.baseline("d", "dnn")
    keys = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
    expected = {
        "steady": ("1", str(32 * 2**20), str(256 * 2**20)),
        "default": (None, None, None),
    }
    assert Scaling().malloc_policy == "steady"
    for policy, values in expected.items():
        scaling = Scaling(num_workers=1, malloc_policy=policy)
        cb = _report_forwarder(queue.Queue())
        trainer = _trainer(config, scaling, str(tmp_path), "run", cb)
        env = trainer.run_config.worker_runtime_env["env_vars"]
        assert tuple(env.get(k) for k in keys) == values
        assert env["OMP_WAIT_POLICY"] == "PASSIVE"  # the other settings stay


def test_warmup_then_cosine() -> None:
    total, warmup = 100, 10
    factors = [lr_factor(s, total, warmup, "cosine") for s in range(total)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0)
    assert factors[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(factors[10:], factors[11:], strict=False))
    assert lr_factor(50, total, 0, "constant") == 1.0
    assert lr_factor(55, total, warmup, "linear") == pytest.approx(0.5)
