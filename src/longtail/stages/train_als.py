"""Train ALS on the driver from the silver interactions; publish user and item factors."""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession

from longtail import als_selection, gates, tables
from longtail import columns as C
from longtail.als import factors_frame, fit_als
from longtail.config import AlsConfig
from longtail.indexing import collect_indexed, collect_indexed_with_firsts
from longtail.stages.common import stage_main
from longtail.warehouse.publish import read_table, write_audit_publish_set

USER_FACTORS = tables.ALS_USER_FACTORS
ITEM_FACTORS = tables.ALS_ITEM_FACTORS


def model_version(cfg: AlsConfig) -> str:
    """Same data date + same config -> same version string, so re-runs are recognisable."""
    return f"als-{cfg.ds.isoformat()}-{cfg.fingerprint()}"


def run(spark: SparkSession, cfg: AlsConfig) -> dict[str, Any]:
    table = read_table(spark, cfg.warehouse, tables.INTERACTIONS, cfg.ds)
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
