"""Damaged files, stray carriage returns, repeated inputs and the order of reports."""

from __future__ import annotations

import gzip
import re

import pytest

from recnas.data.ingest import ingest

from .helpers import check_dataset, rejected_rows, write_criteo


def _lines(path) -> list[str]:
    return path.read_text().splitlines()


@pytest.fixture(scope="module")
def criteo_text(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "plain.txt"
    write_criteo(path, 20_000, seed=3)
    return path


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_damaged_gzip_file_is_named_with_the_line_reached(
    criteo_text, tmp_path, damage
):
    packed = gzip.compress(criteo_text.read_bytes())
    if damage == "truncated":
        packed = packed[: len(packed) * 7 // 10]
    else:  # zeroes in the middle of the compressed data
        middle = len(packed) * 7 // 10
        packed = packed[:middle] + bytes(200) + packed[middle + 200 :]
    path = tmp_path / "day_1.txt.gz"
    path.write_bytes(packed)
    with pytest.raises(ValueError, match="day_1.txt.gz") as info:
        ingest(
            "criteo",
            [str(path)],
            str(tmp_path / "out"),
            parallel="local",
            block_bytes=1 << 18,
        )
    found = re.search(r"past line ([\d,]+)", str(info.value))
    assert found, str(info.value)
    reached = int(found.group(1).replace(",", ""))
    assert 0 < reached < 20_000
    assert "damaged or truncated" in str(info.value)


def test_a_stray_carriage_return_rejects_its_line_once(tmp_path):
    write_criteo(tmp_path / "src.txt", 40, seed=5)
    lines = _lines(tmp_path / "src.txt")
    fields = lines[4].split("\t")
    lines[4] = "\t".join(fields[:10]) + "\r" + "\t".join(fields[10:])  # line 5
    lines[9] = "\r" + lines[9]  # line 10: a CR at the start of the line
    lines[14] = "\t".join(["7", *lines[14].split("\t")[1:]])  # line 15: label
    for name, ending in (("lf.txt", "\n"), ("crlf.txt", "\r\n")):
        path = tmp_path / name
        path.write_bytes((ending.join(lines) + ending).encode())
        meta = ingest(
            "criteo",
            [str(path)],
            str(tmp_path / f"out-{name}"),
            parallel="local",
            max_rejected_fraction=0.5,
        )
        check_dataset(meta)
        rejected = [(r["line"], r["reason"]) for r in rejected_rows(meta)]
        assert rejected == [
            (5, "carriage_return"),
            (10, "carriage_return"),
            (15, "label"),
        ], name
        assert meta.rows_read == 40
        assert sum(meta.rows.values()) == 37
        assert meta.rejected == {"carriage_return": 2, "label": 1}
        texts = {r["line"]: r["text"] for r in rejected_rows(meta)}
        assert texts[5] == lines[4]


def test_the_same_input_twice_is_refused(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    path = folder / "day_0.txt"
    write_criteo(path, 20)
    cases = [
        [str(path), str(path)],
        [str(path), str(folder / ".." / "raw" / "day_0.txt")],
        [str(folder), str(path)],
    ]
    for inputs in cases:
        with pytest.raises(ValueError, match="day_0.txt.*more than once"):
            ingest("criteo", inputs, str(tmp_path / "out"), parallel="local")
    assert not (tmp_path / "out").exists()


def test_offending_lines_are_reported_in_input_order(tmp_path):
    write_criteo(tmp_path / "src.txt", 60, seed=9)
    lines = _lines(tmp_path / "src.txt")
    lines[1] = "\t".join(["2", *lines[1].split("\t")[1:]])  # line 2: label
    lines[2] = "\t".join(lines[2].split("\t")[:30])  # line 3: field count
    lines[5] = "\t".join([*lines[5].split("\t")[:20], "zz", *lines[5].split("\t")[21:]])
    lines[6] = "\t".join(lines[6].split("\t") + ["x"])  # line 7: field count
    path = tmp_path / "day.txt"
    path.write_text("\n".join(lines) + "\n")
    expected = [(2, "label"), (3, "field_count"), (6, "sparse_id"), (7, "field_count")]
    with pytest.raises(ValueError) as info:
        ingest("criteo", [str(path)], str(tmp_path / "a"), parallel="local")
    named = re.findall(r"day\.txt line (\d+): (\w+)", str(info.value))
    assert [(int(n), r) for n, r in named] == expected
    meta = ingest(
        "criteo",
        [str(path)],
        str(tmp_path / "b"),
        parallel="local",
        max_rejected_fraction=0.5,
    )
    assert [(r["line"], r["reason"]) for r in rejected_rows(meta)] == expected


def test_a_reader_reject_after_a_stray_carriage_return_keeps_its_text(tmp_path):
    from recnas.data.readers.avazu import HEADER

    row = (
        "1,0,14102100,1005,0,1fbe01fe,f3845767,28905ebd,ecad2386,7801e8d9,"
        "07d7df22,a99f214a,ddd2926e,44956a24,1,2,15706,320,50,1722,0,35,-1,79"
    )
    bad = row.replace("14102100", "14102199")  # hour 99: rejected by the reader
    stray = row.replace("1fbe01fe", "1fbe\r01fe")
    lines = [",".join(HEADER)] + [row] * 3 + [stray] + [row] * 26 + [bad] + [row]
    path = tmp_path / "train.csv"
    path.write_bytes(("\n".join(lines) + "\n").encode())
    meta = ingest(
        "avazu",
        [str(path)],
        str(tmp_path / "o"),
        parallel="local",
        max_rejected_fraction=0.1,
    )
    check_dataset(meta)
    assert [(r["line"], r["reason"], r["text"]) for r in rejected_rows(meta)] == [
        (5, "carriage_return", stray),
        (32, "time_value", bad),
    ]
