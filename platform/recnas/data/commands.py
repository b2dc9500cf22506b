"""The ``recnas data`` commands: ingest, inspect and synth.

::

    recnas data ingest DATASET INPUT... --out URI [--protocol P] [...]
    recnas data inspect URI [--json]
    recnas data synth --like criteo --rows N --out URI [--raw]

:func:`add_data_parser` registers them on the ``recnas`` parser; each sets
``func`` to the function that runs it, which returns the exit code. User
errors are raised as ``ValueError`` (the CLI turns them into exit code 2).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from typing import Any, TextIO

from recnas.data.meta import DatasetMeta, load_meta
from recnas.data.protocols import PROTOCOLS
from recnas.data.readers import DATASETS
from recnas.data.vocab import ENCODINGS
from recnas.runtime import ray_session

logger = logging.getLogger(__name__)


def add_data_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Adds ``data ingest|inspect|synth`` to the ``recnas`` subcommands."""
    data = subparsers.add_parser("data", help="datasets: ingest, inspect, synth")
    verbs = data.add_subparsers(dest="data_command", required=True)

    ingest = verbs.add_parser("ingest", help="raw files -> Parquet splits + meta.json")
    ingest.add_argument("dataset", choices=DATASETS)
    ingest.add_argument("inputs", nargs="+", help="raw files, folders or zips")
    ingest.add_argument("--out", required=True, help="output folder or s3:// URI")
    _add_ingest_options(ingest)
    ingest.set_defaults(func=ingest_command)

    inspect = verbs.add_parser("inspect", help="print a dataset's meta.json readably")
    inspect.add_argument("uri", help="processed dataset folder or s3:// URI")
    inspect.add_argument("--json", action="store_true", help="print the raw JSON")
    inspect.set_defaults(func=inspect_command)

    synth = verbs.add_parser("synth", help="synthetic data with a real schema")
    synth.add_argument("--like", required=True, choices=("criteo", "avazu", "kdd2012"))
    synth.add_argument("--rows", required=True, type=int, help="rows to generate")
    synth.add_argument(
        "--out", required=True, help="output folder (or file with --raw)"
    )
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--raw", action="store_true", help="write only the raw file at --out"
    )
    _add_ingest_options(synth)
    synth.set_defaults(func=synth_command)
    return data


def _add_ingest_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", choices=PROTOCOLS, default="autoctr_811")
    parser.add_argument("--seed-split", type=int, help="seed of the random protocol")
    parser.add_argument(
        "--ratios",
        help="train,val,test fractions for random and time, e.g. 0.8,0.1,0.1",
    )
    parser.add_argument("--encoding", choices=ENCODINGS, default="vocab")
    parser.add_argument("--min-count", type=int, default=1, help="vocabulary threshold")
    parser.add_argument(
        "--hash-size",
        help="table size for --encoding hash: N for all, or FEATURE=N,...,*=N",
    )
    parser.add_argument("--max-rejected-fraction", type=float, default=0.001)
    parser.add_argument("--chunk-mb", type=float, default=32, help="MiB per task")
    parser.add_argument(
        "--ray",
        action="store_true",
        help="run the chunks as Ray tasks (RAY_ADDRESS or a local Ray)",
    )
    parser.add_argument("--workers", type=int, help="threads without Ray")
    parser.add_argument("--overwrite", action="store_true", help="start afresh")
    parser.add_argument("--keep-work", action="store_true", help="keep _work/")


def _parse_hash_size(text: str | None) -> Any:
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    sizes: dict[str, int] = {}
    for pair in text.split(","):
        name, sep, value = pair.partition("=")
        if not sep or not value.strip().isdigit():
            raise ValueError(
                f"--hash-size {text!r}: give N, or FEATURE=N pairs such as "
                "C1=1000,*=100000"
            )
        sizes[name.strip()] = int(value)
    return sizes


