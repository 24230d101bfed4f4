"""Ingest: landing folder -> typed bronze Parquet (events, items, optional users)."""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, SparkSession

from longtail import columns as C
from longtail import gates, landing
from longtail.config import IngestConfig
from longtail.stages.common import stage_main
from longtail.storage import write_audit_publish

TABLES = ("bronze_events", "bronze_items", "bronze_users")


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
    counts = {}
    for table, (df, required) in frames.items():
        write_audit_publish(df, cfg.warehouse, table, cfg.ds, _bronze_gate(required))
        counts[table] = spark.read.parquet(f"{cfg.warehouse}/{table}/ds={cfg.ds}").count()
    return {"counts": counts}


def main(argv: list[str] | None = None) -> int:
    return stage_main("ingest", IngestConfig, run, argv)
