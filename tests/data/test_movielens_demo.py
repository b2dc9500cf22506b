"""The shipped MovieLens sample becomes a CTR dataset with the documented features."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from recnas.data.ingest import ingest
from recnas.data.meta import load_meta

REPO = Path(__file__).resolve().parents[2]
ZIP = REPO / "datasets" / "ml-latest-small" / "ml-latest-small.zip"


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("ml") / "ds"
    return ingest("movielens", [str(ZIP)], str(out))


def _ratings() -> np.ndarray:
    with zipfile.ZipFile(ZIP) as archive:
        data = archive.read("ml-latest-small/ratings.csv")
    return pacsv.read_csv(io.BytesIO(data))


def _split(meta, split):
    return pq.read_table(meta.split_uris(split)[0])


def test_shipped_data_has_its_licence():
    folder = ZIP.parent
    readme = (folder / "README.txt").read_text()
    assert "may redistribute the data set" in readme
    assert "GroupLens" in (folder / "NOTICE").read_text()


def test_every_rating_lands_in_a_split(demo):
    ratings = _ratings()
    assert demo.rows_read == ratings.num_rows == 100_836
    assert sum(demo.rows.values()) == ratings.num_rows
    assert demo.rejected == {}
    assert demo.protocol["name"] == "autoctr_811"
    positives = int(pc.sum(pc.greater_equal(ratings["rating"], 4.0)).as_py())
    labels = sum(int(pc.sum(_split(demo, s)["label"]).as_py()) for s in demo.splits)
    assert labels == positives


def test_features_and_schema(demo):
    fs = demo.features
    assert fs.dense == ("user_count", "movie_count")
    assert [f.name for f in fs.sparse] == [
        "user",
        "movie",
        "genres",
        "year",
        "hour",
        "weekday",
    ]
    assert [f.name for f in fs.multi] == ["genres"]
    by_name = {f.name: f for f in fs.sparse}
    assert by_name["hour"].vocab_size == 24 + 2
    assert by_name["weekday"].vocab_size == 7 + 2
    assert by_name["user"].vocab_size == 610 + 2
    table = _split(demo, "train")
    assert table.schema.field("label").type == pa.float32()
    assert table.schema.field("user_count").type == pa.float32()
    assert table.schema.field("user").type == pa.int32()
    assert table.schema.field("genres").type.value_type == pa.int32()


def test_ids_lie_in_their_tables_and_dense_is_finite(demo):
    for split in demo.splits:
        table = _split(demo, split)
        for f in demo.features.sparse:
            column = table[f.name]
            if f.multi_valued:
                column = pc.list_flatten(column)
                assert pc.max(pc.list_value_length(table[f.name])).as_py() <= f.max_len
            assert pc.min(column).as_py() >= 0
            assert pc.max(column).as_py() < f.vocab_size
        for name in demo.features.dense:
            values = table[name].to_numpy()
            assert np.isfinite(values).all() and (values >= 0).all()


def test_dense_counts_come_from_train_only(demo):
    train, test = _split(demo, "train"), _split(demo, "test")
    users, counts = np.unique(train["user"].to_numpy(), return_counts=True)
    expected = dict(
        zip(users.tolist(), np.log1p(counts).astype(np.float32).tolist(), strict=True)
    )
    got = test["user_count"].to_numpy()
    want = np.array([expected.get(u, 0.0) for u in test["user"].to_numpy()], np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_second_run_gives_identical_files(demo, tmp_path):
    again = ingest("movielens", [str(ZIP)], str(tmp_path / "again"))
    assert again.files == demo.files
    assert again.split_md5("train") == demo.split_md5("train")
    assert load_meta(demo.uri).to_dict() == demo.to_dict()


def test_rerun_on_the_same_output_is_a_no_op_and_other_options_are_refused(demo):
    assert ingest("movielens", [str(ZIP)], demo.uri).files == demo.files
    with pytest.raises(ValueError, match="already holds a different processed dataset"):
        ingest("movielens", [str(ZIP)], demo.uri, protocol="random")
