"""Determinism: the same date over the same inputs and config gives identical tables.

Compared by content (schema + sorted rows), not by file layout: Spark names files at random.
A fresh warehouse's night against the reference, and other schedules, core counts and shuffle
partition counts: test_schedule_independence.py.
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
    ingest_clean,
    leftovers,
    warehouse_hashes,
)


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
