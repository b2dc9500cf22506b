"""Ingest: raw files -> Parquet splits + ``meta.json``, in two passes over chunks.

::

    inputs --plan--> chunks (byte ranges; a gzip file or zip member is one chunk)
      pass 1, one task per chunk: parse, check, reject, stage  -> _work/stage/
      driver: rows per chunk, rejected fraction, split of every row (protocol)
      [vocabulary, one task per chunk: train counts of every dictionary entry
       of its staged blocks; then one task per feature: merge the entries of
       all chunks into groups of equal values -> vocabulary, and the group of
       every entry -> _work/groups/]
      pass 2, one task per chunk: encode ids (an entry's id is its group's),
              write train/ val/ test/ rejected/
      driver: meta.json (counts, vocabulary sizes, md5 of every file)

The per-chunk tasks live in :mod:`recnas.data.passes`. They run on Ray when
Ray is initialised (or ``parallel="ray"``), else on a thread pool in this
process. Memory per chunk task is bounded by ``block_bytes``, not by the file
(a feature's merge holds its distinct values and the entries of
``passes.MERGE_CHUNKS`` chunks). Every
task leaves a marker under ``<out>/_work/`` when done, so an interrupted
ingest rerun with the same inputs and options resumes at the
first unfinished chunk and writes the same bytes as a clean run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

import recnas
from recnas.data import protocols, storage, vocab
from recnas.data.features import FeatureSet, SparseFeature
from recnas.data.meta import META_FILE, DatasetMeta, load_meta
from recnas.data.passes import (
    REJECTED_SCHEMA,
    ChunkJob,
    MergeJob,
    chunk_name,
    count_chunk,
    encode_chunk,
    merge_feature,
    parquet_bytes,
    read_stage,
    stage_chunk,
    write_part,
)
from recnas.data.readers import get_reader
from recnas.data.readers.base import Plan, Reader, input_stamps
from recnas.data.textio import Chunk, make_chunks

logger = logging.getLogger(__name__)

WORK = "_work"
OUTPUT_DIRS = ("train", "val", "test", "rejected", "vocab")
_NOTHING = object()


@dataclass(frozen=True)
class IngestOptions:
    """Settings of one ingest (everything but the dataset, inputs and output).

    Attributes:
        protocol: Split protocol (``autoctr_811``, ``random``, ``time``).
        seed: Seed of ``random`` (``autoctr_811`` always uses 2018).
        ratios: Train, val, test fractions of ``random`` and ``time``.
        encoding: ``vocab`` (counted on train) or ``hash`` (modulo).
        min_count: Train count a value needs for its own id (``vocab``).
        hash_size: Table size(s) for ``hash``: an int or ``{feature: size}``.
        max_rejected_fraction: Ingest fails past this fraction of rejected rows.
        chunk_bytes: Byte range per task for plain input files.
        block_bytes: Bytes parsed at once inside a task (bounds memory).
        row_group_rows: Parquet row group size of the splits.
        parallel: ``auto`` (Ray if initialised, else threads), ``ray`` or ``local``.
        workers: Threads for ``local`` (default: CPU count).
        keep_work: Keep ``_work/`` (staged chunks and markers) after success.
        overwrite: Start afresh: delete whatever is at the output, finished or
            not (without it, an unfinished ingest of the same inputs and
            options resumes, a finished one whose input files changed since is
            made again, and a finished one of other inputs or options is
            refused).
    """

    protocol: str = "autoctr_811"
    seed: int = 2018
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    encoding: str = "vocab"
    min_count: int = 1
    hash_size: Any = None
    max_rejected_fraction: float = 0.001
    chunk_bytes: int = 32 << 20
    block_bytes: int = 32 << 20
    row_group_rows: int = 16_384
    parallel: str = "auto"
    workers: int | None = None
    keep_work: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        protocols.Protocol(self.protocol, self.seed, self.ratios)  # validates
        if self.encoding not in vocab.ENCODINGS:
            raise ValueError(
                f"encoding {self.encoding!r}: use one of {', '.join(vocab.ENCODINGS)}"
            )
        if self.min_count < 1:
            raise ValueError(f"min_count must be >= 1, got {self.min_count}")
        if not 0.0 <= self.max_rejected_fraction <= 1.0:
            raise ValueError(
                "max_rejected_fraction must lie in [0, 1], "
                f"got {self.max_rejected_fraction}"
            )
        for name in ("chunk_bytes", "block_bytes", "row_group_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.parallel not in ("auto", "ray", "local"):
            raise ValueError(
                f"parallel {self.parallel!r}: use 'auto', 'ray' or 'local'"
            )

    @classmethod
    def from_kwargs(cls, protocol: str, options: dict[str, Any]) -> IngestOptions:
        """Options from keyword arguments; an unknown key is an error naming it."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - names)
        if unknown:
            raise ValueError(
                f"unknown ingest option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(names - {'protocol'}))}"
            )
        opts = dict(options)
        if "ratios" in opts:
            opts["ratios"] = tuple(opts["ratios"])
        if protocol == "autoctr_811":
            opts.pop("seed", None)
        elif "seed" not in opts:
            opts["seed"] = 0
        return cls(protocol=protocol, **opts)

    @property
    def protocol_spec(self) -> protocols.Protocol:
        return protocols.Protocol(self.protocol, self.seed, self.ratios)


