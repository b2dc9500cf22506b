"""The official NASRec JSON format: lossless round trip and precise errors."""

from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest

from recnas.space import load_space, sample
from recnas.space.nasrec_format import from_nasrec, read_architecture, to_nasrec

REPO = Path(__file__).resolve().parents[2]
FIXTURE = (
    REPO.parent / "shared" / "fixtures" / "nasrec" / "criteo_nasrec_small_best.json"
)


@pytest.fixture
def official():
    if not FIXTURE.exists():
        pytest.skip(f"fixture {FIXTURE} is absent")
    return json.loads(FIXTURE.read_text())


def test_fixture_round_trips_without_loss(official):
    arch = read_architecture(FIXTURE)
    assert arch.space == "nasrec_small"
    exported = to_nasrec(arch)
    assert exported == {k: v for k, v in official.items() if k != "test_loss"}
    assert from_nasrec(exported) == arch
    # Source lists keep their order (block 4 reads [0, 2, 4, 3]).
    assert arch.blocks[4].dense_sources == (0, 2, 4, 3)
    assert arch.blocks[4].dense_op == "dot_product"
    assert arch.usage()[5].live is False


@pytest.mark.parametrize("name", ["nasrec_small", "nasrec_full"])
def test_sampled_architectures_round_trip(name):
    space = load_space(name)
    rng = random.Random(0)
    for _ in range(200):
        arch = sample(space, rng)
        data = json.loads(json.dumps(to_nasrec(arch)))
        assert from_nasrec(data) == arch
        assert read_architecture(data) == arch
        assert read_architecture(arch.to_dict()) == arch


def test_full_node_numbers():
    space = load_space("nasrec_full")
    arch = sample(space, random.Random(4))
    micro = to_nasrec(arch)["micro"]
    numbers = {"fc": 0, "dot_product": 1, "sigmoid_gating": 2, "sum": 3}
    numbers |= {"attention": 4, "efc": 5}
    for block, entry in zip(arch.blocks, micro, strict=True):
        expected = sorted([numbers[block.dense_op], numbers[block.sparse_op]])
        assert entry["active_nodes"] == expected


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["micro"][2].update(active_nodes=[0, 1]),
            r"micro\[2\]\.active_nodes \[0, 1\]",
        ),
        (
            lambda d: d["micro"][0].update(active_nodes=[0, 7]),
            r"node\(s\) \[7\] do not exist",
        ),
        (
            lambda d: d["macro"][3].update(dense_left_idx=[0, 1]),
            r"macro\[3\]\.dense_left_idx",
        ),
        (
            lambda d: d["micro"][1].update(deep_fm=2),
            r"micro\[1\]\.deep_fm: must be 0 or 1",
        ),
        (lambda d: d["macro"][1].pop("sparse_idx"), r"macro\[1\]: must have exactly"),
        (lambda d: d.update(colour="red"), r"unknown key\(s\) \['colour'\]"),
        (
            lambda d: d.update(config="xlarge"),
            "activates exactly one dense and one sparse node",
        ),
        (lambda d: d.update(config="huge"), "matches no shipped search space"),
        (lambda d: d["micro"][6].update(dense_in_dims=100), r"block 6: width 100"),
        (
            lambda d: d["macro"][1].update(dense_idx=[9]),
            r"block 1: dense_sources \[9\] has \[9\]",
        ),
        (
            lambda d: d["macro"][2].update(sparse_idx=[-1]),
            r"block 2: sparse_sources \[-1\]",
        ),
    ],
)
def test_bad_nasrec_json_is_refused_precisely(official, edit, message):
    data = copy.deepcopy(official)
    edit(data)
    with pytest.raises(ValueError, match=message):
        from_nasrec(data)


def test_a_full_architecture_does_not_fit_small():
    full = load_space("nasrec_full")
    arch = sample(full, random.Random(8))
    data = to_nasrec(arch)
    with pytest.raises(ValueError, match="is not the config 'autoctr'"):
        from_nasrec(data, "nasrec_small")
    with pytest.raises(ValueError, match="does not fit search space 'nasrec_small'"):
        read_architecture(arch.to_dict(), "nasrec_small")


def test_read_architecture_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_architecture(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=f"{bad}: not valid JSON"):
        read_architecture(bad)
