"""The work of one chunk in each pass of ingest (run as Ray tasks or threads).

- :func:`stage_chunk` (pass 1): parse and check the chunk's lines, convert
  them with the reader, write the good rows to ``_work/stage/`` (Arrow IPC
  stream, sparse ids dictionary-encoded) and the bad ones to
  ``_work/reject/``; return the chunk's counts.
- :func:`count_chunk` (vocabulary): count raw values on the chunk's train rows,
  per entry of each staged block's dictionary.
- :func:`merge_feature` (vocabulary, one task per feature): merge the counts
  of every chunk into groups of equal values, write the feature's vocabulary
  and the group of every dictionary entry to ``_work/groups/``.
- :func:`encode_chunk` (pass 2): encode ids, write the chunk's part of every
  split and its rejected rows with their line numbers in the file.

Each leaves a marker (or its output) under ``_work/`` when done; the driver in
:mod:`recnas.data.ingest` skips chunks whose marker exists.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from recnas.data import protocols, storage, vocab
from recnas.data.fields import (
    REASONS,
    as_dictionary,
    fields_reason,
    parse_rows,
    plain,
    transform_dense,
)
from recnas.data.readers.base import FeatureDefs, Reader, RowFile
from recnas.data.textio import Chunk, InputReadError, iter_blocks, line_texts

# Staged chunks are read back once or twice: compress only on remote storage.
_STAGE_IPC = {
    False: ipc.IpcWriteOptions(),
    True: ipc.IpcWriteOptions(compression="lz4"),
}
_RAW_IDS = pa.dictionary(pa.int32(), pa.uint64())
_REJECT_SCHEMA = pa.schema(
    [("line", pa.int64()), ("reason", pa.string()), ("text", pa.string())]
)
FIRST_REJECTS = 10


@dataclass(frozen=True)
class ChunkJob:
    """What a task needs to work on one chunk.

    Attributes:
        chunk: The chunk.
        file: Its row file (source and layout).
        work: The ``_work/`` folder of the ingest.
        out: The output folder.
        features: The reader's features.
        reader: The reader (for ``convert``).
        block_bytes: Bytes parsed at once.
        row_group_rows: Parquet row group size of the splits.
        plain: Sparse features staged as plain uint64 values rather than
            dictionary-encoded (those whose distinct values nothing needs).
    """

    chunk: Chunk
    file: RowFile
    work: str
    out: str
    features: FeatureDefs
    reader: Reader
    block_bytes: int
    row_group_rows: int
    plain: tuple[str, ...] = ()


def staged_schema(features: FeatureDefs, plain: tuple[str, ...] = ()) -> pa.Schema:
    fields = [pa.field("label", pa.int8())]
    fields += [pa.field(n, pa.float32()) for n in features.dense]
    for name, multi in features.sparse:
        if multi:
            fields.append(pa.field(name, pa.list_(pa.uint64())))
        else:
            fields.append(pa.field(name, pa.uint64() if name in plain else _RAW_IDS))
    if features.has_time:
        fields.append(pa.field("_time", pa.int64()))
    return pa.schema(fields)


def chunk_name(chunk: Chunk) -> str:
    return f"chunk-{chunk.index:05d}"


def _split_header(
    job: ChunkJob, data: bytes | memoryview
) -> tuple[bytes | memoryview, int]:
    """Cuts the header line off a file's first block and checks it."""
    view = memoryview(data)
    end = bytes(view[: 1 << 20]).find(b"\n")
    if end < 0:  # a header line longer than 1 MiB
        end = bytes(view).find(b"\n")
    if end < 0:
        end = len(view)
    head, rest = bytes(view[:end]), view[end + 1 :]
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


