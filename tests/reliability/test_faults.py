"""Fault injection: each stage fails in turn, half-way; nothing half-written is ever visible.

Every test starts from a copy of the reference warehouse with EARLIER_DS done and DS not (or DS
published from other data, for the re-run case), breaks one stage for DS, and then shows:
- no partial partition visible to readers: no `_temporary`, every published partition complete;
- earlier dates intact, byte for byte;
- nothing left in staging, trash or locks;
- a retry gives exactly the output of an undisturbed run (content hashes of the reference).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from reliability_kit import (
    DS,
    EARLIER_DS,
    INGEST_CLEAN_TABLES,
    assert_no_partial_output,
    copy_warehouse,
    file_snapshot,
    ingest_clean,
    leftovers,
    published_partitions,
    run_stage,
    warehouse_hashes,
    write_base_landing,
)

from longtail import landing as landing_mod
from longtail.config import CleanConfig, IngestConfig
from longtail.stages import clean as clean_stage
from longtail.stages.clean import AccountingError
from longtail.warehouse.fs import Fs, PublishError

BRONZE = ("bronze_events", "bronze_items")
SILVER = ("quarantine", "catalogue", "silver_events", "interactions")


def poisoned(df: DataFrame, column: str, value: str) -> DataFrame:
    """df whose Spark job dies in a Python UDF at the row where column == value (mid-write)."""

    @F.udf("string")
    def explode_on(v):  # no type hints: Spark would take them for a pandas UDF
        if v == value:
            # a builtin exception: the Python worker must be able to unpickle it
            raise RuntimeError(f"injected failure at {column}={value}")
        return v

    return df.withColumn(column, explode_on(F.col(column)))


@pytest.fixture
def seeded(reference: Path, tmp_path: Path) -> Path:
    """A warehouse where EARLIER_DS has run and DS has not."""
    return copy_warehouse(reference, tmp_path / "warehouse", drop=DS)


def _earlier(warehouse: Path) -> dict[str, dict[str, str]]:
    return {
        t: file_snapshot(warehouse / t / f"ds={EARLIER_DS.isoformat()}") for t in (*BRONZE, *SILVER)
    }


def _check_after_failure(warehouse: Path, before: dict, absent: tuple[str, ...]) -> None:
    assert_no_partial_output(warehouse)
    assert _earlier(warehouse) == before, "an earlier date changed"
    for table in absent:
        assert not (warehouse / table / f"ds={DS.isoformat()}").exists(), table
    assert leftovers(warehouse) == []


def _retry_matches_reference(
    spark: Any, landing: Path, warehouse: Path, reference: Path, before: dict
) -> None:
    ingest_clean(spark, landing, warehouse, DS)
    assert warehouse_hashes(warehouse, DS, INGEST_CLEAN_TABLES) == warehouse_hashes(
        reference, DS, INGEST_CLEAN_TABLES
    )
    assert _earlier(warehouse) == before
    assert_no_partial_output(warehouse)
    assert leftovers(warehouse) == []


def test_ingest_dies_mid_write(
    spark: Any, standard_landing: Path, seeded: Path, reference: Path, monkeypatch
) -> None:
    before = _earlier(seeded)
    real = landing_mod.read_events
    monkeypatch.setattr(
        landing_mod, "read_events", lambda s, root: poisoned(real(s, root), "user_id", "b-u4")
    )
    cfg = IngestConfig(ds=DS, warehouse=str(seeded), landing=str(standard_landing))
    with pytest.raises(Exception, match="injected failure"):
        run_stage(spark, "ingest", cfg)
    # neither bronze table is published: items were fine, but the stage publishes all or none
    _check_after_failure(seeded, before, absent=BRONZE)
    assert not (seeded / "_runs" / f"ds={DS}" / "ingest.json").exists()

    monkeypatch.setattr(landing_mod, "read_events", real)
    _retry_matches_reference(spark, standard_landing, seeded, reference, before)


def _patch_clean(monkeypatch, change: Callable[[Any], Any]) -> None:
    real = clean_stage.clean
    monkeypatch.setattr(clean_stage, "clean", lambda *args: change(real(*args)))


def test_clean_dies_mid_write(
    spark: Any, standard_landing: Path, seeded: Path, reference: Path, monkeypatch
) -> None:
    run_stage(
        spark, "ingest", IngestConfig(ds=DS, warehouse=str(seeded), landing=str(standard_landing))
    )
    before = _earlier(seeded)
    # quarantine and catalogue are staged fine; silver_events dies half-way through its write
    _patch_clean(monkeypatch, lambda r: replace(r, events=poisoned(r.events, "user_id", "b-u3")))
    with pytest.raises(Exception, match="injected failure"):
        run_stage(spark, "clean", CleanConfig(ds=DS, warehouse=str(seeded)))
    _check_after_failure(seeded, before, absent=SILVER)

    monkeypatch.undo()
    _retry_matches_reference(spark, standard_landing, seeded, reference, before)


def test_a_lost_row_is_caught_and_nothing_is_published(
    spark: Any, standard_landing: Path, seeded: Path, reference: Path, monkeypatch
) -> None:
    """A bug that silently drops one quarantined row fails the accounting check."""
    run_stage(
        spark, "ingest", IngestConfig(ds=DS, warehouse=str(seeded), landing=str(standard_landing))
    )
    before = _earlier(seeded)
    _patch_clean(
        monkeypatch,
        lambda r: replace(r, quarantine=r.quarantine.where(F.col("reason") != "unknown_item")),
    )
    with pytest.raises(AccountingError, match=r"events: \d+ in but \d+ accounted for"):
        run_stage(spark, "clean", CleanConfig(ds=DS, warehouse=str(seeded)))
    _check_after_failure(seeded, before, absent=SILVER)

    monkeypatch.undo()
    _retry_matches_reference(spark, standard_landing, seeded, reference, before)


def _rerun_setup(
    spark: Any, landing: Path, warehouse: Path, tmp_path: Path
) -> tuple[dict, dict[str, dict[str, str]]]:
    """DS published from older data, then DS ingested again: ready for a re-run of clean.

    Returns the earlier date's snapshot and DS's silver tables as published before the re-run.
    """
    old_landing = write_base_landing(tmp_path / "old-landing", days=5)
    ingest_clean(spark, old_landing, warehouse, DS)
    before = _earlier(warehouse)
    old = {t: file_snapshot(warehouse / t / f"ds={DS}") for t in SILVER}
    run_stage(spark, "ingest", IngestConfig(ds=DS, warehouse=str(warehouse), landing=str(landing)))
    return before, old


def test_publish_swap_fails_in_the_middle_of_a_rerun(
    spark: Any, standard_landing: Path, seeded: Path, reference: Path, tmp_path: Path, monkeypatch
) -> None:
    """DS was published from older data; the re-run's second swap fails half-way.

    The four silver tables publish as one set: the table already swapped is swapped back, so
    every table is the earlier partition again, byte for byte. The retry gives the reference.
    """
    before, old = _rerun_setup(spark, standard_landing, seeded, tmp_path)

    real_rename = Fs.rename
    swaps: list[str] = []

    def rename(self: Fs, src: str, dst: str) -> None:
        if "/_staging/" in src and "/_staging/" not in dst:  # staged -> published
            swaps.append(dst)
            if len(swaps) == 2:
                raise PublishError(f"injected failure moving {src} to {dst}")
        real_rename(self, src, dst)

    monkeypatch.setattr(Fs, "rename", rename)
    with pytest.raises(PublishError, match="injected failure"):
        run_stage(spark, "clean", CleanConfig(ds=DS, warehouse=str(seeded)))
    monkeypatch.undo()

    assert [Path(s).parent.name for s in swaps] == ["catalogue", "interactions"]
    assert_no_partial_output(seeded)
    for table in SILVER:
        assert file_snapshot(seeded / table / f"ds={DS}") == old[table], f"{table} restored"
    assert _earlier(seeded) == before
    assert leftovers(seeded) == []

    _retry_matches_reference(spark, standard_landing, seeded, reference, before)


def test_failed_runs_leave_no_trace_in_a_fresh_warehouse(
    spark: Any, standard_landing: Path, tmp_path: Path, monkeypatch
) -> None:
    """The very first run of a warehouse fails: readers find no table at all, not a partial one."""
    warehouse = tmp_path / "fresh"
    real = landing_mod.read_items
    monkeypatch.setattr(
        landing_mod, "read_items", lambda s, root: poisoned(real(s, root), "item_id", "i07")
    )
    cfg = IngestConfig(ds=DS, warehouse=str(warehouse), landing=str(standard_landing))
    with pytest.raises(Exception, match="injected failure"):
        run_stage(spark, "ingest", cfg)
    assert published_partitions(warehouse) == {}
    assert leftovers(warehouse) == []


# Run as its own process: the clean stage, killed (no cleanup code runs) between the first and the
# second move of its four-table publish.
_KILLED_MID_SET = """
import os, sys
from longtail.warehouse.fs import Fs
real_rename = Fs.rename
swaps = []
def rename(self, src, dst):
    if "/_staging/" in src and "/_staging/" not in dst:
        swaps.append(dst)
        if len(swaps) == 2:
            os._exit(137)
    real_rename(self, src, dst)
