"""Runs a job's stages in order, skipping those already done.

    ingest -> supernet -> search -> retrain -+
       +--------------------------> baselines +-> report

Each stage has a hash of its inputs: the job sections it reads and the hashes
of the stages it depends on. A stage whose completion record holds the same
hash is skipped; any other stage runs (and, where it was interrupted, resumes
from its checkpoints). Every stage that runs gets an MLflow parent run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from recnas import __version__
from recnas.jobs import stages
from recnas.jobs.spec import JobSpec
from recnas.jobs.store import JobStore
from recnas.tracking.mlflow_tracker import RunRef, Tracker

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Stage:
    """One pipeline stage.

    Attributes:
        name: Folder and MLflow run name.
        run: The stage body: ``run(context) -> outputs``.
        sections: Job sections it reads (part of its inputs hash).
        after: Stages whose outputs it reads.
        fingerprint: Further inputs outside the job file (e.g. raw files).
    """

    name: str
    run: Callable[[stages.StageContext], dict[str, Any]]
    sections: tuple[str, ...]
    after: tuple[str, ...] = ()
    fingerprint: Callable[[JobSpec], str] | None = None


STAGES: tuple[Stage, ...] = (
    Stage("ingest", stages.ingest, ("dataset",), fingerprint=stages.input_files),
    Stage(
        "supernet",
        stages.supernet,
        ("space", "seed", "resources", "supernet"),
        ("ingest",),
    ),
    Stage("search", stages.search, ("space", "seed", "search"), ("ingest", "supernet")),
    Stage(
        "retrain",
        stages.retrain,
        ("seed", "resources", "retrain"),
        ("ingest", "search"),
    ),
    Stage(
        "baselines", stages.baselines, ("seed", "resources", "baselines"), ("ingest",)
    ),
    Stage(
        "report",
        stages.report,
        ("tracking",),
        ("ingest", "search", "retrain", "baselines"),
    ),
)

STAGE_NAMES = tuple(s.name for s in STAGES)


@dataclass
class PipelineResult:
    """What ``run`` did: outputs of every stage, and which ran or were skipped."""

    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def check_stage_names(names: Sequence[str]) -> None:
    """Refuses a stage name that is not one of :data:`STAGE_NAMES`."""
    for name in names:
        if name not in STAGE_NAMES:
            raise ValueError(
                f"unknown stage {name!r}; stages are {', '.join(STAGE_NAMES)}"
            )


class Pipeline:
    """The stages of one job over one store and one tracker."""

    def __init__(
        self,
        job: JobSpec,
        store: JobStore,
        tracker: Tracker,
        before_first_stage: Callable[[], Any] | None = None,
        source: str = "job",
    ) -> None:
        self.job = job
        self.store = store
        self.tracker = tracker
        self.source = source
        self._before_first_stage = before_first_stage
        self.forced: set[str] = set()
        self.wanted: list[str] = list(STAGE_NAMES)

    def inputs_hash(
        self, stage: Stage, hashes: dict[str, str], outputs: dict[str, Any]
    ) -> str:
        """A digest of the stage's settings and of what the stages it follows
        produced (their outputs, not only their settings: a stage that was
        forced to run again may produce something else)."""
        parts = [stage.name, self.job.digest(*stage.sections)]
        for before in stage.after:
            produced = json.dumps(outputs[before], sort_keys=True, default=str)
            parts += [hashes[before], hashlib.sha256(produced.encode()).hexdigest()]
        if stage.fingerprint is not None:
            parts.append(stage.fingerprint(self.job))
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]

    def run(
        self, only: Sequence[str] | None = None, force: Sequence[str] = ()
    ) -> PipelineResult:
        """Runs the stages (all, or ``only`` these), redoing ``force`` ones.

        A stage that ``only`` leaves out runs not at all: when a named stage
        follows it, it must have completed before, since its outputs feed the
        later stages.
        """
        check_stage_names([*(only or ()), *force])
        self.forced = set(force)
        self.wanted = list(only or STAGE_NAMES)
        result = PipelineResult()
        hashes: dict[str, str] = {}
        needed = set(self.wanted)  # the wanted stages and all they follow
        for stage in reversed(STAGES):
            if stage.name in needed:
                needed.update(stage.after)
        chosen = [stage for stage in STAGES if stage.name in needed]
        for stage in chosen:  # before anything runs
            reused = stage.name not in self.wanted
            if reused and self.store.record(stage.name) is None:
                raise ValueError(
                    f"stage {stage.name!r} has not run yet for job "
                    f"{self.job.name!r}, and later stages need it; add it to "
                    "--stages"
                )
        for stage in chosen:
            hashes[stage.name] = self.inputs_hash(stage, hashes, result.outputs)
            record = self.store.record(stage.name)
            fresh = record is not None and record.inputs_hash == hashes[stage.name]
            if stage.name in self.wanted and (not fresh or stage.name in force):
                outputs = self._run_stage(stage, hashes[stage.name], result.outputs)
                result.outputs[stage.name] = outputs
                result.ran.append(stage.name)
                continue
            if not fresh:
                logger.warning(
                    "stage %s: its settings changed since it ran, but it is not "
                    "in --stages; the later stages use its old outputs",
                    stage.name,
                )
            result.outputs[stage.name] = record.outputs
            result.skipped.append(stage.name)
            logger.info("stage %s: up to date, reused", stage.name)
        return result

    def _run_stage(
        self, stage: Stage, inputs_hash: str, upstream: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        if self._before_first_stage is not None:
            self._before_first_stage()
            self._before_first_stage = None
            try:
                stages.check_resources(self.job, self.wanted)
            except ValueError as error:
                raise ValueError(f"{self.source}: {error}") from error
        logger.info("stage %s: starting", stage.name)
        for folder in self.store.others(stage.name, inputs_hash):
            logger.info(
                "stage %s: the unfinished work in %s had other settings; it is "
                "not resumed, and goes when this stage completes",
                stage.name,
                folder,
            )
        start = time.perf_counter()
        if stage.name in self.forced:
            self.store.clear(stage.name, inputs_hash)
        context = stages.StageContext(
            job=self.job,
            store=self.store,
            tracker=self.tracker,
            upstream=upstream,
            run=self._parent_run(stage.name, inputs_hash, upstream),
            work=(stage.name, inputs_hash),
        )
        try:
            outputs = stage.run(context)
        except KeyboardInterrupt:
            self.tracker.end_run(context.run, "KILLED")
            raise
        except BaseException:
            self.tracker.end_run(context.run, "FAILED")
            raise
        seconds = time.perf_counter() - start
        self.tracker.log_metrics(context.run, {"stage_seconds": seconds})
        self.tracker.end_run(context.run)
        self.store.complete(stage.name, inputs_hash, outputs, context.run.run_id)
        self.store.prune(stage.name, keep=inputs_hash)
        logger.info("stage %s: done in %.0fs", stage.name, seconds)
        return outputs

    def _parent_run(
        self, stage: str, inputs_hash: str, upstream: dict[str, dict[str, Any]]
    ) -> RunRef:
        # An interrupted stage resumes into its own parent run, so that its
        # children are not split across two runs.
        # The job folder too: jobs of the same name in two storages may share
        # one MLflow server.
        tags = {
            "recnas.stage": stage,
            "recnas.inputs_hash": inputs_hash,
            "recnas.job_folder": self.store.base,
        }
        found = self.tracker.find_run(tags, unfinished=True)
        if found is not None:
            self.tracker.reopen(found)
            return found
        tags.update(stages.common_tags(self.job, upstream))
        tags["recnas.version"] = __version__
        return self.tracker.start_run(stage, tags=tags)
