"""Fixtures for the reliability tests: tiny landing folders and warehouses built from them
(the session-wide local Spark, `spark`, is tests/conftest.py's).

The stages run in-process (`run_and_record` around each stage's `run`), so a test costs seconds,
not a spark-submit per stage. Helpers shared by several files live in reliability_kit.py.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session", autouse=True)
def _two_shuffle_partitions(spark: Any) -> None:
    """Before this folder's session fixtures build their nights (tests/conftest.py sets the same
    per test)."""
    spark.conf.set("spark.sql.shuffle.partitions", "2")


@pytest.fixture
def base_landing(tmp_path: Path) -> Path:
    """A small, clean landing folder (12 items, 6 users, 10 days up to reliability_kit.DS)."""
    from reliability_kit import write_base_landing

    return write_base_landing(tmp_path / "landing")


@contextmanager
def built_once(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[tuple[Path, bool]]:
    """(folder, done): a read-only folder that one test run builds once, also across its
    pytest-xdist workers (`make test` runs two): the first to take the lock builds it, the
    others wait and read the same folder. done: already built, so the caller only reads it."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, shared by its workers
    folder, marker = base / name, base / f"{name}.built"
    with (base / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists() and folder.exists():
            shutil.rmtree(folder)  # a worker died half-way through building it
        yield folder, marker.exists()
        marker.touch()


@pytest.fixture(scope="session")
def standard_landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Read-only landing shared by the fault, determinism, concurrency and reader tests.

    Tables carry the landing path (quarantine.source_file), so runs that are compared must read
    the very same folder: one folder for the whole run, whichever worker reads it.
    """
    from reliability_kit import write_standard_landing

    with built_once(tmp_path_factory, "standard") as (folder, done):
        return folder / "landing" if done else write_standard_landing(folder / "landing")


@pytest.fixture(scope="session")
def reference(spark: Any, standard_landing: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An undisturbed warehouse: ingest + clean for EARLIER_DS, then for DS. Do not modify it."""
    from reliability_kit import DS, EARLIER_DS, ingest_clean

    with built_once(tmp_path_factory, "reference") as (folder, done):
        warehouse = folder / "warehouse"
        if not done:
            for ds in (EARLIER_DS, DS):
                ingest_clean(spark, standard_landing, warehouse, ds)
        return warehouse


@pytest.fixture(scope="session")
def reference_published(
    reference: Path, standard_landing: Path, spark: Any, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The reference plus every later stage of the DAG for both dates (a copy; do not modify)."""
    from reliability_kit import DS, EARLIER_DS, copy_warehouse, model_and_publish

    with built_once(tmp_path_factory, "published") as (folder, done):
        warehouse = folder / "warehouse"
        if not done:
            copy_warehouse(reference, warehouse)
            for ds in (EARLIER_DS, DS):
                model_and_publish(spark, standard_landing, warehouse, ds)
        return warehouse
