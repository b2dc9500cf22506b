"""Run storage: a local folder or an ``s3://`` URI, as pyarrow filesystems."""

from __future__ import annotations

import pyarrow.fs as pafs

from recnas import env


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem of ``uri`` and the path inside it.

    ``s3://bucket/prefix`` uses ``AWS_ENDPOINT_URL`` (an S3-compatible server)
    when set, and always an explicit region.
    """
    if uri.startswith("s3://"):
        endpoint = env.s3_endpoint()
        options: dict = {"region": env.s3_region()}
        if endpoint:
            scheme, _, host = endpoint.rpartition("://")
            options.update(endpoint_override=host, scheme=scheme or "https")
        return pafs.S3FileSystem(**options), uri[len("s3://") :]
    if "://" in uri and not uri.startswith("file://"):
        raise ValueError(
            f"storage: {uri!r} is neither a local folder nor s3://bucket/prefix"
        )
    return pafs.LocalFileSystem(), uri.removeprefix("file://")


def to_uri(fs: pafs.FileSystem, path: str) -> str:
    """The URI of ``path`` on ``fs`` (inverse of :func:`filesystem`)."""
    return f"s3://{path}" if isinstance(fs, pafs.S3FileSystem) else path
