"""Ingest: raw files -> Parquet splits + ``meta.json``, in two passes over chunks.

::

    inputs --plan--> chunks (byte ranges; a gzip file or zip member is one chunk)
      pass 1, one task per chunk: parse, check, reject, stage  -> _work/stage/
      driver: rows per chunk, rejected fraction, split of every row (protocol)
      [vocabulary: count raw values on the train rows of every chunk]
      pass 2, one task per chunk: encode ids, write train/ val/ test/ rejected/
      driver: meta.json (counts, vocabulary sizes, md5 of every file)

Tasks run on Ray when Ray is initialised (or ``parallel="ray"``), else on a
thread pool in this process. Memory per task is bounded by ``block_bytes``,
not by the file. Every task leaves a marker under ``<out>/_work/`` when done,
so an interrupted ingest rerun with the same inputs and options resumes at the
first unfinished chunk and writes the same bytes as a clean run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

import recnas
from recnas.data import protocols, storage, vocab
from recnas.data.features import FeatureSet, SparseFeature
from recnas.data.fields import (
    REASONS,
    as_dictionary,
    fields_reason,
    parse_rows,
    rejected_texts,
    transform_dense,
)
from recnas.data.meta import META_FILE, DatasetMeta, load_meta
from recnas.data.readers import get_reader
from recnas.data.readers.base import FeatureDefs, Plan, Reader, RowFile
from recnas.data.textio import Chunk, iter_blocks, make_chunks

logger = logging.getLogger(__name__)

WORK = "_work"
OUTPUT_DIRS = ("train", "val", "test", "rejected", "vocab")
# Staged chunks are read back once or twice: compress only on remote storage.
_STAGE_IPC = {
    False: ipc.IpcWriteOptions(),
    True: ipc.IpcWriteOptions(compression="lz4"),
}
_RAW_IDS = pa.dictionary(pa.int32(), pa.uint64())
_REJECT_SCHEMA = pa.schema(
    [("line", pa.int64()), ("reason", pa.string()), ("text", pa.string())]
)
_FIRST_REJECTS = 10
_NOTHING = object()
_DICTIONARY_MAX = 1 << 16


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
            options resumes, and a different finished one is refused).
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
    plan = reader.plan(list(inputs))
    return _Ingest(reader, plan, out, opts).run()


# ---------------------------------------------------------------------------
# Task payloads and task functions (module level, so Ray can ship them).


@dataclass(frozen=True)
class _Job:
    chunk: Chunk
    file: RowFile
    work: str
    out: str
    features: FeatureDefs
    opts: IngestOptions
    reader: Reader


def _staged_schema(features: FeatureDefs) -> pa.Schema:
    fields = [pa.field("label", pa.int8())]
    fields += [pa.field(n, pa.float32()) for n in features.dense]
    for name, multi in features.sparse:
        fields.append(pa.field(name, pa.list_(pa.uint64()) if multi else _RAW_IDS))
    if features.has_time:
        fields.append(pa.field("_time", pa.int64()))
    return pa.schema(fields)


def _chunk_name(chunk: Chunk) -> str:
    return f"chunk-{chunk.index:05d}"


def _split_header(job: _Job, data: bytes) -> tuple[bytes, int]:
    """Cuts the header line off a file's first block and checks it."""
    head, _, rest = data.partition(b"\n")
    expected = job.file.expected_header
    if expected:
        text = head.rstrip(b"\r").decode("utf-8", "replace")
        names = [n.strip().strip('"').lower() for n in text.split(job.file.delimiter)]
        if tuple(names) != tuple(e.lower() for e in expected):
            raise ValueError(
                f"{job.file.source.name}: line 1 should be the header "
                f"{job.file.delimiter.join(expected)!r}, found {text[:200]!r}"
            )
    return rest, 1


