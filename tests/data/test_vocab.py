"""Vocabularies counted on train with min_count, modulo hashing, the time split."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recnas.data.fields import Column, parse_rows, plain
from recnas.data.ingest import ingest
from recnas.data.passes import MERGE_CHUNKS
from recnas.data.vocab import (
    Encoder,
    Groups,
    Lookup,
    build_vocab,
    count_values,
    entry_counts,
    group_vocab,
    hash_sizes,
    vocab_order,
)

from .helpers import read_split, write_criteo


def _ratings(tmp_path, rows: list[tuple[int, int, float, int]]):
    path = tmp_path / "ratings.csv"
    lines = ["userId,movieId,rating,timestamp"] + [",".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def _decode(meta, feature: str, ids: np.ndarray) -> np.ndarray:
    """Raw values of ids through the written vocabulary file."""
    table = pq.read_table(f"{meta.uri}/vocab/{feature}.parquet")
    by_id = dict(zip(table["id"].to_pylist(), table["value"].to_pylist(), strict=True))
    return np.array([by_id.get(int(i), -1) for i in ids])


def test_time_protocol_puts_the_oldest_rows_in_train(tmp_path):
    rng = np.random.default_rng(0)
    order = rng.permutation(100)  # user u rated at time order[u]: file order != time
    rows = [
        (u + 1, 7, 4.0 if u % 2 else 2.0, 1_000_000 + int(order[u])) for u in range(100)
    ]
    meta = ingest(
        "movielens",
        [str(_ratings(tmp_path, rows))],
        str(tmp_path / "o"),
        protocol="time",
    )
    assert meta.rows == {"train": 80, "val": 10, "test": 10}
    time_of_user = {u + 1: int(order[u]) for u in range(100)}
    for split, (lo, hi) in {
        "train": (0, 80),
        "val": (80, 90),
        "test": (90, 100),
    }.items():
        users = _decode(meta, "user", read_split(meta, split)["user"].to_numpy())
        if split == "train":
            times = sorted(time_of_user[u] for u in users)
            assert times == list(range(lo, hi))
        else:  # users never seen in train are out of vocabulary
            assert (read_split(meta, split)["user"].to_numpy() == 1).all()


def test_min_count_sends_rare_train_values_to_oov(tmp_path):
    rows = []
    for i in range(400):
        movie = 1 if i % 2 else (2 if i % 3 else 100 + i)  # 100+i: seen once
        rows.append((i % 5 + 1, movie, 4.0 if i % 4 else 1.0, 1_000_000 + i))
    meta = ingest(
        "movielens",
        [str(_ratings(tmp_path, rows))],
        str(tmp_path / "o"),
        protocol="random",
        min_count=2,
    )
    movie = {f.name: f for f in meta.features.sparse}["movie"]
    assert movie.vocab_size == 2 + 2  # only movies 1 and 2 are common
    train = read_split(meta, "train")["movie"].to_numpy()
    raw = _decode(meta, "movie", train)
    assert set(raw[train >= 2].tolist()) == {1, 2}
    assert (train == 1).sum() > 0  # rare movies
    counts = pq.read_table(f"{meta.uri}/vocab/movie.parquet")["count"].to_pylist()
    assert counts == sorted(counts, reverse=True) and min(counts) >= 2


def test_encoder_dictionary_and_plain_inputs_agree():
    counts = count_values(pa.array([5, 5, 5, 9, 9, 11], pa.uint64()))
    vocab = build_vocab(counts, min_count=2)
    assert vocab["value"].to_pylist() == [5, 9] and vocab["id"].to_pylist() == [2, 3]
    encoder = Encoder(
        "vocab",
        sizes={"f": 4},
        vocab={"f": Lookup.from_table(vocab["value"], vocab["id"].to_numpy())},
    )
    plain = pa.array([9, None, 11, 5], pa.uint64())
    as_dict = plain.dictionary_encode()
    assert encoder.encode("f", plain).to_pylist() == [3, 0, 1, 2]
    assert encoder.encode("f", as_dict).to_pylist() == [3, 0, 1, 2]
    hashed = Encoder("hash", sizes={"f": 7}).encode("f", plain).to_pylist()
    assert hashed == [2 + 9 % 5, 0, 2 + 11 % 5, 2 + 5 % 5]


def test_hash_sizes_are_checked():
    assert hash_sizes(("a", "b"), {"a": 10, "*": 5}) == {"a": 10, "b": 5}
    with pytest.raises(ValueError, match="unknown feature"):
        hash_sizes(("a",), {"z": 10})
    with pytest.raises(ValueError, match="at least 3"):
        hash_sizes(("a",), 2)
    with pytest.raises(ValueError, match="below 2\\*\\*31"):
        hash_sizes(("a",), 2**31)
    with pytest.raises(ValueError, match="needs hash_size"):
        hash_sizes(("a",), None)


def test_groups_keep_their_numbers_and_sum_counts():
    def table(values, counts):
        return pa.table(
            {
                "value": pa.array(values, pa.uint64()),
                "count": pa.array(counts, pa.int64()),
            }
        )

    groups = Groups()
    first = groups.add([table([5, 9], [2, 1]), table([9, 11, 2**40], [3, 0, 4])])
    assert [g.tolist() for g in first] == [[0, 1], [1, 2, 3]]
    second = groups.add([table([11, 7, 5], [1, 1, 1])])
    assert second[0].tolist() == [2, 4, 0]  # known values keep their groups
    assert groups.values.to_pylist() == [5, 9, 11, 2**40, 7]
    assert groups.counts.tolist() == [3, 4, 1, 4, 1]
    vocab, ids = group_vocab(groups, min_count=2)
    assert vocab["value"].to_pylist() == [9, 2**40, 5]  # count, then value
    assert ids.tolist() == [4, 2, 1, 3, 1]


@pytest.mark.parametrize("wide", [False, True])
def test_vocab_order_is_falling_count_then_value(wide):
    rng = np.random.default_rng(1)
    values = rng.choice(2**40 if wide else 2**32, size=5000, replace=False)
    values = values.astype(np.uint64)
    counts = rng.integers(0, 6, size=5000)
    order = vocab_order(values, counts, min_count=2)
    kept = np.flatnonzero(counts >= 2)
    expected = kept[np.lexsort((values[kept], -counts[kept]))]
    assert order.tolist() == expected.tolist()


def test_entry_counts_follow_the_dictionary():
    values = pa.array([7, None, 3, 7, 7, 3], pa.uint64()).dictionary_encode()
    counted = entry_counts(values, np.array([0, 1, 2, 3]))  # rows 4, 5 left out
    assert counted["value"].to_pylist() == [7, 3]
    assert counted["count"].to_pylist() == [2, 1]


@pytest.mark.parametrize("encoding", ["vocab", "hash"])
def test_splits_do_not_depend_on_chunks_and_blocks(tmp_path, encoding):
    path = tmp_path / "day_0.txt"
    write_criteo(path, 3000, seed=5)
    options = {"encoding": encoding, "parallel": "local"}
    if encoding == "hash":
        options["hash_size"] = 1000
    whole = ingest("criteo", [str(path)], str(tmp_path / "a"), **options)
    size = path.stat().st_size
    parts = ingest(
        "criteo",
        [str(path)],
        str(tmp_path / "b"),
        # More chunks than one merge takes, several blocks per chunk.
        chunk_bytes=size // (MERGE_CHUNKS + 5),
        block_bytes=size // (3 * (MERGE_CHUNKS + 5)),
        **options,
    )
    assert len(parts.files["train"]) > MERGE_CHUNKS
    assert parts.features == whole.features
    for split in ("train", "val", "test"):
        assert read_split(parts, split).equals(read_split(whole, split))
    if encoding == "vocab":
        for f in whole.features.sparse:
            vocab = f"vocab/{f.name}.parquet"
            a = pq.read_table(f"{whole.uri}/{vocab}")
            assert pq.read_table(f"{parts.uri}/{vocab}").equals(a)


def test_plain_and_dictionary_hex_ids_agree():
    texts = ["05db9164", "", "FFFFFFFF", "05db9164", "abcdef01", "0badc0de"] * 50
    lines = "".join(f"{i % 2}\t{t}\n" for i, t in enumerate(texts)).encode()
    columns = [Column("label", "label01"), Column("C1", "hex")]
    as_plain = parse_rows(lines, columns, "\t", plain=("C1",))
    as_dictionary = parse_rows(lines, columns, "\t")
    assert pa.types.is_dictionary(as_dictionary.values["C1"].type)
    assert as_plain.values["C1"].equals(plain(as_dictionary.values["C1"]))
    assert as_plain.values["C1"].null_count == 50
    bad = lines.replace(b"abcdef01", b"abcdefg1")
    rows = parse_rows(bad, columns, "\t", plain=("C1",))
    assert (rows.reasons == 6).sum() == 50  # sparse_id


def test_groups_added_a_few_tables_at_a_time_match_one_add():
    from recnas.data.vocab import Groups

    rng = np.random.default_rng(7)
    for high in (50, 2**40):
        tables = []
        for _ in range(7):
            values = rng.integers(0, high, int(rng.integers(0, 40))).astype(np.uint64)
            counts = rng.integers(0, 9, len(values))
            tables.append(
                pa.table(
                    {
                        "value": pa.array(values, pa.uint64()),
                        "count": pa.array(counts, pa.int64()),
                    }
                )
            )
        whole, parts = Groups(), Groups()
        expected = whole.add(tables)
        got = parts.add(tables[:3]) + parts.add(tables[3:4]) + parts.add(tables[4:])
        assert all((a == b).all() for a, b in zip(expected, got, strict=True))
        assert (whole.counts == parts.counts).all()
        assert whole.values.equals(parts.values)
        # Groups are numbered by first appearance; equal values share one.
        flat = np.concatenate([t["value"].to_numpy() for t in tables])
        assert (whole.values.to_numpy()[np.concatenate(expected)] == flat).all()
