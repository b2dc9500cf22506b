"""Typed, checked parsing of raw fields, one block of rows at a time.

Every raw column has a *kind* that says how its text becomes a value and when
the text is bad:

| kind    | text                     | value                       | bad row reason |
| ------- | ------------------------ | --------------------------- | -------------- |
| label01 | ``0`` or ``1``           | int8                        | label          |
| count   | integer >= 0             | int64 (a label is ``> 0``)  | label          |
| rating  | a finite decimal number  | float64                     | label          |
| time    | integer                  | int64                       | time_value     |
| number  | a finite decimal number  | float64, null when empty    | dense_value    |
| int     | decimal id, int64 range  | uint64 (two's complement)   | sparse_id      |
| uint    | decimal id, 0..2**64-1   | uint64, null when empty     | sparse_id      |
| hex     | exactly 8 hex digits     | uint64 dictionary, or null  | sparse_id      |
| str     | any text                 | uint64 hash dictionary      | (never bad)    |
| text    | any text                 | string, kept for the reader | (never bad)    |
| skip    | anything                 | dropped                     | (never bad)    |

Ids of the ``str`` kind come back dictionary-encoded (``dictionary<int32,
uint64>``): each distinct text is hashed once. Ids of the ``hex`` kind come
back dictionary-encoded too, unless the caller asks for them plain (decoded
row by row, which is cheaper when nothing needs the distinct values).

The rule for the text of a field, the same whichever way a block is parsed:

- fields of the numeric kinds (``label01``, ``count``, ``rating``, ``time``,
  ``number``, ``int``, ``uint``) ignore spaces and tabs around the value;
  a field that holds nothing else is empty;
- an integer is decimal digits with an optional sign (``+`` or ``-``) and any
  number of leading zeros: ``01``, `` 1`` and ``+1`` are the label 1, ``-0``
  is 0; it must lie in the kind's range (int64; ``uint``: 0..2**64-1;
  ``label01``: 0 or 1; ``count``: >= 0). Hexadecimal (``0x1f``) is not an
  integer;
- a decimal number is ``[+-]digits[.digits][e[+-]digits]`` (``5``, ``+5``,
  ``.5``, ``5.``, ``1e3``) and must be finite;
- ids of the ``hex``, ``str`` and ``text`` kinds are taken as they are.

A block is first parsed with these types straight from pyarrow's CSV reader
(the fast path, in internal blocks of ``PARSE_BLOCK`` bytes: one reader block
per call would be more than twice as slow). pyarrow's conversion accepts a
subset of what the rule accepts, with the same values, except hexadecimal
integers: a block holding ``0x`` or ``0X`` skips the fast path when it has an
integer column. A block with a value pyarrow cannot convert, or with a row to
reject, is parsed again as strings and checked column by column against the
rule (the strict path), so one bad value rejects one row, not the block.

Lines end with LF or CRLF. A carriage return anywhere else in a line (which
pyarrow would take for a line end) rejects that line as ``carriage_return``,
with its own line number.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recnas.data.textio import (
    ParsedBlock,
    line_texts,
    parse_block,
    read_block,
)

KINDS = (
    "label01",
    "count",
    "rating",
    "time",
    "number",
    "int",
    "uint",
    "hex",
    "str",
    "text",
    "skip",
)
# Reject reasons, in the order they are checked; code = position + 1.
REASONS = (
    "blank_line",
    "field_count",
    "header",
    "label",
    "dense_value",
    "sparse_id",
    "time_value",
    "carriage_return",
)
_INT_KINDS = frozenset({"label01", "count", "time", "int", "uint"})
_TRIM = " \t"
_INT_RE = r"^[+-]?[0-9]+$"
_FAST_TYPES = {
    "label01": pa.int8(),
    "count": pa.int64(),
    "rating": pa.float64(),
    "time": pa.int64(),
    "number": pa.float64(),
    "int": pa.int64(),
    "uint": pa.uint64(),
    # Eight bytes each: a field of another length (other than empty) fails the
    # conversion and sends the block to the strict path.
    "hex": pa.binary(8),
    "str": pa.dictionary(pa.int32(), pa.string()),
}
_NUMBER_RE = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_HEX_LUT = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX_LUT[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX_LUT[_c] = 10 + _i
# Two hex characters read as one little-endian uint16 -> their byte; 256 = bad.
_PAIR = np.arange(1 << 16)
_HEX_PAIRS = np.where(
    (_HEX_LUT[_PAIR & 0xFF] < 16) & (_HEX_LUT[_PAIR >> 8] < 16),
    _HEX_LUT[_PAIR & 0xFF].astype(np.uint16) * 16 + _HEX_LUT[_PAIR >> 8],
    256,
).astype(np.uint16)
del _PAIR


def reason_code(reason: str) -> int:
    return REASONS.index(reason) + 1


@dataclass(frozen=True)
class Column:
    """One raw column: its name in the file and its kind."""

    name: str
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise AssertionError(f"column {self.name}: unknown kind {self.kind}")


@dataclass
class Rows:
    """The parsed rows of a block that had the right field count.

    Attributes:
        values: Column name -> value array (see the module table), one entry
            per row, nulls where the field was empty.
        reasons: Reject reason code per row, 0 for a good row.
        lines: Line index (within the block) of each row.
        parsed: The block as parsed (for the text of rejected rows).
        strings: Whether ``parsed.table`` holds the raw strings.
    """

    values: dict[str, pa.Array]
    reasons: np.ndarray
    lines: np.ndarray
    parsed: ParsedBlock
    strings: bool

    def reject(self, mask: np.ndarray, reason: str) -> None:
        """Marks rows under ``mask`` with ``reason`` unless already rejected."""
        self.reasons[mask & (self.reasons == 0)] = reason_code(reason)


def _arrays(table: pa.Table) -> dict[str, pa.Array]:
    return {n: table.column(n).combine_chunks() for n in table.column_names}


def parse_rows(
    data: bytes | memoryview,
    columns: list[Column],
    delimiter: str,
    quoted: bool = False,
    plain: Collection[str] = (),
    strict: bool = False,
) -> Rows:
    """Parses and checks a block of lines against its column kinds.

    Args:
        data: Whole lines.
        columns: The raw columns in order.
        delimiter: Field separator.
        quoted: Whether fields may be double-quoted.
        plain: Names of ``hex`` columns to return as plain uint64 (with nulls)
            instead of dictionary-encoded.
        strict: Skip the fast path (the result is the same, only slower).
    """
    stray = _stray_carriage_returns(data)
    if stray is not None:
        data = stray.data
    if data and not strict and _fast_allowed(data, columns):
        try:
            parsed = _parse_fast(data, columns, delimiter, quoted)
            reasons = np.zeros(parsed.table.num_rows, dtype=np.int8)
            rows = Rows(_arrays(parsed.table), reasons, parsed.lines, parsed, False)
            _check_fast(rows, columns, plain)
            if not rows.reasons.any():
                return _restore_lines(rows, stray)
        except pa.ArrowInvalid:
            pass
    # Some value is bad: parse as strings so that each row is judged alone and
    # rejected rows keep their text.
    names = [c.name for c in columns]
    if data:
        parsed = parse_block(data, names, delimiter, quoted)
    else:  # every line of the block had a stray carriage return
        table = pa.table({n: pa.array([], pa.string()) for n in names})
        empty = np.zeros(0, dtype=np.int64)
        parsed = ParsedBlock(table, empty, empty, [], 0)
    reasons = np.zeros(parsed.table.num_rows, dtype=np.int8)
    rows = Rows(_arrays(parsed.table), reasons, parsed.lines, parsed, strings=True)
    _check_strings(rows, columns, plain)
    return _restore_lines(rows, stray)


def _fast_allowed(data: bytes | memoryview, columns: list[Column]) -> bool:
    """Whether pyarrow's conversion may judge the block (see the module rule)."""
    if not any(c.kind in _INT_KINDS for c in columns):
        return True
    return not (contains(data, b"0x") or contains(data, b"0X"))


