"""Interactions indexed in Spark and collected to the driver in compact form, for implicit's
ALS (stages train_als and train_ranker fit on the driver)."""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from longtail import columns as C
from longtail.als import IndexedInteractions
from longtail.cooccurrence_matrix import NO_TIME

_IDX = "idx"


def _id_index(df: DataFrame, key: str) -> DataFrame:
    """(key, idx): 0-based position of each distinct id in sorted order.

    Spark compares strings by their UTF-8 bytes, which is code point order, the order of
    ``np.unique`` in ``als.build_matrix``; ids are distinct, so row_number is a dense rank. The
    window has no partition key: one task sorts the distinct ids (not the interactions).
    """
    ids = df.select(key).distinct()
    return ids.select(key, (F.row_number().over(Window.orderBy(key)) - 1).alias(_IDX)).cache()


def _ids(index: DataFrame, key: str) -> np.ndarray:
    """The index's ids in idx order, as the str array ``np.unique`` would return."""
    column = index.orderBy(_IDX).select(key).toArrow().column(0)
    return np.asarray(column.to_pylist(), dtype=str)


def collect_indexed(interactions: DataFrame) -> IndexedInteractions:
    """The interaction matrix on the driver in compact form, indexed in Spark.

    implicit fits on one machine, so the matrix has to reach the driver; only int32 coordinates
    and float64 weights per interaction travel (via Arrow), the id strings once per user/item.
    """
    return _collect(interactions, None)[0]


def collect_indexed_with_firsts(interactions: DataFrame) -> tuple[IndexedInteractions, np.ndarray]:
    """collect_indexed plus each pair's first event (epoch microseconds, int64)."""
    ii, first_us = _collect(interactions, "first_ts")
    assert first_us is not None
    return ii, first_us


def collect_indexed_with_lasts(interactions: DataFrame) -> tuple[IndexedInteractions, np.ndarray]:
    """collect_indexed plus each pair's last event (epoch microseconds, int64; NO_TIME where
    it has none), what the co-occurrence cap orders by (cooccurrence_matrix)."""
    ii, last_us = _collect(interactions, "last_ts")
    assert last_us is not None
    return ii, last_us


def _collect(
    interactions: DataFrame, time_column: str | None
) -> tuple[IndexedInteractions, np.ndarray | None]:
    users, items = _id_index(interactions, C.USER_ID), _id_index(interactions, C.ITEM_ID)
    try:
        coo = (
            interactions.join(users.withColumnRenamed(_IDX, "u"), C.USER_ID)
            .join(items.withColumnRenamed(_IDX, "i"), C.ITEM_ID)
            .select(
                F.col("u").cast("int"),
                F.col("i").cast("int"),
                F.col(C.WEIGHT).cast("double"),
                *([F.unix_micros(F.col(time_column)).alias("t")] if time_column else []),
            )
            .toArrow()
        )
        user_ids, item_ids = _ids(users, C.USER_ID), _ids(items, C.ITEM_ID)
    finally:
        users.unpersist()
        items.unpersist()
    u, i, w = (coo.column(k).to_numpy() for k in range(3))
    times = None
    if time_column:
        times = pc.fill_null(coo.column(3), NO_TIME).to_numpy().astype(np.int64)
    ii = IndexedInteractions(
        u.astype(np.int32), i.astype(np.int32), w.astype(np.float64), user_ids, item_ids
    )
    return ii, times
