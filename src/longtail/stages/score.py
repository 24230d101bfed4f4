"""Score every user with history inside Spark and stage the top-N list for publishing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
from pyspark.sql import SparkSession

from longtail import columns as C
from longtail.config import ScoreConfig
from longtail.scoring import ScoringModel, popularity, score_all, users_to_score
from longtail.stages.common import stage_main
from longtail.stages.train_als import ITEM_FACTORS, USER_FACTORS
from longtail.storage import read_record, read_table, staging_path, write_staging

TABLE = "recommendations"


def run(spark: SparkSession, cfg: ScoreConfig) -> dict[str, Any]:
    wh, ds = cfg.warehouse, cfg.ds
    als_record = read_record(spark, wh, ds, "train_als")
    if als_record is None:
        raise FileNotFoundError(f"no train_als record for ds={ds}: run train_als first")
    events = read_table(spark, wh, "silver_events", ds)
    catalogue = read_table(spark, wh, "catalogue", ds)
    since = (ds - timedelta(days=cfg.popularity_days - 1)).isoformat()
    pop = popularity(events, catalogue, since).toPandas()
    if len(pop) < cfg.top_n:
        raise ValueError(f"the catalogue has {len(pop)} items, fewer than top_n={cfg.top_n}")
    items = read_table(spark, wh, ITEM_FACTORS, ds).orderBy(C.ITEM_ID).toPandas()
    model = ScoringModel(
        item_ids=items[C.ITEM_ID].to_numpy(dtype=str),
        item_factors=np.stack(items[C.FACTORS].to_numpy()).astype(np.float32)
        if len(items)
        else np.zeros((0, 1), np.float32),
        popular_ids=pop[C.ITEM_ID].to_numpy(dtype=str),
        popular_scores=pop["recent_users"].to_numpy(dtype=np.float64),
        top_n=cfg.top_n,
        min_user_items=int(als_record["config"]["min_user_items"]),
        model_version=als_record["model_version"],
    )
    users = users_to_score(
        read_table(spark, wh, "interactions", ds), read_table(spark, wh, USER_FACTORS, ds)
    )
    recs = score_all(spark, users, model)
    write_staging(recs, wh, TABLE, ds)
    staged = spark.read.parquet(staging_path(wh, TABLE, ds))
    by_source = {r[C.SOURCE]: r["count"] for r in staged.groupBy(C.SOURCE).count().collect()}
    return {
        "model_version": model.model_version,
        "counts": {
            "users": users.count(),
            "rows": sum(by_source.values()),
            "rows_by_source": by_source,
        },
    }


def main(argv: list[str] | None = None) -> int:
    return stage_main("score", ScoreConfig, run, argv)
