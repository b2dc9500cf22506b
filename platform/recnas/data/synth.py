"""The scale generator: synthetic raw files with the real schema and skew.

For benchmarks and scale tests, :func:`write_raw` writes a raw file in the
exact format of ``criteo``, ``avazu`` or ``kdd2012`` (so ingest reads it like
the real thing), and :func:`synthesize` also ingests it into a processed
dataset whose ``meta.json`` says ``"synthetic": true``.

What makes it realistic enough for speed and memory figures:

- sparse ids drawn Zipf-like (P(rank r) ~ 1/r) over each feature's real
  cardinality (Criteo Kaggle and Avazu table sizes), hashed to the real id
  form (8 hex digits, or decimal ids);
- missing rates, zero rates, negative rates and the log-scale spread of each
  Criteo dense feature as measured on the first 10,000 Kaggle rows;
- labels at the real click rate, depending on a few features so that a model
  can learn something.

Nothing here is real data: never report model quality measured on it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from recnas.data import storage
from recnas.data.meta import DatasetMeta

logger = logging.getLogger(__name__)

LIKE = ("criteo", "avazu", "kdd2012")
LABEL = {"criteo": "label", "avazu": "click", "kdd2012": "Click"}
BLOCK_ROWS = 200_000

# Criteo Kaggle: rows of each C feature's table in the full 45 M-row train set.
CRITEO_CARDINALITY = (
    1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593, 3194,
    27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105, 142572,
)  # fmt: skip
CRITEO_SPARSE_MISSING = (
    0, 0, 0.036, 0.036, 0, 0.133, 0, 0, 0, 0, 0, 0.036, 0, 0, 0, 0.036, 0, 0, 0.45,
    0.45, 0.036, 0.818, 0, 0.036, 0.45, 0.45,
)  # fmt: skip
# Per I feature: missing rate, zero rate, negative rate, mean and std of log1p(x).
CRITEO_DENSE = (
    (0.448, 0.475, 0.0, 0.8, 0.98), (0.0, 0.18, 0.098, 2.12, 2.13),
    (0.204, 0.008, 0.0, 2.25, 1.28), (0.198, 0.071, 0.0, 1.73, 0.96),
    (0.049, 0.017, 0.0, 7.24, 2.9), (0.251, 0.063, 0.0, 3.58, 1.81),
    (0.049, 0.253, 0.0, 1.54, 1.36), (0.001, 0.118, 0.0, 2.06, 1.18),
    (0.049, 0.032, 0.0, 3.61, 1.69), (0.448, 0.502, 0.0, 0.38, 0.39),
    (0.049, 0.265, 0.0, 0.85, 0.74), (0.773, 0.736, 0.0, 0.3, 0.61),
    (0.198, 0.062, 0.0, 1.88, 1.06),
)  # fmt: skip
AVAZU_HEX = {
    "site_id": 4737, "site_domain": 7745, "site_category": 26, "app_id": 8552,
    "app_domain": 559, "app_category": 36, "device_id": 2686408,
    "device_ip": 6729486, "device_model": 8251,
}  # fmt: skip
AVAZU_INT = {
    "C1": 7, "banner_pos": 7, "device_type": 5, "device_conn_type": 4, "C14": 2626,
    "C15": 8, "C16": 9, "C17": 435, "C18": 4, "C19": 68, "C20": 172, "C21": 60,
}  # fmt: skip
KDD_IDS = {
    "DisplayURL": 27067, "AdID": 641707, "AdvertiserID": 14847, "QueryID": 26243606,
    "KeywordID": 1249785, "TitleID": 4051441, "DescriptionID": 3171830,
    "UserID": 23669283,
}  # fmt: skip
_HEX_DIGITS = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def zipf_ranks(rng: np.random.Generator, cardinality: int, n: int) -> np.ndarray:
    """Ranks 0..cardinality-1 with P(rank r) falling like 1/(r+1)."""
    u = rng.random(n)
    return np.minimum(
        np.floor(np.power(cardinality + 1.0, u)) - 1, cardinality - 1
    ).astype(np.uint64)


def _mix(ranks: np.ndarray, salt: int) -> np.ndarray:
    """A fixed 32-bit scramble of (feature, rank): the id's bits look random."""
    x = (ranks + np.uint64(salt) * np.uint64(0x9E3779B1)) & np.uint64(0xFFFFFFFF)
    x = (x ^ (x >> np.uint64(16))) * np.uint64(0x45D9F3B) & np.uint64(0xFFFFFFFF)
    x = (x ^ (x >> np.uint64(16))) * np.uint64(0x45D9F3B) & np.uint64(0xFFFFFFFF)
    return x ^ (x >> np.uint64(16))