def stage_chunk(job: ChunkJob, context: Any) -> dict[str, Any]:
    """Pass 1 for one chunk: parse, check, convert, stage; returns its counts."""
    src = job.file.source
    schema = staged_schema(job.features, job.plain)
    name = chunk_name(job.chunk)
    fs, stage_path = storage.resolve(storage.join(job.work, "stage", name + ".arrow"))
    fs.create_dir(stage_path.rsplit("/", 1)[0], recursive=True)
    stats = ChunkStats()
    rejects: list[tuple[int, str, str]] = []
    line_base = 0
    with fs.open_output_stream(stage_path) as sink:
        # A stream, not a file: each block brings its own dictionaries.
        options = _STAGE_IPC[storage.is_s3(job.work)]
        writer = ipc.new_stream(sink, schema, options=options)
        blocks = iter_blocks(src, job.chunk, job.block_bytes)
        while True:
            try:
                data = next(blocks, None)
            except InputReadError as err:
                raise ValueError(
                    f"{src.name}: cannot read the file past line {line_base:,} "
                    f"(byte {err.offset:,} of its data; {err.cause}); it is "
                    "damaged or truncated: replace it"
                ) from err
            if data is None:
                break
            if line_base == 0 and job.chunk.start == 0 and job.file.header:
                data, skipped = _split_header(job, data)
                line_base += skipped
                stats.header_lines += skipped
            batch, lines = _stage_block(job, context, data, schema, rejects, line_base)
            stats.add(batch, lines)
            line_base += lines
            writer.write_batch(batch)
        writer.close()
    stats.lines = line_base
    rejects.sort(key=lambda r: r[0])  # input order
    for line, reason, _ in rejects:
        stats.rejected[reason] = stats.rejected.get(reason, 0) + 1
        if len(stats.first_rejects) < FIRST_REJECTS:
            stats.first_rejects.append([line, reason])
    if rejects:
        table = pa.Table.from_pylist(
            [{"line": r[0], "reason": r[1], "text": r[2]} for r in rejects],
            schema=_REJECT_SCHEMA,
        )
        storage.write_bytes(
            storage.join(job.work, "reject", name + ".parquet"), parquet_bytes(table)
        )
    record = stats.to_dict()
    storage.write_bytes(
        storage.join(job.work, "pass1", name + ".json"), json.dumps(record).encode()
    )
    return record


def _stage_block(
    job: ChunkJob,
    context: Any,
    data: bytes | memoryview,
    schema: pa.Schema,
    rejects: list[tuple[int, str, str]],
    line_base: int,
) -> tuple[pa.RecordBatch, int]:
    file = job.file
    rows = parse_rows(
        data, list(file.columns), file.delimiter, file.quoted, plain=job.plain
    )
    parsed = rows.parsed
    for line, text in zip(parsed.bad_lines.tolist(), parsed.bad_texts, strict=True):
        rejects.append((line_base + line, fields_reason(text), text))
    staged = job.reader.convert(rows, file, context)
    bad = np.flatnonzero(rows.reasons != 0)
    # Rejected rows keep their line exactly as the file has it.
    texts = line_texts(data, rows.lines[bad])
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
        elif pa.types.is_dictionary(arr.type):
            arr = plain(arr)
        arr = arr.cast(field.type)
        columns.append(arr if all_good else arr.filter(good))
    batch = pa.RecordBatch.from_arrays(columns, schema=schema)
    return batch, parsed.num_lines


@dataclass
class ChunkStats:
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


def read_stage(job: ChunkJob) -> list[pa.RecordBatch]:
    """The staged blocks of a chunk (the chunk's memory bound, not the file's)."""
    uri = storage.join(job.work, "stage", chunk_name(job.chunk) + ".arrow")
    if not storage.is_s3(uri):  # map the local file: no copy of the blocks
        _, path = storage.resolve(uri)
        return list(ipc.open_stream(pa.memory_map(path)))
    fs, path = storage.resolve(uri)
    with fs.open_input_stream(path) as f:
        return list(ipc.open_stream(f))


def _codes(batches: list[pa.RecordBatch], plan: dict[str, Any]) -> np.ndarray:
    labels = [b.column("label").to_numpy(zero_copy_only=False) for b in batches]
    return protocols.chunk_codes(np.concatenate(labels or [np.zeros(0, np.int8)]), plan)


