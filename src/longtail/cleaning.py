"""Bronze -> silver: accepted events with weights, the catalogue, interactions, and a quarantine.

Pure transforms over DataFrames (the SQL lives in sql/); stages/clean.py publishes them.
Every bronze row ends up either accepted or quarantined with a reason, except rows that belong to
a later run date (events after the run date but within max_future_days of it, items first seen
after it), which are counted as deferred.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from longtail import columns as C
from longtail.config import CleanConfig
from longtail.sqlfiles import quoted_list, run_sql

QUARANTINE_TABLE = "table"
RECORD = "record"


@dataclass(frozen=True)
class CleanResult:
    events: DataFrame
    catalogue: DataFrame
    interactions: DataFrame
    quarantine: DataFrame


def window_end(cfg: CleanConfig) -> datetime:
    """Exclusive end of the data a run may see: midnight after the run date (UTC)."""
    return datetime.combine(cfg.ds + timedelta(days=1), time.min)


def future_end(cfg: CleanConfig) -> datetime:
    """From here on a timestamp is a broken clock, not a later run's data: quarantined."""
    return window_end(cfg) + timedelta(days=cfg.max_future_days)


def event_weight(cfg: CleanConfig) -> Column:
    """Weight of one event: by type, purchases grow slowly with quantity, ratings with stars."""
    w = cfg.event_weights
    qty = F.least(F.greatest(F.coalesce(F.col(C.QUANTITY), F.lit(1.0)), F.lit(1.0)), F.lit(100.0))
    stars = F.least(F.greatest(F.coalesce(F.col(C.VALUE), F.lit(5.0)), F.lit(0.5)), F.lit(5.0))
    return (
        F.when(F.col(C.EVENT_TYPE) == "purchase", w["purchase"] * (1.0 + F.log(qty)))
        .when(F.col(C.EVENT_TYPE) == "rating", w["rating"] * stars / 5.0)
        .when(F.col(C.EVENT_TYPE) == "view", F.lit(w["view"]))
        .when(F.col(C.EVENT_TYPE) == "add_to_cart", F.lit(w["add_to_cart"]))
        .when(F.col(C.EVENT_TYPE) == "review", F.lit(w["review"]))
        .cast("double")
    )


def clean_items(bronze_items: DataFrame, cfg: CleanConfig) -> DataFrame:
    """Catalogue rows listed by the run date, each with a reason (NULL = accepted)."""
    return run_sql(
        bronze_items.sparkSession,
        "clean_items.sql",
        {"bronze_items": bronze_items},
        run_date=cfg.ds.isoformat(),
        max_title_chars=cfg.max_title_chars,
    )


# The day of a `dt=YYYY-MM-DD/` snapshot folder in a landing file's path ('' when undated).
_SNAPSHOT_DAY = r"/dt=(\d{4}-\d{2}-\d{2})/"


def item_availability(items: DataFrame, cfg: CleanConfig) -> DataFrame:
    """item_id, available: each item's newest usable row on or before the run date decides.

    Rows are ordered by their `dt=` snapshot folder (undated files before any dated one), then by
    file; a later snapshot (dt after the run date) is not seen. A row says unavailable when
    `available` is false or `stock` is 0 or less; neither given means available. Every usable
    row counts, including re-sends the catalogue quarantines as duplicate_item: a daily
    snapshot repeats the item with its new stock. Two rows of one file: unavailable wins.
    """
    day = F.regexp_extract(F.col(C.SOURCE_FILE), _SNAPSHOT_DAY, 1)
    unavailable = ~F.coalesce(F.col(C.AVAILABLE), F.lit(True)) | F.coalesce(
        F.col(C.STOCK) <= 0, F.lit(False)
    )
    usable = F.col(C.REASON).isNull() | (F.col(C.REASON) == "duplicate_item")
    newest = (
        items.where(usable & ((day == "") | (day <= F.lit(cfg.ds.isoformat()))))
        .groupBy(C.ITEM_ID)
        .agg(
            F.max(F.struct(day.alias("d"), F.col(C.SOURCE_FILE), unavailable.alias("u"))).alias("n")
        )
    )
    return newest.select(C.ITEM_ID, (~F.col("n.u")).alias(C.AVAILABLE))


def clean_events(
    bronze_events: DataFrame, catalogue: DataFrame, non_products: DataFrame, cfg: CleanConfig
) -> DataFrame:
    """Events in the run's window, each with a reason (NULL = accepted)."""
    return run_sql(
        bronze_events.sparkSession,
        "clean_events.sql",
        {"bronze_events": bronze_events, "catalogue": catalogue, "non_products": non_products},
        window_end=window_end(cfg).isoformat(sep=" "),
        future_end=future_end(cfg).isoformat(sep=" "),
        min_valid_ts=f"{cfg.min_valid_date} 00:00:00",
        event_types=quoted_list(C.EVENT_TYPES),
        bot_max_events_per_day=cfg.bot_max_events_per_day,
    )


def build_interactions(events: DataFrame) -> DataFrame:
    return run_sql(
        events.sparkSession,
        "interactions.sql",
        {"silver_events": events},
        excluding_types=quoted_list(C.EXCLUDING_EVENT_TYPES),
    )


def _quarantine_rows(df: DataFrame, table: str, record_cols: list[str]) -> DataFrame:
    return df.where(F.col(C.REASON).isNotNull()).select(
        F.lit(table).alias(QUARANTINE_TABLE),
        F.col(C.REASON),
        F.col(C.SOURCE_FILE),
        F.to_json(F.struct(*[F.col(c).cast("string").alias(c) for c in record_cols])).alias(RECORD),
    )


def clean(
    bronze_events: DataFrame,
    bronze_items: DataFrame,
    cfg: CleanConfig,
    reuse: Callable[[DataFrame], DataFrame] = lambda df: df,
) -> CleanResult:
    """The four clean outputs, as lazy frames.

    reuse: applied to the classified events (every event read, with its reason), which the
    quarantine, the accepted events and the interactions all derive from. The stage writes them
    once to staging, so the classification (joins, dedup, bot windows) runs once, not per output.
    """
    items = clean_items(bronze_items, cfg)
    catalogue = (
        items.where(F.col(C.REASON).isNull())
        .select(C.ITEM_ID, C.TITLE, C.DESCRIPTION, C.CATEGORY, C.BRAND, C.PRICE, C.FIRST_SEEN)
        .join(item_availability(items, cfg), C.ITEM_ID, "left")
        .withColumn(C.AVAILABLE, F.coalesce(F.col(C.AVAILABLE), F.lit(True)))
    )
    non_products = items.where(F.col(C.REASON) == "non_product").select(C.ITEM_ID)
    events = reuse(clean_events(bronze_events, catalogue, non_products, cfg))
    accepted = events.where(F.col(C.REASON).isNull()).select(
        C.USER_ID,
        C.ITEM_ID,
        C.TS,
        C.EVENT_TYPE,
        C.QUANTITY,
        C.VALUE,
        event_weight(cfg).alias(C.WEIGHT),
    )
    quarantine = _quarantine_rows(
        items,
        "items",
        [C.ITEM_ID, C.TITLE, C.CATEGORY, C.PRICE, C.FIRST_SEEN, "_corrupt_record"],
    ).unionByName(
        _quarantine_rows(
            events,
            "events",
            [C.USER_ID, C.ITEM_ID, C.TS_RAW, C.EVENT_TYPE, C.QUANTITY, C.VALUE, "_corrupt_record"],
        )
    )
    return CleanResult(
        events=accepted,
        catalogue=catalogue,
        interactions=build_interactions(accepted),
        quarantine=quarantine,
    )
