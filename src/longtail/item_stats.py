"""Item-sized reductions of the interactions table, computed in Spark.

The interactions table has one row per user x item and grows with the events; the driver only
ever needs per-item numbers. These transforms reduce it inside Spark to one row per item
(statistics) and at most `top` rows per item (co-occurrence neighbours), which
`fusion.assemble_item_space` turns into the broadcast `ItemSpace`. They compute what
`item_stats_frame` and `cooccurrence` of `tests/unit/fusion_reference.py` compute in pandas
(scores in double).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from longtail import columns as C
from longtail.fusion import (
    COOCCURRENCE_TOP,
    COOCCURRENCE_USER_CAP,
    FIRST_TS,
    N_RECENT_USERS,
    N_USERS,
    NEIGHBOUR_ID,
    RECENT_DAYS,
)


def item_statistics(
    interactions: DataFrame, as_of_ts: datetime, recent_days: int = RECENT_DAYS
) -> DataFrame:
    """Per item_id: n_users, n_recent_users (last_ts >= as_of - recent_days), first_ts (min).

    interactions has one row per (user, item), so its row count per item is the distinct users.
    The window start is compared in epoch microseconds (rounded up, as pandas compares in ns) so
    the session time zone cannot shift it; a naive as_of_ts is read as UTC.
    """
    start_ns = pd.Timestamp(as_of_ts - timedelta(days=recent_days)).value
    start_us = -(-start_ns // 1000)
    recent = F.unix_micros(F.col("last_ts")) >= F.lit(start_us)
    return interactions.groupBy(C.ITEM_ID).agg(
        F.count(F.lit(1)).alias(N_USERS),
        F.count_if(recent).alias(N_RECENT_USERS),
        F.min(FIRST_TS).alias(FIRST_TS),
    )


def cooccurrence_pairs(
    interactions: DataFrame, top: int = COOCCURRENCE_TOP, cap: int = COOCCURRENCE_USER_CAP
) -> DataFrame:
    """(item_id, neighbour_id, score): each item's `top` best binary-cosine neighbours over users.

    Each user keeps their `cap` most recent items (last_ts desc, item_id asc) so heavy users
    cannot blow up the self-join; n is an item's user count after that cap; score = co-count /
    sqrt(n_i * n_j). Ties keep the smaller neighbour id, which is the smaller item position since
    positions follow sorted ids. Restrict interactions to the catalogue first: the cap counts
    only the items it sees.
    """
    by_recency = Window.partitionBy(C.USER_ID).orderBy(
        F.col("last_ts").desc_nulls_last(), F.col(C.ITEM_ID).asc()
    )
    capped = (
        interactions.select(C.USER_ID, C.ITEM_ID, "last_ts")
        .withColumn("_r", F.row_number().over(by_recency))
        .where(F.col("_r") <= cap)
        .select(C.USER_ID, C.ITEM_ID)
    )
    n = capped.groupBy(C.ITEM_ID).agg(F.count(F.lit(1)).alias("_n"))
    # Co-counts and scores are symmetric: count each unordered pair once (item < neighbour),
    # score it, then mirror it. That halves the self-join's rows, the largest shuffle of a night.
    pairs = capped.join(
        capped.select(C.USER_ID, F.col(C.ITEM_ID).alias(NEIGHBOUR_ID)), C.USER_ID
    ).where(F.col(C.ITEM_ID) < F.col(NEIGHBOUR_ID))
    co = pairs.groupBy(C.ITEM_ID, NEIGHBOUR_ID).agg(F.count(F.lit(1)).alias("_co"))
    half = (
        co.join(n, C.ITEM_ID)
        .join(n.select(F.col(C.ITEM_ID).alias(NEIGHBOUR_ID), F.col("_n").alias("_m")), NEIGHBOUR_ID)
        .select(
            C.ITEM_ID,
            NEIGHBOUR_ID,
            (F.col("_co") / F.sqrt(F.col("_n") * F.col("_m"))).alias(C.SCORE),
        )
    )
    scored = half.unionByName(
        half.select(
            F.col(NEIGHBOUR_ID).alias(C.ITEM_ID), F.col(C.ITEM_ID).alias(NEIGHBOUR_ID), C.SCORE
        )
    )
    best = Window.partitionBy(C.ITEM_ID).orderBy(F.col(C.SCORE).desc(), F.col(NEIGHBOUR_ID).asc())
    return (
        scored.withColumn("_k", F.row_number().over(best))
        .where(F.col("_k") <= top)
        .select(C.ITEM_ID, NEIGHBOUR_ID, C.SCORE)
    )