def _libc(name: str, needle_type: Any) -> Any:
    try:
        fn = getattr(ctypes.CDLL(ctypes.util.find_library("c")), name)
    except (OSError, AttributeError, TypeError):
        return None
    fn.restype = ctypes.c_void_p
    fn.argtypes = [ctypes.c_void_p, needle_type, ctypes.c_size_t]
    return fn


_MEMCHR = _libc("memchr", ctypes.c_int)


def contains(data: bytes | memoryview, needle: bytes) -> bool:
    """Whether ``needle`` occurs in ``data``, without a copy.

    C's ``memchr`` finds the needle's last byte at memory speed; only blocks
    holding it are searched for the whole needle.
    """
    buf = pa.py_buffer(data)
    if not buf.size:
        return False
    if _MEMCHR is not None:
        if _MEMCHR(buf.address, needle[-1], buf.size) is None:
            return False
        if len(needle) == 1:
            return True
    return re.search(re.escape(needle), data) is not None


@dataclass
class _Stray:
    """A block with its lines holding a stray carriage return taken out."""

    data: bytes
    kept: np.ndarray  # block line index of each line left in ``data``
    lines: np.ndarray  # block line index of each line taken out
    texts: list[str]
    num_lines: int


def _stray_carriage_returns(data: bytes | memoryview) -> _Stray | None:
    """Takes out the lines with a CR that neither precedes LF nor ends the block."""
    if not contains(data, b"\r"):
        return None
    raw = np.frombuffer(data, dtype=np.uint8)
    cr = np.flatnonzero(raw[:-1] == 13)
    lone = cr[raw[cr + 1] != 10]
    if not len(lone):
        return None
    lf = np.flatnonzero(raw == 10)
    num_lines = len(lf) + int(raw[-1] != 10)
    starts = np.concatenate([[0], lf + 1])[:num_lines]
    ends = np.append(lf + 1, len(raw))[:num_lines]
    taken = np.unique(np.searchsorted(lf, lone))
    keep = np.ones(len(raw), dtype=bool)
    for line in taken.tolist():
        keep[starts[line] : ends[line]] = False
    texts = line_texts(data, taken)
    kept = np.setdiff1d(np.arange(num_lines, dtype=np.int64), taken)
    return _Stray(raw[keep].tobytes(), kept, taken, texts, num_lines)