def stage_chunk(job: _Job, context: Any) -> dict[str, Any]:
    """Pass 1 for one chunk: parse, check, convert, stage; returns its counts."""
    src = job.file.source
    schema = _staged_schema(job.features)
    name = _chunk_name(job.chunk)
    fs, stage_path = storage.resolve(storage.join(job.work, "stage", name + ".arrow"))
    fs.create_dir(stage_path.rsplit("/", 1)[0], recursive=True)
    stats = _ChunkStats()
    rejects: list[tuple[int, str, str]] = []
    line_base = 0
    with fs.open_output_stream(stage_path) as sink:
        # A stream, not a file: each block brings its own dictionaries.
        options = _STAGE_IPC[storage.is_s3(job.work)]
        writer = ipc.new_stream(sink, schema, options=options)
        for i, data in enumerate(iter_blocks(src, job.chunk, job.opts.block_bytes)):
            if i == 0 and job.chunk.start == 0 and job.file.header:
                data, skipped = _split_header(job, data)
                line_base += skipped
                stats.header_lines += skipped
            batch, lines = _stage_block(job, context, data, schema, rejects, line_base)
            stats.add(batch, lines)
            line_base += lines
            writer.write_batch(batch)
        writer.close()
    stats.lines = line_base
    for line, reason, _ in rejects:
        stats.rejected[reason] = stats.rejected.get(reason, 0) + 1
        if len(stats.first_rejects) < _FIRST_REJECTS:
            stats.first_rejects.append([line, reason])
    if rejects:
        table = pa.Table.from_pylist(
            [{"line": r[0], "reason": r[1], "text": r[2]} for r in rejects],
            schema=_REJECT_SCHEMA,
        )
        storage.write_bytes(
            storage.join(job.work, "reject", name + ".parquet"), _parquet_bytes(table)
        )
    record = stats.to_dict()
    storage.write_bytes(
        storage.join(job.work, "pass1", name + ".json"), json.dumps(record).encode()
    )
    return record


def _stage_block(
    job: _Job,
    context: Any,
    data: bytes,
    schema: pa.Schema,
    rejects: list[tuple[int, str, str]],
    line_base: int,
) -> tuple[pa.RecordBatch, int]:
    file = job.file
    rows = parse_rows(data, list(file.columns), file.delimiter, file.quoted)
    parsed = rows.parsed
    for line, text in zip(parsed.bad_lines.tolist(), parsed.bad_texts, strict=True):
        rejects.append((line_base + line, fields_reason(text), text))
    staged = job.reader.convert(rows, file, context)
    bad = np.flatnonzero(rows.reasons != 0)
    texts = rejected_texts(rows, bad, file.delimiter)
    for i, text in zip(bad.tolist(), texts, strict=True):
        reason = REASONS[rows.reasons[i] - 1]
        rejects.append((line_base + int(rows.lines[i]), reason, text))
    good = pa.array(rows.reasons == 0)
    all_good = not rows.reasons.any()
    columns = []
    for field in schema:
        value = staged[field.name]
        if field.name in job.features.dense:
            value = transform_dense(value)
        arr = value if isinstance(value, pa.Array) else pa.array(value)
        if pa.types.is_dictionary(field.type):
            arr = as_dictionary(arr)
        arr = arr.cast(field.type)
        columns.append(arr if all_good else arr.filter(good))
    batch = pa.RecordBatch.from_arrays(columns, schema=schema)
    return batch, parsed.num_lines


