"""Where a job writes: ``<storage>/<job>/<stage>/``, locally or on S3.

A stage works in a folder named after the hash of its inputs,
``<stage>/<inputs hash>/``, so that changed settings never meet the
checkpoints, Tune experiments or records of other settings, and an interrupted
stage resumes in the same folder. A finished stage leaves
``<stage>/complete.json`` with that hash and its outputs; a rerun whose inputs
hash the same skips the stage. Stages that produce several models also record
each finished model, so an interrupted stage redoes only what it had not
finished.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from recnas.data import storage

logger = logging.getLogger(__name__)

COMPLETE = "complete.json"


@dataclass(frozen=True)
class StageRecord:
    """What a finished stage left behind."""

    stage: str
    inputs_hash: str
    outputs: dict[str, Any]
    finished_at: float
    run_id: str | None = None


class JobStore:
    """The storage folder of one job.

    Args:
        root: Storage URI of all jobs (a local folder or ``s3://bucket/prefix``).
        job: The job name, the folder under ``root``.
    """

    def __init__(self, root: str, job: str) -> None:
        if "://" not in root:
            root = str(Path(root).expanduser().absolute())
        self.root = root
        self.job = job
        self.base = storage.join(root, job)
        self.fs, self._base_path = storage.resolve(self.base)

    def uri(self, *parts: str) -> str:
        """A URI under the job's folder."""
        return storage.join(self.base, *parts)

    def path(self, *parts: str) -> str:
        """The same location as a path on :attr:`fs`."""
        return "/".join([self._base_path.rstrip("/"), *parts])

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Holds the job for this process: a second run of it is refused.

        Local storage only (an exclusive lock on ``<job>/.lock``, released
        when the process ends, however it ends); on S3 two runs of one job
        must be kept apart by the user.
        """
        if not isinstance(self.fs, pafs.LocalFileSystem):
            yield
            return
        Path(self._base_path).mkdir(parents=True, exist_ok=True)
        with open(Path(self._base_path) / ".lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise ValueError(
                    f"job {self.job!r} is already running in {self.base} "
                    f"({holder}); wait for it, or stop it and run again to resume"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def read_json(self, *parts: str) -> Any | None:
        """A JSON file under the job folder, or None when absent."""
        path = self.path(*parts)
        if self.fs.get_file_info(path).type == pafs.FileType.NotFound:
            return None
        with self.fs.open_input_stream(path) as f:
            return json.loads(f.read().decode())

    def write_json(self, obj: Any, *parts: str) -> str:
        """Writes JSON atomically where the filesystem allows; returns the URI."""
        path = self.path(*parts)
        self.fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        data = json.dumps(obj, indent=2, sort_keys=True, default=str).encode()
        if isinstance(self.fs, pafs.LocalFileSystem):
            tmp = f"{path}.tmp"
            with self.fs.open_output_stream(tmp) as f:
                f.write(data)
            self.fs.move(tmp, path)
        else:  # an S3 PUT replaces the object whole
            with self.fs.open_output_stream(path) as f:
                f.write(data)
        return self.uri(*parts)

    def record(self, stage: str) -> StageRecord | None:
        data = self.read_json(stage, COMPLETE)
        return StageRecord(**data) if data else None

    def complete(
        self,
        stage: str,
        inputs_hash: str,
        outputs: dict[str, Any],
        run_id: str | None = None,
    ) -> StageRecord:
        record = StageRecord(stage, inputs_hash, outputs, time.time(), run_id)
        self.write_json(record.__dict__, stage, COMPLETE)
        return record

    def clear(self, stage: str, inputs_hash: str) -> None:
        """Deletes a stage's work folder for these inputs: it starts afresh.

        Its completion record goes first, so that a stage interrupted after
        this is never taken for done with its outputs gone.
        """
        record = self.path(stage, COMPLETE)
        if self.fs.get_file_info(record).type == pafs.FileType.File:
            self.fs.delete_file(record)
        path = self.path(stage, inputs_hash)
        if self.fs.get_file_info(path).type == pafs.FileType.Directory:
            logger.info("stage %s: clearing %s", stage, self.uri(stage, inputs_hash))
            self.fs.delete_dir(path)

    def others(self, stage: str, inputs_hash: str) -> list[str]:
        """URIs of the stage's work folders for inputs other than these, and
        other than those of its completion record: unfinished work."""
        record = self.record(stage)
        done = record.inputs_hash if record else None
        selector = pafs.FileSelector(self.path(stage), allow_not_found=True)
        return [
            self.uri(stage, info.base_name)
            for info in self.fs.get_file_info(selector)
            if info.type == pafs.FileType.Directory
            and info.base_name not in (inputs_hash, done)
        ]

    def prune(self, stage: str, keep: str) -> None:
        """Deletes the work folders of a stage's other, obsolete inputs."""
        selector = pafs.FileSelector(self.path(stage), allow_not_found=True)
        for info in self.fs.get_file_info(selector):
            if info.type == pafs.FileType.Directory and info.base_name != keep:
                logger.debug("stage %s: removing obsolete %s", stage, info.path)
                self.fs.delete_dir(info.path)
