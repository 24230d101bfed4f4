"""Per-user top-N inside Spark, without ever building a dense users x items matrix.

Item factors and the popularity order are broadcast; each Arrow batch of users is scored as one
(batch x items) block with a partial sort, so memory is bounded by the batch size. Users with too
little history (or no factors) get the popularity list; everyone loses the items they already
purchased, rated or reviewed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

from longtail import columns as C

SOURCE_ALS = "als"
SOURCE_POPULARITY = "popularity"
EXCLUDED = "excluded"
N_ITEMS = "n_items"

RECOMMENDATION_SCHEMA = StructType(
    [
        StructField(C.USER_ID, StringType(), False),
        StructField(C.RANK, IntegerType(), False),
        StructField(C.ITEM_ID, StringType(), False),
        StructField(C.SCORE, DoubleType(), False),
        StructField(C.SOURCE, StringType(), False),
        StructField(C.MODEL_VERSION, StringType(), False),
    ]
)
# Schema v2's reason columns (longtail.reasons), after is_long_tail in the published table.
REASON_FIELDS = (
    StructField(C.REASON_ITEM_ID, StringType(), True),
    StructField(C.REASON, StringType(), True),
)
# Reason codes of this strategy's sources (the same codes as longtail.reasons.BY_SOURCE).
REASON_SIMILAR_TASTE = "similar_taste"
REASON_POPULAR = "popular"


@dataclass(frozen=True)
class ScoringModel:
    """Everything the scoring function needs, broadcast once to the executors."""

    item_ids: np.ndarray  # items with factors
    item_factors: np.ndarray  # (n_items, d) float32
    popular_ids: np.ndarray  # whole catalogue, most popular first
    popular_scores: np.ndarray  # non-increasing
    top_n: int
    min_user_items: int
    model_version: str


def top_n_indices(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n best scores per row, best first; ties go to the lower index."""
    n = min(n, scores.shape[1])
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n] if n < scores.shape[1] else None
    if part is None:
        part = np.tile(np.arange(scores.shape[1]), (scores.shape[0], 1))
    rows = np.arange(scores.shape[0])[:, None]
    sub = scores[rows, part]
    if n < scores.shape[1]:
        # argpartition keeps arbitrary members of a tie at the cut: keep the lowest indices instead
        cut = sub.min(axis=1, keepdims=True)
        tied = np.flatnonzero((scores == cut).sum(axis=1) > (sub == cut).sum(axis=1))
        for r in tied:
            above = np.flatnonzero(scores[r] > cut[r, 0])
            at_cut = np.flatnonzero(scores[r] == cut[r, 0])[: n - len(above)]
            part[r] = np.concatenate([above, at_cut])
        sub = scores[rows, part]
    # lexsort: last key is primary -> sort by -score, then index
    order = np.lexsort((part, -sub), axis=1)
    return part[rows, order]


def _popular_for(excluded: set[str], model: ScoringModel, n: int) -> tuple[list[str], list[float]]:
    ids, scores = [], []
    for item, score in zip(model.popular_ids, model.popular_scores, strict=True):
        if item in excluded:
            continue
        ids.append(str(item))
        scores.append(float(score))
        if len(ids) == n:
            break
    return ids, scores


def recommend_batch(
    batch: pd.DataFrame, model: ScoringModel, index: dict[str, int]
) -> pd.DataFrame:
    """Top-N rows for one batch of users (columns user_id, factors, n_items, excluded)."""
    n = model.top_n
    out_users: list[str] = []
    out_items: list[str] = []
    out_scores: list[float] = []
    out_sources: list[str] = []
    use_als = batch[C.FACTORS].notna().to_numpy() & (
        batch[N_ITEMS].to_numpy() >= model.min_user_items
    )
    als_rows = np.flatnonzero(use_als)
    if len(als_rows) and len(model.item_ids):
        vecs = np.stack([np.asarray(batch[C.FACTORS].iloc[i], dtype=np.float32) for i in als_rows])
        scores = vecs @ model.item_factors.T  # (batch, items): one block, never users x items
        for r, i in enumerate(als_rows):
            excl = batch[EXCLUDED].iloc[i]
            if excl is not None and len(excl):
                idx = [index[x] for x in excl if x in index]
                scores[r, idx] = -np.inf
        best = top_n_indices(scores, n)
    for i in range(len(batch)):
        user = batch[C.USER_ID].iloc[i]
        excl = batch[EXCLUDED].iloc[i]
        excluded = set(excl) if excl is not None else set()
        items: list[str] = []
        vals: list[float] = []
        srcs: list[str] = []
        if use_als[i] and len(model.item_ids):
            row = int(np.searchsorted(als_rows, i))
            for j in best[row]:
                s = float(scores[row, j])
                if not np.isfinite(s):
                    break
                items.append(str(model.item_ids[j]))
                vals.append(s)
                srcs.append(SOURCE_ALS)
        if len(items) < n:
            floor = min(vals[-1], 0.0) if vals else None
            fill, fill_scores = _popular_for(excluded | set(items), model, n - len(items))
            if floor is not None:  # below every ALS score, keeping scores non-increasing
                fill_scores = [floor - (k + 1) for k in range(len(fill))]
            items += fill
            vals += fill_scores
            srcs += [SOURCE_POPULARITY] * len(fill)
        out_users += [user] * len(items)
        out_items += items
        out_scores += vals
        out_sources += srcs
    ranks = []
    prev = None
    k = 0
    for u in out_users:
        k = k + 1 if u == prev else 1
        prev = u
        ranks.append(k)
    return pd.DataFrame(
        {
            C.USER_ID: pd.Series(out_users, dtype=object),
            C.RANK: pd.Series(ranks, dtype=np.int32),
            C.ITEM_ID: pd.Series(out_items, dtype=object),
            C.SCORE: pd.Series(out_scores, dtype=np.float64),
            C.SOURCE: pd.Series(out_sources, dtype=object),
            C.MODEL_VERSION: model.model_version,
        }
    )


