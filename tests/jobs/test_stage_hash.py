"""A stage's inputs hash covers its settings and what earlier stages produced."""

from __future__ import annotations

import os
from pathlib import Path

from recnas.jobs.pipeline import STAGES, Pipeline
from recnas.jobs.spec import load_job
from recnas.jobs.stages import input_files
from recnas.jobs.store import JobStore


def test_new_outputs_upstream_change_the_hash(tmp_path: Path) -> None:
    (tmp_path / "raw.csv").write_text("x\n")
    path = tmp_path / "job.yaml"
    path.write_text(
        "name: h\npreset: tiny\ndataset: {name: movielens, inputs: [raw.csv]}\n"
    )
    job = load_job(path)
    pipeline = Pipeline(job, JobStore(str(tmp_path / "runs"), job.name), tracker=None)
    report = next(s for s in STAGES if s.name == "report")
    hashes = {name: "h-" + name for name in report.after}
    outputs = {name: {"result": 1} for name in report.after}
    same = pipeline.inputs_hash(report, hashes, outputs)
    assert pipeline.inputs_hash(report, hashes, outputs) == same
    rerun = {**outputs, report.after[-1]: {"result": 2}}  # forced, new figures
    assert pipeline.inputs_hash(report, hashes, rerun) != same


def test_a_file_rewritten_inside_a_folder_input_changes_the_ingest_hash(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    ratings = folder / "ratings.csv"
    ratings.write_text("userId,movieId,rating,timestamp\n1,2,4.0,964982703\n")
    path = tmp_path / "job.yaml"
    path.write_text(
        "name: h\npreset: tiny\ndataset: {name: movielens, inputs: [raw]}\n"
    )
    job = load_job(path)
    before = input_files(job)
    assert input_files(job) == before
    folder_times = folder.stat()
    ratings.write_text("userId,movieId,rating,timestamp\n1,3,4.0,964982703\n")
    os.utime(folder, ns=(folder_times.st_atime_ns, folder_times.st_mtime_ns))
    assert input_files(job) != before