def ingest(
    dataset: str,
    inputs: Sequence[str],
    out: str,
    *,
    protocol: str = "autoctr_811",
    **options: Any,
) -> DatasetMeta:
    """Reads raw files of a dataset and writes its processed form to ``out``.

    Args:
        dataset: ``criteo``, ``avazu``, ``kdd2012`` or ``movielens``.
        inputs: Raw files, folders or zip archives (local paths or ``s3://``).
        out: Output folder URI.
        protocol: Split protocol: ``autoctr_811``, ``random`` or ``time``.
        **options: Fields of :class:`IngestOptions`.

    Returns:
        The record written to ``<out>/meta.json``.

    Raises:
        ValueError: For bad options or inputs, for a different dataset already
            at ``out``, and when more than ``max_rejected_fraction`` of the rows
            are rejected (the message names the first offending lines).
    """
    opts = IngestOptions.from_kwargs(protocol, options)
    reader = get_reader(dataset)
    _refuse_repeats(list(inputs), "input")
    plan = reader.plan(list(inputs))
    _refuse_repeats(
        [
            f.source.uri + (f"!{f.source.member}" if f.source.member else "")
            for f in plan.files
        ],
        "row file",
    )
    return _Ingest(reader, plan, out, opts, list(inputs)).run()


def _digest(record: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(record, sort_keys=True, default=str).encode()
    ).hexdigest()


def _refuse_repeats(uris: list[str], what: str) -> None:
    """Refuses a file given twice (its rows would be ingested twice)."""
    seen: dict[str, str] = {}
    for uri in uris:
        key = uri.rstrip("/") if storage.is_s3(uri) else os.path.realpath(uri)
        if key in seen:
            same = "" if seen[key] == uri else f" (as {seen[key]!r} and {uri!r})"
            raise ValueError(
                f"{what} {uri!r} is given more than once{same}: its rows would be "
                "ingested twice; name each file or folder once"
            )
        seen[key] = uri