@dataclass
class _ChunkStats:
    lines: int = 0
    header_lines: int = 0
    rows: int = 0
    blocks: list[int] = dataclasses.field(default_factory=list)
    classes: dict[int, int] = dataclasses.field(default_factory=dict)
    first_label: int | None = None
    max_len: dict[str, int] = dataclasses.field(default_factory=dict)
    rejected: dict[str, int] = dataclasses.field(default_factory=dict)
    first_rejects: list[list[Any]] = dataclasses.field(default_factory=list)

    def add(self, batch: pa.RecordBatch, lines: int) -> None:
        self.rows += batch.num_rows
        self.blocks.append(batch.num_rows)
        labels = batch.column("label").to_numpy(zero_copy_only=False)
        if len(labels) and self.first_label is None:
            self.first_label = int(labels[0])
        for value, count in zip(*np.unique(labels, return_counts=True), strict=True):
            self.classes[int(value)] = self.classes.get(int(value), 0) + int(count)
        for i, field in enumerate(batch.schema):
            if pa.types.is_list(field.type) and batch.num_rows:
                longest = pc.max(pc.list_value_length(batch.column(i))).as_py() or 0
                self.max_len[field.name] = max(self.max_len.get(field.name, 0), longest)

    def to_dict(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["classes"] = {str(k): v for k, v in self.classes.items()}
        return record


def _read_stage(job: _Job) -> list[pa.RecordBatch]:
    """The staged blocks of a chunk (the chunk's memory bound, not the file's)."""
    uri = storage.join(job.work, "stage", _chunk_name(job.chunk) + ".arrow")
    fs, path = storage.resolve(uri)
    with fs.open_input_stream(path) as f:
        return list(ipc.open_stream(f))


def _codes(batches: list[pa.RecordBatch], plan: dict[str, Any]) -> np.ndarray:
    labels = [b.column("label").to_numpy(zero_copy_only=False) for b in batches]
    return protocols.chunk_codes(np.concatenate(labels or [np.zeros(0, np.int8)]), plan)


def count_chunk(job: _Job, plan: dict[str, Any], names: tuple[str, ...]) -> None:
    """Vocabulary pass for one chunk: counts of raw values on its train rows.

    Writes one Arrow file per chunk holding one ``(value, count)`` batch per
    feature, in the order of ``names``.
    """
    batches = _read_stage(job)
    codes = _codes(batches, plan)
    tables: dict[str, list[pa.Table]] = {n: [] for n in names}
    start = 0
    for batch in batches:
        train = codes[start : start + batch.num_rows] == 0
        start += batch.num_rows
        for n in names:
            tables[n].append(vocab.count_values(batch.column(n), train))
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, vocab.COUNTS_SCHEMA) as writer:
        for n in names:  # one batch per feature, empty or not
            counts = vocab.merge_counts(tables[n])
            columns = [c.combine_chunks() for c in counts.columns]
            writer.write_batch(
                pa.RecordBatch.from_arrays(columns, schema=vocab.COUNTS_SCHEMA)
            )
    storage.write_bytes(
        storage.join(job.work, "counts", _chunk_name(job.chunk) + ".arrow"),
        sink.getvalue().to_pybytes(),
    )


def encode_chunk(
    job: _Job, plan: dict[str, Any], encoder: vocab.Encoder, line_offset: int
) -> dict[str, Any]:
    """Pass 2 for one chunk: encode ids and write its part of every split."""
    batches = _read_stage(job)
    codes = _codes(batches, plan)
    schema = output_schema(job.features)
    buffers: dict[int, tuple[pa.BufferOutputStream, pq.ParquetWriter]] = {}
    rows = dict.fromkeys(range(len(protocols.SPLITS)), 0)
    start = 0
    for batch in batches:
        table = _encode_batch(batch, job.features, encoder, schema)
        part_codes = codes[start : start + batch.num_rows]
        start += batch.num_rows
        for code in range(len(protocols.SPLITS)):
            mask = part_codes == code
            if not mask.any():
                continue
            if code not in buffers:
                sink = pa.BufferOutputStream()
                writer = pq.ParquetWriter(
                    sink, schema, use_dictionary=_dictionary_columns(job, encoder)
                )
                buffers[code] = (sink, writer)
            buffers[code][1].write_table(
                table.filter(pa.array(mask)), row_group_size=job.opts.row_group_rows
            )
            rows[code] += int(mask.sum())
    files: dict[str, dict[str, Any]] = {}
    name = _chunk_name(job.chunk).replace("chunk", "part")
    for code, (sink, writer) in sorted(buffers.items()):
        writer.close()
        split = protocols.SPLITS[code]
        rel = f"{split}/{name}.parquet"
        files[split] = _write_part(
            job.out, rel, sink.getvalue().to_pybytes(), rows[code]
        )
    rejected = _write_rejected(job, line_offset)
    record = {"files": files, "rejected": rejected}
    storage.write_bytes(
        storage.join(job.work, "pass2", _chunk_name(job.chunk) + ".json"),
        json.dumps(record).encode(),
    )
    return record


