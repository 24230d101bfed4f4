"""Shared unit-test fixtures: one lazy local Spark session and a tiny-landing-folder writer.

Spark starts only for tests that request `spark` (directly or through another fixture), so the
pure-Python unit tests in this folder never pay for a JVM.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

# As `make test` does: implicit's ALS is slow (and warns) with a threaded BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    from longtail.sparkutil import get_spark

    # One shuffle partition and no adaptive re-planning: tiny inputs, and AQE's extra planning
    # roughly triples the time of each first-run query (results are the same either way).
    session = get_spark(
        "longtail-unit-tests",
        extra={"spark.sql.shuffle.partitions": "1", "spark.sql.adaptive.enabled": "false"},
    )
    yield session
    session.stop()


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    text = str(value)
    if any(ch in text for ch in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _csv_text(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = [",".join(columns)]
    lines += [",".join(_csv_cell(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


def _write(
    path: Path,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    raw: str | None,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    name = path.name.lower()
    if raw is not None:
        data = raw.encode("utf-8")
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    elif name.endswith(".csv"):
        path.write_text(_csv_text(columns, rows), encoding="utf-8")
    elif name.endswith(".csv.gz"):
        path.write_bytes(gzip.compress(_csv_text(columns, rows).encode("utf-8")))
    elif name.endswith((".jsonl", ".ndjson", ".json")):
        lines = [json.dumps(dict(zip(columns, row, strict=True))) for row in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({c: [row[i] for row in rows] for i, c in enumerate(columns)})
        pq.write_table(table, path)
    else:
        raise ValueError(f"tmp_landing cannot write {path.name}; pass raw= for odd files")


LandingWriter = Callable[..., Path]


@pytest.fixture
def tmp_landing(tmp_path: Path) -> LandingWriter:
    """write(rel_path, columns, rows, raw=None) -> landing root.

    rel_path is relative to the landing root, e.g. "events/dt=2024-05-01/part.csv"; the format
    follows the extension (csv, csv.gz, jsonl, parquet). `raw` writes the given text verbatim
    (gzip-compressed for .gz names) for malformed-file cases.
    """
    root = tmp_path / "landing"
    root.mkdir()

    def write(
        rel_path: str,
        columns: Sequence[str] = (),
        rows: Sequence[Sequence[Any]] = (),
        raw: str | None = None,
    ) -> Path:
        _write(root / rel_path, columns, rows, raw)
        return root

    return write
