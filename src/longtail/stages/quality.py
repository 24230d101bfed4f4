"""Nightly quality tracking: how did the last published list do on the events since?

For run date ds, takes the newest published recommendations partition before ds (within
max_lookback_days), and the (user, item) pairs that arrived after that run's window and up to the
end of ds, new to the user. Writes one row per night to `quality_metrics/ds=<ds>/` (ndcg@10,
recall@20, aplt@10, coverage@10, tail_recall@20, counts), so an operator sees quality night by
night. A re-run of the same night replaces its row.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from longtail import columns as C
from longtail import tables
from longtail.bench import metrics
from longtail.config import QualityConfig
from longtail.stages.common import stage_main
from longtail.storage import (
    MANIFEST_KEY,
    Fs,
    night_key,
    read_lease,
    read_table,
    table_path,
    write_audit_publish,
)

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
    """Metrics of recs against arrived (user, item) pairs not in history (both pandas frames)."""
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


def run(spark: SparkSession, cfg: QualityConfig) -> dict[str, Any]:
    wh, ds = cfg.warehouse, cfg.ds
    prev = previous_run(spark, wh, ds, cfg.max_lookback_days)
    row: dict[str, Any] = {"ds": ds.isoformat(), "evaluated_run": None}
    if prev is not None:
        start = datetime.combine(prev + timedelta(days=1), time.min)
        events = read_table(spark, wh, "silver_events", ds)
        arrived = (
            events.where(F.col(C.TS) >= F.lit(start.isoformat(sep=" ")).cast("timestamp"))
            .select(C.USER_ID, C.ITEM_ID)
            .distinct()
            .toPandas()
        )
        with read_lease(spark, wh, night_key(prev)):  # retention keeps prev while we read it
            history = read_table(spark, wh, tables.INTERACTIONS, prev).select(C.USER_ID, C.ITEM_ID)
            recs = read_table(spark, wh, tables.RECOMMENDATIONS, prev)
            recs = recs.select(C.USER_ID, C.RANK, C.ITEM_ID).toPandas()
            catalogue = read_table(spark, wh, tables.CATALOGUE, prev).select(C.ITEM_ID).toPandas()
            history = history.toPandas()
        row.update(evaluate_previous(recs, history, arrived, catalogue[C.ITEM_ID].tolist()))
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
