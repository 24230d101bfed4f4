"""Derived landing folders for the benchmark: the same shop with its listing dates filled in,
or with events taken away (a user's held-out period, every event of the cold-start items).

The pipeline then reads them through its own ingest and clean, as it would a shop's landing.
Rows are read with the pipeline's own landing reader (any landing format), filtered on the
same normalised ids and parsed timestamps as ingest uses, and written back as Parquet with the
contract's column names. Tables that need no change are hard-linked, not copied.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Collection
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from longtail import columns as C
from longtail import landing as L

USER_CUTOFF = "_user_cutoff"


def _link_tree(src: Path, dst: Path) -> None:
    if src.exists():
        shutil.copytree(src, dst, copy_function=os.link)


def _write(df: DataFrame, dst: Path) -> None:
    """One Parquet file of string columns (the reader types them as it would any landing)."""
    df.coalesce(1).write.mode("overwrite").parquet(str(dst))


def _raw(spark: SparkSession, folder: Path, required: tuple, optional: tuple) -> DataFrame:
    df = L.read_landing_table(spark, str(folder), required, optional)
    assert df is not None
    return df.drop(L.CORRUPT, C.SOURCE_FILE)


def derive_landing(
    spark: SparkSession,
    src: str | Path,
    dst: str | Path,
    *,
    first_seen: pd.Series | None = None,
    drop_items: Collection[str] = (),
    user_cutoffs: pd.Series | None = None,
) -> Path:
    """Write dst as src with first_seen replaced (item_id -> date, NaT = none) and without the
    events of drop_items and every event at or after its user's cutoff (user_id -> timestamp)."""
    src, dst = Path(src), Path(dst)
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    _link_tree(src / "users", dst / "users")

    if first_seen is None:
        _link_tree(src / "items", dst / "items")
    else:
        items = _raw(spark, src / "items", C.ITEMS_REQUIRED, C.ITEMS_OPTIONAL)
        dates = pd.DataFrame(
            {
                "_key": first_seen.index.astype(str),
                "_listed": pd.to_datetime(first_seen, utc=True).dt.strftime("%Y-%m-%d").to_numpy(),
            }
        )
        listed = spark.createDataFrame(dates, "_key string, _listed string")
        key = L._blank_to_null(F.col(C.ITEM_ID))
        items = (
            items.join(F.broadcast(listed), key == F.col("_key"), "left")
            .withColumn(C.FIRST_SEEN, F.coalesce(F.col("_listed"), F.col(C.FIRST_SEEN)))
            .drop("_key", "_listed")
        )
        _write(items, dst / "items")

    if not drop_items and user_cutoffs is None:
        _link_tree(src / "events", dst / "events")
        return dst
    events = _raw(spark, src / "events", C.EVENTS_REQUIRED, C.EVENTS_OPTIONAL)
    item = L._blank_to_null(F.col(C.ITEM_ID))
    user = L._blank_to_null(F.col(C.USER_ID))
    ts = L.parse_timestamp(L._blank_to_null(F.col(C.TS)))
    if drop_items:
        gone = spark.createDataFrame(
            pd.DataFrame({"_gone": sorted(map(str, drop_items))}), "_gone string"
        )
        events = events.join(F.broadcast(gone), item == F.col("_gone"), "left_anti")
    if user_cutoffs is not None and len(user_cutoffs):
        cuts = pd.DataFrame(
            {
                "_user": user_cutoffs.index.astype(str),
                USER_CUTOFF: pd.to_datetime(user_cutoffs, utc=True).to_numpy(),
            }
        )
        cut = spark.createDataFrame(cuts, f"_user string, {USER_CUTOFF} timestamp")
        events = (
            events.join(F.broadcast(cut), user == F.col("_user"), "left")
            # Unparseable timestamps stay: cleaning quarantines them as it would have.
            .where(F.col(USER_CUTOFF).isNull() | ts.isNull() | (ts < F.col(USER_CUTOFF)))
            .drop("_user", USER_CUTOFF)
        )
    _write(events, dst / "events")
    return dst