def _restore_lines(rows: Rows, stray: _Stray | None) -> Rows:
    """Line indexes of the parsed lines in the original block, lines taken out
    reported as rows with the wrong field count (see :func:`fields_reason`)."""
    if stray is None:
        return rows
    old = rows.parsed
    bad = np.concatenate([stray.kept[old.bad_lines], stray.lines])
    texts = [*old.bad_texts, *stray.texts]
    order = np.argsort(bad, kind="stable")
    lines = stray.kept[old.lines]
    rows.parsed = ParsedBlock(
        old.table, lines, bad[order], [texts[i] for i in order], stray.num_lines
    )
    rows.lines = lines
    return rows


def _parse_fast(
    data: bytes | memoryview, columns: list[Column], delimiter: str, quoted: bool
) -> ParsedBlock:
    convert = pacsv.ConvertOptions(
        column_types={c.name: _FAST_TYPES.get(c.kind, pa.string()) for c in columns},
        include_columns=[c.name for c in columns if c.kind != "skip"],
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        check_utf8=False,
    )
    # A bad value raises: the caller then reads the block as strings.
    names = [c.name for c in columns]
    return read_block(
        data, names, delimiter, quoted, convert, retry_straddling_only=True
    )


def _all_null(values: dict[str, pa.Array], n: int) -> np.ndarray:
    blank = np.ones(n, dtype=bool)
    for arr in values.values():
        if arr.null_count == 0:  # no row is blank
            return np.zeros(n, dtype=bool)
        blank &= null_mask(arr)
    return blank


def null_mask(arr: pa.Array) -> np.ndarray:
    """Null mask of an array as numpy booleans."""
    if arr.null_count == 0:
        return np.zeros(len(arr), dtype=bool)
    if arr.buffers()[0] is not None and not pa.types.is_null(arr.type):
        return ~_validity(arr)
    return arr.is_null().to_numpy(zero_copy_only=False)


_NUMPY_TYPES = {
    pa.type_for_alias(name): np.dtype(name)
    for name in ("int8", "int16", "int32", "int64", "uint32", "uint64")
} | {pa.float32(): np.dtype(np.float32), pa.float64(): np.dtype(np.float64)}


