"""The bodies of the pipeline stages.

Every stage reads the job and its upstream stages' outputs, writes under
``<storage>/<job>/<stage>/``, records itself in MLflow under its parent run,
and returns JSON-able outputs for the stages after it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from recnas.data.meta import DatasetMeta, load_meta
from recnas.jobs.spec import JobSpec, TrainSection
from recnas.jobs.store import JobStore
from recnas.runtime import check_capacity
from recnas.space.arch import Architecture
from recnas.space.spec import load_space
from recnas.tracking.mlflow_tracker import RunRef, Tracker
from recnas.train.config import ModelSpec, TrainConfig
from recnas.train.launcher import Scaling, TrainResult, fit

logger = logging.getLogger(__name__)


@dataclass
class StageContext:
    """What a stage body gets.

    Attributes:
        job: The job.
        store: The job's storage folder.
        tracker: The MLflow tracker.
        upstream: Outputs of the stages that ran or were skipped before.
        run: This stage's MLflow parent run.
        work: The stage's work folder under the job's, as path parts:
            ``(stage, inputs hash)``.
    """

    job: JobSpec
    store: JobStore
    tracker: Tracker
    upstream: dict[str, dict[str, Any]]
    run: RunRef
    work: tuple[str, ...]

    def uri(self, *parts: str) -> str:
        """A URI in the stage's work folder."""
        return self.store.uri(*self.work, *parts)

    def read_json(self, *parts: str) -> Any | None:
        return self.store.read_json(*self.work, *parts)

    def write_json(self, obj: Any, *parts: str) -> str:
        return self.store.write_json(obj, *self.work, *parts)

    @property
    def data(self) -> str:
        return self.upstream["ingest"]["data"]

    def meta(self) -> DatasetMeta:
        return load_meta(self.data)

    def tags(self, **extra: Any) -> dict[str, Any]:
        tags = common_tags(self.job, self.upstream)
        tags.update({f"recnas.{k}": v for k, v in extra.items()})
        return tags


