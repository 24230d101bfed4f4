"""Nightly quality tracking: how did the last published list do on the events since?

For run date ds, takes the newest published recommendations partition before ds (within
max_lookback_days), and the (user, item) pairs that arrived after that run's window and up to the
end of ds, new to the user. Writes one row per night to `quality_metrics/ds=<ds>/` (ndcg@10,
recall@20, aplt@10, coverage@10, tail_recall@20, counts), so an operator sees quality night by
night. A re-run of the same night replaces its row. The metrics are computed in Spark: only
per-catalogue-item counts (for the head/tail split) and one row of sums reach the driver.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from longtail import columns as C
from longtail import tables
from longtail.bench import metrics
from longtail.config import QualityConfig
from longtail.stages.common import stage_main
from longtail.warehouse.fs import Fs
from longtail.warehouse.layout import night_key, table_path
from longtail.warehouse.leases import read_lease
from longtail.warehouse.publish import MANIFEST_KEY, read_table, write_audit_publish

TABLE = tables.QUALITY_METRICS
METRICS = ("ndcg@10", "recall@20", "aplt@10", "coverage@10", "tail_recall@20")


def previous_run(spark: SparkSession, warehouse: str, ds: date, lookback: int) -> date | None:
    root = table_path(warehouse, tables.RECOMMENDATIONS)
    fs = Fs(spark, root)
    days = []
    for name in fs.list_dirs(root):
        if name.startswith("ds=") and fs.exists(f"{root}/{name}/_SUCCESS"):
            day = date.fromisoformat(name[3:])
            if ds - timedelta(days=lookback) <= day < ds:
                days.append(day)
    return max(days) if days else None


def evaluate_previous(
    recs: pd.DataFrame, history: pd.DataFrame, arrived: pd.DataFrame, catalogue: list[str]
) -> dict[str, Any]:
    """Metrics of recs against arrived (user, item) pairs not in history (both pandas frames).

    The reference definition; the stage computes the same in Spark (``spark_metrics``).
    """
    seen = set(zip(history[C.USER_ID], history[C.ITEM_ID], strict=True))
    truth: dict[str, set[str]] = {}
    for u, i in zip(arrived[C.USER_ID], arrived[C.ITEM_ID], strict=True):
        if (u, i) not in seen:
            truth.setdefault(u, set()).add(i)
    listed = set(recs[C.USER_ID])
    truth = {u: v for u, v in truth.items() if u in listed}
    counts = history.groupby(C.ITEM_ID).size()
    _, tail = metrics.head_tail_split(counts, catalogue, 0.8)
    rec_lists = metrics.recs_from_frame(recs)
    out: dict[str, Any] = {
        "n_users_listed": len(listed),
        "n_eval_users": len(truth),
        "n_test_pairs": sum(len(v) for v in truth.values()),
        "coverage@10": metrics.coverage_at_k(rec_lists, catalogue, 10),
        "aplt@10": metrics.aplt_at_k(rec_lists, tail, 10),
    }
    if truth:
        out["ndcg@10"] = metrics.ndcg_at_k(rec_lists, truth, 10)
        out["recall@20"] = metrics.recall_at_k(rec_lists, truth, 20)
        out["tail_recall@20"] = metrics.tail_recall_at_k(rec_lists, truth, tail, 20)
    return out


_POS, _TAIL = "pos", "is_tail"  # is_tail: True / False for catalogue items, null outside it


def _item_flags(history: DataFrame, catalogue: DataFrame) -> DataFrame:
    """(item_id, is_tail) per distinct catalogue item, split as ``evaluate_previous`` splits.

    The split itself runs on the driver with ``metrics.head_tail_split`` (its order and
    tie-breaking exactly), on per-catalogue-item counts: items-sized, never users or events.
    """
    cat = catalogue.select(C.ITEM_ID).distinct()
    counts = cat.join(history.groupBy(C.ITEM_ID).count(), C.ITEM_ID, "left").toPandas()
    n = pd.Series(counts["count"].fillna(0).to_numpy(np.int64), index=counts[C.ITEM_ID].to_numpy())
    head, _ = metrics.head_tail_split(n, counts[C.ITEM_ID].tolist(), 0.8)
    spark = catalogue.sparkSession
    heads = spark.createDataFrame([(i,) for i in sorted(head)], f"{C.ITEM_ID} string")
    heads = heads.withColumn("head", F.lit(True))
    return cat.join(heads, C.ITEM_ID, "left").select(C.ITEM_ID, F.col("head").isNull().alias(_TAIL))


def spark_metrics(
    recs: DataFrame, history: DataFrame, arrived: DataFrame, catalogue: DataFrame
) -> dict[str, Any]:
    """``evaluate_previous`` computed in Spark: the driver gets one row of sums, not the data.

    Same definitions as ``longtail.bench.metrics``: each list in rank order (ties by item id),
    cut to k, a repeated item kept at its first position; truth is the arrived pairs not in
    history, of listed users; NDCG is binary with IDCG over min(10, |truth|) hits; recall divides
    by min(20, |truth|); tail recall is pooled over (user, tail item) pairs.
    """
    flags = _item_flags(history, catalogue)
    order = Window.partitionBy(C.USER_ID).orderBy(F.asc_nulls_last(C.RANK), C.ITEM_ID)
    long = (
        recs.select(C.USER_ID, C.RANK, C.ITEM_ID)
        .withColumn(_POS, F.row_number().over(order) - 1)
        .where(F.col(_POS) < 20)
        .groupBy(C.USER_ID, C.ITEM_ID)
        .agg(F.min(_POS).alias(_POS))
        .join(flags, C.ITEM_ID, "left")
    )
    tail = F.coalesce(F.col(_TAIL), F.lit(False)).cast("long")
    truth = (
        arrived.select(C.USER_ID, C.ITEM_ID)
        .distinct()
        .join(history.select(C.USER_ID, C.ITEM_ID), [C.USER_ID, C.ITEM_ID], "left_anti")
        .join(recs.select(C.USER_ID).distinct(), C.USER_ID, "left_semi")
        .join(flags, C.ITEM_ID, "left")
    )
    top10 = long.where(F.col(_POS) < 10)
    hits = long.join(truth.select(C.USER_ID, C.ITEM_ID), [C.USER_ID, C.ITEM_ID])
    per_user = (
        top10.groupBy(C.USER_ID)  # every listed user has a first item
        .agg(F.avg(tail.cast("double")).alias("aplt"))
        .join(
            truth.groupBy(C.USER_ID).agg(
                F.count("*").alias("n_truth"), F.sum(tail).alias("n_tail_truth")
            ),
            C.USER_ID,
            "left",
        )
        .join(
            hits.groupBy(C.USER_ID).agg(
                F.sum(F.when(F.col(_POS) < 10, 1.0 / F.log2(F.col(_POS) + 2.0))).alias("dcg"),
                F.count("*").alias("hits"),
                F.sum(tail).alias("tail_hits"),
            ),
            C.USER_ID,
            "left",
        )
    )
    ideal = np.cumsum(1.0 / np.log2(np.arange(2, 12, dtype=np.float64)))  # IDCG@10 by #truth
    idcg = F.element_at(
        F.array(*[F.lit(float(v)) for v in ideal]), F.least(F.col("n_truth"), F.lit(10)).cast("int")
    )

    def zero(name: str) -> Column:
        return F.coalesce(F.col(name), F.lit(0))

    judged = F.col("n_truth").isNotNull()
    users = per_user.agg(
        F.count("*").alias("n_users_listed"),
        F.count("n_truth").alias("n_eval_users"),
        F.sum("n_truth").alias("n_test_pairs"),
        F.avg("aplt").alias("aplt"),
        F.avg(F.when(judged, zero("dcg") / idcg)).alias("ndcg"),
        F.avg(F.when(judged, zero("hits") / F.least(F.col("n_truth"), F.lit(20)))).alias("recall"),
        F.sum("n_tail_truth").alias("n_tail_truth"),
        F.sum("tail_hits").alias("tail_hits"),
    )
    items = flags.agg(F.count("*").alias("n_catalogue")).crossJoin(
        top10.where(F.col(_TAIL).isNotNull()).agg(F.countDistinct(C.ITEM_ID).alias("covered"))
    )
    (r,) = users.crossJoin(items).collect()  # one row of aggregates
    n_eval = int(r["n_eval_users"])
    out: dict[str, Any] = {
        "n_users_listed": int(r["n_users_listed"]),
        "n_eval_users": n_eval,
        "n_test_pairs": int(r["n_test_pairs"] or 0),
        "coverage@10": r["covered"] / r["n_catalogue"] if r["n_catalogue"] else float("nan"),
        "aplt@10": float("nan") if r["aplt"] is None else float(r["aplt"]),
    }
    if n_eval:
        n_tail = int(r["n_tail_truth"] or 0)
        out["ndcg@10"] = float(r["ndcg"])
        out["recall@20"] = float(r["recall"])
        out["tail_recall@20"] = int(r["tail_hits"] or 0) / n_tail if n_tail else float("nan")
    return out


def run(spark: SparkSession, cfg: QualityConfig) -> dict[str, Any]:
    wh, ds = cfg.warehouse, cfg.ds
    prev = previous_run(spark, wh, ds, cfg.max_lookback_days)
    row: dict[str, Any] = {"ds": ds.isoformat(), "evaluated_run": None}
    if prev is not None:
        start = datetime.combine(prev + timedelta(days=1), time.min)
        events = read_table(spark, wh, tables.SILVER_EVENTS, ds)
        arrived = events.where(F.col(C.TS) >= F.lit(start.isoformat(sep=" ")).cast("timestamp"))
        with read_lease(spark, wh, night_key(prev)):  # retention keeps prev while we read it
            row.update(
                spark_metrics(
                    read_table(spark, wh, tables.RECOMMENDATIONS, prev),
                    read_table(spark, wh, tables.INTERACTIONS, prev),
                    arrived,
                    read_table(spark, wh, tables.CATALOGUE, prev),
                )
            )
        row["evaluated_run"] = prev.isoformat()
    values = {m: float(row[m]) if row.get(m) is not None else None for m in METRICS}
    frame = spark.createDataFrame(
        [
            {
                "run_date": ds.isoformat(),
                "evaluated_run": row["evaluated_run"],
                "n_eval_users": int(row.get("n_eval_users", 0)),
                "n_test_pairs": int(row.get("n_test_pairs", 0)),
                **{m.replace("@", "_at_"): v for m, v in values.items()},
            }
        ],
        schema="run_date string, evaluated_run string, n_eval_users long, n_test_pairs long, "
        + ", ".join(f"{m.replace('@', '_at_')} double" for m in METRICS),
    )
    published = write_audit_publish(frame.coalesce(1), wh, TABLE, ds, manifest={})
    return {
        "counts": {k: row.get(k) for k in ("n_eval_users", "n_test_pairs")},
        "metrics": row,
        "manifests": {TABLE: published[MANIFEST_KEY]},
    }


def main(argv: list[str] | None = None) -> int:
    return stage_main("quality", QualityConfig, run, argv)