def _validity(arr: pa.Array) -> np.ndarray:
    """Whether each row of an array with a validity bitmap is not null."""
    bits = np.frombuffer(arr.buffers()[0], dtype=np.uint8)
    unpacked = np.unpackbits(bits, count=arr.offset + len(arr), bitorder="little")
    return unpacked[arr.offset :].view(bool)


def fixed_values(arr: pa.Array) -> np.ndarray:
    """The values of a fixed-width numeric array as numpy, without a copy.

    Slots of null rows hold arbitrary values: mask them.
    """
    dtype = _NUMPY_TYPES[arr.type]
    data = arr.buffers()[1]
    if data is None or len(arr) == 0:
        return np.zeros(len(arr), dtype=dtype)
    return np.frombuffer(
        data, dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize
    )


def _check_fast(rows: Rows, columns: list[Column], plain: Collection[str]) -> None:
    n = len(rows.reasons)
    rows.reject(_all_null(rows.values, n), "blank_line")
    for col in columns:
        arr = rows.values.get(col.name)
        if arr is None:
            continue
        # Slots of null rows hold any value: they are masked, not filled.
        if col.kind == "label01":
            v = fixed_values(arr)
            rows.reject(((v != 0) & (v != 1)) | null_mask(arr), "label")
            rows.values[col.name] = pa.array(np.clip(v, 0, 1).astype(np.int8))
        elif col.kind == "count":
            rows.reject((fixed_values(arr) < 0) | null_mask(arr), "label")
        elif col.kind == "rating":
            rows.reject(~np.isfinite(fixed_values(arr)) | null_mask(arr), "label")
        elif col.kind == "time":
            rows.reject(null_mask(arr), "time_value")
        elif col.kind == "number":
            bad = ~np.isfinite(fixed_values(arr))
            if bad.any():
                rows.reject(bad & ~null_mask(arr), "dense_value")
        elif col.kind == "int":
            rows.values[col.name] = _as_uint64(arr)
        elif col.kind == "hex":
            rows.values[col.name] = _hex(rows, arr, col.name not in plain)
        elif col.kind == "str":
            rows.values[col.name] = hash_strings(arr)


def _check_strings(rows: Rows, columns: list[Column], plain: Collection[str]) -> None:
    n = len(rows.reasons)
    empty = {name: _empty(arr) for name, arr in rows.values.items()}
    blank = np.ones(n, dtype=bool)
    for col in columns:
        blank &= empty[col.name]
    rows.reject(blank, "blank_line")
    _check_header(rows, columns)
    for col in columns:
        arr, is_empty = rows.values[col.name], empty[col.name]
        if col.kind == "skip":
            del rows.values[col.name]
        elif col.kind == "label01":
            ok, values = _integers(_trim(arr), 0, 2, pa.int8())
            rows.reject(~ok, "label")
            rows.values[col.name] = values.fill_null(0)
        elif col.kind == "count":
            ok, values = _integers(_trim(arr), 0, 2**63, pa.int64())
            rows.reject(~ok, "label")
            rows.values[col.name] = values.fill_null(0)
        elif col.kind == "rating":
            ok = _match(arr := _trim(arr), _NUMBER_RE)
            values = pc.if_else(pa.array(ok), arr, "nan").cast(pa.float64())
            ok &= np.isfinite(values.to_numpy(zero_copy_only=False))
            rows.reject(~ok, "label")
            rows.values[col.name] = values
        elif col.kind == "time":
            ok, values = _integers(_trim(arr), -(2**63), 2**63, pa.int64())
            rows.reject(~ok, "time_value")
            rows.values[col.name] = values.fill_null(0)
        elif col.kind == "number":
            rows.values[col.name] = _numbers(rows, arr)
        elif col.kind == "int":
            arr = _trim(arr)
            ok, values = _integers(arr, -(2**63), 2**63, pa.int64())
            rows.reject(~ok & ~_empty(arr), "sparse_id")
            rows.values[col.name] = _as_uint64(values)
        elif col.kind == "uint":
            arr = _trim(arr)
            ok, values = _integers(arr, 0, 2**64, pa.uint64())
            rows.reject(~ok & ~_empty(arr), "sparse_id")
            rows.values[col.name] = values
        elif col.kind == "hex":
            rows.values[col.name] = _hex(rows, arr, col.name not in plain)
        elif col.kind == "str":
            rows.values[col.name] = hash_strings(_null_empty(arr, is_empty))
        elif col.kind == "text":
            rows.values[col.name] = _null_empty(arr, is_empty)