def ingest_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of :func:`recnas.data.ingest.ingest` from the flags."""
    options: dict[str, Any] = {
        "protocol": args.protocol,
        "encoding": args.encoding,
        "min_count": args.min_count,
        "hash_size": _parse_hash_size(args.hash_size),
        "max_rejected_fraction": args.max_rejected_fraction,
        "chunk_bytes": int(args.chunk_mb * (1 << 20)),
        "overwrite": args.overwrite,
        "keep_work": args.keep_work,
        "parallel": "ray" if args.ray else "local",
        "workers": args.workers,
    }
    if args.seed_split is not None:
        options["seed"] = args.seed_split
    if args.ratios:
        try:
            options["ratios"] = tuple(float(r) for r in args.ratios.split(","))
        except ValueError as err:
            raise ValueError(
                f"--ratios {args.ratios!r}: give e.g. 0.8,0.1,0.1"
            ) from err
    return options


def _ray(wanted: bool) -> contextlib.AbstractContextManager:
    """Ray for the duration of a command when asked for (see recnas.runtime)."""
    return ray_session() if wanted else contextlib.nullcontext()


def ingest_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``recnas data ingest``: prints a summary; errors raise ValueError."""
    from recnas.data.ingest import ingest

    options = ingest_options(args)
    protocol = options.pop("protocol")
    with _ray(args.ray):
        meta = ingest(args.dataset, args.inputs, args.out, protocol=protocol, **options)
    stream = out or sys.stdout
    stream.write(describe(meta))
    return 0


def inspect_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``recnas data inspect``: the dataset's record, readable or as JSON."""
    meta = load_meta(args.uri)
    stream = out or sys.stdout
    stream.write(meta.to_json() if args.json else describe(meta))
    return 0


def synth_command(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """``recnas data synth``: a synthetic raw file or processed dataset."""
    from recnas.data.synth import synthesize, write_raw

    stream = out or sys.stdout
    if args.raw:
        stats = write_raw(args.like, args.rows, args.out, seed=args.seed)
        stream.write(
            f"wrote {stats['rows']} synthetic {args.like} rows "
            f"({stats['bytes']} bytes, {stats['positives']} positive) to {args.out}\n"
        )
        return 0
    options = ingest_options(args)
    with _ray(args.ray):
        meta = synthesize(args.like, args.rows, args.out, seed=args.seed, **options)
    stream.write(describe(meta))
    return 0


def describe(meta: DatasetMeta) -> str:
    """A readable summary of a dataset's ``meta.json``."""
    kind = "SYNTHETIC " if meta.synthetic else ""
    lines = [f"{kind}dataset {meta.dataset} at {meta.uri}  (recnas {meta.version})"]
    proto = dict(meta.protocol)
    lines.append(f"protocol  {proto.pop('name')}  {json.dumps(proto)}")
    lines.append(f"rows read {meta.rows_read}")
    for split, rows in meta.rows.items():
        files, md5 = meta.files.get(split, []), meta.split_md5(split)
        lines.append(f"  {split:<6} {rows:>12}  {len(files)} file(s)  md5 {md5}")
    rejected = sum(meta.rejected.values())
    reasons = ", ".join(f"{k} {v}" for k, v in meta.rejected.items()) or "none"
    lines.append(f"rejected  {rejected}  ({reasons})")
    enc = dict(meta.encoding)
    lines.append(f"encoding  {enc.pop('kind', '?')}  {json.dumps(enc)}")
    lines.append(
        f"dense     {len(meta.features.dense)}: {', '.join(meta.features.dense)}"
    )
    lines.append(f"sparse    {len(meta.features.sparse)}:")
    for f in meta.features.sparse:
        multi = f"  multi-valued, up to {f.max_len}" if f.multi_valued else ""
        lines.append(f"  {f.name:<18} {f.vocab_size:>10} ids{multi}")
    for src in meta.sources:
        member = f" [{src['member']}]" if src.get("member") else ""
        lines.append(f"source    {src['uri']}{member}  {src['bytes']} bytes")
    return "\n".join(lines) + "\n"