def _dictionary_columns(job: _Job, encoder: vocab.Encoder) -> list[str]:
    """Columns worth dictionary-encoding in Parquet: those with small tables."""
    small = [n for n, _ in job.features.sparse if encoder.sizes[n] <= _DICTIONARY_MAX]
    return ["label", *small]


def output_schema(features: FeatureDefs) -> pa.Schema:
    """Schema of the split files: label, dense, sparse, multi-valued sparse."""
    fields = [pa.field("label", pa.float32())]
    fields += [pa.field(n, pa.float32()) for n in features.dense_names]
    for name, multi in features.sparse:
        fields.append(pa.field(name, pa.list_(pa.int32()) if multi else pa.int32()))
    return pa.schema(fields)


def _encode_batch(
    batch: pa.RecordBatch,
    features: FeatureDefs,
    encoder: vocab.Encoder,
    schema: pa.Schema,
) -> pa.Table:
    columns: dict[str, pa.Array] = {"label": batch.column("label").cast(pa.float32())}
    for n in features.dense:
        columns[n] = batch.column(n)
    for n, source in features.counts:
        counts = encoder.train_counts(source, batch.column(source))
        columns[n] = pa.array(np.log1p(counts).astype(np.float32))
    for n, _ in features.sparse:
        columns[n] = encoder.encode(n, batch.column(n))
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _write_part(out: str, rel: str, data: bytes, rows: int) -> dict[str, Any]:
    storage.write_bytes(storage.join(out, rel), data)
    return {"path": rel, "md5": hashlib.md5(data).hexdigest(), "rows": rows}


def _write_rejected(job: _Job, line_offset: int) -> dict[str, Any] | None:
    uri = storage.join(job.work, "reject", _chunk_name(job.chunk) + ".parquet")
    if not storage.exists(uri):
        return None
    table = pq.read_table(io.BytesIO(storage.read_bytes(uri)))
    lines = pc.add(table["line"], line_offset + 1)  # 1-based line in the file
    source = pa.array([job.file.source.name] * table.num_rows, pa.string())
    out = pa.table(
        {
            "source": source,
            "line": lines,
            "reason": table["reason"],
            "text": table["text"],
        }
    )
    rel = f"rejected/{_chunk_name(job.chunk).replace('chunk', 'part')}.parquet"
    return _write_part(job.out, rel, _parquet_bytes(out), out.num_rows)


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


# ---------------------------------------------------------------------------
# The driver.