def _check_header(rows: Rows, columns: list[Column]) -> None:
    """Rows whose label field holds the label column's own name are headers."""
    for col in columns:
        if col.kind in ("label01", "count"):
            arr = rows.values[col.name]
            hit = pc.equal(pc.utf8_lower(arr), col.name.lower())
            rows.reject(hit.to_numpy(zero_copy_only=False), "header")
            return


def _empty(arr: pa.Array) -> np.ndarray:
    return (pc.binary_length(arr).to_numpy(zero_copy_only=False) == 0) | null_mask(arr)


def _null_empty(arr: pa.Array, is_empty: np.ndarray) -> pa.Array:
    if not is_empty.any():
        return arr
    return pc.if_else(pa.array(is_empty), pa.scalar(None, arr.type), arr)


def _trim(arr: pa.Array) -> pa.Array:
    """Spaces and tabs around the values taken off (numeric kinds only)."""
    return pc.ascii_trim(arr, _TRIM)


def _integers(
    text: pa.Array, low: int, high: int, to: pa.DataType
) -> tuple[np.ndarray, pa.Array]:
    """Integers of the module rule in ``[low, high)`` from trimmed ``text``:
    (ok, values, null if not)."""
    ok = _match(text, _INT_RE)
    # No '+', no leading zeros, '-0' as '0': the length then bounds the value.
    text = pc.replace_substring_regex(text, r"^\+", "")
    text = pc.replace_substring_regex(text, r"^(-?)0+([0-9])", r"\1\2")
    text = pc.replace_substring_regex(text, r"^-0$", "0")
    null = pa.scalar(None, pa.string())
    length = pc.binary_length(text).to_numpy(zero_copy_only=False)
    long = ok & (length >= 19)
    short = ok & ~long
    if short.any():
        v = pc.if_else(pa.array(short), text, null).cast(pa.int64())
        v = v.fill_null(0).to_numpy(zero_copy_only=False)
        # Short values lie within +-10**18: bounds clipped there stay exact.
        lo, hi = max(low, -(10**18)), min(high, 10**18)
        ok &= ~short | ((v >= lo) & (v < hi))
    for i in np.flatnonzero(long):  # rare: checked in Python
        ok[i] = low <= int(text[int(i)].as_py()) < high
    return ok, pc.if_else(pa.array(ok), text, null).cast(to)


def _match(arr: pa.Array, pattern: str) -> np.ndarray:
    hit = pc.match_substring_regex(arr, pattern).fill_null(False)
    return hit.to_numpy(zero_copy_only=False)


def _as_uint64(arr: pa.Array) -> pa.Array:
    """int64 values as uint64 with the same bits (negative ids stay distinct)."""
    values = arr.fill_null(0).to_numpy(zero_copy_only=False).view(np.uint64)
    return pa.array(values, type=pa.uint64(), mask=null_mask(arr))


def _numbers(rows: Rows, arr: pa.Array) -> pa.Array:
    arr = _trim(arr)
    is_empty = _empty(arr)
    ok = _match(arr, _NUMBER_RE)
    rows.reject(~ok & ~is_empty, "dense_value")
    values = pc.if_else(pa.array(ok), arr, pa.scalar(None, pa.string()))
    numbers = values.cast(pa.float64())
    finite = np.isfinite(numbers.fill_null(0.0).to_numpy())
    rows.reject(~finite, "dense_value")
    return numbers


def _hex(rows: Rows, arr: pa.Array, dictionary: bool) -> pa.Array:
    """Hex ids, as a dictionary array or plain; rows with a bad id are rejected."""
    if pa.types.is_fixed_size_binary(arr.type):
        return _hex_words(rows, arr, dictionary)
    if dictionary:
        return _hex_checked(rows, arr)
    arr = plain(arr).cast(pa.string())
    fast = _hex_fast(arr)
    if fast is not None:
        return fast
    values, missing, bad = hex_ids(arr)
    rows.reject(bad, "sparse_id")
    return pa.array(values, type=pa.uint64(), mask=missing | bad)


