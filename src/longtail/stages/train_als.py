"""Train ALS on the driver from the silver interactions; publish user and item factors."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession

from longtail import columns as C
from longtail import gates, tables
from longtail.als import factors_frame, fit_als
from longtail.config import AlsConfig
from longtail.stages.common import stage_main
from longtail.storage import read_table, write_audit_publish_set

USER_FACTORS = tables.ALS_USER_FACTORS
ITEM_FACTORS = tables.ALS_ITEM_FACTORS


def model_version(cfg: AlsConfig) -> str:
    """Same data date + same config -> same version string, so re-runs are recognisable."""
    return f"als-{cfg.ds.isoformat()}-{cfg.fingerprint()}"


def run(spark: SparkSession, cfg: AlsConfig) -> dict[str, Any]:
    interactions = (
        read_table(spark, cfg.warehouse, "interactions", cfg.ds)
        .select(C.USER_ID, C.ITEM_ID, C.WEIGHT)
        .toPandas()
    )
    model = fit_als(
        interactions,
        factors=cfg.factors,
        regularization=cfg.regularization,
        alpha=cfg.alpha,
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
        "counts": {
            "users": len(model.user_ids),
            "items": len(model.item_ids),
            "nnz": len(interactions),
        },
    }


def main(argv: list[str] | None = None) -> int:
    return stage_main("train_als", AlsConfig, run, argv)