def common_tags(job: JobSpec, upstream: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Tags on every run: job, dataset, protocol, split md5s, space."""
    tags = {
        "recnas.job": job.name,
        "recnas.dataset": job.dataset.name,
        "recnas.space": job.space,
    }
    ingested = upstream.get("ingest")
    if ingested:
        tags["recnas.protocol"] = ingested["protocol"]
        for split, md5 in ingested["split_md5"].items():
            tags[f"recnas.split_md5.{split}"] = md5
    return tags


def scaling(job: JobSpec) -> Scaling:
    """The job's Ray Train workers (see :func:`check_resources`)."""
    r = job.resources
    return Scaling(
        num_workers=r.workers,
        cpus_per_worker=r.cpus_per_worker,
        use_gpu=r.use_gpu,
        bf16=r.bf16,
    )


def check_resources(job: JobSpec, names: Collection[str]) -> None:
    """Refuses, before the first of the stages ``names`` runs, resources that
    the Ray cluster can never give them, naming the job keys that ask."""
    r = job.resources
    if {"supernet", "retrain", "baselines"} & set(names):
        cpus = "resources.workers * resources.cpus_per_worker"
        check_capacity(r.workers * r.cpus_per_worker, 0, cpus)
        if r.use_gpu:
            check_capacity(0, r.workers, "resources.use_gpu (a GPU per worker)")
    if "search" in names:
        check_capacity(job.search.cpus_per_trial, 0, "search.cpus_per_trial")


def per_worker_batch(job: JobSpec, global_batch: int) -> int:
    return max(1, global_batch // job.resources.workers)


def _report_to(tracker: Tracker, run: RunRef):  # noqa: ANN202
    def on_report(metrics: dict[str, Any]) -> None:
        tracker.log_metrics(run, metrics, step=int(metrics.get("step", 0)))

    return on_report


# ingest ----------------------------------------------------------------------


def input_files(job: JobSpec) -> str:
    """Every file ingest reads (those inside a folder input too), by size and
    modification time: a changed file re-ingests."""
    from recnas.data.readers.base import input_fingerprint

    return input_fingerprint(list(job.dataset.inputs))


def ingest(ctx: StageContext) -> dict[str, Any]:
    """Raw files to Parquet splits and ``meta.json``."""
    from recnas.data.ingest import ingest as run_ingest

    d = ctx.job.dataset
    options = dict(d.options)
    if d.protocol is not None:
        options["protocol"] = d.protocol
    out = ctx.uri("data")
    meta = run_ingest(d.name, list(d.inputs), out, **options)
    protocol = meta.protocol.get("name", str(meta.protocol))
    split_md5 = {s: meta.split_md5(s) for s in meta.splits}
    t = ctx.tracker
    t.set_tags(ctx.run, {"recnas.protocol": protocol})
    t.set_tags(ctx.run, {f"recnas.split_md5.{s}": m for s, m in split_md5.items()})
    t.log_params(
        ctx.run, {"dataset": d.name, "protocol": protocol, "inputs": len(d.inputs)}
    )
    t.log_metrics(ctx.run, {f"rows_{s}": n for s, n in meta.rows.items()})
    t.log_metrics(ctx.run, {f"rejected_{r}": n for r, n in meta.rejected.items()})
    t.log_metrics(ctx.run, {"rows_read": meta.rows_read})
    t.log_json(ctx.run, meta.to_dict(), "meta.json")
    return {
        "data": out,
        "protocol": protocol,
        "split_md5": split_md5,
        "rows": dict(meta.rows),
    }


# supernet --------------------------------------------------------------------


def supernet(ctx: StageContext) -> dict[str, Any]:
    """Trains the weight-sharing supernet on Ray Train."""
    job, s = ctx.job, ctx.job.supernet
    config = TrainConfig.nasrec_supernet(
        ctx.data,
        space=job.space,
        optimizer=s.optimizer,
        lr=s.lr,
        eps=1e-2 if s.optimizer == "adagrad" else 1e-8,
        epochs=s.epochs,
        max_steps=s.max_steps or 0,
        batch_size=per_worker_batch(job, s.batch_size),
        supernet_warmup_steps=s.warmup_steps,
        checkpoint_every=s.checkpoint_every,
        seed=job.seed,
        model=ModelSpec(
            kind="supernet",
            name="supernet",
            space=job.space,
            params={"layernorm": s.layernorm},
        ),
    )
    ctx.tracker.log_params(ctx.run, _train_params(config))
    result = fit(
        config,
        scaling(job),
        storage=ctx.uri(),
        name="train",
        on_report=_report_to(ctx.tracker, ctx.run),
    )
    final = _final(result.metrics)
    ctx.tracker.log_metrics(ctx.run, final)
    losses = {k: final[k] for k in ("train_loss", "val_logloss") if k in final}
    if not all(math.isfinite(v) for v in losses.values()):
        shown = ", ".join(f"{k} {v}" for k, v in losses.items())
        raise ValueError(
            f"supernet: training diverged ({shown}); every candidate scored from "
            f"it would fail. Lower supernet.lr (now {s.lr:g}) and run again"
        )
    return {"checkpoint": result.checkpoint, "metrics": final}


def _train_params(config: TrainConfig) -> dict[str, Any]:
    keys = (
        "optimizer",
        "lr",
        "eps",
        "schedule",
        "warmup_fraction",
        "clip_norm",
        "batch_size",
        "epochs",
        "max_steps",
        "supernet_warmup_steps",
        "seed",
        "early_stopping_patience",
    )
    return {k: getattr(config, k) for k in keys}


def _final(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


# search ----------------------------------------------------------------------


def search(ctx: StageContext) -> dict[str, Any]:
    """Evolutionary search on Ray Tune, each candidate scored from the supernet."""
    from recnas.search.evaluator import ScoringSettings
    from recnas.search.launcher import SearchSettings, run_search

    job, s = ctx.job, ctx.job.search
    settings = SearchSettings(
        searcher=s.searcher,
        budget=s.budget,
        population_size=s.population_size,
        sample_size=s.sample_size,
        children=s.children,
        concurrency=s.concurrency,
        cpus_per_trial=s.cpus_per_trial,
        max_macs=s.max_macs,
        seed=job.seed,
    )
    scoring = ScoringSettings(
        supernet=ctx.upstream["supernet"]["checkpoint"],
        data=ctx.data,
        finetune_steps=s.finetune_steps,
        finetune_lr=s.finetune_lr,
        batch_size=min(512, job.supernet.batch_size),
        val_rows=s.val_rows,
        latency_batch=s.latency_batch,
        max_latency_ms=s.max_latency_ms,
        seed=job.seed,
    )
    ctx.tracker.log_params(ctx.run, {**settings.to_dict(), **_scoring_params(scoring)})
    logged = {c["tags"].get("recnas.trial_id") for c in ctx.tracker.children(ctx.run)}
    logger_hook = _CandidateLogger(ctx, logged)
    storage_path, filesystem = _ray_storage(ctx.store, *ctx.work)
    outcome = run_search(
        load_space(job.space),
        ctx.meta().features,
        settings,
        scoring,
        storage_path=storage_path,
        name="tune",
        on_candidate=logger_hook,
        on_reject=logger_hook.rejected,
        storage_filesystem=filesystem,
    )
    ranked = outcome.ranked()
    summary = {
        "candidates": len(outcome.candidates),
        "scored": len(ranked),
        "failed": len(outcome.candidates) - len(ranked),
        "rejected_before_scoring": len(outcome.rejected),
    }
    ctx.tracker.log_metrics(ctx.run, summary)
    if ranked:
        ctx.tracker.log_metrics(ctx.run, {"best_val_logloss": ranked[0]["val_logloss"]})
    table = {"candidates": outcome.candidates, "rejected": outcome.rejected}
    ctx.tracker.log_json(ctx.run, table, "candidates.json")
    uri = ctx.write_json(table, "candidates.json")
    if not ranked:
        raise ValueError(
            f"search: none of the {len(outcome.candidates)} candidates could be "
            "scored (all failed, diverged or were over budget); see the search "
            "run's children in MLflow"
        )
    return {"candidates_file": uri, "ranked": ranked, **summary}


def _scoring_params(scoring: Any) -> dict[str, Any]:
    d = scoring.to_dict()
    d.pop("supernet")
    d.pop("data")
    return {f"scoring_{k}": v for k, v in d.items()}


def _ray_storage(store: JobStore, *parts: str) -> tuple[str, Any]:
    """``(storage_path, storage_filesystem)`` for Ray: a folder, or a path on S3."""
    if "://" not in store.base:
        return store.uri(*parts), None
    return store.path(*parts), store.fs


class _CandidateLogger:
    """Logs each finished candidate as a child run of the search run, once."""

    def __init__(self, ctx: StageContext, already_logged: set[str | None]) -> None:
        self.ctx = ctx
        self.logged = already_logged

    def __call__(self, candidate: dict[str, Any]) -> None:
        if candidate["trial_id"] in self.logged:
            return
        self.logged.add(candidate["trial_id"])
        t, ctx = self.ctx.tracker, self.ctx
        tags = ctx.tags(
            arch_id=candidate["arch_id"],
            trial_id=candidate["trial_id"],
            origin=candidate["origin"],
            status=candidate["status"],
            kind="candidate",
        )
        params = {
            "index": candidate["index"],
            "origin": candidate["origin"],
            "live_blocks": _live_blocks(candidate["arch"]),
        }
        run = t.start_run(
            f"cand-{candidate['arch_id']}", parent=ctx.run, tags=tags, params=params
        )
        metrics = {k: v for k, v in candidate.items() if k not in ("arch", "error")}
        t.log_metrics(run, metrics)
        t.log_json(run, candidate["arch"], "architecture.json")
        if candidate.get("error"):
            t.log_text(run, candidate["error"], "error.txt")
        t.end_run(run, "FINISHED" if candidate["status"] == "ok" else "FAILED")

    def rejected(self, record: dict[str, Any]) -> None:
        logger.info("candidate %s rejected: %s", record["arch_id"], record["reason"])


def _live_blocks(arch: dict[str, Any] | None) -> int:
    if not arch:
        return 0
    return len(Architecture.from_dict(arch).canonical().blocks)


# retrain ---------------------------------------------------------------------


def _from_scratch(
    ctx: StageContext,
    section: TrainSection,
    model: ModelSpec,
    *,
    name: str,
    train_splits: tuple[str, ...] = ("train",),
    eval_split: str | None = "val",
    epochs: int | None = None,
    tags: dict[str, Any],
) -> tuple[TrainResult, RunRef]:
    """Trains one model from scratch as a child run of the stage, resumably."""
    job = ctx.job
    config = TrainConfig(
        model=model,
        data=ctx.data,
        train_splits=train_splits,
        eval_split=eval_split,
        test_split="test",
        batch_size=per_worker_batch(job, section.batch_size),
        epochs=epochs or section.epochs,
        max_steps=section.max_steps or 0,
        optimizer="adam",
        lr=section.lr,
        early_stopping_patience=section.patience if eval_split else 0,
        seed=job.seed,
    )
    t = ctx.tracker
    run = t.find_run({"recnas.model": name}, parent=ctx.run, unfinished=True)
    if run is None:
        run = t.start_run(
            name,
            parent=ctx.run,
            tags=ctx.tags(model=name, **tags),
            params=_train_params(config),
        )
    result = fit(
        config,
        scaling(job),
        storage=ctx.uri(),
        name=name,
        on_report=_report_to(t, run),
    )
    result.metrics.update(_cost(result.checkpoint, ctx, model))
    t.log_metrics(run, _final(result.metrics))
    return result, run


SUMMARY_METRICS = (
    "val_logloss", "val_auc", "test_logloss", "test_auc", "macs", "params",
    "latency_ms_b1", "latency_ms_serving",
)  # fmt: skip


def _summary(result: TrainResult, run: RunRef, **extra: Any) -> dict[str, Any]:
    """What later stages keep of a trained model."""
    summary = {k: result.metrics.get(k) for k in SUMMARY_METRICS}
    summary.update(checkpoint=result.checkpoint, run_id=run.run_id, **extra)
    return summary


def _cost(checkpoint: str, ctx: StageContext, spec: ModelSpec) -> dict[str, Any]:
    """Multiply-adds and parameters per example, latency at batch 1 and the
    serving batch, of a trained model (embeddings excluded)."""
    from recnas.models import cost
    from recnas.train.checkpoint import load_model

    features = ctx.meta().features
    model, _ = load_model(checkpoint)
    if spec.arch is not None:
        arch = Architecture.from_dict(spec.arch)
        macs, params = (
            cost.macs_per_example(arch, features),
            cost.params(arch, features),
        )
    else:
        macs, params = cost.module_macs(model, features), cost.module_params(model)
    serving = ctx.job.search.latency_batch
    return {
        "macs": macs,
        "params": params,
        "latency_ms_b1": cost.latency_ms(model, features, 1),
        "latency_ms_serving": cost.latency_ms(model, features, serving, repeats=3),
    }


def retrain(ctx: StageContext) -> dict[str, Any]:
    """Trains the top candidates from scratch; retrains the best on train+val."""
    from recnas.search.ranking import ranking_report

    job = ctx.job
    top = ctx.upstream["search"]["ranked"][: job.retrain.top_k]
    done = ctx.read_json("models.json") or {}
    for cand in top:
        if cand["arch_id"] in done:
            continue
        done[cand["arch_id"]] = _retrain_one(ctx, cand)
        ctx.write_json(done, "models.json")
    retrained = [done[c["arch_id"]] for c in top]
    best = min(retrained, key=lambda r: r["val_logloss"])

    final = ctx.read_json("final.json")
    if final is None or final["arch_id"] != best["arch_id"]:
        final = _final_retrain(ctx, best)
        ctx.write_json(final, "final.json")

    ranking = ranking_report(
        [c["val_logloss"] for c in top], [r["val_logloss"] for r in retrained]
    )
    ctx.tracker.log_metrics(ctx.run, ranking)
    ctx.tracker.log_metrics(
        ctx.run, {"test_logloss": final["test_logloss"], "test_auc": final["test_auc"]}
    )
    return {"retrained": retrained, "final": final, "ranking": ranking}


def _retrain_one(ctx: StageContext, cand: dict[str, Any]) -> dict[str, Any]:
    arch = Architecture.from_dict(cand["arch"])
    model = ModelSpec(
        kind="subnet", name=arch.arch_id, arch=cand["arch"], space=ctx.job.space
    )
    result, run = _from_scratch(
        ctx,
        ctx.job.retrain,
        model,
        name=f"retrain-{arch.arch_id}",
        tags={"arch_id": arch.arch_id, "kind": "retrain"},
    )
    ctx.tracker.log_json(run, cand["arch"], "architecture.json")
    ctx.tracker.log_metrics(run, {"supernet_val_logloss": cand["val_logloss"]})
    ctx.tracker.end_run(run)
    return _summary(
        result,
        run,
        arch_id=arch.arch_id,
        arch=cand["arch"],
        supernet_val_logloss=cand["val_logloss"],
        # Validation runs at each epoch's end; best_epoch counts from 0.
        epochs_to_best=int(result.metrics.get("best_epoch", 0)) + 1,
    )


def _final_retrain(ctx: StageContext, best: dict[str, Any]) -> dict[str, Any]:
    arch_id = best["arch_id"]
    model = ModelSpec(
        kind="subnet", name=arch_id, arch=best["arch"], space=ctx.job.space
    )
    epochs = best["epochs_to_best"]
    result, run = _from_scratch(
        ctx,
        ctx.job.retrain,
        model,
        name=f"final-{arch_id}",
        train_splits=("train", "val"),
        eval_split=None,
        epochs=epochs,
        tags={"arch_id": arch_id, "kind": "final"},
    )
    ctx.tracker.log_json(run, best["arch"], "architecture.json")
    ctx.tracker.end_run(run)
    # Trained on train+val: its validation figures are the selection run's.
    return _summary(
        result,
        run,
        arch_id=arch_id,
        arch=best["arch"],
        epochs=epochs,
        val_logloss=best["val_logloss"],
        val_auc=best.get("val_auc"),
    )


# baselines -------------------------------------------------------------------


def baselines(ctx: StageContext) -> dict[str, Any]:
    """Trains every baseline on the same splits and scores it on test."""
    done = ctx.read_json("models.json") or {}
    section = ctx.job.baselines
    for name in section.models:
        if name in done:
            continue
        params = dict(section.params.get(name, {}))
        model = ModelSpec(kind="baseline", name=name, params=params)
        result, run = _from_scratch(
            ctx,
            section,
            model,
            name=f"baseline-{name}",
            tags={"baseline": name, "kind": "baseline"},
        )
        ctx.tracker.end_run(run)
        done[name] = _summary(result, run, name=name)
        ctx.write_json(done, "models.json")
    return {"results": [done[n] for n in section.models]}


# report ----------------------------------------------------------------------


def report(ctx: StageContext) -> dict[str, Any]:
    """Leaderboard, plots and the registered winner."""
    from recnas.jobs.report import write_report

    return write_report(ctx)
