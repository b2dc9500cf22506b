"""Search-space specs: the two shipped spaces and precise errors for bad specs."""

from __future__ import annotations

import pytest
import yaml

from recnas.space.spec import SearchSpace, available_spaces, load_space

WIDTHS = (16, 32, 64, 128, 256, 512, 768, 1024)


def test_shipped_spaces_match_nasrec():
    assert {"nasrec_full", "nasrec_small"} <= set(available_spaces())
    full, small = load_space("nasrec_full"), load_space("nasrec_small")
    assert full.dense_ops == ("fc", "dot_product", "sigmoid_gating", "sum")
    assert full.sparse_ops == ("efc", "attention")
    assert small.dense_ops == ("fc", "dot_product")
    assert small.sparse_ops == ("efc",)
    for space in (full, small):
        assert space.num_blocks == 7
        assert space.embedding_dim == 16
        assert space.dense_widths == WIDTHS
        assert space.sparse_tokens == (16, 32, 48, 64)
        assert space.max_sources == 4
        assert space.mergers == {
            "dense_to_sparse": (False, True),
            "sparse_to_dense": (False, True),
        }
    assert full.nasrec.nodes == (
        "fc",
        "dot_product",
        "sigmoid_gating",
        "sum",
        "attention",
        "efc",
    )
    assert small.nasrec.nodes == ("fc", "dot_product", "efc")


def _write(tmp_path, **changes):
    data = load_space("nasrec_small").to_dict() | changes
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_load_by_path_and_round_trip(tmp_path):
    path = _write(tmp_path, name="mine")
    space = load_space(path)
    assert space.name == "mine"
    assert SearchSpace.from_dict(space.to_dict()).to_dict() == space.to_dict()
    assert load_space(space) is space


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"colour": 1}, r"unknown key\(s\) \['colour'\]"),
        ({"dense_ops": ["fc", "conv"]}, r"key 'dense_ops': unknown operator 'conv'"),
        ({"sparse_ops": ["fc"]}, r"key 'sparse_ops': unknown operator 'fc'"),
        ({"dense_widths": [32, 16]}, r"key 'dense_widths' must list distinct"),
        ({"num_blocks": 0}, r"key 'num_blocks' must be a positive integer"),
        ({"max_sources": "4"}, r"key 'max_sources' must be a positive integer"),
        ({"mergers": {"dense_to_sparse": [True]}}, r"key 'mergers' must map"),
        (
            {"mergers": {"dense_to_sparse": [1], "sparse_to_dense": [True]}},
            r"key 'mergers.dense_to_sparse' must be a non-empty list of booleans",
        ),
        ({"nasrec": {"config": "x", "nodes": ["fc"]}}, r"key 'nasrec.nodes'"),
    ],
)
def test_bad_specs_name_the_file_and_key(tmp_path, changes, message):
    path = _write(tmp_path, **changes)
    with pytest.raises(ValueError, match=message) as err:
        load_space(path)
    assert str(path) in str(err.value)


def test_missing_key_and_unknown_name(tmp_path):
    data = load_space("nasrec_small").to_dict()
    del data["sparse_tokens"]
    with pytest.raises(ValueError, match=r"missing key\(s\) \['sparse_tokens'\]"):
        SearchSpace.from_dict(data, source="x.yaml")
    with pytest.raises(
        ValueError, match="unknown search space 'nasrec_huge'.*nasrec_full"
    ):
        load_space("nasrec_huge")
    with pytest.raises(ValueError, match="does not exist"):
        load_space(tmp_path / "absent.yaml")
