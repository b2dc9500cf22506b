"""One rule for every field: the fast and the strict parse agree on every row.

A block is parsed through pyarrow's typed conversion when it can be (the fast
path) and through string checks otherwise (the strict path). Whichever path a
block takes, and whatever rows are next to it, each row must get the same
verdict and the same values as when it is parsed alone on the strict path.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recnas.data.fields import REASONS, Column, fields_reason, parse_rows, plain

CRITEO_LIKE = [
    Column("label", "label01"),
    Column("I1", "number"),
    Column("I2", "number"),
    Column("C1", "hex"),
    Column("C2", "hex"),
]
OTHER_KINDS = [
    Column("n", "count"),
    Column("t", "time"),
    Column("i", "int"),
    Column("u", "uint"),
    Column("r", "rating"),
    Column("s", "str"),
    Column("x", "text"),
]
ODD_INTS = [
    "01",
    " 1",
    "+1",
    "1 ",
    "\t1",
    "-0",
    "+0",
    "00",
    "0x1",
    "0X1f",
    " ",
    "1.0",
    "-1",
    "2",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "18446744073709551615",
    "18446744073709551616",
    "0000000000000000000000001",
]
TOKENS = {
    "label01": ["0", "1"] + ODD_INTS + ["x", "label", ""],
    "number": ["5", "0", "-3", "12.5", "", " 5", "+5", "05", "1e3", "1e999"]
    + ["nan", "inf", "abc", " ", "0x10", "+.5", "5.", "-0", "1 ", "."],
    "hex": ["0a1b2c3d", "", "deadbeef", "DEADBEEF", "xyz12345", "1234567"]
    + [" 0a1b2c3d", "0x1b2c3d"],
    "count": ["7", "0", ""] + ODD_INTS,
    "time": ["7", "-4", ""] + ODD_INTS,
    "int": ["7", "-4", ""] + ODD_INTS,
    "uint": ["7", "0", ""] + ODD_INTS,
    "rating": ["4", "3.5", "", " 4", "+4", "1e999", "x"],
    "str": ["a", "b", "", "x y", "0x5", " a"],
    "text": ["a", "", "x y", "0x5"],
}


def _row(columns: list[Column]) -> st.SearchStrategy[str]:
    fields = st.tuples(*(st.sampled_from(TOKENS[c.kind]) for c in columns))
    good = st.tuples(*(st.sampled_from(TOKENS[c.kind][:2]) for c in columns))
    wrong = st.sampled_from(
        ["", "   ", "1\t2", "1\r2", "\r", "\t".join(["1"] * (len(columns) + 1))]
    )
    return st.one_of(
        good.map("\t".join),
        good.map("\t".join),
        fields.map("\t".join),
        wrong,
    )


def _verdicts(
    data: bytes, columns: list[Column], strict: bool, delimiter: str = "\t"
) -> list[tuple]:
    """(reason, values) per line of the block, in line order."""
    quoted = delimiter == ","
    rows = parse_rows(data, columns, delimiter, quoted=quoted, strict=strict)
    parsed = rows.parsed
    out: dict[int, tuple] = {}
    for line, text in zip(parsed.bad_lines.tolist(), parsed.bad_texts, strict=True):
        out[line] = (fields_reason(text), None)
    values = {n: plain(a).to_pylist() for n, a in rows.values.items()}
    for i, line in enumerate(rows.lines.tolist()):
        code = int(rows.reasons[i])
        if code:
            out[line] = (REASONS[code - 1], None)
        else:
            out[line] = ("", tuple(_norm(values[n][i]) for n in sorted(values)))
    assert sorted(out) == list(range(parsed.num_lines))
    return [out[i] for i in range(parsed.num_lines)]


def _norm(value):
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def _check(lines: list[str], columns: list[Column], delimiter: str = "\t") -> None:
    data = ("\n".join(lines) + "\n").encode()
    alone = [
        _verdicts((line + "\n").encode(), columns, True, delimiter)[0] for line in lines
    ]
    assert _verdicts(data, columns, True, delimiter) == alone
    assert _verdicts(data, columns, False, delimiter) == alone


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_row(CRITEO_LIKE), min_size=1, max_size=12))
def test_criteo_like_rows_get_one_verdict(lines):
    _check(lines, CRITEO_LIKE)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_row(OTHER_KINDS), min_size=1, max_size=12))
def test_other_kinds_get_one_verdict(lines):
    _check(lines, OTHER_KINDS)


@pytest.mark.parametrize(
    ("text", "value"),
    [("0", 0), ("1", 1), ("01", 1), (" 1", 1), ("+1", 1), ("1 ", 1), ("-0", 0)],
)
def test_labels_that_are_integers_zero_or_one_are_kept(text, value):
    clean = "\t".join(["1", "5", "5", "0a1b2c3d", ""])
    odd = "\t".join([text, "5", "5", "0a1b2c3d", ""])
    for lines in ([odd], [clean, odd], [odd] + [clean] * 5):
        rows = parse_rows(("\n".join(lines) + "\n").encode(), CRITEO_LIKE, "\t")
        assert not rows.reasons.any()
        assert plain(rows.values["label"]).to_pylist()[lines.index(odd)] == value


@pytest.mark.parametrize("text", ["2", "-1", "0x1", "1.0", "", " ", "x"])
def test_other_labels_are_rejected_whatever_the_neighbours(text):
    clean = "\t".join(["1", "5", "5", "0a1b2c3d", ""])
    odd = "\t".join([text, "5", "5", "0a1b2c3d", ""])
    for lines in ([odd], [clean, odd], [clean] * 5 + [odd]):
        rows = parse_rows(("\n".join(lines) + "\n").encode(), CRITEO_LIKE, "\t")
        at = int(np.flatnonzero(rows.lines == lines.index(odd))[0])
        assert REASONS[rows.reasons[at] - 1] == "label"
        assert np.count_nonzero(rows.reasons) == 1


@pytest.mark.parametrize(("text", "value"), [(" 5", 5.0), ("+5", 5.0), ("5 ", 5.0)])
def test_dense_values_with_spaces_or_sign_are_read_in_any_block(text, value):
    clean = "\t".join(["1", "7", "5", "0a1b2c3d", ""])
    odd = "\t".join(["1", text, "5", "0a1b2c3d", ""])
    for lines in ([odd], [clean, odd], [clean] * 5 + [odd]):
        rows = parse_rows(("\n".join(lines) + "\n").encode(), CRITEO_LIKE, "\t")
        assert not rows.reasons.any()
        assert plain(rows.values["I1"]).to_pylist()[lines.index(odd)] == value


def _quoted_row(columns: list[Column]) -> st.SearchStrategy[str]:
    token = st.sampled_from(["0", "1", "5", "", "01", " 1", "+1", "0a1b2c3d", "x"])
    field = st.one_of(token, token.map(lambda t: f'"{t}"'))
    return st.tuples(*(field for _ in columns)).map(",".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_quoted_row(CRITEO_LIKE), min_size=1, max_size=10))
def test_quoted_csv_rows_get_one_verdict(lines):
    _check(lines, CRITEO_LIKE, delimiter=",")


@pytest.mark.parametrize("memchr", [True, False])
def test_byte_search_with_and_without_memchr(monkeypatch, memchr):
    from recnas.data import fields

    if not memchr:
        monkeypatch.setattr(fields, "_MEMCHR", None)
    cases = [
        (b"", b"x", False),
        (b"ab0x", b"0x", True),
        (b"abx", b"0x", False),
        (b"0\r", b"\r", True),
        (b"abc", b"\r", False),
        (memoryview(b"a0Xb"), b"0X", True),
    ]
    for data, needle, found in cases:
        assert fields.contains(data, needle) is found, (data, needle)
