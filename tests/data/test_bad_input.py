"""Bad input: every raw row lands in a split or in the rejected file, with a reason."""

from __future__ import annotations

import gzip
import random

import pytest

from recnas.data.ingest import ingest

from .helpers import check_dataset, read_split, rejected_rows


def _criteo_line(rng: random.Random, label: int | str | None = None) -> list[str]:
    label = rng.randint(0, 1) if label is None else label
    dense = [str(rng.randint(-2, 500)) if rng.random() > 0.2 else "" for _ in range(13)]
    sparse = [
        f"{rng.getrandbits(32):08x}" if rng.random() > 0.1 else "" for _ in range(26)
    ]
    return [str(label), *dense, *sparse]


def _criteo_lines(good: int = 300) -> tuple[list[str], dict[int, str]]:
    """Lines of a Criteo file with one bad line of each kind; bad line -> reason."""
    rng = random.Random(0)
    header = "\t".join(
        ["label"] + [f"I{i}" for i in range(1, 14)] + [f"C{i}" for i in range(1, 27)]
    )
    bad = {
        1: (header, "header"),
        4: ("", "blank_line"),
        6: ("   ", "blank_line"),
        9: ("\t".join(_criteo_line(rng)[:39]), "field_count"),
        12: ("\t".join(_criteo_line(rng) + ["x"]), "field_count"),
        15: ("\t".join(_criteo_line(rng, 2)), "label"),
        18: ("\t".join(_criteo_line(rng, "x")), "label"),
        21: (
            "\t".join(_criteo_line(rng)[:1] + ["abc"] + _criteo_line(rng)[2:]),
            "dense_value",
        ),
        24: (
            "\t".join(_criteo_line(rng)[:2] + ["1e999"] + _criteo_line(rng)[3:]),
            "dense_value",
        ),
        27: (
            "\t".join(_criteo_line(rng)[:14] + ["xyz12345"] + _criteo_line(rng)[15:]),
            "sparse_id",
        ),
        30: ("\t".join(_criteo_line(rng)[:39] + ["1234567"]), "sparse_id"),
    }
    lines, reasons = [], {}
    for number in range(1, good + len(bad) + 1):
        if number in bad:
            text, reason = bad[number]
            reasons[number] = reason
            lines.append(text)
        else:
            lines.append("\t".join(_criteo_line(rng)))
    return lines, reasons


@pytest.fixture(scope="module")
def criteo_bad(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    lines, reasons = _criteo_lines()
    plain = folder / "day_0.txt"
    plain.write_text("\n".join(lines) + "\n")
    meta = ingest(
        "criteo", [str(plain)], str(folder / "out"), max_rejected_fraction=0.1
    )
    return folder, lines, reasons, meta


def test_each_bad_row_is_rejected_with_its_line_and_reason(criteo_bad):
    _, lines, reasons, meta = criteo_bad
    check_dataset(meta)
    assert meta.rows_read == len(lines)
    expected: dict[str, int] = {}
    for reason in reasons.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert meta.rejected == dict(sorted(expected.items()))
    rejected = rejected_rows(meta)
    assert {r["line"]: r["reason"] for r in rejected} == reasons
    assert all(r["source"] == "day_0.txt" for r in rejected)
    by_line = {r["line"]: r["text"] for r in rejected}
    assert by_line[15] == lines[14] and by_line[9] == lines[8]


def test_missing_and_negative_values_are_kept_not_rejected(criteo_bad):
    _, _, _, meta = criteo_bad
    train = read_split(meta, "train")
    assert (train["I1"].to_numpy() == 0).any()  # missing or negative -> log1p(0)
    assert (train["C1"].to_numpy() == 0).any()  # missing id -> 0


def test_crlf_and_gzip_inputs_give_the_same_splits(criteo_bad):
    folder, lines, _, meta = criteo_bad
    crlf = folder / "crlf.txt"
    crlf.write_bytes(("\r\n".join(lines) + "\r\n").encode())
    zipped = folder / "day_0.txt.gz"
    zipped.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    for path in (crlf, zipped):
        other = ingest(
            "criteo",
            [str(path)],
            str(folder / path.name.replace(".", "_")),
            max_rejected_fraction=0.1,
        )
        assert other.files == meta.files
        assert other.rejected == meta.rejected
        assert {r["line"] for r in rejected_rows(other)} == {
            r["line"] for r in rejected_rows(meta)
        }


def test_too_many_rejected_rows_stop_ingest_naming_the_lines(criteo_bad):
    folder, *_ = criteo_bad
    with pytest.raises(ValueError) as err:
        ingest("criteo", [str(folder / "day_0.txt")], str(folder / "strict"))
    message = str(err.value)
    assert "11 of 311 rows rejected" in message
    assert "day_0.txt line 1: header" in message
    assert "day_0.txt line 4: blank_line" in message
    assert "max_rejected_fraction" in message


def test_avazu_bad_rows(tmp_path):
    header = (
        "id,click,hour,C1,banner_pos,site_id,site_domain,site_category,app_id,"
        "app_domain,"
        "app_category,device_id,device_ip,device_model,device_type,device_conn_type,"
        "C14,C15,C16,C17,C18,C19,C20,C21"
    )
    rng = random.Random(1)

    def row(click="0", hour="14102100", ip=None):
        ids = [f"{rng.getrandbits(32):08x}" for _ in range(9)]
        if ip is not None:
            ids[7] = ip
        ints = [str(rng.randint(0, 9)) for _ in range(2)] + ["-1"] * 8
        return ",".join(
            [str(rng.getrandbits(63)), click, hour, "1005", "0", *ids, *ints]
        )

    lines = [header] + [row() for _ in range(40)]
    lines += [row(hour="14133100"), row(click="2"), row(ip="nothex!!"), header]
    lines += [row(hour="14102223") for _ in range(20)]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    meta = ingest("avazu", [str(path)], str(tmp_path / "o"), max_rejected_fraction=0.1)
    check_dataset(meta)
    assert meta.rejected == {"header": 1, "label": 1, "sparse_id": 1, "time_value": 1}
    assert {r["line"]: r["reason"] for r in rejected_rows(meta)} == {
        42: "time_value",
        43: "label",
        44: "sparse_id",
        45: "header",
    }
    assert meta.rows_read == len(lines) - 1  # the first line is the header
    hours = {f.name: f.vocab_size for f in meta.features.sparse}["hour_of_day"]
    assert hours == 2 + 2  # hours 00 and 23


def test_movielens_bad_rows(tmp_path):
    lines = ["userId,movieId,rating,timestamp"]
    lines += [
        f"{u},{m},{(u + m) % 10 / 2 + 0.5},{964982703 + m}"
        for u in range(1, 6)
        for m in range(1, 9)
    ]
    lines += [
        "1,2,abc,964982703",
        "1,2,7.5,964982703",
        "1,2,4.0,x",
        "u1,2,4.0,964982703",
    ]
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("\n".join(lines) + "\n")
    meta = ingest(
        "movielens",
        [str(ratings)],
        str(tmp_path / "o"),
        protocol="random",
        max_rejected_fraction=0.2,
    )
    check_dataset(meta)
    assert meta.rejected == {"label": 2, "sparse_id": 1, "time_value": 1}
    assert sum(meta.rows.values()) == 40
