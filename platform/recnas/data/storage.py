"""Storage URIs: local paths and ``s3://bucket/key`` behind one small interface.

Every reader and writer in :mod:`recnas.data` goes through :func:`resolve`,
which turns a URI into a pyarrow filesystem and a path on it. S3 settings come
from :mod:`recnas.env` (endpoint, region) and from the AWS credential chain
(read by boto3). The credentials are resolved once on the driver and travel
with the pickled filesystem, so Ray tasks reach the same bucket without any
environment of their own.

Example:
    >>> fs, path = resolve("runs/data/meta.json")
    >>> join("s3://bucket/prefix", "train", "part-0.parquet")
    's3://bucket/prefix/train/part-0.parquet'
"""

from __future__ import annotations

import functools
import posixpath
import re
from pathlib import Path

import pyarrow.fs as pafs

from recnas import env

S3_SCHEME = "s3://"


def is_s3(uri: str) -> bool:
    """Whether ``uri`` names an object in S3 (or an S3-compatible server)."""
    return uri.startswith(S3_SCHEME)


# Something that starts like a URI ("file:", "s3:/", "ftp://"), not a path.
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")


def local_or_s3(value: str) -> str:
    """A storage location as the rest of this module takes it: an
    ``s3://bucket/key`` URI or a local path (``file:///path`` is ``/path``).

    Raises:
        ValueError: For anything else that looks like a URI.
    """
    if value.startswith("file:///"):
        return value.removeprefix("file://")
    if is_s3(value) or not _SCHEME.match(value):
        return value
    raise ValueError(
        f"{value!r} is neither a local path, a file:///path URI (three slashes) "
        "nor an s3://bucket/key URI"
    )


def join(uri: str, *parts: str) -> str:
    """Joins path parts onto a URI with ``/``, keeping the scheme."""
    if is_s3(uri):
        return posixpath.join(uri, *parts)
    return str(Path(uri).joinpath(*parts))


def basename(uri: str) -> str:
    """The last component of a URI."""
    return posixpath.basename(uri.rstrip("/"))


@functools.lru_cache(maxsize=8)
def _s3_filesystem(endpoint: str | None, region: str) -> pafs.S3FileSystem:
    import boto3

    options: dict = {"region": region}
    if endpoint:
        scheme, _, host = endpoint.partition("://")
        if not host:
            scheme, host = "https", endpoint
        options.update(endpoint_override=host.rstrip("/"), scheme=scheme)
    credentials = boto3.session.Session().get_credentials()
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        options.update(access_key=frozen.access_key, secret_key=frozen.secret_key)
        if frozen.token:
            options["session_token"] = frozen.token
    return pafs.S3FileSystem(**options)


def resolve(uri: str) -> tuple[pafs.FileSystem, str]:
    """The filesystem holding ``uri`` and the path of ``uri`` on it.

    Raises:
        ValueError: For a URI scheme other than a local path or ``s3://``.
    """
    if is_s3(uri):
        return _s3_filesystem(env.s3_endpoint(), env.s3_region()), uri[len(S3_SCHEME) :]
    if "://" in uri:
        raise ValueError(
            f"unsupported storage URI {uri!r}: use a local path or s3://bucket/key"
        )
    return pafs.LocalFileSystem(), str(Path(uri).expanduser().absolute())


def exists(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_dir(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def size(uri: str) -> int:
    """Size of a file in bytes.

    Raises:
        ValueError: If there is no file at ``uri``.
    """
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise ValueError(f"input {uri!r} does not exist or is not a file")
    return int(info.size)


def stamp(uri: str) -> dict[str, int | None] | None:
    """Size and modification time (ns) of a file, ``None`` if there is none.

    Two reads of an unchanged file give the same stamp; rewriting it changes
    the modification time (and usually the size).
    """
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type != pafs.FileType.File:
        return None
    return {"bytes": int(info.size), "mtime_ns": info.mtime_ns}


def list_files(uri: str) -> list[str]:
    """The files directly inside a folder, sorted by name, as URIs."""
    fs, path = resolve(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    names = sorted(i.base_name for i in infos if i.type == pafs.FileType.File)
    return [join(uri, name) for name in names]


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    with fs.open_input_stream(path) as f:
        return f.read()


def write_bytes(uri: str, data: bytes) -> None:
    """Writes a whole file; on local disk through a rename, so it never shows half."""
    fs, path = resolve(uri)
    parent = posixpath.dirname(path) if is_s3(uri) else str(Path(path).parent)
    fs.create_dir(parent, recursive=True)
    if is_s3(uri):
        with fs.open_output_stream(path) as f:
            f.write(data)
        return
    tmp = path + ".tmp"
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    fs.move(tmp, path)


def delete_dir(uri: str) -> None:
    """Removes a folder and everything below it; no error when it is absent."""
    fs, path = resolve(uri)
    if fs.get_file_info(path).type == pafs.FileType.Directory:
        fs.delete_dir(path)


def delete_file(uri: str) -> None:
    fs, path = resolve(uri)
    if fs.get_file_info(path).type == pafs.FileType.File:
        fs.delete_file(path)
