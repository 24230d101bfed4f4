"""Determinism: the same date over the same inputs and config gives identical tables.

Compared by content (schema + sorted rows), not by file layout: Spark names files at random.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reliability_kit import (
    DS,
    EARLIER_DS,
    INGEST_CLEAN_TABLES,
    copy_warehouse,
    file_snapshot,
    full_pipeline,
    ingest_clean,
    leftovers,
    published_partitions,
    warehouse_hashes,
)

# Depends on the warehouse's history (the previous night's list), not only on the night's inputs.
HISTORY_TABLES = {"quality_metrics"}


def test_fresh_warehouse_gives_identical_tables(
    spark: Any, standard_landing: Path, reference_published: Path, tmp_path: Path
) -> None:
    """A second, independent run of DS (ingest .. publish) equals the reference, table by table."""
    other = tmp_path / "warehouse"
    full_pipeline(spark, standard_landing, other, DS)
    tables = sorted(
        t
        for t, parts in published_partitions(other).items()
        if f"ds={DS}" in parts and t not in HISTORY_TABLES
    )
    assert {*INGEST_CLEAN_TABLES, "recommendations"} <= set(tables)
    ours = warehouse_hashes(other, DS, tables)
    theirs = warehouse_hashes(reference_published, DS, tables)
    assert ours == theirs, sorted(t for t in tables if ours[t] != theirs[t])


def test_rerun_on_the_same_warehouse_is_idempotent(
    spark: Any, standard_landing: Path, reference: Path, tmp_path: Path
) -> None:
    """Re-running DS replaces its partitions with identical content; EARLIER_DS is not touched."""
    wh = copy_warehouse(reference, tmp_path / "warehouse")
    first = warehouse_hashes(wh, DS, INGEST_CLEAN_TABLES)
    earlier = {t: file_snapshot(wh / t / f"ds={EARLIER_DS}") for t in INGEST_CLEAN_TABLES}
    ingest_clean(spark, standard_landing, wh, DS)
    assert warehouse_hashes(wh, DS, INGEST_CLEAN_TABLES) == first
    assert {t: file_snapshot(wh / t / f"ds={EARLIER_DS}") for t in earlier} == earlier
    assert leftovers(wh) == []