def count_chunk(job: ChunkJob, plan: dict[str, Any], names: tuple[str, ...]) -> None:
    """Vocabulary pass for one chunk: train counts of raw values.

    Writes one Arrow file per chunk holding one ``(value, count)`` batch per
    feature, in the order of ``names``: for a dictionary-encoded feature the
    entries of its blocks' dictionaries one block after the other (see
    :func:`vocab.entry_counts`), else the distinct values.
    """
    batches = read_stage(job)
    codes = _codes(batches, plan)
    schema = staged_schema(job.features, job.plain)
    tables: dict[str, list[pa.Table]] = {n: [] for n in names}
    start = 0
    for batch in batches:
        train = np.flatnonzero(codes[start : start + batch.num_rows] == 0)
        start += batch.num_rows
        for n in names:
            tables[n].append(vocab.entry_counts(batch.column(n), train))
    sink = pa.BufferOutputStream()
    with ipc.new_file(sink, vocab.COUNTS_SCHEMA) as writer:
        for n in names:  # one batch per feature, empty or not
            parts = tables[n]
            if not pa.types.is_dictionary(schema.field(n).type):
                parts = [vocab.merge_counts(parts)]
            counts = (
                pa.concat_tables(parts) if parts else vocab.COUNTS_SCHEMA.empty_table()
            )
            columns = [c.combine_chunks() for c in counts.columns]
            writer.write_batch(
                pa.RecordBatch.from_arrays(columns, schema=vocab.COUNTS_SCHEMA)
            )
    storage.write_bytes(
        storage.join(job.work, "counts", chunk_name(job.chunk) + ".arrow"),
        sink.getvalue().to_pybytes(),
    )


@dataclass(frozen=True)
class MergeJob:
    """What a task needs to merge one feature's counts over every chunk.

    Attributes:
        work: The ``_work/`` folder of the ingest.
        out: The output folder.
        chunks: Names of all chunks, in order.
        name: The feature.
        position: Its batch in each chunk's counts file.
        vocab: Whether to build and write its vocabulary.
        min_count: Train count a value needs for its own id.
        counted: Whether its train counts are wanted (a dense count's source).
        multi: Whether it is multi-valued (its values are wanted: its rows
            are looked up by value, not by group).
    """

    work: str
    out: str
    chunks: tuple[str, ...]
    name: str
    position: int
    vocab: bool
    min_count: int
    counted: bool = False
    multi: bool = False


MERGE_CHUNKS = 8  # chunks' counts merged at once (bounds the merge's memory)
_GROUPS_SCHEMA = pa.schema([("group", pa.int32())])


def merge_feature(job: MergeJob) -> dict[str, Any]:
    """Merges a feature's counts; writes its vocabulary and entry groups.

    Returns:
        ``{"size", "ids", "counts", "values"}``: the table size and the id of
        every group (vocabulary), the train count of every group (``counted``)
        and the value of every group (``multi``), each None when not wanted.
    """
    groups = vocab.Groups()
    fs, path = storage.resolve(storage.join(job.work, "groups", job.name + ".arrow"))
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with (
        fs.open_output_stream(path) as sink,
        ipc.new_file(sink, _GROUPS_SCHEMA) as writer,
    ):
        for first in range(0, len(job.chunks), MERGE_CHUNKS):
            names = job.chunks[first : first + MERGE_CHUNKS]
            tables = [_chunk_counts(job, n) for n in names]
            for part in groups.add(tables):
                writer.write_batch(
                    pa.record_batch([pa.array(part)], schema=_GROUPS_SCHEMA)
                )
    result: dict[str, Any] = {
        "size": None,
        "ids": None,
        "counts": groups.counts if job.counted else None,
        "values": groups.values.to_numpy(zero_copy_only=False) if job.multi else None,
    }
    if job.vocab:
        table, ids = vocab.group_vocab(groups, job.min_count)
        # Distinct values: dictionary pages would only cost time.
        data = parquet_bytes(table, use_dictionary=False)
        storage.write_bytes(storage.join(job.out, "vocab", f"{job.name}.parquet"), data)
        result.update(size=vocab.FIRST_ID + table.num_rows, ids=ids)
    return result


def _chunk_counts(job: MergeJob, chunk: str) -> pa.Table:
    uri = storage.join(job.work, "counts", chunk + ".arrow")
    with _open_random(uri) as f:
        batch = ipc.open_file(f).get_batch(job.position)
        return pa.Table.from_batches([batch])


def _open_random(uri: str) -> Any:
    """A random-access file: memory-mapped when local."""
    fs, path = storage.resolve(uri)
    if not storage.is_s3(uri):
        return pa.memory_map(path)
    return fs.open_input_file(path)


