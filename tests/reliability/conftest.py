"""Fixtures for the reliability tests: one session-wide local Spark, tiny landing folders.

The stages run in-process (`run_and_record` around each stage's `run`), so a test costs seconds,
not a spark-submit per stage. Helpers shared by several files live in reliability_kit.py.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Before numpy is imported by any test module: implicit's ALS wants single-threaded BLAS.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ["GX_ANALYTICS_ENABLED"] = "false"
    from longtail.sparkutil import get_spark

    session = get_spark("longtail-reliability-tests", extra={"spark.sql.shuffle.partitions": "2"})
    yield session
    session.stop()


@pytest.fixture
def base_landing(tmp_path: Path) -> Path:
    """A small, clean landing folder (12 items, 6 users, 10 days up to reliability_kit.DS)."""
    from reliability_kit import write_base_landing

    return write_base_landing(tmp_path / "landing")


@pytest.fixture(scope="session")
def standard_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only landing shared by the fault, determinism, concurrency and reader tests.

    Tables carry the landing path (quarantine.source_file), so runs that are compared must read
    the very same folder.
    """
    from reliability_kit import write_standard_landing

    return write_standard_landing(tmp_path_factory.mktemp("standard") / "landing")


@pytest.fixture(scope="session")
def reference(spark: Any, standard_landing: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An undisturbed warehouse: ingest + clean for EARLIER_DS, then for DS. Do not modify it."""
    from reliability_kit import DS, EARLIER_DS, ingest_clean

    warehouse = tmp_path_factory.mktemp("reference") / "warehouse"
    for ds in (EARLIER_DS, DS):
        ingest_clean(spark, standard_landing, warehouse, ds)
    return warehouse


@pytest.fixture(scope="session")
def reference_published(reference: Path, standard_landing: Path, spark: Any) -> Path:
    """The reference plus every later stage of the DAG for both dates (a copy; do not modify)."""
    from reliability_kit import DS, EARLIER_DS, copy_warehouse, model_and_publish

    warehouse = copy_warehouse(reference, reference.parent.parent / "published" / "warehouse")
    for ds in (EARLIER_DS, DS):
        model_and_publish(spark, standard_landing, warehouse, ds)
    return warehouse