def hex_strings(values: np.ndarray, missing: np.ndarray | None = None) -> pa.Array:
    """32-bit values as 8-hex-digit strings (null where ``missing``)."""
    v = values.astype(np.uint64)
    shifts = np.arange(28, -4, -4, dtype=np.uint64)
    nibbles = ((v[:, None] >> shifts) & np.uint64(15)).astype(np.uint8)
    chars = np.ascontiguousarray(_HEX_DIGITS[nibbles])
    offsets = np.arange(0, 8 * len(v) + 1, 8, dtype=np.int32)
    arr = pa.StringArray.from_buffers(
        len(v), pa.py_buffer(offsets), pa.py_buffer(chars.tobytes())
    )
    if missing is not None and missing.any():
        arr = pc.if_else(pa.array(missing), pa.scalar(None, pa.string()), arr)
    return arr


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _centered(ranks: np.ndarray, salt: int) -> np.ndarray:
    """A value in [-1, 1) fixed per rank: a learnable per-id effect."""
    return _mix(ranks, salt).astype(np.float64) / 2**31 - 1.0


def _criteo_block(rng: np.random.Generator, n: int, start: int, total: int) -> pa.Table:
    columns: dict[str, pa.Array] = {}
    signal = np.zeros(n)
    dense_cols = {}
    for i, (p_missing, p_zero, p_neg, mu, sd) in enumerate(CRITEO_DENSE, start=1):
        values = np.rint(np.expm1(np.clip(rng.normal(mu, sd, n), 0, 20))).astype(
            np.int64
        )
        values[rng.random(n) < p_zero] = 0
        values[rng.random(n) < p_neg] = -1
        missing = rng.random(n) < p_missing
        dense_cols[f"I{i}"] = pa.array(values, mask=missing)
        if i in (1, 7, 11):
            signal += 0.25 * (np.log1p(np.maximum(values, 0)) - mu) * ~missing
    for j, card in enumerate(CRITEO_CARDINALITY, start=1):
        ranks = zipf_ranks(rng, card, n)
        if j in (2, 4, 6, 14, 17):
            signal += 0.6 * _centered(ranks, 1000 + j)
        missing = rng.random(n) < CRITEO_SPARSE_MISSING[j - 1]
        columns[f"C{j}"] = hex_strings(_mix(ranks, j), missing)
    label = (rng.random(n) < _sigmoid(np.log(0.256 / 0.744) + signal)).astype(np.int8)
    return pa.table({"label": label, **dense_cols, **columns})


