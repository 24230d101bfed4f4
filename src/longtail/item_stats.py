"""Item-sized reductions of the interactions table, computed in Spark.

The interactions table has one row per user x item and grows with the events; the driver only
ever needs per-item numbers. These transforms reduce it inside Spark to one row per item
(statistics) and at most `top` rows per item (co-occurrence neighbours), which
`fusion.assemble_item_space` turns into the broadcast `ItemSpace`. They compute what
`item_stats_frame` and `cooccurrence` of `tests/unit/fusion_reference.py` compute in pandas
(scores in double).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import BinaryType, DoubleType, LongType, StringType, StructField, StructType

from longtail import columns as C
from longtail.cooccurrence_matrix import pair_counts, summed_best_neighbours
from longtail.fusion import (
    COOCCURRENCE_TOP,
    COOCCURRENCE_USER_CAP,
    FIRST_TS,
    N_RECENT_USERS,
    N_USERS,
    NEIGHBOUR_ID,
    RECENT_DAYS,
)
from longtail.partitions import whole_partition
from longtail.runs import rank_within


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


_I, _J, _CO, _N = "_i", "_j", "_co", "_n"
CODED_COUNTS = StructType(
    [
        StructField(_I, LongType()),
        StructField(_J, BinaryType()),
        StructField(_CO, BinaryType()),
    ]
)
CODED_SCORES = StructType(
    [StructField(_I, LongType()), StructField(_J, LongType()), StructField(C.SCORE, DoubleType())]
)


def _partition_pair_counts(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """A partition's pair counts as one row per item, its neighbours and counts as packed int64
    bytes: Spark copies a binary value whole, where a row (or an array element) per pair costs
    a conversion each."""
    frame = whole_partition(batches)
    if frame is None:
        return
    i, j, co = pair_counts(frame[C.USER_ID].to_numpy(), frame[_I].to_numpy())
    order = np.argsort(i, kind="stable")
    i, j, co = i[order], j[order], co[order]
    starts = np.flatnonzero(rank_within(i) == 0)
    ends = np.r_[starts[1:], len(i)]
    jb, cb = j.astype("<i8").tobytes(), co.astype("<i8").tobytes()
    yield pd.DataFrame(
        {
            _I: i[starts],
            _J: [jb[8 * a : 8 * b] for a, b in zip(starts, ends, strict=True)],
            _CO: [cb[8 * a : 8 * b] for a, b in zip(starts, ends, strict=True)],
        }
    )


def _best_of_partition(n: np.ndarray, top: int) -> Callable[[Iterator[pd.DataFrame]], Any]:
    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        frame = whole_partition(batches)
        if frame is None:
            return
        lengths = frame[_J].map(len).to_numpy() // 8
        i, j, score = summed_best_neighbours(
            np.repeat(frame[_I].to_numpy(), lengths),
            np.frombuffer(b"".join(frame[_J]), "<i8"),
            np.frombuffer(b"".join(frame[_CO]), "<i8"),
            n,
            top,
        )
        yield pd.DataFrame({_I: i, _J: j, C.SCORE: score})

    return run


def cooccurrence_pairs(
    interactions: DataFrame, top: int = COOCCURRENCE_TOP, cap: int = COOCCURRENCE_USER_CAP
) -> DataFrame:
    """(item_id, neighbour_id, score): each item's `top` best binary-cosine neighbours over users.

    Each user keeps their `cap` most recent items (last_ts desc, item_id asc) so heavy users
    cannot blow up the product; n is an item's user count after that cap; score = co-count /
    sqrt(n_i * n_j), in double. Ties keep the smaller neighbour id. Restrict interactions to the
    catalogue first: the cap counts only the items it sees.

    Items become positions in id order (Spark's string order, so position order is id order),
    and the per-item counts n reach the driver (items). Each partition of users counts its
    pairs with a sparse product (cooccurrence_matrix.pair_counts: a row per pair of items a
    partition's users share, not per co-occurrence as a self-join emits); partitioned by item,
    the partial counts are summed, scored and cut to the top (summed_best_neighbours). The
    rows and scores are those of the self-join, group-by and window this replaced, bit for bit.
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
    counted = capped.groupBy(C.ITEM_ID).agg(F.count(F.lit(1)).alias(_N))
    positions = counted.select(
        C.ITEM_ID, _N, (F.row_number().over(Window.orderBy(C.ITEM_ID)) - 1).cast("long").alias(_I)
    ).toArrow()
    order = np.argsort(positions.column(_I).to_numpy())
    n = positions.column(_N).to_numpy()[order].astype(np.int64)
    spark = interactions.sparkSession
    schema = StructType([StructField(C.ITEM_ID, StringType()), StructField(_I, LongType())])
    index = spark.createDataFrame(positions.select([C.ITEM_ID, _I]).to_pandas(), schema)
    coded = capped.join(F.broadcast(index), C.ITEM_ID).select(C.USER_ID, _I)
    best = (
        coded.repartition(C.USER_ID)
        .mapInPandas(_partition_pair_counts, CODED_COUNTS)
        .repartition(_I)
        .mapInPandas(_best_of_partition(n, top), CODED_SCORES)
    )
    neighbours = index.select(F.col(C.ITEM_ID).alias(NEIGHBOUR_ID), F.col(_I).alias(_J))
    return (
        best.join(F.broadcast(index), _I)
        .join(F.broadcast(neighbours), _J)
        .select(C.ITEM_ID, NEIGHBOUR_ID, C.SCORE)
    )
