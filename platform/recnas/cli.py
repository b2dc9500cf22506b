"""The ``recnas`` command.

recnas run JOB.yaml                run a job here (local Ray, or --address)
recnas submit JOB.yaml --address   send a job to a Ray cluster (Jobs API)
recnas ui                          the MLflow UI on 127.0.0.1
recnas data ingest|inspect|synth   datasets
recnas arch show|sample            architectures
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from recnas import __version__, env, yamlio

logger = logging.getLogger(__name__)


def _overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``--set search.budget=8`` pairs as a nested mapping (values parsed as YAML)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(
                f"--set {pair!r}: expected KEY=VALUE, e.g. search.budget=8"
            )
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yamlio.parse(value, f"--set {pair}")
    return result


def _run(args: argparse.Namespace) -> int:
    from recnas.jobs.runner import run_job

    overrides = _overrides(args.set or [])
    if args.storage:
        overrides["storage"] = args.storage
    result = run_job(
        args.job,
        overrides=overrides,
        address=args.address,
        stages=args.stages.split(",") if args.stages else None,
        force=args.force.split(",") if args.force else (),
    )
    if result.skipped:
        print(f"reused finished stages: {', '.join(result.skipped)}")
    table = result.outputs.get("report", {}).get("table")
    if table:
        print()
        print(table)
        print()
        print(f"model: {result.outputs['report']['model_uri']}")
    hint = _ui_hint(result.tracking_uri)
    print(f"MLflow: {result.tracking_uri}  (browse with `{hint}`)")
    return 0


def _ui_hint(tracking_uri: str) -> str:
    """The ``recnas ui`` command that opens this MLflow store."""
    prefix, suffix = "sqlite:///", "/mlflow.db"
    if not (tracking_uri.startswith(prefix) and tracking_uri.endswith(suffix)):
        return f"recnas ui --tracking-uri {tracking_uri}"
    folder = Path(tracking_uri[len(prefix) : -len(suffix)])
    if folder == Path(env.storage_root()).resolve():
        return "recnas ui"
    return f"recnas ui --storage {folder}"


def _submit(args: argparse.Namespace) -> int:
    from recnas.jobs.submit import submit_job

    job_id = submit_job(args.job, address=args.address, wait=args.wait)
    print(f"submitted {job_id} to {args.address}")
    return 0


def _ui(args: argparse.Namespace) -> int:
    from recnas.data.storage import local_or_s3
    from recnas.tracking.mlflow_tracker import (
        check_ui_port,
        default_tracking_uri,
        serve_ui,
    )

    uri = args.tracking_uri or env.tracking_uri()
    if uri is None:
        storage = local_or_s3(args.storage or env.storage_root())
        if not (Path(storage) / "mlflow.db").is_file():
            raise ValueError(
                f"no MLflow store in {storage!r} (mlflow.db is missing): run a job "
                "with this storage first, or pass --storage or --tracking-uri"
            )
        uri = default_tracking_uri(storage)
    check_ui_port(args.host, args.port)
    print(f"MLflow UI for {uri} on http://{args.host}:{args.port}  (Ctrl-C stops)")
    serve_ui(uri, host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recnas",
        description="Neural architecture search for CTR models on Ray (NASRec).",
    )
    parser.add_argument("--version", action="version", version=__version__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a job: ingest, supernet, search, ...")
    run.add_argument("job", help="job file (YAML)")
    run.add_argument(
        "--address", help="Ray cluster address (default: RAY_ADDRESS or a local Ray)"
    )
    run.add_argument("--storage", help="storage URI (folder or s3://...)")
    run.add_argument("--stages", help="comma-separated stages to run")
    run.add_argument("--force", help="comma-separated stages to redo")
    run.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a job setting, e.g. search.budget=8",
    )
    run.set_defaults(func=_run)

    submit = sub.add_parser("submit", help="send a job to a Ray cluster")
    submit.add_argument("job", help="job file (YAML)")
    submit.add_argument(
        "--address", required=True, help="dashboard address, e.g. http://HEAD:8265"
    )
    submit.add_argument("--wait", action="store_true", help="wait and stream logs")
    submit.set_defaults(func=_submit)

    ui = sub.add_parser("ui", help="open the MLflow UI on 127.0.0.1")
    ui.add_argument("--storage", help="storage folder holding mlflow.db")
    ui.add_argument("--tracking-uri", help="an MLflow tracking URI instead")
    ui.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    ui.add_argument(
        "--port", type=int, default=5000, help="port to listen on (default %(default)s)"
    )
    ui.set_defaults(func=_ui)

    from recnas.data.commands import add_data_parser
    from recnas.models.report import add_arch_parser

    add_data_parser(sub)
    add_arch_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``recnas`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args) or 0)
    except (ValueError, ConnectionError) as error:
        print(f"recnas: error: {error}", file=sys.stderr)
        return 2
    except RuntimeError as error:
        from recnas.train.launcher import TrainingFailed

        if not isinstance(error, TrainingFailed):
            raise
        print(f"recnas: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # A forced stage starts afresh each time: resuming it means not forcing.
        again = "without --force" if getattr(args, "force", None) else "again"
        print(
            f"recnas: interrupted; run the command {again} to resume", file=sys.stderr
        )
        return 130


if __name__ == "__main__":
    sys.exit(main())