def popularity(events: DataFrame, catalogue: DataFrame, since: str) -> DataFrame:
    """Catalogue items ordered by distinct recent users, then all-time users, then id."""
    recent = events.where(F.col(C.TS) >= F.lit(since).cast("timestamp"))
    rec = recent.groupBy(C.ITEM_ID).agg(F.countDistinct(C.USER_ID).alias("recent_users"))
    allt = events.groupBy(C.ITEM_ID).agg(F.countDistinct(C.USER_ID).alias("all_users"))
    return (
        catalogue.select(C.ITEM_ID)
        .join(rec, C.ITEM_ID, "left")
        .join(allt, C.ITEM_ID, "left")
        .fillna(0, ["recent_users", "all_users"])
        .orderBy(F.desc("recent_users"), F.desc("all_users"), C.ITEM_ID)
    )


def users_to_score(interactions: DataFrame, user_factors: DataFrame) -> DataFrame:
    """Every user with history, with their factors (if any) and the items never to recommend."""
    per_user = interactions.groupBy(C.USER_ID).agg(
        F.count(C.ITEM_ID).alias(N_ITEMS),
        F.sort_array(F.collect_list(F.when(F.col("exclude"), F.col(C.ITEM_ID)))).alias(EXCLUDED),
    )
    return per_user.join(user_factors, C.USER_ID, "left").select(
        C.USER_ID, C.FACTORS, N_ITEMS, EXCLUDED
    )


def score_all(spark: SparkSession, users: DataFrame, model: ScoringModel) -> DataFrame:
    bc = spark.sparkContext.broadcast(model)

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        m = bc.value
        index = {str(x): i for i, x in enumerate(m.item_ids)}
        for batch in batches:
            if len(batch):
                yield recommend_batch(batch.reset_index(drop=True), m, index)

    return users.repartition(max(1, spark.sparkContext.defaultParallelism), C.USER_ID).mapInPandas(
        run, RECOMMENDATION_SCHEMA
    )


def with_als_reasons(
    recs: DataFrame, interactions: DataFrame, item_factors: DataFrame
) -> DataFrame:
    """recs plus reason_item_id and reason for strategy=als (as longtail.reasons for fusion).

    An `als` row's reason is `similar_taste`, its item the user's history item whose learned ALS
    factor has the largest positive dot product with the recommended item's (ties: the lower
    item id); a history item without a learned factor cannot be one, and with none positive
    both columns are null. `popularity` rows get `popular` and no item. Only the final rows are
    joined with their own user's history (top-N x history per user), never users x items.
    """
    factors = item_factors.select(C.ITEM_ID, C.FACTORS)
    pairs = (
        recs.where(F.col(C.SOURCE) == SOURCE_ALS)
        .select(C.USER_ID, C.ITEM_ID)
        .join(interactions.select(C.USER_ID, F.col(C.ITEM_ID).alias("_h")), C.USER_ID)
        .join(factors.withColumnRenamed(C.FACTORS, "_v"), C.ITEM_ID)
        .join(factors.select(F.col(C.ITEM_ID).alias("_h"), F.col(C.FACTORS).alias("_w")), "_h")
        .withColumn(
            "_dot",
            F.aggregate(
                F.zip_with("_v", "_w", lambda x, y: x.cast("double") * y.cast("double")),
                F.lit(0.0).cast("double"),
                lambda acc, x: acc + x,
            ),
        )
        .where(F.col("_dot") > 0)
    )
    best = Window.partitionBy(C.USER_ID, C.ITEM_ID).orderBy(F.desc("_dot"), F.col("_h"))
    support = (
        pairs.withColumn("_r", F.row_number().over(best))
        .where(F.col("_r") == 1)
        .select(C.USER_ID, C.ITEM_ID, F.col("_h").alias(C.REASON_ITEM_ID))
    )
    out = recs.join(support, [C.USER_ID, C.ITEM_ID], "left")
    reason = F.when(
        (F.col(C.SOURCE) == SOURCE_ALS) & F.col(C.REASON_ITEM_ID).isNotNull(),
        F.lit(REASON_SIMILAR_TASTE),
    ).when(F.col(C.SOURCE) == SOURCE_POPULARITY, F.lit(REASON_POPULAR))
    return out.withColumn(C.REASON, reason)
