"""Job files: presets, overrides and errors that name the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from recnas.jobs.presets import PRESETS
from recnas.jobs.spec import load_job

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(text)
    (tmp_path / "raw.csv").write_text("x\n")
    return path


BASE = """
name: t1
preset: tiny
dataset: {name: movielens, inputs: [raw.csv]}
"""


def test_shipped_jobs_load() -> None:
    job = load_job(REPO / "jobs" / "demo.yaml")
    assert job.name == "movielens-demo"
    assert job.search.budget == PRESETS["demo"]["search"]["budget"]
    assert Path(job.dataset.inputs[0]).is_file()
    paper = load_job(REPO / "jobs" / "criteo_paper.yaml", resolve_inputs=False)
    assert paper.search.population_size == 128
    assert paper.search.sample_size == 64
    assert paper.search.children == 8
    assert paper.search.budget == 2048


def test_preset_fills_and_file_wins(tmp_path: Path) -> None:
    job = load_job(write(tmp_path, BASE + "search: {budget: 5}\n"))
    assert job.search.budget == 5
    assert job.search.population_size == PRESETS["tiny"]["search"]["population_size"]
    assert job.retrain.top_k == PRESETS["tiny"]["retrain"]["top_k"]


def test_overrides_win_over_file(tmp_path: Path) -> None:
    job = load_job(write(tmp_path, BASE), {"search": {"budget": 3}})
    assert job.search.budget == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("search: {budgett: 5}\n", r"job\.yaml: search: unknown key 'budgett'"),
        ("search: {budget: lots}\n", r"search\.budget: expected an integer"),
        ("resources: {use_gpu: 1}\n", r"resources\.use_gpu: expected true or false"),
        ("colour: red\n", r"unknown key 'colour'"),
        ("baselines: {models: dnn}\n", r"baselines\.models: expected a list"),
        ("search: {searcher: bayes}\n", r"search\.searcher: unknown 'bayes'"),
        ("baselines: {models: [dnn, wdl]}\n", r"baselines\.models: unknown 'wdl'"),
        ("search: {budget: 0}\n", r"search\.budget: must be at least 1"),
        ("search: {sample_size: 9}\n", r"search\.sample_size: must be between"),
        ("space: nasrec_huge\n", r"space: .*nasrec_huge"),
        ("resources: {workers: 0}\n", r"resources\.workers: must be at least 1"),
        ("resources: {cpus_per_worker: 0}\n", r"cpus_per_worker: must be greater"),
        ("resources: {bf16: true}\n", r"resources\.bf16: autocast to bfloat16 runs"),
        ("supernet: {lr: -1}\n", r"supernet\.lr: must be greater than 0"),
        ("supernet: {optimizer: sgd}\n", r"supernet\.optimizer: unknown 'sgd'"),
        ("search: {finetune_lr: .nan}\n", r"search\.finetune_lr: must be a finite"),
        ("supernet: {lr: .inf}\n", r"supernet\.lr: must be a finite number"),
        ("seed: -1\n", r"seed: must be in 0\.\.2\*\*32-1, got -1"),
        ("seed: 1180591620717411303424\n", r"seed: must be in"),
        ("supernet: {lr: 1}\nsupernet: {lr: 2}\n", r"key 'supernet' is given twice"),
        ("search: {cpus_per_trial: 0}\n", r"search\.cpus_per_trial: must be"),
        ("retrain: {top_k: 0}\n", r"retrain\.top_k: must be at least 1"),
        ("retrain: {patience: -1}\n", r"retrain\.patience: must be at least 0"),
        ("baselines: {models: []}\n", r"baselines\.models: name at least one"),
        (
            "baselines: {params: {dnn: {width: 3}}}\n",
            r"baselines\.params\.dnn: dnn takes no 'width'",
        ),
    ],
)
def test_bad_keys_and_values_are_named(
    tmp_path: Path, extra: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        load_job(write(tmp_path, BASE + extra))


def test_missing_and_bad_top_level(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing required key 'dataset'"):
        load_job(write(tmp_path, "name: t1\n"))
    with pytest.raises(ValueError, match="unknown 'huge'"):
        load_job(write(tmp_path, BASE.replace("tiny", "huge")))
    with pytest.raises(ValueError, match="not a valid job name"):
        load_job(write(tmp_path, BASE.replace("t1", "a b")))
    with pytest.raises(ValueError, match="does not exist"):
        load_job(tmp_path / "absent.yaml")


def test_missing_input_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, BASE.replace("raw.csv", "nowhere.csv"))
    with pytest.raises(ValueError, match=r"dataset\.inputs: 'nowhere\.csv'"):
        load_job(path)
    path = write(tmp_path, BASE.replace("raw.csv", "/nowhere/raw.csv"))
    with pytest.raises(ValueError, match=r"dataset\.inputs: '/nowhere/raw\.csv'"):
        load_job(path)


def test_dataset_names_are_checked_before_anything_runs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"dataset\.name: unknown 'critreo'"):
        load_job(write(tmp_path, BASE.replace("movielens", "critreo")))
    bad_option = BASE.replace("inputs: [raw.csv]", "inputs: [raw.csv], options: {x: 1}")
    with pytest.raises(ValueError, match=r"dataset: unknown ingest option"):
        load_job(write(tmp_path, bad_option))
    by_hour = BASE.replace("inputs: [raw.csv]", "inputs: [raw.csv], protocol: by_hour")
    with pytest.raises(ValueError, match=r"unknown protocol 'by_hour'"):
        load_job(write(tmp_path, by_hour))


def test_command_line_overrides_are_named_as_such(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"on the command line\): search\.budget"):
        load_job(write(tmp_path, BASE), {"search": {"budget": "many"}})
    with pytest.raises(
        ValueError, match=r"on the command line\): dataset\.inputs: name"
    ):
        load_job(write(tmp_path, BASE), {"dataset": {"inputs": []}})


def test_numbers_with_an_exponent_are_numbers(tmp_path: Path) -> None:
    from recnas.cli import _overrides

    job = load_job(write(tmp_path, BASE + "supernet: {lr: 1e-3}\n"))
    assert job.supernet.lr == pytest.approx(0.001)
    job = load_job(write(tmp_path, BASE), _overrides(["search.finetune_lr=5E-2"]))
    assert job.search.finetune_lr == pytest.approx(0.05)
    assert _overrides(["seed=7", "name=1e3x", "tag=.e5"]) == {
        "seed": 7,
        "name": "1e3x",
        "tag": ".e5",
    }


def test_storage_takes_paths_file_and_s3_uris(tmp_path: Path) -> None:
    job = load_job(write(tmp_path, BASE + f"storage: file://{tmp_path}/runs\n"))
    assert job.storage == job.storage_root == f"{tmp_path}/runs"
    job = load_job(write(tmp_path, BASE), {"storage": "s3://bucket/runs"})
    assert job.storage_root == "s3://bucket/runs"
    for bad in ("file://runs", "file:/runs", "s3:/bucket", "ftp://host/runs"):
        with pytest.raises(ValueError, match=rf"storage: '{bad}' is neither a local"):
            load_job(write(tmp_path, BASE + f"storage: {bad}\n"))
