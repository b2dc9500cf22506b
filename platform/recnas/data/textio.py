"""Raw text input: sources, byte-range chunks, line blocks and strict parsing.

A *source* is one raw row file: a plain file (split into byte-range chunks), a
compressed file or a zip member (one chunk each, read as a stream). A chunk
owns every line that *starts* inside its byte range, so chunks cover each line
exactly once. A chunk is read as *blocks* of whole lines; a block is parsed
with pyarrow's CSV reader with an explicit all-string schema (no type
inference), empty lines kept, and rows with the wrong field count handed back
with their line number instead of being dropped.

A UTF-8 byte-order mark at the start of a source (as spreadsheet programs
write) is not part of its first line: :func:`first_line` and the first block
of a source leave it out. It holds no line end, so line numbers do not move.

Lines end with LF or CRLF (chunks and blocks are cut after an LF). pyarrow
would also end a line at a lone CR; :func:`recnas.data.fields.parse_rows`
takes such lines out before parsing and rejects them with their own line
number, so that no line is split in two.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from recnas.data import storage

_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}
_SEEK_PIECE = 1 << 16
# pyarrow's CSV reader works on internal blocks of this size (not on the whole
# data at once): small blocks stay in the CPU caches. Line numbers of invalid
# rows stay exact across blocks when the reader is serial.
PARSE_BLOCK = 1 << 20
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Source:
    """A raw row file.

    Attributes:
        uri: File location (local path or ``s3://``).
        size: Stored size in bytes.
        member: Member name when the rows are inside a zip archive.
    """

    uri: str
    size: int
    member: str | None = None

    @property
    def compression(self) -> str | None:
        if self.member is not None:
            return None
        for ext, codec in _COMPRESSION.items():
            if self.uri.endswith(ext):
                return codec
        return None

    @property
    def splittable(self) -> bool:
        return self.member is None and self.compression is None

    @property
    def name(self) -> str:
        """The name shown in rejected rows and messages."""
        base = storage.basename(self.uri)
        return f"{base}!{self.member}" if self.member else base

    @property
    def plain_name(self) -> str:
        """File name without the compression suffix (or the zip member's name)."""
        name = self.member.rsplit("/", 1)[-1] if self.member else self.name
        for ext in _COMPRESSION:
            if name.endswith(ext):
                return name[: -len(ext)]
        return name


@dataclass(frozen=True)
class Chunk:
    """A unit of ingest work: one byte range of a source (or a whole source).

    Attributes:
        index: Position of the chunk in the plan; output parts are named by it.
        source: Index of the source in the plan's list.
        start: First byte of the range.
        end: One past the last byte; ``None`` for a whole unsplittable source.
    """

    index: int
    source: int
    start: int = 0
    end: int | None = None


def make_chunks(sources: list[Source], chunk_bytes: int) -> list[Chunk]:
    """Cuts plain sources into byte ranges of ``chunk_bytes``; others stay whole."""
    chunks: list[Chunk] = []
    for i, src in enumerate(sources):
        if not src.splittable or src.size <= chunk_bytes:
            end = None if not src.splittable else src.size
            chunks.append(Chunk(len(chunks), i, 0, end))
            continue
        for start in range(0, src.size, chunk_bytes):
            end = min(src.size, start + chunk_bytes)
            chunks.append(Chunk(len(chunks), i, start, end))
    return chunks


def open_stream(src: Source) -> io.RawIOBase:
    """A binary stream over the decompressed bytes of a whole source."""
    fs, path = storage.resolve(src.uri)
    if src.member is not None:
        archive = zipfile.ZipFile(fs.open_input_file(path))
        return archive.open(src.member)
    return fs.open_input_stream(path, compression=src.compression)


def strip_bom(data: bytes) -> bytes:
    """The start of a source's data without a leading UTF-8 byte-order mark."""
    return data[len(BOM) :] if data[: len(BOM)] == BOM else data


def first_line(src: Source, limit: int = 1 << 20) -> bytes:
    """The first line of a source without its line ending ('' for an empty file).

    A leading UTF-8 byte-order mark is left out.
    """
    with open_stream(src) as stream:
        head = strip_bom(stream.read(limit))
    line = head.split(b"\n", 1)[0]
    return line.rstrip(b"\r")


def _next_line_start(f, pos: int, size: int) -> int:
    """Offset just after the first LF at or after ``pos``; ``size`` if none."""
    f.seek(pos)
    while pos < size:
        piece = f.read(_SEEK_PIECE)
        if not piece:
            break
        hit = piece.find(b"\n")
        if hit >= 0:
            return pos + hit + 1
        pos += len(piece)
    return size


class InputReadError(ValueError):
    """A source whose bytes cannot be read (a damaged or truncated file).

    Attributes:
        source: The source's name.
        offset: Decompressed bytes read intact before the failure.
        cause: What the decompressor or file system said.
    """

    def __init__(self, source: str, offset: int, cause: BaseException):
        self.source, self.offset = source, offset
        self.cause = f"{type(cause).__name__}: {cause}"
        super().__init__(
            f"{source}: cannot read past byte {offset:,} of its data ({self.cause}); "
            "the file is damaged or truncated: replace it"
        )


# What reading a broken file can raise: zip and gzip damage, a missing zip
# member, an encrypted or unsupported zip, a truncated stream, I/O failures.
READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    EOFError,
    KeyError,
    NotImplementedError,
    RuntimeError,
    OSError,
    pa.ArrowException,
)


def iter_blocks(
    src: Source, chunk: Chunk, block_bytes: int
) -> Iterator[bytes | memoryview]:
    """The chunk's lines, as blocks of whole lines of about ``block_bytes``.

    A UTF-8 byte-order mark at the start of the source is left out.

    Raises:
        InputReadError: When the bytes cannot be read or decompressed.
    """
    if src.splittable:
        yield from _range_blocks(src, chunk, block_bytes)
        return
    offset = 0
    try:
        stream = open_stream(src)
    except READ_ERRORS as err:
        raise InputReadError(src.name, 0, err) from err
    with stream:
        carry = b""
        at_start = True
        while True:
            try:
                data = stream.read(block_bytes)
            except READ_ERRORS as err:
                raise InputReadError(src.name, offset, err) from err
            if not data:
                break
            offset += len(data)
            buf = carry + data if carry else data
            if at_start:
                if len(buf) < len(BOM) and BOM.startswith(buf):
                    carry = buf  # too short to tell yet
                    continue
                buf, at_start = strip_bom(buf), False
            cut = buf.rfind(b"\n")
            if cut < 0:
                carry = buf
                continue
            yield buf[: cut + 1]
            carry = buf[cut + 1 :]
        if carry:
            yield carry


def _range_blocks(
    src: Source, chunk: Chunk, block_bytes: int
) -> Iterator[bytes | memoryview]:
    fs, path = storage.resolve(src.uri)
    size = src.size
    end = size if chunk.end is None else chunk.end
    local = not storage.is_s3(src.uri)
    # A local file is memory-mapped: blocks are views of it, never copies.
    with pa.memory_map(path) if local else fs.open_input_file(path) as f:
        if chunk.start == 0:
            head = bytes(_read(f, min(size, len(BOM)), 0, local))
            begin = len(BOM) if head == BOM else 0
        else:
            begin = _next_line_start(f, chunk.start - 1, size)
        stop = size if end >= size else _next_line_start(f, end - 1, size)
        pos = begin
        while pos < stop:
            # A short tail (the rest of the chunk's last line) joins the block.
            want = stop - pos if stop - pos <= block_bytes * 5 // 4 else block_bytes
            data = _read(f, want, pos, local)
            if pos + want < stop:
                cut = _last_newline(data)
                if cut < 0:  # one line longer than a block: take it whole
                    cut = _next_line_start(f, pos + want, stop) - pos - 1
                    data = _read(f, cut + 1, pos, local)
                data = data[: cut + 1]
            yield data
            pos += len(data)


def _read(f, size: int, pos: int, mapped: bool) -> memoryview:
    if mapped:
        f.seek(pos)
        return memoryview(f.read_buffer(size))
    return memoryview(f.read_at(size, pos))


def _last_newline(data: memoryview) -> int:
    """Offset of the last LF in ``data``, -1 if none (looks at the end first)."""
    end, step = len(data), _SEEK_PIECE
    while end > 0:
        start = max(0, end - step)
        hit = bytes(data[start:end]).rfind(b"\n")
        if hit >= 0:
            return start + hit
        end, step = start, step * 4
    return -1


@dataclass
class ParsedBlock:
    """A block split into fields.

    Attributes:
        table: Rows with the right field count, all columns strings.
        lines: Line index (0-based, within the block) of each row of ``table``.
        bad_lines: Line indexes of rows with the wrong field count.
        bad_texts: Their text.
        num_lines: Lines in the block.
    """

    table: pa.Table
    lines: np.ndarray
    bad_lines: np.ndarray
    bad_texts: list[str]
    num_lines: int


def parse_block(
    data: bytes | memoryview, names: list[str], delimiter: str, quoted: bool = False
) -> ParsedBlock:
    """Parses a block of lines into string columns, keeping every line accounted.

    Empty lines become rows of empty fields (callers reject them as blank);
    rows with more or fewer fields than ``names`` come back in ``bad_lines``.
    """
    convert = pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        check_utf8=False,
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    return read_block(data, names, delimiter, quoted, convert)


def read_block(
    data: bytes | memoryview,
    names: list[str],
    delimiter: str,
    quoted: bool,
    convert: pacsv.ConvertOptions,
    *,
    retry_straddling_only: bool = False,
) -> ParsedBlock:
    """pyarrow's CSV reader over one block, every line accounted for.

    Lines with more or fewer fields than ``names`` come back in ``bad_lines``.
    A line longer than a reader block is read again with a single block; with
    ``retry_straddling_only`` any other ``ArrowInvalid`` (a value ``convert``
    rejects) is raised to the caller instead.
    """
    bad: list[tuple[int, str]] = []

    def on_invalid(row) -> str:
        bad.append((row.number - 1, row.text))
        return "skip"

    def read(block_size: int) -> pa.Table:
        bad.clear()
        return pacsv.read_csv(
            pa.py_buffer(data),
            read_options=pacsv.ReadOptions(
                column_names=names, use_threads=False, block_size=block_size
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter,
                quote_char='"' if quoted else False,
                ignore_empty_lines=False,
                invalid_row_handler=on_invalid,
            ),
            convert_options=convert,
        )

    try:
        table = read(PARSE_BLOCK)
    except pa.ArrowInvalid as err:
        if retry_straddling_only and "straddl" not in str(err):
            raise
        table = read(max(len(data), 1 << 16))
    num_lines = table.num_rows + len(bad)
    bad_lines = np.array([b[0] for b in bad], dtype=np.int64)
    if len(bad):
        keep = np.ones(num_lines, dtype=bool)
        keep[bad_lines] = False
        lines = np.flatnonzero(keep).astype(np.int64)
    else:
        lines = np.arange(num_lines, dtype=np.int64)
    return ParsedBlock(table, lines, bad_lines, [b[1] for b in bad], num_lines)


def line_texts(data: bytes | memoryview, lines: np.ndarray) -> list[str]:
    """The text of some lines of a block (0-based), without their line ends."""
    if len(lines) == 0:
        return []
    raw = np.frombuffer(data, dtype=np.uint8)
    lf = np.flatnonzero(raw == 10)
    starts = np.concatenate([[0], lf + 1])
    ends = np.append(lf, len(raw))
    out = []
    for line in np.asarray(lines).tolist():
        text = bytes(raw[starts[line] : ends[line]])
        out.append(text.removesuffix(b"\r").decode("utf-8", "replace"))
    return out