class _Ingest:
    """One ingest run on the driver (see the module docstring)."""

    def __init__(self, reader: Reader, plan: Plan, out: str, opts: IngestOptions):
        self.reader = reader
        self.plan = plan
        self.out = out
        self.opts = opts
        self.work = storage.join(out, WORK)
        self.sources = [f.source for f in plan.files]
        self.chunks = make_chunks(self.sources, opts.chunk_bytes)
        self.fingerprint = self._fingerprint()

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

    def _fingerprint(self) -> str:
        opts = dataclasses.asdict(self.opts)
        for key in ("parallel", "workers", "keep_work", "overwrite"):
            opts.pop(key)
        record = {
            "dataset": self.reader.name,
            "sources": [dataclasses.asdict(s) for s in self.sources],
            "side": self.plan.side_files,
            "options": opts,
            "version": recnas.__version__,
        }
        return hashlib.sha256(
            json.dumps(record, sort_keys=True, default=str).encode()
        ).hexdigest()

    def _existing(self) -> DatasetMeta | None:
        if self.opts.overwrite:
            storage.delete_file(storage.join(self.out, META_FILE))
            self._clear_outputs()
            return None
        if not storage.exists(storage.join(self.out, META_FILE)):
            return None
        meta = load_meta(self.out)
        if (
            meta.details.get("fingerprint") == self.fingerprint
            and not self.opts.overwrite
        ):
            logger.info("%s already holds this dataset; nothing to do", self.out)
            return meta
        if not self.opts.overwrite:
            raise ValueError(
                f"{self.out} already holds a different processed dataset "
                f"({meta.dataset}, {meta.protocol.get('name')}); choose another "
                "output or pass overwrite=True (--overwrite)"
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

    def _job(self, chunk: Chunk) -> _Job:
        return _Job(
            chunk,
            self.plan.files[chunk.source],
            self.work,
            self.out,
            self.plan.features,
            self.opts,
            self.reader,
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
            uri = storage.join(self.work, kind, _chunk_name(chunk) + ".json")
            if storage.exists(uri):
                found[chunk.index] = json.loads(storage.read_bytes(uri))
        return found

    def _check_rows(self, stats: list[dict[str, Any]]) -> dict[str, int]:
        rows = sum(s["rows"] for s in stats)
        rejected = sum(sum(s["rejected"].values()) for s in stats)
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
        out = []
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
            for batch in _read_stage(self._job(chunk)):
                parts.append(batch.column("_time").to_numpy(zero_copy_only=False))
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def _encoder(
        self, plans: list[dict[str, Any]], stats: list[dict[str, Any]]
    ) -> vocab.Encoder:
        features = self.plan.features
        names = list(features.sparse_names) if self.opts.encoding == "vocab" else []
        names += [src for _, src in features.counts if src not in names]
        counts = self._counts(plans, tuple(names)) if names else {}
        encoder = vocab.Encoder(self.opts.encoding, sizes={})
        if self.opts.encoding == "hash":
            encoder.sizes = vocab.hash_sizes(features.sparse_names, self.opts.hash_size)
        else:
            for name in features.sparse_names:
                table = vocab.build_vocab(counts[name], self.opts.min_count)
                storage.write_bytes(
                    storage.join(self.out, "vocab", f"{name}.parquet"),
                    _parquet_bytes(table),
                )
                encoder.vocab[name] = vocab.Lookup.from_table(
                    table["value"].combine_chunks(), table["id"].to_numpy()
                )
                encoder.sizes[name] = vocab.FIRST_ID + table.num_rows
        for _, src in features.counts:
            table = counts[src]
            encoder.counts[src] = vocab.Lookup.from_table(
                table["value"].combine_chunks(), table["count"].to_numpy()
            )
        return encoder

    def _counts(
        self, plans: list[dict[str, Any]], names: tuple[str, ...]
    ) -> dict[str, pa.Table]:
        todo = [
            (self._job(c), plans[c.index], names)
            for c in self.chunks
            if not storage.exists(
                storage.join(self.work, "counts", _chunk_name(c) + ".arrow")
            )
        ]
        logger.info("vocabulary: counting %d chunk(s)", len(todo))
        self._map(count_chunk, todo)
        pending: dict[str, list[pa.Table]] = {n: [] for n in names}
        for i, chunk in enumerate(self.chunks):
            uri = storage.join(self.work, "counts", _chunk_name(chunk) + ".arrow")
            reader = ipc.open_file(storage.read_bytes(uri))
            for k, n in enumerate(names):
                pending[n].append(pa.Table.from_batches([reader.get_batch(k)]))
            if (i + 1) % 16 == 0:  # bound the memory of the merge
                pending = self._merge_counts(pending)
        return {n: tables[0] for n, tables in self._merge_counts(pending).items()}

    def _merge_counts(
        self, pending: dict[str, list[pa.Table]]
    ) -> dict[str, list[pa.Table]]:
        """Sums each feature's count tables, features in parallel threads."""
        names = list(pending)
        with ThreadPoolExecutor(min(len(names), _cpu_count())) as pool:
            merged = pool.map(lambda n: vocab.merge_counts(pending[n]), names)
            return {n: [table] for n, table in zip(names, merged, strict=True)}

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
            return ray.get([remote.remote(*args(i, ref)) for i in range(len(items))])
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
        rows = {s: sum(f["rows"] for f in files[s]) for s in protocols.SPLITS}
        written, rejected = sum(rows.values()), sum(f["rows"] for f in rejected_files)
        if written != total["rows"] or written + rejected != total["read"]:
            raise AssertionError(
                f"row accounting failed: read {total['read']}, written {written}, "
                f"rejected {rejected}"
            )
        reasons: dict[str, int] = {}
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
                "fingerprint": self.fingerprint,
            },
            version=recnas.__version__,
            uri=self.out,
        )

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
