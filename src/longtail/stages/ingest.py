"""Ingest: landing folder -> typed bronze Parquet (events, items, optional users)."""

from __future__ import annotations

import uuid
from typing import Any

from pyspark.sql import DataFrame, SparkSession

from longtail import columns as C
from longtail import gates, landing, tables
from longtail.config import IngestConfig
from longtail.stages.common import stage_main
from longtail.storage import audit_staged, discard_staged, publish_staged_set, write_staging

TABLES = tables.BRONZE


def _bronze_gate(required: tuple[str, ...]) -> Any:
    def audit(df: DataFrame) -> dict:
        e = gates._e()
        return gates.run_suite(
            df,
            "bronze",
            [
                *(e.ExpectColumnToExist(column=c) for c in (*required, C.SOURCE_FILE)),
                e.ExpectColumnValuesToNotBeNull(column=C.SOURCE_FILE),
            ],
        )

    return audit


def run(spark: SparkSession, cfg: IngestConfig) -> dict[str, Any]:
    frames = {
        "bronze_events": (landing.read_events(spark, cfg.landing), C.EVENTS_REQUIRED),
        "bronze_items": (landing.read_items(spark, cfg.landing), C.ITEMS_REQUIRED),
    }
    users = landing.read_users(spark, cfg.landing)
    if users is not None:
        frames["bronze_users"] = (users, C.USERS_REQUIRED)
    wh, ds = cfg.warehouse, cfg.ds
    # Every table is staged and audited before any is published: a file that turns out to be
    # unreadable half-way (a truncated .gz) or a failed gate leaves all bronze tables as they were.
    attempt = uuid.uuid4().hex[:12]
    try:
        for table, (df, _) in frames.items():
            try:
                write_staging(df, wh, table, ds, attempt)
            except Exception as exc:
                explained = landing.explain_read_error(exc)
                if explained is None:
                    raise
                raise explained from exc
        for table, (_, required) in frames.items():
            audit_staged(spark, wh, table, ds, _bronze_gate(required), attempt)
        publish_staged_set(spark, wh, list(frames), ds, attempt)
    finally:
        for table in frames:
            discard_staged(spark, wh, table, ds, attempt)
    counts = {t: spark.read.parquet(f"{wh}/{t}/ds={ds}").count() for t in frames}
    return {"counts": counts}


def main(argv: list[str] | None = None) -> int:
    return stage_main("ingest", IngestConfig, run, argv)
