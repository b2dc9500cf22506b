"""Every real sample in ../shared/data ingests cleanly and reproducibly."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from recnas.data.fields import hex_ids
from recnas.data.ingest import ingest
from tests.conftest import shared_data

from .helpers import check_dataset, read_split

CRITEO = "criteo/criteo_kaggle_train_head10k.txt.gz"
ML1M = "movielens-1m-partial"
KDD = "kdd2012_track2"
SAMPLES = {
    "criteo-train-head10k": ("criteo", [CRITEO], {}),
    "criteo-deepctr-csv": ("criteo", ["criteo/deepctr_criteo_sample.txt"], {}),
    "criteo-test-csv": (
        "criteo",
        ["criteo/criteo_kaggle_test_head1999_unlabeled.csv.gz"],
        {},
    ),
    "avazu-head10k": ("avazu", ["avazu/avazu_train_head10k.csv.gz"], {}),
    "kdd2012-training": (
        "kdd2012",
        [f"{KDD}/training.txt", f"{KDD}/user.txt"],
        {"protocol": "random"},
    ),
    "kdd2012-folder": ("kdd2012", [KDD], {"protocol": "random"}),
    "ml-100k": (
        "movielens",
        [f"movielens-100k/{n}" for n in ("u.data.gz", "u.item.gz", "u.user")],
        {"protocol": "time"},
    ),
    "ml-1m-partial": (
        "movielens",
        [
            f"{ML1M}/{n}"
            for n in ("ratings_head10k.dat.gz", "movies.dat.gz", "users.dat.gz")
        ],
        {},
    ),
    "ml-1m-deepctr-joined": ("movielens", [f"{ML1M}/deepctr_movielens_sample.txt"], {}),
    "ml-latest-small": (
        "movielens",
        ["movielens-latest-small/ml-latest-small.zip"],
        {},
    ),
}
ROWS = {
    "criteo-train-head10k": 10_000,
    "criteo-deepctr-csv": 200,
    "criteo-test-csv": 1_999,
    "avazu-head10k": 9_999,
    "kdd2012-training": 11,
    "kdd2012-folder": 21,
    "ml-100k": 100_000,
    "ml-1m-partial": 10_000,
    "ml-1m-deepctr-joined": 200,
    "ml-latest-small": 100_836,
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_ingests_and_is_stable(name, tmp_path):
    dataset, files, options = SAMPLES[name]
    inputs = [str(shared_data(f)) for f in files]
    first = ingest(dataset, inputs, str(tmp_path / "a"), **options)
    check_dataset(first)
    assert first.rows_read == ROWS[name]
    assert first.rejected == {}
    second = ingest(dataset, inputs, str(tmp_path / "b"), **options)
    assert second.files == first.files  # same md5 for every file


def test_user_attributes_join_where_the_variant_has_them(tmp_path):
    files = [f"{ML1M}/ratings_head10k.dat.gz", f"{ML1M}/users.dat.gz"]
    inputs = [str(shared_data(f)) for f in files]
    meta = ingest("movielens", inputs, str(tmp_path / "m"))
    sizes = {f.name: f.vocab_size for f in meta.features.sparse}
    assert sizes["gender"] == 2 + 2 and sizes["age"] > 2
    train = read_split(meta, "train")
    assert (train["gender"].to_numpy() >= 2).all()  # every rating has a known user
    assert train["genres"].to_pylist()[0] == []  # no movies file: genres missing


def test_kdd_joins_users_and_leaves_unknown_users_missing(tmp_path):
    training = shared_data(f"{KDD}/training.txt")
    sample_users = ingest(
        "kdd2012",
        [str(training), str(shared_data(f"{KDD}/user.txt"))],
        str(tmp_path / "a"),
        protocol="random",
    )
    # The profile sample holds users 1..11, the rows only user 490234.
    for split in sample_users.splits:
        assert (read_split(sample_users, split)["Gender"].to_numpy() == 0).all()
    profile = tmp_path / "userid_profile.txt"
    profile.write_text("7\t1\t2\n490234\t2\t4\n")
    joined = ingest(
        "kdd2012", [str(training), str(profile)], str(tmp_path / "b"), protocol="random"
    )
    table = read_split(joined, "train")
    assert (table["Gender"].to_numpy() >= 2).all() and (
        table["Age"].to_numpy() >= 2
    ).all()
    assert joined.features.dense == ("Impression", "Depth", "Position")


def _criteo_rows() -> tuple[np.ndarray, np.ndarray]:
    """Labels and I1 (raw, -1 for missing) of the Criteo sample in file order."""
    labels, first_dense = [], []
    with gzip.open(shared_data(CRITEO), "rt") as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            labels.append(int(fields[0]))
            first_dense.append(float(fields[1]) if fields[1] else 0.0)
    return np.array(labels), np.array(first_dense)


def test_autoctr_811_matches_stratified_kfold_on_the_criteo_sample(tmp_path):
    labels, i1 = _criteo_rows()
    folds = np.empty(len(labels), dtype=int)
    kfold = StratifiedKFold(n_splits=10, shuffle=True, random_state=2018)
    for fold, (_, test) in enumerate(kfold.split(np.zeros(len(labels)), labels)):
        folds[test] = fold
    # A plain copy read in many byte ranges, so folds cross chunk borders.
    plain = tmp_path / "train.txt"
    with gzip.open(shared_data(CRITEO), "rb") as f:
        plain.write_bytes(f.read())
    meta = ingest("criteo", [str(plain)], str(tmp_path / "c"), chunk_bytes=200_000)
    assert len(meta.files["train"]) > 5
    expected = {"train": folds <= 7, "val": folds == 8, "test": folds == 9}
    for split, mask in expected.items():
        table = read_split(meta, split)
        assert table.num_rows == mask.sum()
        np.testing.assert_array_equal(table["label"].to_numpy(), labels[mask])
        want = np.log1p(np.maximum(i1[mask], 0)).astype(np.float32)
        np.testing.assert_allclose(table["I1"].to_numpy(), want, rtol=1e-6)


def test_unlabeled_criteo_test_file_is_recognised(tmp_path):
    with gzip.open(shared_data(CRITEO), "rt") as f:
        lines = [next(f).split("\t", 1)[1] for _ in range(50)]
    test_file = tmp_path / "test.txt"
    test_file.write_text("".join(lines))
    with pytest.raises(
        ValueError, match="39 tab-separated fields: it is the unlabeled"
    ):
        ingest("criteo", [str(test_file)], str(tmp_path / "t"))


def test_hex_ids_decode_exactly():
    import pyarrow as pa

    values, missing, bad = hex_ids(
        pa.array(["05db9164", "FFFFFFFF", "", None, "xyz", "0x123456"])
    )
    assert values[:2].tolist() == [0x05DB9164, 0xFFFFFFFF]
    assert missing.tolist() == [False, False, True, True, False, False]
    assert bad.tolist() == [False, False, False, False, True, True]
