"""Driver-side inputs of the fusion stages, read from the warehouse as pandas frames."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import pandas as pd
from pyspark.sql import SparkSession

from longtail import columns as C
from longtail.fusion import ItemSpace, build_item_space
from longtail.stages.content import EMBEDDING
from longtail.stages.content import TABLE as EMBEDDINGS
from longtail.stages.train_als import ITEM_FACTORS, USER_FACTORS
from longtail.storage import read_table


def window_end(ds: date) -> pd.Timestamp:
    return pd.Timestamp(datetime.combine(ds + timedelta(days=1), time.min), tz="UTC")


def catalogue(spark: SparkSession, wh: str, ds: date) -> pd.DataFrame:
    return read_table(spark, wh, "catalogue", ds).orderBy(C.ITEM_ID).toPandas()


def embeddings(spark: SparkSession, wh: str, ds: date) -> pd.DataFrame:
    return read_table(spark, wh, EMBEDDINGS, ds).select(C.ITEM_ID, EMBEDDING).toPandas()


def interactions(spark: SparkSession, wh: str, ds: date) -> pd.DataFrame:
    df = read_table(spark, wh, "interactions", ds).orderBy(C.USER_ID, C.ITEM_ID).toPandas()
    for col in ("first_ts", "last_ts"):
        df[col] = pd.to_datetime(df[col], utc=True)
    return df


def factors(spark: SparkSession, wh: str, ds: date, users: bool) -> pd.DataFrame:
    table, key = (USER_FACTORS, C.USER_ID) if users else (ITEM_FACTORS, C.ITEM_ID)
    return read_table(spark, wh, table, ds).orderBy(key).toPandas()


def events(spark: SparkSession, wh: str, ds: date) -> pd.DataFrame:
    df = (
        read_table(spark, wh, "silver_events", ds)
        .select(C.USER_ID, C.ITEM_ID, C.TS, C.EVENT_TYPE, C.WEIGHT)
        .orderBy(C.TS, C.USER_ID, C.ITEM_ID, C.EVENT_TYPE)
        .toPandas()
    )
    df[C.TS] = pd.to_datetime(df[C.TS], utc=True)
    return df


def space_at(spark: SparkSession, wh: str, ds: date, head_share: float = 0.8) -> ItemSpace:
    """The item space for scoring on ds: everything up to the end of ds."""
    return build_item_space(
        catalogue(spark, wh, ds),
        interactions(spark, wh, ds),
        embeddings(spark, wh, ds),
        factors(spark, wh, ds, users=False),
        window_end(ds),
        head_share=head_share,
    )
