"""`recnas arch show|sample`: summary text, block graph and the argparse wiring."""

from __future__ import annotations

import argparse
import io
import json

import pytest

from recnas.models.report import add_arch_parser, draw_architecture, run_arch, summary
from recnas.space import Architecture, load_space
from recnas.space.nasrec_format import read_architecture, to_nasrec
from tests.models.test_cost import NASREC_SMALL_BEST


def _cli(argv: list[str]) -> str:
    parser = argparse.ArgumentParser(prog="recnas")
    add_arch_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    out = io.StringIO()
    assert args.func(args, out) == 0
    return out.getvalue()


@pytest.fixture
def arch_files(tmp_path):
    recnas = tmp_path / "arch.json"
    recnas.write_text(NASREC_SMALL_BEST.to_json())
    nasrec = tmp_path / "nasrec.json"
    nasrec.write_text(json.dumps(to_nasrec(NASREC_SMALL_BEST)))
    return recnas, nasrec


def test_show_prints_costs_in_both_formats(arch_files, tmp_path):
    png = tmp_path / "graph.png"
    texts = [_cli(["arch", "show", str(path)]) for path in arch_files]
    assert texts[0] == texts[1]
    lines = texts[0].splitlines()
    assert "multiply-adds per example: 2,207,808" in lines
    assert "block 5: dead (no output reaches the head)" in lines
    assert any(line.startswith("  dense  dot_product     d=1024") for line in lines)
    text = _cli(
        ["arch", "show", str(arch_files[1]), "--features", "2,5", "--png", str(png)]
    )
    assert "features: 2 dense, 5 sparse, E = 16" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_show_errors(arch_files):
    with pytest.raises(ValueError, match="expected DENSE,SPARSE counts"):
        _cli(["arch", "show", str(arch_files[0]), "--features", "13"])
    with pytest.raises(ValueError, match="does not fit search space 'nasrec_full'"):
        _cli(["arch", "show", str(arch_files[0]), "--space", "nasrec_full"])


@pytest.mark.parametrize("fmt", ["recnas", "nasrec"])
def test_sample_prints_a_valid_architecture(fmt):
    text = _cli(["arch", "sample", "nasrec_full", "--seed", "4", "--format", fmt])
    arch = read_architecture(json.loads(text))
    assert arch == read_architecture(json.loads(text), "nasrec_full")
    assert text == _cli(
        ["arch", "sample", "nasrec_full", "--seed", "4", "--format", fmt]
    )
    other = _cli(["arch", "sample", "nasrec_full", "--seed", "5", "--format", fmt])
    assert other != text


def test_summary_and_drawing_functions(tmp_path):
    from recnas.models.report import parse_features

    text = summary(NASREC_SMALL_BEST, parse_features("13,26"), latency=True)
    assert "latency at batch 512:" in text
    path = draw_architecture(NASREC_SMALL_BEST, tmp_path / "a.png")
    assert path.stat().st_size > 10_000
    assert isinstance(Architecture.from_json(NASREC_SMALL_BEST.to_json()), Architecture)
    assert load_space("nasrec_small").name in text
    assert run_arch.__doc__
