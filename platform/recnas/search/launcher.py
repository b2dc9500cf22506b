"""Runs an architecture search on Ray Tune: one trial scores one candidate.

The driver owns the searcher (ask and tell), Tune owns scheduling, concurrency
and resume: a search interrupted at any point continues, with its searcher
state, when :func:`run_search` is called again with the same storage and name.
Every finished candidate is handed to ``on_candidate`` on the driver, which is
where the caller records it (MLflow is written by the driver, never by trials).
"""

from __future__ import annotations

import logging
import math
import os
import signal
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ray import tune
from tqdm import tqdm

from recnas.data.features import FeatureSet
from recnas.models import cost
from recnas.search.evaluator import ScoringSettings, score_trial
from recnas.search.searchers import SEARCHERS, Constraint, build_searcher
from recnas.space.arch import Architecture
from recnas.space.spec import SearchSpace

logger = logging.getLogger(__name__)

CandidateHook = Callable[[dict[str, Any]], None]
RejectHook = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class SearchSettings:
    """The search itself; NASRec's preset is the default.

    Attributes:
        searcher: ``regularized_evolution``, ``evolution`` or ``random``.
        budget: Exact number of candidates (trials).
        population_size: P of the evolution.
        sample_size: S, the tournament size.
        children: C, children per generation.
        concurrency: Trials running at once.
        cpus_per_trial: CPUs Tune reserves for each trial.
        max_macs: Reject, before scoring, candidates with more multiply-adds
            per example; None for no budget.
        seed: Seed of the searcher.
    """

    searcher: str = "regularized_evolution"
    budget: int = 2048
    population_size: int = 128
    sample_size: int = 64
    children: int = 8
    concurrency: int = 2
    cpus_per_trial: float = 1.0
    max_macs: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.searcher not in SEARCHERS:
            raise ValueError(
                f"search.searcher: unknown {self.searcher!r}; use one of "
                f"{', '.join(SEARCHERS)}"
            )
        if self.concurrency < 1 or self.cpus_per_trial <= 0:
            raise ValueError(
                "search.concurrency must be >= 1 and search.cpus_per_trial > 0 "
                "(Tune refuses 0 CPUs; use a fraction such as 0.5)"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SearchOutcome:
    """Every candidate of a finished search, in suggestion order."""

    candidates: list[dict[str, Any]]
    rejected: list[dict[str, Any]]

    def ranked(self) -> list[dict[str, Any]]:
        """Scored candidates, best validation log loss first."""
        ok = [c for c in self.candidates if c["status"] == "ok"]
        return sorted(ok, key=lambda c: c["val_logloss"])


# Driver-side hooks by experiment name. Tune pickles its callbacks and the
# searcher with the experiment; they carry only the name and look the hooks up
# here, so a resumed search reports to the hooks of the resuming process.
_HOOKS: dict[str, tuple[CandidateHook | None, RejectHook | None]] = {}


def _hook(name: str, which: int) -> CandidateHook | RejectHook | None:
    hooks = _HOOKS.get(name)
    return hooks[which] if hooks else None


class _CandidateCallback(tune.Callback):
    """Hands each finished trial's candidate to the driver's hook."""

    def __init__(self, name: str) -> None:
        self.name = name

    def on_trial_complete(
        self, iteration: int, trials: list, trial: Any, **info: Any
    ) -> None:
        self._emit(trial, error=False)

    def on_trial_error(
        self, iteration: int, trials: list, trial: Any, **info: Any
    ) -> None:
        self._emit(trial, error=True)

    def _emit(self, trial: Any, error: bool) -> None:
        hook = _hook(self.name, 0)
        if hook is not None:
            hook(
                candidate_record(trial.trial_id, trial.config, trial.last_result, error)
            )


class _RejectNotice:
    """A picklable constraint wrapper that reports rejections to the driver."""

    def __init__(self, name: str, constraint: Constraint) -> None:
        self.name = name
        self.constraint = constraint

    def __call__(self, arch: Architecture) -> str | None:
        reason = self.constraint(arch)
        hook = _hook(self.name, 1)
        if reason is not None and hook is not None:
            hook({"arch_id": arch.arch_id, "arch": arch.to_dict(), "reason": reason})
        return reason


def candidate_record(
    trial_id: str, config: dict[str, Any], result: dict[str, Any] | None, error: bool
) -> dict[str, Any]:
    """One candidate as the leaderboard, MLflow and the reports see it."""
    result = dict(result or {})
    status = "failed" if error else result.get("status", "failed")
    record = {
        "trial_id": trial_id,
        "index": config.get("index"),
        "arch_id": config.get("arch_id"),
        "origin": config.get("origin"),
        "arch": config.get("arch"),
        "status": status,
    }
    keys = (
        "val_logloss",
        "val_auc",
        "macs",
        "params",
        "latency_ms_b1",
        "latency_ms_serving",
        "finetune_loss",
        "seconds",
        "error",
    )
    for key in keys:
        if key in result:
            record[key] = result[key]
    if status != "ok" or not math.isfinite(record.get("val_logloss", math.inf)):
        record["val_logloss"] = None
        if status == "ok":
            record["status"] = "diverged"
    return record


def macs_budget(features: FeatureSet, max_macs: int | None) -> Constraint | None:
    """A constraint that rejects architectures above ``max_macs``."""
    if max_macs is None:
        return None

    def check(arch: Architecture) -> str | None:
        macs = cost.macs_per_example(arch, features)
        if macs > max_macs:
            return f"{macs} multiply-adds per example > budget {max_macs}"
        return None

    return check


def run_search(
    space: SearchSpace,
    features: FeatureSet,
    settings: SearchSettings,
    scoring: ScoringSettings,
    *,
    storage_path: str,
    name: str,
    on_candidate: CandidateHook | None = None,
    on_reject: RejectHook | None = None,
    storage_filesystem: Any = None,
) -> SearchOutcome:
    """Runs (or resumes) the search and returns every candidate.

    Args:
        space: The space searched.
        features: The dataset's features (for cost budgets).
        settings: Searcher, budget and concurrency.
        scoring: How each candidate is scored.
        storage_path: Where Tune keeps the experiment (local folder or URI).
        name: The experiment's folder under ``storage_path``.
        on_candidate: Called on the driver with each finished candidate.
        on_reject: Called on the driver with each candidate a budget rejected.
        storage_filesystem: A pyarrow filesystem for a remote ``storage_path``.
    """
    trainable = tune.with_resources(
        tune.with_parameters(score_trial, settings=scoring),
        {"cpu": settings.cpus_per_trial},
    )
    rejected: list[dict[str, Any]] = []

    def on_rejected(record: dict[str, Any]) -> None:
        rejected.append(record)
        if on_reject is not None:
            on_reject(record)

    bar = tqdm(total=settings.budget, desc="search", unit="candidate", disable=None)
    best = [math.inf]

    def on_scored(record: dict[str, Any]) -> None:
        bar.update(1)
        score = record.get("val_logloss")
        if score is not None and score < best[0]:
            best[0] = score
            bar.set_postfix(best_val_logloss=f"{score:.4f}")
        if on_candidate is not None:
            on_candidate(record)

    _HOOKS[name] = (on_scored, on_rejected)
    # Tune's own console tables would interleave with the progress bar.
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Tune takes over Ctrl-C while it runs; the caller gets it back after.
    sigint = signal.getsignal(signal.SIGINT)
    try:
        where = (name, storage_path, storage_filesystem)
        tuner = _tuner(space, features, settings, trainable, *where)
        grid = tuner.fit()
    finally:
        signal.signal(signal.SIGINT, sigint)
        _HOOKS.pop(name, None)
        bar.close()
    candidates = _candidates(grid)
    finished = grid.num_terminated + grid.num_errors
    if finished < settings.budget:
        # Tune ends early, without an error, when it is stopped (Ctrl-C).
        raise KeyboardInterrupt(
            f"search stopped after {finished} of {settings.budget} candidates"
        )
    return SearchOutcome(candidates=candidates, rejected=rejected)


def _tuner(
    space: SearchSpace,
    features: FeatureSet,
    settings: SearchSettings,
    trainable: Any,
    name: str,
    storage_path: str,
    storage_filesystem: Any,
) -> tune.Tuner:
    path = f"{storage_path.rstrip('/')}/{name}"
    if tune.Tuner.can_restore(path, storage_filesystem=storage_filesystem):
        logger.info("resuming search from %s", path)
        return tune.Tuner.restore(
            path, trainable, resume_errored=False, storage_filesystem=storage_filesystem
        )
    constraint = macs_budget(features, settings.max_macs)
    searcher = build_searcher(
        settings.searcher,
        space,
        budget=settings.budget,
        seed=settings.seed,
        constraint=_RejectNotice(name, constraint) if constraint else None,
        **_evolution_options(settings),
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            num_samples=settings.budget,
            max_concurrent_trials=settings.concurrency,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage_path,
            storage_filesystem=storage_filesystem,
            callbacks=[_CandidateCallback(name)],
            verbose=0,
        ),
    )


def _evolution_options(settings: SearchSettings) -> dict[str, Any]:
    if settings.searcher == "random":
        return {}
    return {
        "population_size": settings.population_size,
        "sample_size": settings.sample_size,
        "children": settings.children,
    }


def _candidates(grid: tune.ResultGrid) -> list[dict[str, Any]]:
    candidates = []
    for result in grid:
        metrics = result.metrics or {}
        error = result.error is not None
        record = candidate_record(
            metrics.get("trial_id", ""), result.config or {}, metrics, error
        )
        candidates.append(record)
    candidates.sort(key=lambda c: (c["index"] is None, c["index"]))
    return candidates