def _hex_words(rows: Rows, arr: pa.Array, dictionary: bool) -> pa.Array:
    """Hex ids parsed as 8-byte fields: each field's bytes read as one uint64
    word, dictionary-encoded as such (cheaper than hashing strings) and only
    the dictionary decoded; or every row decoded when ``dictionary`` is off."""
    n = len(arr)
    words = pa.Array.from_buffers(
        pa.uint64(), n, arr.buffers()[:2], null_count=arr.null_count, offset=arr.offset
    )
    if not dictionary:
        values, bad = _decode_words(fixed_values(words))
        missing = null_mask(arr)
        bad &= ~missing
        if bad.any():
            rows.reject(bad, "sparse_id")
        return pa.array(values, type=pa.uint64(), mask=missing | bad)
    encoded = pc.dictionary_encode(words)
    values, bad = _decode_words(fixed_values(encoded.dictionary))
    entries = pa.array(values, pa.uint64())
    if not bad.any():
        return pa.DictionaryArray.from_arrays(encoded.indices, entries)
    codes, row_null = _codes(encoded)
    row_bad = bad[codes] & ~row_null
    rows.reject(row_bad, "sparse_id")
    indices = pa.array(codes, type=pa.int32(), mask=row_null | row_bad)
    return pa.DictionaryArray.from_arrays(indices, entries)


def _decode_words(words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values of uint64 words holding 8 hex characters, and which are not hex."""
    return _decode_hex(words.view(np.uint8))


def _decode_hex(chars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids of 8 hex digits laid back to back in ``chars`` (uint8).

    Returns:
        ``(values uint64, bad)``: bad for an id holding a character that is
        not a hex digit (its value is 0).
    """
    pairs = np.take(_HEX_PAIRS, chars.view("<u2")).reshape(-1, 4)
    values = pairs.astype(np.uint8).view(">u4").ravel().astype(np.uint64)
    if pairs.max(initial=0) <= 255:
        return values, np.zeros(len(values), dtype=bool)
    bad = (pairs > 255).any(axis=1)
    values[bad] = 0
    return values, bad


def _string_offsets(arr: pa.StringArray) -> np.ndarray:
    """The n + 1 value offsets of a string array, as int32."""
    return np.frombuffer(
        arr.buffers()[1], dtype=np.int32, count=len(arr) + 1, offset=4 * arr.offset
    )


def _hex_fast(arr: pa.StringArray) -> pa.Array | None:
    """Hex ids of a column whose every value is empty, null or 8 hex digits.

    The common case, decoded in fewer passes than :func:`hex_ids`; None for
    any other column.
    """
    n = len(arr)
    if n == 0 or arr.buffers()[2] is None:
        return None
    offsets = _string_offsets(arr)
    full = np.diff(offsets) == 8
    if arr.null_count:
        full &= _validity(arr)
    count = int(np.count_nonzero(full))
    first, last = int(offsets[0]), int(offsets[-1])
    # The rows that are not 8 characters long must all be empty (or null).
    if count == 0 or last - first != 8 * count:
        return None
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[first:last]
    decoded, bad = _decode_hex(data)
    if bad.any():
        return None
    if count == n:
        return pa.array(decoded)
    values = np.zeros(n, dtype=np.uint64)
    values[full] = decoded
    validity = pa.py_buffer(np.packbits(full, bitorder="little"))
    return pa.Array.from_buffers(
        pa.uint64(), n, [validity, pa.py_buffer(values)], null_count=n - count
    )


def _hex_checked(rows: Rows, arr: pa.Array) -> pa.DictionaryArray:
    """Hex ids as a dictionary array; rows with a malformed id are rejected."""
    encoded = arr if pa.types.is_dictionary(arr.type) else pc.dictionary_encode(arr)
    values, missing, bad = hex_ids(encoded.dictionary)
    if not (missing.any() or bad.any()):  # the rows' nulls are the missing ids
        indices = encoded.indices.cast(pa.int32())
        return pa.DictionaryArray.from_arrays(indices, pa.array(values, pa.uint64()))
    codes, row_null = _codes(encoded)
    row_bad = bad[codes] & ~row_null if len(values) else np.zeros(len(arr), bool)
    rows.reject(row_bad, "sparse_id")
    row_missing = row_null | (missing[codes] if len(values) else True)
    indices = pa.array(codes, type=pa.int32(), mask=row_missing | row_bad)
    return pa.DictionaryArray.from_arrays(indices, pa.array(values, pa.uint64()))


def _codes(encoded: pa.DictionaryArray) -> tuple[np.ndarray, np.ndarray]:
    """Dictionary indices as int32 (0 where null) and the null mask."""
    indices = encoded.indices
    null = null_mask(indices)
    codes = indices.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int32)
    return codes, null


