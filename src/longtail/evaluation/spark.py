"""The evaluation metrics on Spark DataFrames, with the names and definitions of ``ranking``.

For data that must stay in Spark (the nightly quality stage): only per-catalogue-item counts
(for the head/tail split) and one row of sums reach the driver. Inputs: recommendations as
(user_id, rank, item_id), truth as (user_id, item_id) pairs (``new_pairs``), item flags as
(item_id, is_tail) per distinct catalogue item (``item_flags``). As in ``ranking``: each list
in rank order (ties by item id), cut to k, a repeated item kept at its first position; NDCG is
binary with IDCG over min(k, |truth|) hits; recall divides by min(k, |truth|); tail recall is
pooled over (user, tail item) pairs; APLT and coverage count the first k slots.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame, Row, Window
from pyspark.sql import functions as F

from longtail import columns as C
from longtail.evaluation import HEAD_SHARE
from longtail.evaluation.ranking import ideal_dcg
from longtail.evaluation.split import head_tail_split

POS, TAIL = "pos", "is_tail"  # is_tail: True / False for catalogue items, null outside it
NAN = float("nan")

__all__ = [
    "aplt_at_k",
    "coverage_at_k",
    "item_flags",
    "ndcg_at_k",
    "new_pairs",
    "nightly_metrics",
    "ranked",
    "recall_at_k",
    "tail_recall_at_k",
]


def _row(frame: DataFrame) -> Row:
    (row,) = frame.collect()  # one row of aggregates
    return row


EXACT = "decimal(38,18)"


def _float(value: Any) -> float:
    return NAN if value is None else float(value)


def ranked(recs: DataFrame, k: int) -> DataFrame:
    """(user_id, item_id, pos): each list's first k entries, an item at its first position."""
    order = Window.partitionBy(C.USER_ID).orderBy(F.asc_nulls_last(C.RANK), C.ITEM_ID)
    return (
        recs.select(C.USER_ID, C.RANK, C.ITEM_ID)
        .withColumn(POS, F.row_number().over(order) - 1)
        .where(F.col(POS) < k)
        .groupBy(C.USER_ID, C.ITEM_ID)
        .agg(F.min(POS).alias(POS))
    )


def new_pairs(before: DataFrame, after: DataFrame, users: DataFrame | None = None) -> DataFrame:
    """``split.new_pairs`` in Spark: the distinct (user_id, item_id) pairs of ``after`` not in
    ``before``, of the users of ``users`` (a frame with user_id; default: ``before``'s users)."""
    judged = (before if users is None else users).select(C.USER_ID).distinct()
    return (
        after.select(C.USER_ID, C.ITEM_ID)
        .distinct()
        .join(before.select(C.USER_ID, C.ITEM_ID), [C.USER_ID, C.ITEM_ID], "left_anti")
        .join(judged, C.USER_ID, "left_semi")
    )


def item_flags(
    history: DataFrame, catalogue: DataFrame, head_share: float = HEAD_SHARE
) -> DataFrame:
    """(item_id, is_tail) per distinct catalogue item, by ``split.head_tail_split`` of the
    history's rows per item.

    The split itself runs on the driver (its order and tie-breaking exactly), on
    per-catalogue-item counts: items-sized, never users or events.
    """
    cat = catalogue.select(C.ITEM_ID).distinct()
    counts = cat.join(history.groupBy(C.ITEM_ID).count(), C.ITEM_ID, "left").toPandas()
    n = pd.Series(counts["count"].fillna(0).to_numpy(np.int64), index=counts[C.ITEM_ID].to_numpy())
    head, _ = head_tail_split(n, counts[C.ITEM_ID].tolist(), head_share)
    spark = catalogue.sparkSession
    heads = spark.createDataFrame([(i,) for i in sorted(head)], f"{C.ITEM_ID} string")
    heads = heads.withColumn("head", F.lit(True))
    return cat.join(heads, C.ITEM_ID, "left").select(C.ITEM_ID, F.col("head").isNull().alias(TAIL))


def _flagged(frame: DataFrame, flags: DataFrame | None) -> DataFrame:
    if flags is None:
        return frame.withColumn(TAIL, F.lit(None).cast("boolean"))
    return frame.join(flags, C.ITEM_ID, "left")


def _tail() -> Column:
    return F.coalesce(F.col(TAIL), F.lit(False)).cast("long")


def _zero(name: str) -> Column:
    return F.coalesce(F.col(name), F.lit(0))


def _exact(col: Column) -> Column:
    """A value to sum or average: as a decimal, whose sums do not depend on the order in which
    a shuffle's partitions are added (double sums do, in the last bit), so a night's metrics are
    identical however many partitions and cores it ran on."""
    return col.cast(EXACT)


# Per-user parts: the truth's size, the hits' DCG and counts, the top slots' tail share.


def _truth_sizes(truth: DataFrame) -> DataFrame:
    return truth.groupBy(C.USER_ID).agg(
        F.count("*").alias("n_truth"), F.sum(_tail()).alias("n_tail_truth")
    )


def _hit_sums(hits: DataFrame, k: int) -> DataFrame:
    """DCG@k, hits and tail hits per user; ``hits`` holds only rows of the lists' first k_recall
    entries, so the counts are hits@k_recall."""
    gain = _exact(F.when(F.col(POS) < k, 1.0 / F.log2(F.col(POS) + 2.0)))
    return hits.groupBy(C.USER_ID).agg(
        F.sum(gain).alias("dcg"), F.count("*").alias("hits"), F.sum(_tail()).alias("tail_hits")
    )