class _Ingest:
    """One ingest run on the driver (see the module docstring)."""

    def __init__(
        self,
        reader: Reader,
        plan: Plan,
        out: str,
        opts: IngestOptions,
        inputs: list[str],
    ):
        self.reader = reader
        self.inputs = inputs
        self.plan = plan
        self.out = out
        self.opts = opts
        self.work = storage.join(out, WORK)
        self.sources = [f.source for f in plan.files]
        self.chunks = make_chunks(self.sources, opts.chunk_bytes)
        self.setup, self.fingerprint = self._fingerprint()
        counted = {src for _, src in plan.features.counts}
        # Features encoded by hashing alone need no distinct values: staged plain.
        self._plain = (
            tuple(n for n in plan.features.sparse_names if n not in counted)
            if opts.encoding == "hash"
            else ()
        )

    def run(self) -> DatasetMeta:
        existing = self._existing()
        if existing is not None:
            return existing
        self._prepare_work()
        stats = self._pass1()
        total = self._check_rows(stats)
        plans = self._split_plans(stats)
        encoder = self._encoder(plans, stats)
        results = self._pass2(plans, encoder, stats)
        meta = self._meta(stats, results, encoder, total)
        meta.save(self.out)
        if not self.opts.keep_work:
            storage.delete_dir(self.work)
        logger.info(
            "ingested %s: %s rows (%s), %d rejected",
            self.reader.name,
            sum(meta.rows.values()),
            ", ".join(f"{k} {v}" for k, v in meta.rows.items()),
            sum(meta.rejected.values()),
        )
        return meta

    # -- set-up and resume

    def _fingerprint(self) -> tuple[str, str]:
        """Hashes of (dataset, inputs as named, options) and of all that plus files.

        The second also holds every file read (each file inside a folder
        input) with its size and modification time: a file rewritten in place
        changes it, and the dataset is made again.
        """
        opts = dataclasses.asdict(self.opts)
        for key in ("parallel", "workers", "keep_work", "overwrite"):
            opts.pop(key)
        setup = {
            "dataset": self.reader.name,
            "inputs": self.inputs,
            "options": opts,
            "version": recnas.__version__,
        }
        record = {
            **setup,
            "sources": [dataclasses.asdict(s) for s in self.sources],
            "side": self.plan.side_files,
            "files": input_stamps(self.inputs),
        }
        return _digest(setup), _digest(record)

    def _existing(self) -> DatasetMeta | None:
        if self.opts.overwrite:
            storage.delete_file(storage.join(self.out, META_FILE))
            self._clear_outputs()
            return None
        if not storage.exists(storage.join(self.out, META_FILE)):
            return None
        meta = load_meta(self.out)
        if meta.details.get("fingerprint") == self.fingerprint:
            logger.info("%s already holds this dataset; nothing to do", self.out)
            return meta
        if meta.details.get("setup") == self.setup:
            logger.info(
                "%s: input files changed since it was made; ingesting again", self.out
            )
        elif not self.opts.overwrite:
            raise ValueError(
                f"{self.out} already holds a different processed dataset "
                f"({meta.dataset}, {meta.protocol.get('name')}); choose another "
                "output or pass --overwrite (overwrite=True from Python)"
            )
        storage.delete_file(storage.join(self.out, META_FILE))
        self._clear_outputs()
        return None

    def _clear_outputs(self) -> None:
        for name in (*OUTPUT_DIRS, WORK):
            storage.delete_dir(storage.join(self.out, name))

    def _prepare_work(self) -> None:
        plan_uri = storage.join(self.work, "plan.json")
        if storage.exists(plan_uri):
            previous = json.loads(storage.read_bytes(plan_uri))
            if previous.get("fingerprint") == self.fingerprint:
                logger.info("resuming the unfinished ingest in %s", self.work)
                return
            logger.info("discarding an unfinished ingest of other inputs or options")
        self._clear_outputs()
        record = {"fingerprint": self.fingerprint, "chunks": len(self.chunks)}
        storage.write_bytes(plan_uri, json.dumps(record).encode())

    def _job(self, chunk: Chunk) -> ChunkJob:
        return ChunkJob(
            chunk,
            self.plan.files[chunk.source],
            self.work,
            self.out,
            self.plan.features,
            self.reader,
            self.opts.block_bytes,
            self.opts.row_group_rows,
            self._plain,
        )

    # -- passes

    def _pass1(self) -> list[dict[str, Any]]:
        done = self._markers("pass1")
        todo = [c for c in self.chunks if c.index not in done]
        if len(todo) < len(self.chunks):
            logger.info(
                "pass 1: %d of %d chunks already done", len(done), len(self.chunks)
            )
        logger.info("pass 1: staging %d chunk(s)", len(todo))
        results = self._map(
            stage_chunk, [(self._job(c),) for c in todo], self.plan.context
        )
        done.update({c.index: r for c, r in zip(todo, results, strict=True)})
        return [done[c.index] for c in self.chunks]

    def _markers(self, kind: str) -> dict[int, dict[str, Any]]:
        found = {}
        for chunk in self.chunks:
            uri = storage.join(self.work, kind, chunk_name(chunk) + ".json")
            if storage.exists(uri):
                found[chunk.index] = json.loads(storage.read_bytes(uri))
        return found

    def _check_rows(self, stats: list[dict[str, Any]]) -> dict[str, int]:
        rows = sum(s["rows"] for s in stats)
        rejected = sum(sum(s["rejected"].values()) for s in stats)
        # Lines left out of side tables count as read and rejected rows.
        rejected += len(self.plan.side_rejects)
        read = rows + rejected
        if read == 0:
            raise ValueError(
                "no data rows in the inputs: " + ", ".join(s.name for s in self.sources)
            )
        if rejected > self.opts.max_rejected_fraction * read or rows == 0:
            raise ValueError(
                f"{rejected} of {read} rows rejected "
                f"({rejected / read:.3%}), more than max_rejected_fraction="
                f"{self.opts.max_rejected_fraction}; first offending lines: "
                + "; ".join(self._first_rejects(stats))
                + ". Fix the input or raise max_rejected_fraction "
                "(--max-rejected-fraction)"
            )
        return {"rows": rows, "rejected": rejected, "read": read}

    def _line_offsets(self, stats: list[dict[str, Any]]) -> list[int]:
        """Lines of the same source before each chunk."""
        offsets, seen = [], {}
        for chunk, s in zip(self.chunks, stats, strict=True):
            offsets.append(seen.get(chunk.source, 0))
            seen[chunk.source] = offsets[-1] + s["lines"]
        return offsets

    def _first_rejects(self, stats: list[dict[str, Any]]) -> list[str]:
        out = [
            f"{r.source} line {r.line}: {r.reason}" for r in self.plan.side_rejects[:5]
        ]
        if len(out) == 5:
            return out
        offsets = self._line_offsets(stats)
        for chunk, s, offset in zip(self.chunks, stats, offsets, strict=True):
            for line, reason in s["first_rejects"]:
                name = self.sources[chunk.source].name
                out.append(f"{name} line {offset + line + 1}: {reason}")
                if len(out) == 5:
                    return out
        return out

    def _split_plans(self, stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
        proto = self.opts.protocol_spec
        sizes = [s["rows"] for s in stats]
        n = sum(sizes)
        if proto.name == "autoctr_811":
            return self._autoctr_plans(stats)
        if proto.name == "random":
            codes = protocols.random_codes(n, proto.ratios, proto.seed)
        else:
            times = self._times() if self.plan.features.has_time else None
            codes = protocols.time_codes(n, proto.ratios, times)
        bounds = np.concatenate([[0], np.cumsum(sizes)])
        return [{"codes": codes[bounds[i] : bounds[i + 1]]} for i in range(len(sizes))]

    def _autoctr_plans(self, stats: list[dict[str, Any]]) -> list[dict[str, Any]]:
        first = next(s["first_label"] for s in stats if s["first_label"] is not None)
        totals: dict[int, int] = {}
        for s in stats:
            for label, count in s["classes"].items():
                totals[int(label)] = totals.get(int(label), 0) + count
        classes = [first] + sorted(k for k in totals if k != first)
        folds = protocols.autoctr_class_folds([totals[k] for k in classes])
        offsets = dict.fromkeys(classes, 0)
        plans = []
        for s in stats:
            chunk_folds = []
            for k, folds_k in zip(classes, folds, strict=True):
                count = s["classes"].get(str(k), 0)
                chunk_folds.append(folds_k[offsets[k] : offsets[k] + count])
                offsets[k] += count
            plans.append({"classes": classes, "folds": chunk_folds})
        return plans

    def _times(self) -> np.ndarray:
        parts = []
        for chunk in self.chunks:
            for batch in read_stage(self._job(chunk)):
                parts.append(batch.column("_time").to_numpy(zero_copy_only=False))
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def _encoder(
        self, plans: list[dict[str, Any]], stats: list[dict[str, Any]]
    ) -> vocab.Encoder:
        features = self.plan.features
        names = list(features.sparse_names) if self.opts.encoding == "vocab" else []
        names += [src for _, src in features.counts if src not in names]
        encoder = vocab.Encoder(self.opts.encoding, sizes={})
        if self.opts.encoding == "hash":
            encoder.sizes = vocab.hash_sizes(features.sparse_names, self.opts.hash_size)
        if not names:
            return encoder
        self._count(plans, tuple(names))
        counted = {src for _, src in features.counts}
        multi = set(features.multi_names)
        jobs = [
            MergeJob(
                self.work,
                self.out,
                tuple(chunk_name(c) for c in self.chunks),
                name,
                position,
                vocab=self.opts.encoding == "vocab",
                min_count=self.opts.min_count,
                counted=name in counted,
                multi=name in multi,
            )
            for position, name in enumerate(names)
        ]
        logger.info("vocabulary: merging the counts of %d feature(s)", len(jobs))
        results = self._map(merge_feature, [(j,) for j in jobs])
        for job, merged in zip(jobs, results, strict=True):
            name = job.name
            if job.vocab:
                encoder.sizes[name] = merged["size"]
                if job.multi:
                    encoder.vocab[name] = vocab.Lookup.from_table(
                        pa.array(merged["values"]), merged["ids"]
                    )
                else:
                    encoder.group_ids[name] = merged["ids"]
            if job.counted:
                if job.multi:
                    encoder.counts[name] = vocab.Lookup.from_table(
                        pa.array(merged["values"]), merged["counts"]
                    )
                else:
                    encoder.group_counts[name] = merged["counts"]
        return encoder

    def _count(self, plans: list[dict[str, Any]], names: tuple[str, ...]) -> None:
        todo = [
            (self._job(c), plans[c.index], names)
            for c in self.chunks
            if not storage.exists(
                storage.join(self.work, "counts", chunk_name(c) + ".arrow")
            )
        ]
        logger.info("vocabulary: counting %d chunk(s)", len(todo))
        self._map(count_chunk, todo)

    def _pass2(
        self,
        plans: list[dict[str, Any]],
        encoder: vocab.Encoder,
        stats: list[dict[str, Any]],
    ) -> list[dict[str, Any]]:
        done = self._markers("pass2")
        offsets = self._line_offsets(stats)
        todo = [c for c in self.chunks if c.index not in done]
        logger.info("pass 2: encoding and writing %d chunk(s)", len(todo))
        args = [(self._job(c), plans[c.index]) for c in todo]
        extra = [offsets[c.index] for c in todo]
        results = self._map(encode_chunk, args, encoder, per_item=extra)
        done.update({c.index: r for c, r in zip(todo, results, strict=True)})
        return [done[c.index] for c in self.chunks]

    def _map(
        self,
        fn: Callable[..., Any],
        items: list[tuple[Any, ...]],
        shared: Any = _NOTHING,
        per_item: list[Any] | None = None,
    ) -> list[Any]:
        """Runs ``fn(*item[, shared][, per_item[i]])`` for every item, in order."""
        if not items:
            return []
        extra = per_item or [None] * len(items)

        def args(i: int, shared_value: Any) -> tuple[Any, ...]:
            a = items[i]
            if shared is not _NOTHING:
                a = (*a, shared_value)
            if per_item is not None:
                a = (*a, extra[i])
            return a

        if self._use_ray():
            import ray

            remote = ray.remote(num_cpus=1, max_retries=2)(fn)
            ref = ray.put(shared) if shared is not _NOTHING else None
            refs = [remote.remote(*args(i, ref)) for i in range(len(items))]
            try:
                return ray.get(refs)
            except ray.exceptions.RayTaskError as err:
                # A user error in a task (a bad input file): its own message,
                # not the task's traceback.
                if isinstance(err.cause, ValueError):
                    raise err.cause from None
                raise
        workers = self.opts.workers or min(len(items), _cpu_count())
        if workers <= 1:
            return [fn(*args(i, shared)) for i in range(len(items))]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(lambda i: fn(*args(i, shared)), range(len(items))))

    def _use_ray(self) -> bool:
        if self.opts.parallel == "local":
            return False
        # Ray cannot be initialised unless imported; importing it costs seconds.
        ray = sys.modules.get("ray")
        running = ray is not None and ray.is_initialized()
        if self.opts.parallel == "ray" and not running:
            raise ValueError("parallel='ray' needs an initialised Ray (ray.init)")
        return running

    # -- the record

    def _meta(
        self,
        stats: list[dict[str, Any]],
        results: list[dict[str, Any]],
        encoder: vocab.Encoder,
        total: dict[str, int],
    ) -> DatasetMeta:
        files: dict[str, list[dict[str, Any]]] = {s: [] for s in protocols.SPLITS}
        rejected_files = []
        for r in results:
            for split, info in r["files"].items():
                files[split].append(info)
            if r["rejected"]:
                rejected_files.append(r["rejected"])
        side = self._side_rejected()
        if side:
            rejected_files.append(side)
        rows = {s: sum(f["rows"] for f in files[s]) for s in protocols.SPLITS}
        written, rejected = sum(rows.values()), sum(f["rows"] for f in rejected_files)
        if written != total["rows"] or written + rejected != total["read"]:
            raise AssertionError(
                f"row accounting failed: read {total['read']}, written {written}, "
                f"rejected {rejected}"
            )
        reasons: dict[str, int] = {}
        for r in self.plan.side_rejects:
            reasons[r.reason] = reasons.get(r.reason, 0) + 1
        for s in stats:
            for reason, count in s["rejected"].items():
                reasons[reason] = reasons.get(reason, 0) + count
        return DatasetMeta(
            dataset=self.reader.name,
            features=self._feature_set(stats, encoder),
            protocol=self.opts.protocol_spec.to_dict(),
            rows=rows,
            files=files,
            rows_read=total["read"],
            rejected=dict(sorted(reasons.items())),
            rejected_files=rejected_files,
            encoding=self._encoding_record(),
            transform={"dense": "log1p(max(x, 0))", "missing_dense": 0.0},
            sources=[self._source_record(s) for s in self.sources]
            + self.plan.side_files,
            details={
                **self.plan.details,
                "layouts": sorted({f.layout for f in self.plan.files}),
                "derived_dense": {
                    n: f"train count of {s}" for n, s in self.plan.features.counts
                },
                "header_lines": sum(s["header_lines"] for s in stats),
                "setup": self.setup,
                "fingerprint": self.fingerprint,
            },
            version=recnas.__version__,
            uri=self.out,
        )

    def _side_rejected(self) -> dict[str, Any] | None:
        """Writes the lines left out of side tables as a part of ``rejected/``."""
        side = self.plan.side_rejects
        if not side:
            return None
        table = pa.Table.from_pylist(
            [
                {"source": r.source, "line": r.line, "reason": r.reason, "text": r.text}
                for r in side
            ],
            schema=REJECTED_SCHEMA,
        )
        rel = "rejected/side-tables.parquet"
        return write_part(self.out, rel, parquet_bytes(table), table.num_rows)

    def _feature_set(
        self, stats: list[dict[str, Any]], encoder: vocab.Encoder
    ) -> FeatureSet:
        sparse = []
        for name, multi in self.plan.features.sparse:
            longest = max((s["max_len"].get(name, 0) for s in stats), default=0)
            sparse.append(
                SparseFeature(
                    name,
                    encoder.sizes[name],
                    multi_valued=multi,
                    max_len=max(1, longest) if multi else 1,
                )
            )
        return FeatureSet(dense=self.plan.features.dense_names, sparse=tuple(sparse))

    def _encoding_record(self) -> dict[str, Any]:
        if self.opts.encoding == "hash":
            sizes = vocab.hash_sizes(
                self.plan.features.sparse_names, self.opts.hash_size
            )
            return {"kind": "hash", "sizes": sizes, "missing_id": 0, "oov_id": 1}
        return {
            "kind": "vocab",
            "min_count": self.opts.min_count,
            "counted_on": "train",
            "missing_id": 0,
            "oov_id": 1,
        }

    @staticmethod
    def _source_record(src: Any) -> dict[str, Any]:
        record: dict[str, Any] = {"uri": src.uri, "bytes": src.size}
        if src.member:
            record["member"] = src.member
        return record


def _cpu_count() -> int:
    import os

    return os.cpu_count() or 1
