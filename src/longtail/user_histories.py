"""Per-user history rows, built in Spark, that the candidate code (`fusion.candidates`) reads.

score builds them for every user; train_ranker for its sample of labelled users, so the ranker
trains on candidates from exactly the rows scoring sees.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from longtail import columns as C
from longtail import fusion

N_ITEMS = "n_items"


def fusion_users(interactions: DataFrame, user_factors: DataFrame | None) -> DataFrame:
    """One row per user: history arrays (sorted by item), exclusions, factors (null without
    user_factors: the text-only readers, such as the audiences, need none)."""
    hist = F.sort_array(
        F.collect_list(
            F.struct(
                F.col(C.ITEM_ID),
                F.col(C.WEIGHT),
                F.unix_micros(F.col("last_ts")).cast("double").alias("ts"),
                F.col("exclude"),
            )
        )
    )
    per_user = interactions.groupBy(C.USER_ID).agg(hist.alias("h"))
    if user_factors is None:
        user_factors = per_user.select(C.USER_ID, F.lit(None).cast("array<float>").alias(C.FACTORS))
    return per_user.join(user_factors, C.USER_ID, "left").select(
        C.USER_ID,
        F.col("h")[C.ITEM_ID].alias(fusion.HIST_ITEMS),
        F.col("h")[C.WEIGHT].alias(fusion.HIST_WEIGHTS),
        (F.col("h")["ts"]).alias(fusion.HIST_TS),
        F.transform(F.filter("h", lambda x: x["exclude"]), lambda x: x[C.ITEM_ID]).alias(
            fusion.EXCLUDED
        ),
        F.size("h").alias(N_ITEMS),
        F.col(C.FACTORS),
    )
