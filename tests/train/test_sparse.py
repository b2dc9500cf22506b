"""Sparse embedding gradients train what dense ones do, in one process and
across two, and are used only where the optimizer keeps the update exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from recnas.train.config import TrainConfig
from recnas.train.loop import WorkerLoop, clip_gradients
from recnas.train.optim import RowAdagrad
from recnas.train.session import LocalSession

from .helpers import run_group, tensor_source

DLRM = {"embed_dim": 8, "bottom": [16], "top": [16]}


def _config(optimizer: str, sparse: bool, **changes) -> TrainConfig:
    settings = {
        "params": DLRM,
        "optimizer": optimizer,
        "lr": 3e-3 if optimizer == "adam" else 0.1,
        "eps": 1e-2,
        "clip_norm": 0.5,
        "batch_size": 64,
        "epochs": 2,
        "log_every": 8,
        "eval_split": None,
        "test_split": None,
        "early_stopping_patience": 0,
        "sparse_gradients": sparse,
    }
    return TrainConfig.baseline("memory", "dlrm", **{**settings, **changes})


def _trained(config: TrainConfig) -> WorkerLoop:
    loop = WorkerLoop(config, LocalSession(), tensor_source())
    loop.run()
    return loop


def _tables(loop: WorkerLoop) -> list[nn.Module]:
    return [m for m in loop.model.modules() if isinstance(m, nn.Embedding)]


def test_sparse_training_equals_dense() -> None:
    sparse = _trained(_config("adagrad", True))
    dense = _trained(_config("adagrad", False))
    assert all(t.sparse for t in _tables(sparse))
    assert not any(t.sparse for t in _tables(dense))
    want = dense.model.state_dict()
    for name, value in sparse.model.state_dict().items():
        torch.testing.assert_close(value, want[name], rtol=1e-5, atol=1e-6, msg=name)
    state = dense.optimizer.state_dict()["state"]
    for key, value in sparse.optimizer.state_dict()["state"].items():
        torch.testing.assert_close(value["sum"], state[key]["sum"])


def test_other_optimizers_and_ddp_keep_dense_gradients() -> None:
    for config in (
        _config("adam", True),
        _config("sgd", True),
        _config("adagrad", True, weight_decay=1e-4),
        _config("adagrad", True, grad_sync="ddp"),
    ):
        loop = WorkerLoop(config, LocalSession(), tensor_source())
        assert not any(t.sparse for t in _tables(loop))


@pytest.mark.filterwarnings("ignore:Sparse invariant checks")
def test_row_adagrad_matches_torch_sparse_adagrad() -> None:
    torch.manual_seed(0)
    tables = [nn.Embedding(30, 4, sparse=True) for _ in range(2)]
    for t in tables:
        nn.init.normal_(t.weight)
    head = nn.Linear(8, 1)
    ours = [p.detach().clone().requires_grad_() for p in _all(tables, head)]
    reference = torch.optim.Adagrad(_all(tables, head), lr=0.3, eps=1e-2)
    rows = RowAdagrad(ours, lr=0.3, eps=1e-2)
    for step in range(3):
        ids = torch.randint(
            0, 30, (16, 2), generator=torch.Generator().manual_seed(step)
        )
        for params, opt in ((_all(tables, head), reference), (ours, rows)):
            weights = params[:2]
            x = torch.cat(
                [F.embedding(ids[:, i], w, sparse=True) for i, w in enumerate(weights)],
                1,
            )
            loss = F.linear(x, params[2], params[3]).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    for got, want in zip(ours, _all(tables, head), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


def _all(tables: list[nn.Embedding], head: nn.Linear) -> list[nn.Parameter]:
    return [t.weight for t in tables] + list(head.parameters())


def test_clip_counts_repeated_rows_once_with_their_sum() -> None:
    # Against torch's clip_grad_norm_ on the same gradients, dense.
    grads = {}
    for sparse in (True, False):
        torch.manual_seed(0)
        table, head = nn.Embedding(20, 4, sparse=sparse), nn.Linear(4, 1)
        ids = torch.tensor([3, 3, 7, 3, 11])
        head(table(ids)).pow(2).sum().backward()
        params = [table.weight, *head.parameters()]
        clip = clip_gradients if sparse else nn.utils.clip_grad_norm_
        norm = clip(params, 0.1)
        grads[sparse] = (norm, table.weight.grad.to_dense(), head.weight.grad)
    reference = grads[False]
    for got, want in zip(grads[True], reference, strict=True):
        torch.testing.assert_close(got, want)
    assert float(reference[0]) > 0.1  # the clip was active


def _group_worker(rank: int, out: str) -> None:
    digests = {}
    for optimizer in ("adagrad", "adam"):
        for sparse in (True, False):
            loop = _trained(_config(optimizer, sparse, epochs=1))
            assert all(t.sparse == sparse for t in _tables(loop))
            assert loop.densify == (sparse and optimizer == "adam")
            weights = [p.detach().double().reshape(-1) for p in loop.model.parameters()]
            digests[f"{optimizer} {sparse}"] = [float(w.sum()) for w in weights]
    Path(f"{out}.{rank}").write_text(json.dumps(digests))
    dist.barrier()


def test_two_workers_gather_sparse_rows_like_a_dense_all_reduce(
    tmp_path: Path,
) -> None:
    """Adagrad updates the gathered rows; Adam makes them dense again first.
    Either way the replicas stay identical and train what a dense all-reduce
    of every row trains."""
    run_group(_group_worker, (str(tmp_path / "out"),), timeout_s=60)
    ranks = [json.loads((tmp_path / f"out.{r}").read_text()) for r in range(2)]
    assert ranks[0] == ranks[1]
    for optimizer in ("adagrad", "adam"):
        sparse, dense = ranks[0][f"{optimizer} True"], ranks[0][f"{optimizer} False"]
        assert sparse == pytest.approx(dense, rel=1e-5, abs=1e-5), optimizer
