"""Clean: bronze -> silver events, catalogue, interactions, and the quarantine (with reasons)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from longtail import columns as C
from longtail import gates, tables
from longtail.cleaning import clean, future_end, window_end
from longtail.config import CleanConfig
from longtail.errors import PermanentError
from longtail.stages.common import stage_main
from longtail.warehouse.publish import read_table, write_audit_publish_set
from longtail.warehouse.reads import read_parquet
from longtail.warehouse.staging import staging_attempt, write_staging

TABLES = tables.SILVER


class AccountingError(PermanentError, RuntimeError):
    """Rows in != accepted + quarantined + deferred: something was lost; nothing is published."""


def run(spark: SparkSession, cfg: CleanConfig) -> dict[str, Any]:
    wh, ds = cfg.warehouse, cfg.ds
    bronze_events = read_table(spark, wh, tables.BRONZE_EVENTS, ds)
    bronze_items = read_table(spark, wh, tables.BRONZE_ITEMS, ds)
    # Staged in folders private to this attempt; cleaned up on failure, moved into place on success.
    with staging_attempt(spark, wh, [tables.CLEAN_CLASSIFIED], ds) as attempt:

        def once(classified: DataFrame) -> DataFrame:
            # Three outputs derive from the classification (two joins, two windows over all
            # events): written once to this attempt's staging instead of recomputed for each (91
            # -> 54 s on 4.6M events). Spark's in-memory cache was slower here: it spilled.
            uri = write_staging(classified, wh, tables.CLEAN_CLASSIFIED, ds, attempt)
            return read_parquet(spark, uri)

        result = clean(bronze_events, bronze_items, cfg, once)
        outputs = {
            tables.QUARANTINE: (result.quarantine, None),
            tables.CATALOGUE: (result.catalogue, gates.gate_catalogue),
            tables.SILVER_EVENTS: (result.events, lambda df: gates.gate_events(df, ds)),
            tables.INTERACTIONS: (result.interactions, gates.gate_interactions),
        }
        facts: dict[str, Any] = {}
        # Every gate runs after the accounting and before anything is published, so a failed
        # gate (which raises) or lost rows leave all four tables as they were.
        gate_results = write_audit_publish_set(
            outputs,
            wh,
            ds,
            attempt=attempt,
            before_audit=lambda staged: facts.update(
                _account(cfg, bronze_events, bronze_items, staged)
            ),
        )
    return {
        **facts,
        "gates": {t: r.get("statistics") for t, r in gate_results.items()},
    }


def _account(
    cfg: CleanConfig,
    bronze_events: DataFrame,
    bronze_items: DataFrame,
    staged: Mapping[str, DataFrame],
) -> dict[str, Any]:
    """The staged tables' row accounting (counts, quarantine reasons); AccountingError when
    rows in != accepted + quarantined + deferred."""
    ds = cfg.ds
    end = F.lit(window_end(cfg).isoformat(sep=" ")).cast("timestamp")
    broken_clock = F.lit(future_end(cfg).isoformat(sep=" ")).cast("timestamp")
    # each input's rows and its deferred rows in one pass (one Spark job, not two)
    n_events_in, n_events_deferred = bronze_events.agg(
        F.count(F.lit(1)), F.count_if((F.col(C.TS) >= end) & (F.col(C.TS) < broken_clock))
    ).first()
    n_items_in, n_items_deferred = bronze_items.agg(
        F.count(F.lit(1)), F.count_if(F.col(C.FIRST_SEEN) > F.lit(ds))
    ).first()
    quarantine = staged[tables.QUARANTINE]
    reasons = {
        f"{r['table']}/{r['reason']}": r["count"]
        for r in quarantine.groupBy("table", C.REASON).count().collect()
    }
    q_events = sum(v for k, v in reasons.items() if k.startswith("events/"))
    q_items = sum(v for k, v in reasons.items() if k.startswith("items/"))
    counts = {
        "events_in": n_events_in,
        "events_accepted": staged[tables.SILVER_EVENTS].count(),
        "events_quarantined": q_events,
        "events_deferred": n_events_deferred,
        "items_in": n_items_in,
        "items_accepted": staged[tables.CATALOGUE].count(),
        "items_quarantined": q_items,
        "items_deferred": n_items_deferred,
        "interactions": staged[tables.INTERACTIONS].count(),
    }
    for kind in ("events", "items"):
        parts = sum(counts[f"{kind}_{p}"] for p in ("accepted", "quarantined", "deferred"))
        if parts != counts[f"{kind}_in"]:
            raise AccountingError(f"{kind}: {counts[f'{kind}_in']} in but {parts} accounted for")
    return {"counts": counts, "quarantine_reasons": dict(sorted(reasons.items()))}


def main(argv: list[str] | None = None) -> int:
    return stage_main("clean", CleanConfig, run, argv)
