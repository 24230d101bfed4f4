"""Audiences for new products: each new (and optionally long-tail) item's best shoppers.

The pure part is `longtail.audiences`. Here: the night's item space and rules (as similar_items
reads them), every shopper's history rows (user_histories.fusion_users), blocks of shoppers
searched inside Spark with the targets broadcast, the blocks' answers merged per item by a window,
then gated and published at `item_audiences/ds=<ds>/` like the other published tables.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

from longtail import audiences, gates, tables
from longtail import columns as C
from longtail.config import ItemAudiencesConfig
from longtail.fusion import ItemSpace
from longtail.partitions import whole_partition
from longtail.stages import fusion_inputs as inputs
from longtail.stages.common import stage_main
from longtail.user_histories import fusion_users
from longtail.warehouse.publish import MANIFEST_KEY, read_table, write_audit_publish

TABLE = tables.ITEM_AUDIENCES
BLOCK_SCHEMA = StructType(
    [
        StructField(C.ITEM_ID, StringType(), False),
        StructField(C.USER_ID, StringType(), False),
        StructField(C.SCORE, DoubleType(), False),
        StructField(audiences.IS_NEW, BooleanType(), False),
        StructField(C.REASON_ITEM_ID, StringType(), True),
    ]
)
# The published columns: the blocks' columns with the rank after item_id.
SCHEMA = StructType(
    [BLOCK_SCHEMA[C.ITEM_ID], StructField(C.RANK, IntegerType(), False), *BLOCK_SCHEMA.fields[1:]]
)
# Shoppers per Spark partition: the partition count follows the data, never the session, so the
# blocks (and with them every answer) are the same on any cluster or schedule. Every block sends
# up to k rows per target to the merge, so the rows shuffled are targets x k x blocks: both
# grow with the shop, and small blocks made the merge grow as their product. A block of 100k
# shoppers holds their histories and its targets' running top k; its shoppers are scored a chunk
# at a time (audiences.CHUNK_USERS).
USERS_PER_PARTITION = 100_000


def partition_audiences(
    batches: Iterator[pd.DataFrame],
    space: ItemSpace,
    items: np.ndarray,
    is_new: np.ndarray,
    k: int,
) -> Iterator[pd.DataFrame]:
    """One Spark partition's answer: the partition is one block of shoppers.

    mapInPandas hands a partition over in Arrow batches of a few thousand rows
    (spark.sql.execution.arrow.maxRecordsPerBatch); searched batch by batch, every batch sent up
    to k rows per target to the merge, so the rows shuffled grew as targets x shoppers (4x shop:
    17.5M rows for an 875k-row table). The batches are joined first, so a partition sends at
    most targets x k rows.
    """
    block = whole_partition(batches)
    if block is None:
        return
    found = audiences.block_audiences(block, space, items, is_new, k, space.index)
    if len(found):
        yield found


def merged(blocks: DataFrame, k: int) -> DataFrame:
    """Spark version of audiences.merge: per item the k best rows, ties to the lower user id."""
    w = Window.partitionBy(C.ITEM_ID).orderBy(F.desc(C.SCORE), F.asc(C.USER_ID))
    ranked = blocks.withColumn(C.RANK, F.row_number().over(w).cast(IntegerType()))
    return ranked.where(F.col(C.RANK) <= k).select(*SCHEMA.fieldNames())


def run(spark: SparkSession, cfg: ItemAudiencesConfig) -> dict[str, Any]:
    wh, ds = cfg.warehouse, cfg.ds
    rules = inputs.night_rules(spark, wh, ds)
    space = inputs.space_at(spark, wh, ds, rules=rules)
    items, is_new, no_text = audiences.targets(space, cfg.new_item_days, cfg.include_long_tail)
    interactions = read_table(spark, wh, tables.INTERACTIONS, ds)
    n_users = interactions.select(C.USER_ID).distinct().count()
    k = cfg.audience_size
    bc = spark.sparkContext.broadcast((space, items, is_new))

    def run_blocks(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        sp, its, new = bc.value
        yield from partition_audiences(batches, sp, its, new, k)

    parts = max(1, math.ceil(n_users / USERS_PER_PARTITION))
    users = fusion_users(interactions, None)
    blocks = (
        users.repartition(parts, C.USER_ID)
        .sortWithinPartitions(C.USER_ID)
        .mapInPandas(run_blocks, BLOCK_SCHEMA)
    )
    target_ids = space.item_ids[items].astype(str).tolist()
    published = write_audit_publish(
        merged(blocks, k),
        wh,
        TABLE,
        ds,
        lambda df: gates.gate_item_audiences(df, k, target_ids, interactions),
        manifest={
            "top_n": k,
            "model_version": inputs.text_model_version(spark, "audience", cfg, rules),
        },
    )
    manifest = published[MANIFEST_KEY]
    return {
        "model_version": manifest["model_version"],
        "counts": {
            "items": len(items),
            "new_items": int(is_new.sum()),
            "skipped_without_text": no_text,
            "users": n_users,
            "rows": manifest["rows"],
            "channel": "text_ngram" if space.ngram_vectors is not None else "text",
        },
        "manifests": {TABLE: manifest},
    }


def main(argv: list[str] | None = None) -> int:
    return stage_main("item_audiences", ItemAudiencesConfig, run, argv)
