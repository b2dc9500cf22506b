"""The `recnas data` commands through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

from recnas.cli import main
from recnas.data.ingest import ingest

from .helpers import check_dataset

ZIP = (
    Path(__file__).resolve().parents[2] / "datasets/ml-latest-small/ml-latest-small.zip"
)


def recnas(command: str, **paths: Path) -> int:
    """Runs ``recnas`` with a command line; ``{name}`` fields take the paths."""
    return main(command.format(**{k: str(v) for k, v in paths.items()}).split())


def test_ingest_then_inspect(tmp_path, capsys):
    out = tmp_path / "ml"
    code = recnas(
        "data ingest movielens {zip} --out {out} "
        "--protocol random --ratios 0.7,0.15,0.15 --seed-split 4",
        zip=ZIP,
        out=out,
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "dataset movielens" in printed and "genres" in printed

    assert recnas("data inspect {out}", out=out) == 0
    summary = capsys.readouterr().out
    assert "protocol  random" in summary
    assert "train         70586" in summary  # 100836 - 2 * round(0.15 * 100836)

    assert recnas("data inspect {out} --json", out=out) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["protocol"] == {
        "name": "random",
        "seed": 4,
        "ratios": [0.7, 0.15, 0.15],
    }
    assert sum(record["rows"].values()) == 100_836


def test_ingest_failure_exits_non_zero_naming_lines(tmp_path, capsys):
    ratings = tmp_path / "ratings.csv"
    ratings.write_text("userId,movieId,rating,timestamp\n1,2,4.0,964982703\n1,3,x,1\n")
    code = recnas(
        "data ingest movielens {r} --out {o} --protocol random",
        r=ratings,
        o=tmp_path / "o",
    )
    assert code == 2
    assert "ratings.csv line 3: label" in capsys.readouterr().err


def test_hash_encoding_flags(tmp_path, capsys):
    out = tmp_path / "h"
    code = recnas(
        "data synth --like criteo --rows 2000 --out {out} "
        "--encoding hash --hash-size C3=50,*=1000",
        out=out,
    )
    assert code == 0
    record = json.loads((out / "meta.json").read_text())
    assert record["synthetic"] is True
    sizes = {f["name"]: f["vocab_size"] for f in record["features"]["sparse"]}
    assert sizes["C3"] == 50 and sizes["C1"] == 1000
    assert "SYNTHETIC dataset criteo" in capsys.readouterr().out


def test_synth_raw_writes_a_file_ingest_reads(tmp_path, capsys):
    raw = tmp_path / "train.csv"
    assert recnas("data synth --like avazu --rows 1500 --out {raw} --raw", raw=raw) == 0
    assert "wrote 1500 synthetic avazu rows" in capsys.readouterr().out
    assert len(raw.read_text().splitlines()) == 1501
    meta = ingest("avazu", [str(raw)], str(tmp_path / "o"), max_rejected_fraction=0)
    check_dataset(meta)
