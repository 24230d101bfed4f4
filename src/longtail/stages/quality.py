"""Nightly quality tracking: how did the last published list do on the events since?

For run date ds, takes the newest published recommendations partition before ds (within
max_lookback_days), and the (user, item) pairs that arrived after that run's window and up to the
end of ds, new to the user. Writes one row per night to `quality_metrics/ds=<ds>/` (ndcg@10,
recall@20, aplt@10, coverage@10, tail_recall@20, counts), so an operator sees quality night by
night. A re-run of the same night replaces its row. The metrics are `longtail.evaluation`'s,
computed in Spark (`evaluation.spark`): only per-catalogue-item counts (for the head/tail split,
at the evaluated night's `score.head_share`, so APLT counts what its is_long_tail called tail)
and one row of sums reach the driver.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from longtail import columns as C
from longtail import tables
from longtail.config import QualityConfig
from longtail.evaluation import HEAD_SHARE, ranking, split
from longtail.evaluation import spark as spark_eval
from longtail.stages.common import stage_main
from longtail.warehouse.fs import Fs
from longtail.warehouse.layout import night_key, table_path
from longtail.warehouse.leases import read_lease
from longtail.warehouse.publish import MANIFEST_KEY, read_table, write_audit_publish
from longtail.warehouse.records import read_record

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
    recs: pd.DataFrame,
    history: pd.DataFrame,
    arrived: pd.DataFrame,
    catalogue: list[str],
    head_share: float = HEAD_SHARE,
) -> dict[str, Any]:
    """Metrics of recs against arrived (user, item) pairs not in history (both pandas frames).

    The reference definition; the stage computes the same in Spark (``spark_metrics``).
    """
    listed = set(recs[C.USER_ID])
    truth = split.new_pairs(history, arrived, users=listed)
    _, tail = split.head_tail_split(history.groupby(C.ITEM_ID).size(), catalogue, head_share)
    rec_lists = ranking.recs_from_frame(recs)
    out: dict[str, Any] = {
        "n_users_listed": len(listed),
        "n_eval_users": len(truth),
        "n_test_pairs": sum(len(v) for v in truth.values()),
        "coverage@10": ranking.coverage_at_k(rec_lists, catalogue, 10),
        "aplt@10": ranking.aplt_at_k(rec_lists, tail, 10),
    }
    if truth:
        out["ndcg@10"] = ranking.ndcg_at_k(rec_lists, truth, 10)
        out["recall@20"] = ranking.recall_at_k(rec_lists, truth, 20)
        out["tail_recall@20"] = ranking.tail_recall_at_k(rec_lists, truth, tail, 20)
    return out


def spark_metrics(
    recs: DataFrame,
    history: DataFrame,
    arrived: DataFrame,
    catalogue: DataFrame,
    head_share: float = HEAD_SHARE,
) -> dict[str, Any]:
    """``evaluate_previous`` computed in Spark: the driver gets one row of sums, not the data.

    Truth is the arrived pairs not in history, of listed users (``evaluation.spark.new_pairs``);
    the head/tail split is ``history``'s per catalogue item at ``head_share``.
    """
    flags = spark_eval.item_flags(history, catalogue, head_share)
    truth = spark_eval.new_pairs(history, arrived, users=recs)
    return spark_eval.nightly_metrics(recs, truth, flags, 10, 20)


def night_head_share(spark: SparkSession, warehouse: str, night: date) -> float:
    """The head share that split the night's published is_long_tail: its score stage's config
    (the default when the record is missing or predates the setting)."""
    record = read_record(spark, warehouse, night, "score") or {}
    return float(record.get("config", {}).get("head_share", HEAD_SHARE))


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
                    night_head_share(spark, wh, prev),
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
