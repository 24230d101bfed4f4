"""Ingest: landing folder -> typed bronze Parquet (events, items, optional users)."""

from __future__ import annotations

from functools import partial
from typing import Any

from pyspark.sql import SparkSession

from longtail import columns as C
from longtail import gates, landing, rules, tables
from longtail.config import IngestConfig
from longtail.stages.common import stage_main
from longtail.warehouse.fs import Fs
from longtail.warehouse.publish import table_rows, write_audit_publish_set

TABLES = tables.BRONZE


def read_rules(spark: SparkSession, landing_uri: str) -> tuple[str, rules.Rules] | None:
    """The landing's rules file, parsed and validated (RulesError otherwise); None if absent.

    Two spellings at once would leave it unclear which one the shop meant: an error too.
    """
    folder = f"{landing_uri}/{rules.FOLDER}"
    fs = Fs(spark, folder)
    found = [f"{folder}/{name}" for name in rules.FILE_NAMES if fs.exists(f"{folder}/{name}")]
    if not found:
        return None
    if len(found) > 1:
        raise rules.RulesError(f"{folder}: more than one rules file ({', '.join(found)}); keep one")
    return found[0], rules.parse(fs.read_text(found[0]), found[0])


def run(spark: SparkSession, cfg: IngestConfig) -> dict[str, Any]:
    # First, before anything is read or written: a bad rules file stops the night here.
    shop_rules = read_rules(spark, cfg.landing)
    frames = {
        tables.BRONZE_EVENTS: (landing.read_events(spark, cfg.landing), C.EVENTS_REQUIRED),
        tables.BRONZE_ITEMS: (landing.read_items(spark, cfg.landing), C.ITEMS_REQUIRED),
    }
    users = landing.read_users(spark, cfg.landing)
    if users is not None:
        frames[tables.BRONZE_USERS] = (users, C.USERS_REQUIRED)
    wh, ds = cfg.warehouse, cfg.ds
    # Every table is staged and audited before any is published: a file that turns out to be
    # unreadable half-way (a truncated .gz) or a failed gate leaves all bronze tables as they were.
    write_audit_publish_set(
        {t: (df, partial(gates.gate_bronze, required=req)) for t, (df, req) in frames.items()},
        wh,
        ds,
        explain_write_error=landing.explain_read_error,
    )
    counts = {t: table_rows(spark, wh, t, ds) for t in frames}
    record: dict[str, Any] = {"counts": counts}
    if shop_rules is not None:
        record[rules.RECORD_KEY] = rules.record_entry(shop_rules[1], shop_rules[0])
    return record


def main(argv: list[str] | None = None) -> int:
    return stage_main("ingest", IngestConfig, run, argv)