def entry_groups(job: ChunkJob, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The group of every dictionary entry of the chunk's blocks, per feature."""
    out = {}
    for n in names:
        uri = storage.join(job.work, "groups", n + ".arrow")
        with _open_random(uri) as f:
            batch = ipc.open_file(f).get_batch(job.chunk.index)
            out[n] = batch.column(0).to_numpy()
    return out


def encode_chunk(
    job: ChunkJob, plan: dict[str, Any], encoder: vocab.Encoder, line_offset: int
) -> dict[str, Any]:
    """Pass 2 for one chunk: encode ids and write its part of every split."""
    batches = read_stage(job)
    codes = _codes(batches, plan)
    schema = output_schema(job.features)
    grouped = entry_groups(job, tuple(encoder.grouped))
    used = dict.fromkeys(grouped, 0)  # entries of the blocks so far
    buffers: dict[int, tuple[pa.BufferOutputStream, pq.ParquetWriter]] = {}
    rows = dict.fromkeys(range(len(protocols.SPLITS)), 0)
    start = 0
    for batch in batches:
        groups = {}
        for n, entries in grouped.items():
            size = len(batch.column(n).dictionary)
            groups[n] = entries[used[n] : used[n] + size]
            used[n] += size
        table = _encode_batch(batch, job.features, encoder, schema, groups)
        part_codes = codes[start : start + batch.num_rows]
        start += batch.num_rows
        for code in range(len(protocols.SPLITS)):
            mask = part_codes == code
            if not mask.any():
                continue
            if code not in buffers:
                sink = pa.BufferOutputStream()
                writer = pq.ParquetWriter(sink, schema, **split_encodings(job.features))
                buffers[code] = (sink, writer)
            buffers[code][1].write_table(
                table.filter(pa.array(mask)), row_group_size=job.row_group_rows
            )
            rows[code] += int(mask.sum())
    files: dict[str, dict[str, Any]] = {}
    name = chunk_name(job.chunk).replace("chunk", "part")
    for code, (sink, writer) in sorted(buffers.items()):
        writer.close()
        split = protocols.SPLITS[code]
        rel = f"{split}/{name}.parquet"
        files[split] = write_part(job.out, rel, sink.getvalue(), rows[code])
    rejected = _write_rejected(job, line_offset)
    record = {"files": files, "rejected": rejected}
    storage.write_bytes(
        storage.join(job.work, "pass2", chunk_name(job.chunk) + ".json"),
        json.dumps(record).encode(),
    )
    return record


def split_encodings(features: FeatureDefs) -> dict[str, Any]:
    """Parquet encodings of the split files (measured on Criteo-like data).

    Label and dense columns hold few distinct values: dictionary pages. Ids
    are split into byte streams (their high bytes are mostly zero, which
    Snappy then squeezes out): faster to write and to read than dictionary
    pages, and smaller unless the tables are large.
    """
    ids = [name for name, multi in features.sparse if not multi]
    return {
        "use_dictionary": ["label", *features.dense_names],
        "column_encoding": dict.fromkeys(ids, "BYTE_STREAM_SPLIT"),
    }


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
    groups: dict[str, np.ndarray],
) -> pa.Table:
    columns: dict[str, pa.Array] = {"label": batch.column("label").cast(pa.float32())}
    for n in features.dense:
        columns[n] = batch.column(n)
    for n, source in features.counts:
        counts = encoder.train_counts(source, batch.column(source), groups.get(source))
        columns[n] = pa.array(np.log1p(counts).astype(np.float32))
    for n, _ in features.sparse:
        columns[n] = encoder.encode(n, batch.column(n), groups.get(n))
    return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


# Columns of every rejected-rows part: where each left-out line was and why.
REJECTED_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("line", pa.int64()),
        ("reason", pa.string()),
        ("text", pa.string()),
    ]
)


def write_part(
    out: str, rel: str, data: bytes | pa.Buffer, rows: int
) -> dict[str, Any]:
    """Writes one part of the dataset; its record ``{path, md5, rows}``."""
    storage.write_bytes(storage.join(out, rel), data)
    return {"path": rel, "md5": hashlib.md5(data).hexdigest(), "rows": rows}


def _write_rejected(job: ChunkJob, line_offset: int) -> dict[str, Any] | None:
    uri = storage.join(job.work, "reject", chunk_name(job.chunk) + ".parquet")
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
    ).cast(REJECTED_SCHEMA)
    rel = f"rejected/{chunk_name(job.chunk).replace('chunk', 'part')}.parquet"
    return write_part(job.out, rel, parquet_bytes(out), out.num_rows)


def parquet_bytes(table: pa.Table, **options: Any) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **options)
    return sink.getvalue().to_pybytes()
