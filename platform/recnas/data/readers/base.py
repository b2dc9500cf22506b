"""The reader interface: what a dataset's raw files look like and mean.

A reader does two things. :meth:`Reader.plan` looks at the input files and
says which are row files (with their column layout), what side tables to load
(the *context*, shipped to every ingest task) and which features come out.
:meth:`Reader.convert` turns one parsed block of rows into *staged* columns:

- ``label``: int8, 0 or 1;
- each dense feature: float32, already ``log(1 + max(x, 0))``-transformed;
- each sparse feature: uint64 raw values (null = missing);
- each multi-valued feature: list<uint64> raw values;
- ``_time``: int64 seconds, for the ``time`` protocol, when the data has one.

Raw values become table ids later, once the vocabulary of the train split is
known; dense counts (``FeatureDefs.counts``) are filled in then as well.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from recnas.data import storage
from recnas.data.fields import Column, Rows
from recnas.data.textio import (
    READ_ERRORS,
    Source,
    first_line,
    open_stream,
    strip_bom,
)

logger = logging.getLogger(__name__)

SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class RowFile:
    """A raw file holding one row per line.

    Attributes:
        source: Where the bytes are.
        columns: Its fields in order, with their kinds.
        delimiter: Field separator (one character).
        header: Whether the first line is a header line to skip.
        expected_header: Names the header must hold (case-insensitive), if any.
        quoted: Whether fields may be double-quoted.
        layout: Short name of the layout, for messages and ``meta.json``.
    """

    source: Source
    columns: tuple[Column, ...]
    delimiter: str
    header: bool = False
    quoted: bool = False
    layout: str = ""
    expected_header: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeatureDefs:
    """The features a reader produces, in the order models see them.

    Attributes:
        dense: Dense features read from the raw rows.
        counts: Dense features made on ingest: ``(name, sparse feature)``, the
            number of train rows holding the row's value of that feature.
        sparse: Sparse features: ``(name, multi_valued)``.
        has_time: Whether rows carry ``_time`` (else time order = file order).
    """

    dense: tuple[str, ...]
    sparse: tuple[tuple[str, bool], ...]
    counts: tuple[tuple[str, str], ...] = ()
    has_time: bool = False

    @property
    def dense_names(self) -> tuple[str, ...]:
        return self.dense + tuple(name for name, _ in self.counts)

    @property
    def sparse_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.sparse)

    @property
    def multi_names(self) -> tuple[str, ...]:
        return tuple(name for name, multi in self.sparse if multi)


@dataclass(frozen=True)
class SideReject:
    """A line of a side file (a table joined onto the rows) that was left out.

    Attributes:
        source: The file's name as in messages (``archive.zip!member`` in a zip).
        line: Line number in the file, 1-based.
        reason: One of :data:`recnas.data.fields.REASONS`.
        text: The line's text.
    """

    source: str
    line: int
    reason: str
    text: str


@dataclass
class Plan:
    """What a reader found in the inputs.

    Attributes:
        files: Row files in input order.
        features: The features that come out.
        context: Side tables every task needs (picklable).
        side_files: Other inputs that were read (``{uri, bytes}``).
        details: Reader facts for ``meta.json`` (variant, layouts, ...).
        side_rejects: Lines of side files that were left out, with the reason
            (to be counted and reported like rejected rows).
    """

    files: list[RowFile]
    features: FeatureDefs
    context: Any = None
    side_files: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    side_rejects: list[SideReject] = field(default_factory=list)


class Reader(ABC):
    """Base of the dataset readers."""

    name: str = ""

    @abstractmethod
    def plan(self, inputs: list[str]) -> Plan:
        """Inspects the inputs and lays out the work.

        Raises:
            ValueError: For a missing, unknown or inconsistent input file.
        """

    @abstractmethod
    def convert(self, rows: Rows, file: RowFile, context: Any) -> dict[str, Any]:
        """Staged columns (see the module docstring) for a block's rows.

        May reject more rows through ``rows.reject``; rejected rows may hold
        any value in the returned columns.
        """


def expand_inputs(inputs: list[str]) -> list[Source]:
    """Input URIs as sources: folders list their files, zips their members.

    Raises:
        ValueError: For a missing input, an empty folder, and a zip archive
            that is damaged or holds no files.
    """
    if not inputs:
        raise ValueError("no input files given: name at least one raw file or folder")
    sources: list[Source] = []
    for uri in inputs:
        if not storage.exists(uri):
            raise ValueError(f"input {uri!r} does not exist")
        if storage.is_dir(uri):
            kept = folder_files(uri, log=True)
            if not kept:
                raise ValueError(f"input folder {uri!r} holds no files")
            for f in kept:
                sources.extend(_file_sources(f))
        else:
            sources.extend(_file_sources(uri))
    return sources


def folder_files(uri: str, log: bool = False) -> list[str]:
    """The files of an input folder that ingest reads (system files left out)."""
    files = storage.list_files(uri)
    kept = [f for f in files if not _system_file(storage.basename(f))]
    if log:
        for f in sorted(set(files) - set(kept)):
            logger.info("not an input: %s (a system file)", f)
    return kept


def input_stamps(inputs: list[str]) -> list[dict[str, Any]]:
    """Every file ingest reads for ``inputs``, with its size and modification time.

    A folder stands for the files inside it (as :func:`expand_inputs` lists
    them), so rewriting one of them changes the stamps even when the folder's
    own modification time does not change. A zip archive is one file. A
    missing input is recorded as missing rather than refused (ingest refuses
    it, naming it).
    """
    stamps: list[dict[str, Any]] = []
    for uri in inputs:
        files = folder_files(uri) if storage.is_dir(uri) else [uri]
        for f in files:
            stamp = storage.stamp(f)
            stamps.append({"uri": f, **(stamp or {"missing": True})})
    return stamps


def input_fingerprint(inputs: list[str]) -> str:
    """A hash of :func:`input_stamps`: it changes when an input file changes."""
    record = json.dumps(input_stamps(inputs), sort_keys=True)
    return hashlib.sha256(record.encode()).hexdigest()


def _system_file(path: str) -> bool:
    """Files that operating systems leave next to data: .DS_Store, __MACOSX/..."""
    parts = path.split("/")
    return parts[-1].startswith(".") or "__MACOSX" in parts[:-1]


def _file_sources(uri: str) -> list[Source]:
    size = storage.size(uri)
    if not uri.endswith(".zip"):
        return [Source(uri, size)]
    fs, path = storage.resolve(uri)
    try:
        with (
            fs.open_input_file(path) as f,
            zipfile.ZipFile(_ZipInput(f)) as archive,
        ):
            members = [
                i.filename
                for i in archive.infolist()
                if not i.is_dir() and not _system_file(i.filename)
            ]
    except READ_ERRORS as err:
        raise ValueError(
            f"{storage.basename(uri)}: not a readable zip archive ({size} bytes: "
            f"{_describe(err)}); download it again or give the unpacked files"
        ) from err
    if not members:
        raise ValueError(f"{storage.basename(uri)}: the zip archive holds no files")
    return [Source(uri, size, member=m) for m in sorted(members)]


class _ZipInput:
    """A pyarrow file as :mod:`zipfile` expects it.

    A seek before the start raises OSError, as it does on a Python file
    (pyarrow raises ArrowInvalid, which zipfile does not catch).
    """

    def __init__(self, f: Any):
        self._f = f

    def seek(self, offset: int, whence: int = 0) -> int:
        try:
            return self._f.seek(offset, whence)
        except pa.ArrowInvalid as err:
            raise OSError(str(err)) from err

    def __getattr__(self, name: str) -> Any:
        return getattr(self._f, name)


def _describe(err: BaseException) -> str:
    text = str(err).strip() or "no details"
    return f"{type(err).__name__}: {text}"


def read_error(src: Source, err: BaseException) -> ValueError:
    """A user error for a source whose bytes cannot be read or decompressed."""
    where = src.name
    if src.member:
        where = f"member {src.member!r} of {storage.basename(src.uri)}"
    return ValueError(
        f"{where}: cannot read the file ({_describe(err)}); it is damaged, "
        "truncated or not in the format its name says: replace it"
    )


def read_source(src: Source) -> bytes:
    """All decompressed bytes of a (small) side file, less a leading UTF-8 BOM.

    Raises:
        ValueError: Naming the file (and zip member) when it cannot be read.
    """
    try:
        with open_stream(src) as stream:
            return strip_bom(stream.read())
    except READ_ERRORS as err:
        raise read_error(src, err) from err


def head_line(src: Source) -> bytes:
    """The first line of a source (see :func:`textio.first_line`), checked."""
    try:
        return first_line(src)
    except READ_ERRORS as err:
        raise read_error(src, err) from err


def first_data_line(src: Source, limit: int = 1 << 20) -> str:
    """The first line of a source that is not blank ('' if none in ``limit`` bytes).

    A leading UTF-8 byte-order mark is left out.

    Raises:
        ValueError: Naming the file (and zip member) when it cannot be read.
    """
    try:
        with open_stream(src) as stream:
            head = strip_bom(stream.read(limit))
    except READ_ERRORS as err:
        raise read_error(src, err) from err
    for line in head.split(b"\n"):
        text = line.rstrip(b"\r").decode("utf-8", "replace")
        if text.strip():
            return text
    return ""


def decode_text(src: Source, data: bytes, encoding: str = "utf-8") -> str:
    """Text of a side file, strictly decoded.

    Raises:
        ValueError: Naming the file and the line of the first undecodable byte.
    """
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        start = data.rfind(b"\n", 0, err.start) + 1
        end = data.find(b"\n", err.start)
        text = data[start : end if end >= 0 else len(data)].rstrip(b"\r")
        raise ValueError(
            f"{src.name} line {line}: not valid {encoding} text "
            f"({text.decode(encoding, 'replace')[:200]!r}); save the file as "
            f"{encoding}"
        ) from err


def text_lines(text: str) -> Iterator[tuple[int, str]]:
    """The non-blank lines of a text with their 1-based line numbers.

    Lines end with LF or CRLF; other characters that :meth:`str.splitlines`
    would break on stay inside the line.
    """
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            yield number, line


def line_error(src: Source, line: int, problem: str, text: str) -> ValueError:
    """A user error naming a side file's line, what is wrong and the line's text."""
    return ValueError(
        f"{src.name} line {line}: {problem}: {text[:200]!r}; fix or remove the line"
    )


def check_unique_names(dataset: str, src: Source, names: list[str]) -> None:
    """Refuses a header that names a column more than once.

    Raises:
        ValueError: Naming the dataset, the file, its line 1 and the names.
    """
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(
            f"{dataset}: {src.name} line 1: the header names {', '.join(repeated)} "
            "more than once"
        )


def source_record(src: Source) -> dict[str, Any]:
    record: dict[str, Any] = {"uri": src.uri, "bytes": src.size}
    if src.member:
        record["member"] = src.member
    return record


def label_array(values: pa.Array) -> np.ndarray:
    return values.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int8)


def days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of proleptic Gregorian dates (vectorized)."""
    y = year.astype(np.int64) - (month <= 2)
    era = np.floor_divide(y, 400)
    yoe = y - era * 400
    m = month.astype(np.int64)
    doy = (153 * (m + np.where(m > 2, -3, 9)) + 2) // 5 + day.astype(np.int64) - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146_097 + doe - 719_468


def valid_dates(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Whether (year, month, day) is a real calendar date."""
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    days_in = np.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    m = np.clip(month, 0, 12)
    limit = days_in[m] + ((m == 2) & leap)
    return (month >= 1) & (month <= 12) & (day >= 1) & (day <= limit)


def hour_and_weekday(seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hour of day (0-23) and weekday (0 = Monday) of Unix times, in UTC."""
    days = np.floor_divide(seconds, SECONDS_PER_DAY)
    hour = np.floor_divide(seconds - days * SECONDS_PER_DAY, 3600)
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday
    return hour.astype(np.uint64), weekday.astype(np.uint64)


def ids(values: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """A uint64 raw-value array; ``mask`` marks missing values."""
    return pa.array(values.astype(np.uint64), type=pa.uint64(), mask=mask)