def hex_ids(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Decodes 8-hex-digit ids.

    Returns:
        ``(values uint64, missing, bad)``: missing for null or empty text, bad
        for any other text that is not exactly 8 hex digits.
    """
    arr = arr.cast(pa.string())
    n = len(arr)
    if n == 0:
        empty = np.zeros(0, dtype=bool)
        return np.zeros(0, dtype=np.uint64), empty, empty
    offsets = _string_offsets(arr)
    data_buf = arr.buffers()[2]
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else None
    lengths = np.diff(offsets)
    missing = lengths == 0
    full = lengths == 8
    values = np.zeros(n, dtype=np.uint64)
    bad = ~missing & ~full
    if data is not None and full.any():
        first, count = int(offsets[0]), int(full.sum())
        if not bad.any() and int(offsets[-1]) - first == 8 * count:
            # Every present id has 8 characters: they lie back to back.
            chars = data[first : first + 8 * count]
        else:
            starts = offsets[:-1][full].astype(np.int64)
            chars = data[starts[:, None] + np.arange(8)].ravel()
        values[full], bad[full] = _decode_hex(chars)
    if arr.null_count:
        missing |= null_mask(arr)
    values[bad] = 0
    return values, missing, bad


def stable_hash(text: str) -> int:
    """A 64-bit hash of a string that is the same in every process and run."""
    return int.from_bytes(
        hashlib.blake2b(text.encode(), digest_size=8).digest(), "little"
    )


def hash_strings(arr: pa.Array) -> pa.DictionaryArray:
    """Stable 64-bit hashes of strings, dictionary-encoded; '' and null are null."""
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr.cast(pa.string()))
    words = arr.dictionary.cast(pa.string()).to_pylist()
    hashes = np.array([stable_hash(w) if w else 0 for w in words], dtype=np.uint64)
    is_empty = np.array([not w for w in words], dtype=bool)
    codes, null = _codes(arr)
    if len(words):
        null |= is_empty[codes]
    indices = pa.array(codes, type=pa.int32(), mask=null)
    return pa.DictionaryArray.from_arrays(indices, pa.array(hashes, pa.uint64()))


def plain(arr: pa.Array) -> pa.Array:
    """A dictionary array decoded to its values (other arrays unchanged)."""
    if pa.types.is_dictionary(arr.type):
        return arr.dictionary.take(arr.indices)
    return arr


def as_dictionary(arr: pa.Array) -> pa.DictionaryArray:
    """Raw id values as ``dictionary<int32, uint64>`` (nulls stay null)."""
    if not pa.types.is_dictionary(arr.type):
        arr = pc.dictionary_encode(arr)
    if arr.type.index_type != pa.int32() or arr.type.value_type != pa.uint64():
        arr = pa.DictionaryArray.from_arrays(
            arr.indices.cast(pa.int32()), arr.dictionary.cast(pa.uint64())
        )
    return arr


def fields_reason(text: str) -> str:
    """Reason for a line the parser could not split into the right fields.

    Blank if it holds nothing; ``carriage_return`` if it holds a stray CR
    (only such lines keep one: pyarrow ends a line at a CR).
    """
    if "\r" in text:
        return "carriage_return"
    return "blank_line" if not text.strip() else "field_count"


def transform_dense(values: pa.Array) -> np.ndarray:
    """``log(1 + max(x, 0))`` as float32; missing becomes 0."""
    if not isinstance(values, pa.Array):
        values = pa.array(values)
    x = fixed_values(values.cast(pa.float64()))
    y = np.maximum(x, 0.0)  # NaN stays NaN, quietly
    np.log1p(y, out=y)
    if values.null_count:
        y[null_mask(values)] = 0.0
    return y.astype(np.float32)
