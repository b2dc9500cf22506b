"""The job's storage folder: per-inputs work folders, records and the lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from recnas.jobs.store import JobStore


def test_records_round_trip_and_work_folders_are_pruned(tmp_path: Path) -> None:
    store = JobStore(str(tmp_path), "job")
    assert store.record("search") is None
    store.write_json({"a": 1}, "search", "old", "x.json")
    store.write_json({"a": 2}, "search", "new", "x.json")
    store.complete("search", "new", {"candidates": 3}, run_id="r1")
    store.write_json({"a": 3}, "search", "unfinished", "x.json")
    # Work of other settings that never completed: a run of "newer" says so.
    assert sorted(store.others("search", "newer")) == [
        store.uri("search", name) for name in ("old", "unfinished")
    ]
    store.prune("search", keep="new")
    assert sorted(p.name for p in (tmp_path / "job" / "search").iterdir()) == [
        "complete.json",
        "new",
    ]
    record = store.record("search")
    assert record.inputs_hash == "new" and record.outputs == {"candidates": 3}
    store.clear("search", "new")
    assert not (tmp_path / "job" / "search" / "new").exists()
    assert store.read_json("search", "new", "x.json") is None
    # A cleared stage is not done: an interrupted forced rerun is not reused.
    assert store.record("search") is None


def test_a_second_run_of_the_job_is_refused(tmp_path: Path) -> None:
    first = JobStore(str(tmp_path), "job")
    second = JobStore(str(tmp_path), "job")
    with first.lock():
        with (
            pytest.raises(ValueError, match=r"job 'job' is already running .*pid"),
            second.lock(),
        ):
            pass
        with JobStore(str(tmp_path), "other").lock():
            pass  # other jobs are free
    with second.lock():
        pass  # released when the first run ends