Fs.rename = rename
from longtail.stages.clean import main
sys.exit(main(sys.argv[1:]))
"""


def test_clean_killed_between_two_moves_of_its_publish(
    spark: Any, standard_landing: Path, seeded: Path, reference: Path, tmp_path: Path
) -> None:
    """A real process death half-way through a set publish; the retry undoes it and publishes.

    Until the retry, one table of the set is missing for DS (moved aside, not lost); the earlier
    partition comes back, and then the retry's, before anything else publishes those tables.
    """
    before, old = _rerun_setup(spark, standard_landing, seeded, tmp_path)
    cfg = CleanConfig(ds=DS, warehouse=str(seeded))
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    script = tmp_path / "killed_mid_set.py"  # a file, not -c: pyspark treats -c as doctests
    script.write_text(_KILLED_MID_SET)
    proc = subprocess.run(
        [sys.executable, str(script), "--config-json", json.dumps(cfg.to_dict())],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 137, proc.stderr[-3000:]

    # What the dead process left: catalogue swapped in, interactions moved aside (trash) with its
    # new partition still staged, the other two untouched; its journal and locks.
    assert file_snapshot(seeded / "catalogue" / f"ds={DS}") != old["catalogue"]
    assert not (seeded / "interactions" / f"ds={DS}").exists()
    for table in ("quarantine", "silver_events"):
        assert file_snapshot(seeded / table / f"ds={DS}") == old[table]
    assert list((seeded / "_txn").rglob("*.json")), "the journal of the set"
    assert list((seeded / "_locks").rglob("*.lock")), "the dead process's locks"
    assert _earlier(seeded) == before

    run_stage(spark, "clean", cfg)  # Airflow's retry of the task, right away

    assert warehouse_hashes(seeded, DS, SILVER) == warehouse_hashes(reference, DS, SILVER)
    assert _earlier(seeded) == before
    assert_no_partial_output(seeded)
    assert leftovers(seeded) == []
