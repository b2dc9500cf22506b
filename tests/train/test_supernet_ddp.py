"""Supernet training under DDP: one architecture per step on every worker, and
weights outside the sampled architectures left alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from recnas.data.features import FeatureSet
from recnas.space.spec import load_space
from recnas.train.config import TrainConfig
from recnas.train.data import TensorSource
from recnas.train.loop import WorkerLoop, evaluation_architectures, step_architecture
from recnas.train.metrics import evaluate
from recnas.train.session import LocalSession

from .helpers import learnable_rows, run_group

FEATURES = FeatureSet.synthetic(3, [20, 30, 40, 50], multi=1)
STEPS = 50


def _source() -> TensorSource:
    rows = {"train": learnable_rows(2 * 32 * STEPS, 3, FEATURES)}
    return TensorSource(FEATURES, rows, batch_size=32)


def _worker(rank: int, out: str, grad_sync: str) -> None:
    config = TrainConfig.nasrec_supernet(
        "memory",
        space="nasrec_small",
        batch_size=32,
        max_steps=STEPS,
        log_every=10,
        eval_split=None,
        grad_sync=grad_sync,
    )
    loop = WorkerLoop(config, LocalSession(), _source(), record_archs=True)
    params = dict(loop.model.named_parameters())
    initial = {k: p.detach().clone() for k, p in params.items()}
    touched: set[str] = set()
    for name, p in params.items():
        p.register_post_accumulate_grad_hook(lambda _, name=name: touched.add(name))
    loop.run()

    untouched = sorted(set(params) - touched)
    unchanged = [k for k in untouched if torch.equal(params[k].detach(), initial[k])]
    trained = sorted(
        k for k in touched if not torch.equal(params[k].detach(), initial[k])
    )
    digest = {k: float(params[k].detach().double().sum()) for k in trained}
    result = {
        "archs": loop.archs,
        "untouched": untouched,
        "unchanged": unchanged,
        "trained": trained,
        "digest": digest,
    }
    Path(f"{out}.{rank}").write_text(json.dumps(result))
    dist.barrier()


@pytest.mark.parametrize("grad_sync", ["allreduce", "ddp"])
def test_supernet_ddp_50_steps(tmp_path: Path, grad_sync: str) -> None:
    run_group(_worker, (str(tmp_path / "out"), grad_sync), timeout_s=60)
    ranks = [json.loads((tmp_path / f"out.{r}").read_text()) for r in range(2)]

    # Identical architectures on both ranks at every step, and not all alike.
    assert len(ranks[0]["archs"]) == STEPS
    assert ranks[0]["archs"] == ranks[1]["archs"]
    assert len(set(ranks[0]["archs"])) > STEPS // 2
    # Weights of operators (and slices) that no step used never changed.
    assert len(ranks[0]["untouched"]) > 10
    assert ranks[0]["untouched"] == ranks[1]["untouched"]
    for r in ranks:
        assert r["unchanged"] == r["untouched"]
    # The used weights were trained, identically on both ranks.
    assert len(ranks[0]["trained"]) > 10
    assert ranks[0]["digest"] == ranks[1]["digest"]


def test_architecture_schedule_is_seeded_and_warms_up() -> None:
    space = load_space("nasrec_small")
    first = [step_architecture(space, 7, s, 0) for s in range(20)]
    again = [step_architecture(space, 7, s, 0) for s in range(20)]
    other = [step_architecture(space, 8, s, 0) for s in range(20)]
    assert first == again and first != other and None not in first
    # With warm-up S, step t trains the full supernet with probability 1 - t/S.
    warm = [step_architecture(space, 0, s, 1000) is None for s in range(1000)]
    assert sum(warm[:100]) > 80 and sum(warm[900:]) < 20
    assert step_architecture(space, 0, 1000, 1000) is not None


def test_supernet_is_scored_on_its_fixed_evaluation_architectures() -> None:
    rows = {
        "train": learnable_rows(256, 3, FEATURES),
        "val": learnable_rows(300, 4, FEATURES),
    }
    config = TrainConfig.nasrec_supernet(
        "memory", space="nasrec_small", batch_size=32, max_steps=4, seed=5
    )
    loop = WorkerLoop(config, LocalSession(), TensorSource(FEATURES, rows, 32))
    archs = evaluation_architectures(loop.space, 5, config.supernet_eval_archs)
    assert archs == evaluation_architectures(loop.space, 5, 4)
    assert len({a.arch_id for a in archs}) == 4
    each = [
        evaluate(loop.model, loop.data.evaluation("val", 0, 1), arch=a) for a in archs
    ]
    score = loop.score("val")
    assert score["rows"] == 300
    assert score["logloss"] == pytest.approx(sum(e["logloss"] for e in each) / 4)
    assert score["auc"] == pytest.approx(sum(e["auc"] for e in each) / 4)
    full = evaluate(loop.model, loop.data.evaluation("val", 0, 1))
    assert score["logloss"] != pytest.approx(full["logloss"])
