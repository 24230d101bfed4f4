"""Train ALS on the driver from the silver interactions; publish user and item factors."""

from __future__ import annotations

from typing import Any

import numpy as np
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from longtail import als_selection, gates, tables
from longtail import columns as C
from longtail.als import IndexedInteractions, factors_frame, fit_als
from longtail.config import AlsConfig
from longtail.stages.common import stage_main
from longtail.warehouse.publish import read_table, write_audit_publish_set

USER_FACTORS = tables.ALS_USER_FACTORS
ITEM_FACTORS = tables.ALS_ITEM_FACTORS


def model_version(cfg: AlsConfig) -> str:
    """Same data date + same config -> same version string, so re-runs are recognisable."""
    return f"als-{cfg.ds.isoformat()}-{cfg.fingerprint()}"


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
    return _collect(interactions, False)[0]


def collect_indexed_with_firsts(interactions: DataFrame) -> tuple[IndexedInteractions, np.ndarray]:
    """collect_indexed plus each pair's first event (epoch microseconds, int64)."""
    ii, first_us = _collect(interactions, True)
    assert first_us is not None
    return ii, first_us


def _collect(
    interactions: DataFrame, with_firsts: bool
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
                *([F.unix_micros(F.col("first_ts")).alias("f")] if with_firsts else []),
            )
            .toArrow()
        )
        user_ids, item_ids = _ids(users, C.USER_ID), _ids(items, C.ITEM_ID)
    finally:
        users.unpersist()
        items.unpersist()
    u, i, w = (coo.column(k).to_numpy() for k in range(3))
    first_us = coo.column(3).to_numpy().astype(np.int64) if with_firsts else None
    ii = IndexedInteractions(
        u.astype(np.int32), i.astype(np.int32), w.astype(np.float64), user_ids, item_ids
    )
    return ii, first_us


def run(spark: SparkSession, cfg: AlsConfig) -> dict[str, Any]:
    table = read_table(spark, cfg.warehouse, "interactions", cfg.ds)
    chosen = {"regularization": cfg.regularization, "alpha": cfg.alpha}
    selection: dict[str, Any] | None = None
    if cfg.select:
        interactions, first_us = collect_indexed_with_firsts(table)
        picked, split = als_selection.choose(
            interactions,
            first_us,
            factors=cfg.factors,
            regularization=cfg.regularization,
            alpha=cfg.alpha,
            iterations=cfg.iterations,
            seed=cfg.seed,
            num_threads=cfg.num_threads,
            regularizations=cfg.regularization_grid,
            alpha_factors=cfg.alpha_factors,
            share=cfg.validation_share,
            max_users=cfg.validation_users,
            min_users=cfg.min_validation_users,
        )
        chosen, selection = picked.chosen, picked.record(split)
    else:
        interactions = collect_indexed(table)
    model = fit_als(
        interactions,
        factors=cfg.factors,
        regularization=chosen["regularization"],
        alpha=chosen["alpha"],
        iterations=cfg.iterations,
        seed=cfg.seed,
        num_threads=cfg.num_threads,
    )
    users = spark.createDataFrame(factors_frame(model.user_ids, model.user_factors, C.USER_ID))
    items = spark.createDataFrame(factors_frame(model.item_ids, model.item_factors, C.ITEM_ID))
    # Published together: user and item factors of one fit, never one of them from another run.
    write_audit_publish_set(
        {
            USER_FACTORS: (users, lambda df: gates.gate_factors(df, C.USER_ID, cfg.factors)),
            ITEM_FACTORS: (items, lambda df: gates.gate_factors(df, C.ITEM_ID, cfg.factors)),
        },
        cfg.warehouse,
        cfg.ds,
    )
    return {
        "model_version": model_version(cfg),
        # What every later ALS fit of this night uses (train_ranker's window model included).
        "chosen": chosen,
        "selection": selection,
        "counts": {
            "users": len(model.user_ids),
            "items": len(model.item_ids),
            "nnz": len(interactions.weight),
        },
    }


def main(argv: list[str] | None = None) -> int:
    return stage_main("train_als", AlsConfig, run, argv)
