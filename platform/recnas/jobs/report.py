"""The report stage: leaderboard, search plots, the registered winner."""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from typing import Any

from recnas.data import storage
from recnas.space.arch import Architecture

logger = logging.getLogger(__name__)

COLUMNS = (
    "rank",
    "model",
    "kind",
    "arch_id",
    "test_logloss",
    "test_auc",
    "val_logloss",
    "macs",
    "params",
    "latency_ms_b1",
)


def leaderboard(ctx: Any) -> list[dict[str, Any]]:
    """The searched model and every baseline, best test log loss first."""
    final = ctx.upstream["retrain"]["final"]
    rows = [_row(f"nasrec-{final['arch_id']}", "searched", final)]
    for result in ctx.upstream["baselines"]["results"]:
        rows.append(_row(result["name"], "baseline", result))
    rows.append(_row("base rate", "reference", base_rate(ctx.meta())))
    rows.sort(key=lambda r: _sort_key(r["test_logloss"]))
    for rank, row in enumerate(rows, start=1):
        row["rank"] = rank
    return rows


def _sort_key(value: Any) -> float:
    return value if isinstance(value, float) and math.isfinite(value) else math.inf


def _row(name: str, kind: str, result: dict[str, Any]) -> dict[str, Any]:
    row = {"model": name, "kind": kind, "arch_id": result.get("arch_id", "")}
    keys = ("test_logloss", "test_auc", "val_logloss", "macs", "params",
            "latency_ms_b1", "checkpoint")  # fmt: skip
    row.update({k: result.get(k) for k in keys})
    return row


def base_rate(meta: Any) -> dict[str, Any]:
    """Scores of predicting the train click rate for every row: the floor
    that any model has to beat (AUC 0.5)."""
    rate = _label_mean(meta, "train")
    rate = min(max(rate, 1e-7), 1 - 1e-7)
    result: dict[str, Any] = {"macs": 0, "params": 0}
    for split in ("val", "test"):
        p = _label_mean(meta, split)
        logloss = -(p * math.log(rate) + (1 - p) * math.log(1 - rate))
        result.update({f"{split}_logloss": logloss, f"{split}_auc": 0.5})
    return result


def _label_mean(meta: Any, split: str) -> float:
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    total, count = 0.0, 0
    for uri in meta.split_uris(split):
        fs, path = storage.resolve(uri)
        labels = pq.read_table(path, columns=[meta.features.label], filesystem=fs)
        column = labels.column(0)
        total += pc.sum(column).as_py() or 0.0
        count += len(column)
    return total / max(count, 1)


def format_table(rows: list[dict[str, Any]]) -> str:
    """The leaderboard as an aligned text table."""
    header = [
        "#",
        "model",
        "kind",
        "test logloss",
        "test AUC",
        "val logloss",
        "MACs/ex",
        "params",
        "ms@1",
    ]
    lines = [header]
    for r in rows:
        lines.append(
            [
                str(r["rank"]),
                r["model"],
                r["kind"],
                _num(r["test_logloss"], 4),
                _num(r["test_auc"], 4),
                _num(r["val_logloss"], 4),
                _count(r["macs"]),
                _count(r["params"]),
                _num(r["latency_ms_b1"], 2),
            ]
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        cells = [
            c.ljust(w) if j < 3 else c.rjust(w)
            for j, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        out.append("  ".join(cells))
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _num(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return f"{value:.{digits}f}"


def _count(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= size:
            return f"{value / size:.2f}{unit}"
    return str(value)


def _csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def search_figures(candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """Search progress (score by trial, best so far) and the cost/score Pareto."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scored = [c for c in candidates if c.get("val_logloss") is not None]
    xs = [c["index"] for c in scored]
    ys = [c["val_logloss"] for c in scored]
    best, running = [], math.inf
    for y in ys:
        running = min(running, y)
        best.append(running)

    progress, ax = plt.subplots(figsize=(7, 4))
    ax.scatter(xs, ys, s=12, alpha=0.6, label="candidate")
    ax.plot(xs, best, color="black", label="best so far")
    ax.set(
        xlabel="candidate",
        ylabel="validation log loss (supernet)",
        title="Search progress",
    )
    ax.legend()
    progress.tight_layout()

    pareto, ax = plt.subplots(figsize=(7, 4))
    macs = [c.get("macs", 0) for c in scored]
    ax.scatter(macs, ys, s=12, alpha=0.6)
    front = _pareto_front(list(zip(macs, ys, strict=True)))
    ax.plot(
        [p[0] for p in front],
        [p[1] for p in front],
        color="red",
        drawstyle="steps-post",
        label="Pareto front",
    )
    ax.set_xscale("log")
    ax.set(
        xlabel="multiply-adds per example",
        ylabel="validation log loss",
        title="Cost against score",
    )
    ax.legend()
    pareto.tight_layout()
    return {"search_progress.png": progress, "pareto.png": pareto}


def _pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    front, best = [], math.inf
    for x, y in sorted(points):
        if y < best:
            front.append((x, y))
            best = y
    return front


def write_report(ctx: Any) -> dict[str, Any]:
    """Logs the leaderboard, plots and the registered winner; returns outputs."""
    import matplotlib.pyplot as plt

    from recnas.tracking.serving import CtrPredictor

    t, run = ctx.tracker, ctx.run
    rows = leaderboard(ctx)
    text = format_table(rows)
    t.log_text(run, text + "\n", "leaderboard.txt")
    t.log_text(run, _csv(rows), "leaderboard.csv")
    ctx.write_json(rows, "leaderboard.json")

    search = json.loads(storage.read_bytes(ctx.upstream["search"]["candidates_file"]))
    for name, figure in search_figures(search.get("candidates", [])).items():
        t.log_figure(run, figure, name)
        plt.close(figure)

    final = ctx.upstream["retrain"]["final"]
    t.log_json(run, final["arch"], "winner/architecture.json")
    _log_diagram(ctx, final["arch"])
    t.log_metrics(
        run,
        {
            "winner_test_logloss": final["test_logloss"],
            "winner_test_auc": final["test_auc"],
        },
    )
    t.set_tags(run, {"recnas.arch_id": final["arch_id"]})

    register_as = ctx.job.tracking.register_as or f"{ctx.job.name}-best"
    example = _example_frame(ctx.meta(), "test", rows=5)
    model_uri = t.log_pyfunc_model(
        run,
        "winner",
        CtrPredictor(ctx.meta().features.to_dict()),
        {"checkpoint": final["checkpoint"]},
        input_example=example,
        register_as=register_as,
    )
    return {"leaderboard": rows, "table": text, "model_uri": model_uri}


def _example_frame(meta: Any, split: str, rows: int) -> Any:
    import pyarrow.parquet as pq

    fs, path = storage.resolve(meta.split_uris(split)[0])
    table = pq.read_table(path, filesystem=fs).slice(0, rows)
    return table.drop_columns([meta.features.label]).to_pandas()


def _log_diagram(ctx: Any, arch: dict[str, Any]) -> None:
    import tempfile

    from recnas.models.report import draw_architecture

    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/architecture.png"
        draw_architecture(Architecture.from_dict(arch), path, ctx.meta().features)
        ctx.tracker.log_file(ctx.run, path, "winner")
