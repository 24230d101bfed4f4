"""The warehouse's small files (run records, manifests, latest pointers, data docs) from the Airflow
side, where there is no Spark: local paths directly, URIs through fsspec.

Spark's `s3a://` is fsspec's `s3://` (needs s3fs); `hdfs://` needs pyarrow's libhdfs. Light imports
only: the DAG's tasks call this at run time.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any

_SCHEMES = {"s3a": "s3", "s3n": "s3"}


def _fsspec_url(uri: str) -> str:
    scheme, sep, rest = uri.partition("://")
    return f"{_SCHEMES.get(scheme, scheme)}{sep}{rest}" if sep else uri


def _local(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(uri[len("file://") :])
    return None if "://" in uri else Path(uri)


def read_text(uri: str) -> str | None:
    """The file's text, or None when it does not exist."""
    local = _local(uri)
    if local is not None:
        return local.read_text(encoding="utf-8") if local.is_file() else None
    import fsspec

    fs, path = fsspec.core.url_to_fs(_fsspec_url(uri))
    if not fs.exists(path):
        return None
    with fs.open(path, "r", encoding="utf-8") as f:
        return f.read()


def read_json(uri: str) -> dict[str, Any] | None:
    text = read_text(uri)
    return None if text is None else json.loads(text)


def glob(pattern: str) -> list[str]:
    """Paths matching a glob, sorted, as URIs of the same kind as the pattern."""
    local = _local(pattern)
    if local is not None:
        import glob as globmod

        return sorted(globmod.glob(str(local)))
    import fsspec

    fs, path = fsspec.core.url_to_fs(_fsspec_url(pattern))
    prefix = pattern.split("://", 1)[0] + "://"
    return sorted(prefix + p for p in fs.glob(path))


def replace_local(path: Path, data: bytes, sync: bool = False) -> None:
    """Write a local file via a temporary name beside it and os.replace, so a reader sees the old
    bytes or the new ones, never half a file and never none; sync: fsync before the replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    with open(tmp, "wb") as out:
        out.write(data)
        if sync:
            out.flush()
            os.fsync(out.fileno())
    os.replace(tmp, path)


def write_text(uri: str, text: str) -> None:
    """Write via a temporary name and a rename, so a reader never sees half a file."""
    write_bytes(uri, text.encode("utf-8"))


def write_bytes(uri: str, data: bytes) -> None:
    local = _local(uri)
    if local is not None:
        replace_local(local, data)
        return
    import fsspec

    with fsspec.open(_fsspec_url(uri), "wb") as f:
        f.write(data)