def _tail_share(top: DataFrame) -> DataFrame:
    return top.groupBy(C.USER_ID).agg(F.avg(_tail().cast("double")).alias("aplt"))


# Aggregates over users with a "n_truth" column (null: the user is not judged).


def _ndcg(k: int) -> Column:
    idcg = F.element_at(
        F.array(*[F.lit(float(v)) for v in ideal_dcg(k)]),
        F.least(F.col("n_truth"), F.lit(k)).cast("int"),
    )
    return F.avg(_exact(F.when(F.col("n_truth").isNotNull(), _zero("dcg") / idcg)))


def _recall(k: int) -> Column:
    judged = F.col("n_truth").isNotNull()
    return F.avg(_exact(F.when(judged, _zero("hits") / F.least(F.col("n_truth"), F.lit(k)))))


def _covered(top: DataFrame, flags: DataFrame) -> DataFrame:
    """n_catalogue and covered (catalogue items in some list's top slots) as one row."""
    return flags.agg(F.count("*").alias("n_catalogue")).crossJoin(
        top.where(F.col(TAIL).isNotNull()).agg(F.countDistinct(C.ITEM_ID).alias("covered"))
    )


def _coverage(row: Row) -> float:
    return row["covered"] / row["n_catalogue"] if row["n_catalogue"] else NAN


def _pooled(hits: Any, pairs: Any) -> float:
    return int(hits or 0) / int(pairs) if pairs else NAN


def _judged(recs: DataFrame, truth: DataFrame, k: int, flags: DataFrame | None) -> DataFrame:
    """Per truth user: n_truth, n_tail_truth, and their hits' sums in the first k entries."""
    truth = _flagged(truth.select(C.USER_ID, C.ITEM_ID).distinct(), flags)
    hits = ranked(recs, k).join(truth, [C.USER_ID, C.ITEM_ID])
    return _truth_sizes(truth).join(_hit_sums(hits, k), C.USER_ID, "left")


def ndcg_at_k(recs: DataFrame, truth: DataFrame, k: int = 10) -> float:
    """``ranking.ndcg_at_k``: truth users without a list score 0; NaN without truth."""
    return _float(_row(_judged(recs, truth, k, None).agg(_ndcg(k)))[0])


def recall_at_k(recs: DataFrame, truth: DataFrame, k: int = 20) -> float:
    """``ranking.recall_at_k``: hits in the first k over min(k, |truth_u|), mean over users."""
    return _float(_row(_judged(recs, truth, k, None).agg(_recall(k)))[0])


def tail_recall_at_k(recs: DataFrame, truth: DataFrame, flags: DataFrame, k: int = 20) -> float:
    """``ranking.tail_recall_at_k``: pooled over the (user, tail item) pairs of truth."""
    sums = _judged(recs, truth, k, flags).agg(F.sum("tail_hits"), F.sum("n_tail_truth"))
    return _pooled(*_row(sums))


def aplt_at_k(recs: DataFrame, flags: DataFrame, k: int = 10) -> float:
    """``ranking.aplt_at_k`` over every user with a list."""
    return _float(
        _row(_tail_share(_flagged(ranked(recs, k), flags)).agg(F.avg(_exact(F.col("aplt")))))[0]
    )


def coverage_at_k(recs: DataFrame, flags: DataFrame, k: int = 10) -> float:
    """``ranking.coverage_at_k`` of the catalogue of ``flags`` (``item_flags``)."""
    return _coverage(_row(_covered(_flagged(ranked(recs, k), flags), flags)))


def nightly_metrics(
    recs: DataFrame, truth: DataFrame, flags: DataFrame, k: int = 10, k_recall: int = 20
) -> dict[str, Any]:
    """The quality stage's metrics in one pass, one row to the driver: ndcg@k, recall@k_recall,
    aplt@k, coverage@k, tail_recall@k_recall, and the counts of listed users, judged users and
    truth pairs. Truth should hold listed users only (``new_pairs(..., users=recs)``): the
    judged users are the listed ones with truth. Without judged users, no accuracy metrics."""
    long = _flagged(ranked(recs, k_recall), flags)
    truth = _flagged(truth, flags)
    top = long.where(F.col(POS) < k)
    hits = long.join(truth.select(C.USER_ID, C.ITEM_ID), [C.USER_ID, C.ITEM_ID])
    per_user = (
        _tail_share(top)  # every listed user has a first item
        .join(_truth_sizes(truth), C.USER_ID, "left")
        .join(_hit_sums(hits, k), C.USER_ID, "left")
    )
    users = per_user.agg(
        F.count("*").alias("n_users_listed"),
        F.count("n_truth").alias("n_eval_users"),
        F.sum("n_truth").alias("n_test_pairs"),
        F.avg(_exact(F.col("aplt"))).alias("aplt"),
        _ndcg(k).alias("ndcg"),
        _recall(k_recall).alias("recall"),
        F.sum("n_tail_truth").alias("n_tail_truth"),
        F.sum("tail_hits").alias("tail_hits"),
    )
    r = _row(users.crossJoin(_covered(top, flags)))
    n_eval = int(r["n_eval_users"])
    out: dict[str, Any] = {
        "n_users_listed": int(r["n_users_listed"]),
        "n_eval_users": n_eval,
        "n_test_pairs": int(r["n_test_pairs"] or 0),
        f"coverage@{k}": _coverage(r),
        f"aplt@{k}": _float(r["aplt"]),
    }
    if n_eval:
        out[f"ndcg@{k}"] = float(r["ndcg"])
        out[f"recall@{k_recall}"] = float(r["recall"])
        out[f"tail_recall@{k_recall}"] = _pooled(r["tail_hits"], r["n_tail_truth"])
    return out