def _avazu_block(rng: np.random.Generator, n: int, start: int, total: int) -> pa.Table:
    signal = np.zeros(n)
    columns: dict[str, Any] = {
        "id": pa.array(rng.integers(0, 2**63, n, dtype=np.uint64)),
    }
    # Ten days of hours, in time order through the file (as the real logs).
    hours = (start + np.arange(n)) * 240 // total
    stamp = 14102100 + (hours // 24) * 100 + hours % 24
    ints = {}
    for name, card in AVAZU_INT.items():
        ranks = zipf_ranks(rng, card, n).astype(np.int64)
        values = ranks * 7 + 1000 if name.startswith("C") else ranks
        if name == "C20":
            values = np.where(ranks == 0, -1, 100000 + ranks)
        ints[name] = pa.array(values)
    hexes = {}
    for k, (name, card) in enumerate(AVAZU_HEX.items()):
        ranks = zipf_ranks(rng, card, n)
        if name in ("site_id", "app_id", "device_model"):
            signal += 0.7 * _centered(ranks, 2000 + k)
        hexes[name] = hex_strings(_mix(ranks, 100 + k))
    click = (rng.random(n) < _sigmoid(np.log(0.17 / 0.83) + signal)).astype(np.int8)
    columns.update(click=click, hour=stamp, C1=ints.pop("C1"))
    columns["banner_pos"] = ints.pop("banner_pos")
    columns.update(hexes)
    columns.update(ints)
    return pa.table(columns)


def _kdd_block(rng: np.random.Generator, n: int, start: int, total: int) -> pa.Table:
    signal = np.zeros(n)
    ids = {}
    for k, (name, card) in enumerate(KDD_IDS.items()):
        ranks = zipf_ranks(rng, card, n)
        if name in ("AdID", "QueryID"):
            signal += 0.8 * _centered(ranks, 3000 + k)
        ids[name] = pa.array(
            _mix(ranks, 300 + k)
            if name != "DisplayURL"
            else ranks * np.uint64(2654435761)
        )
    depth = rng.integers(1, 4, n)
    position = np.minimum(rng.integers(1, 4, n), depth)
    impressions = np.maximum(
        1, np.rint(np.expm1(rng.exponential(0.6, n))).astype(np.int64)
    )
    p = _sigmoid(np.log(0.045 / 0.955) + signal - 0.3 * (position - 1))
    clicks = rng.binomial(impressions, np.minimum(p, 1.0))
    return pa.table(
        {
            "Click": clicks,
            "Impression": impressions,
            "DisplayURL": ids["DisplayURL"],
            "AdID": ids["AdID"],
            "AdvertiserID": ids["AdvertiserID"],
            "Depth": depth,
            "Position": position,
            "QueryID": ids["QueryID"],
            "KeywordID": ids["KeywordID"],
            "TitleID": ids["TitleID"],
            "DescriptionID": ids["DescriptionID"],
            "UserID": ids["UserID"],
        }
    )


def write_raw(
    like: str, rows: int, uri: str, *, seed: int = 0, block_rows: int = BLOCK_ROWS
) -> dict[str, Any]:
    """Writes one synthetic raw file in the format of ``like``.

    Args:
        like: ``criteo`` (40-field TSV), ``avazu`` (CSV with header) or
            ``kdd2012`` (12-field ``training.txt`` TSV).
        rows: Data rows to write.
        uri: Output file (local or ``s3://``).
        seed: Generator seed; the same seed writes the same bytes.
        block_rows: Rows generated at once (bounds memory).

    Returns:
        ``{"rows", "bytes", "positives"}``.
    """
    if like not in LIKE:
        raise ValueError(
            f"synth --like {like!r}: use one of {', '.join(LIKE)} (MovieLens ships "
            "real data instead: datasets/ml-latest-small)"
        )
    if rows < 1:
        raise ValueError(f"synth --rows must be >= 1, got {rows}")
    make: Callable[[np.random.Generator, int, int, int], pa.Table] = {
        "criteo": _criteo_block,
        "avazu": _avazu_block,
        "kdd2012": _kdd_block,
    }[like]
    delimiter = "," if like == "avazu" else "\t"
    fs, path = storage.resolve(uri)
    parent = path.rsplit("/", 1)[0]
    fs.create_dir(parent, recursive=True)
    positives = 0
    with fs.open_output_stream(path) as sink:
        writer = None
        for start in range(0, rows, block_rows):
            n = min(block_rows, rows - start)
            rng = np.random.default_rng([seed, start])
            table = make(rng, n, start, rows)
            label = table.column(LABEL[like]).to_numpy()
            positives += int((label > 0).sum())
            if writer is None:
                if like == "avazu":  # the real header, unquoted
                    sink.write((delimiter.join(table.column_names) + "\n").encode())
                options = pacsv.WriteOptions(
                    include_header=False, delimiter=delimiter, quoting_style="none"
                )
                writer = pacsv.CSVWriter(sink, table.schema, write_options=options)
            writer.write_table(table)
        writer.close()
    size = storage.size(uri)
    logger.info("wrote %d synthetic %s rows to %s (%d bytes)", rows, like, uri, size)
    return {"rows": rows, "bytes": size, "positives": positives}


def synthesize(
    like: str,
    rows: int,
    out: str,
    *,
    seed: int = 0,
    keep_raw: bool = False,
    **ingest_options: Any,
) -> DatasetMeta:
    """A processed synthetic dataset: raw file written, ingested, marked synthetic.

    The raw file is written to ``<out>/_raw/`` and removed afterwards unless
    ``keep_raw``. Ingest options (protocol, encoding, ...) pass through.
    """
    from recnas.data.ingest import ingest

    name = {"criteo": "train.txt", "avazu": "train.csv", "kdd2012": "training.txt"}
    raw = storage.join(out, "_raw", name.get(like, "raw"))
    stats = write_raw(like, rows, raw, seed=seed)
    protocol = ingest_options.pop("protocol", "autoctr_811")
    meta = ingest(like, [raw], out, protocol=protocol, **ingest_options)
    meta.synthetic = True
    meta.details["synthetic"] = {
        "generator": "recnas.data.synth",
        "like": like,
        "rows": rows,
        "seed": seed,
        "positives": stats["positives"],
        "note": "synthetic data with the real schema and skew; not real data",
    }
    meta.save(out)
    if not keep_raw:
        storage.delete_dir(storage.join(out, "_raw"))
    return meta
