"""Similar items for product pages: text-embedding neighbours blended with co-occurrence.

Every catalogue item gets top_k neighbours, including items nobody has bought yet (their text
finds them neighbours). Computed inside Spark in blocks of items with the item arrays broadcast;
gated and published like the main table at `similar_items/ds=<ds>/`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from longtail import columns as C
from longtail import gates, tables
from longtail.config import SimilarItemsConfig
from longtail.fusion import ItemSpace
from longtail.scoring import top_n_indices
from longtail.stages import fusion_inputs as inputs
from longtail.stages.common import stage_main
from longtail.storage import MANIFEST_KEY, read_record, write_audit_publish

TABLE = tables.SIMILAR_ITEMS
SIMILAR_ITEM_ID = "similar_item_id"
SCHEMA = StructType(
    [
        StructField(C.ITEM_ID, StringType(), False),
        StructField(C.RANK, IntegerType(), False),
        StructField(SIMILAR_ITEM_ID, StringType(), False),
        StructField(C.SCORE, DoubleType(), False),
        StructField(C.SOURCE, StringType(), False),
    ]
)


def similar_block(rows: np.ndarray, space: ItemSpace, k: int, cooc_weight: float) -> pd.DataFrame:
    """Top-k neighbours for the item positions in rows (pure numpy)."""
    content = space.embeddings[rows] @ space.embeddings.T
    cooc = np.asarray(space.cooc[rows].todense(), dtype=np.float32)
    score = content + cooc_weight * cooc
    score[np.arange(len(rows)), rows] = -np.inf  # never an item itself
    best = top_n_indices(score, k)
    r = np.repeat(np.arange(len(rows)), best.shape[1])
    c = best.ravel()
    has_cooc = cooc[r, c] > 0
    content_strong = content[r, c] >= cooc_weight * cooc[r, c]
    source = np.where(has_cooc & content_strong, "content+cooccurrence", "cooccurrence")
    source = np.where(has_cooc, source, "content")
    return pd.DataFrame(
        {
            C.ITEM_ID: space.item_ids[rows[r]],
            C.RANK: np.tile(np.arange(1, best.shape[1] + 1, dtype=np.int32), len(rows)),
            SIMILAR_ITEM_ID: space.item_ids[c],
            C.SCORE: score[r, c].astype(np.float64),
            C.SOURCE: source,
        }
    )


def gate_similar(df: Any, n_items: int, k: int) -> dict:
    e = gates._e()
    from pyspark.sql import Window

    w = Window.partitionBy(C.ITEM_ID).orderBy(C.RANK)
    checked = df.withColumn("_drop", F.lag(C.SCORE).over(w) - F.col(C.SCORE)).withColumn(
        "_self", F.col(C.ITEM_ID) == F.col(SIMILAR_ITEM_ID)
    )
    return gates.run_suite(
        checked,
        "similar_items",
        [
            *(e.ExpectColumnValuesToNotBeNull(column=c) for c in SCHEMA.fieldNames()),
            e.ExpectColumnValuesToBeBetween(column=C.RANK, min_value=1, max_value=k),
            e.ExpectCompoundColumnsToBeUnique(column_list=[C.ITEM_ID, C.RANK]),
            e.ExpectCompoundColumnsToBeUnique(column_list=[C.ITEM_ID, SIMILAR_ITEM_ID]),
            e.ExpectColumnValuesToBeInSet(column="_self", value_set=[False]),
            e.ExpectColumnValuesToBeBetween(column="_drop", min_value=0),
            e.ExpectColumnValuesToBeInSet(
                column=C.SOURCE, value_set=["content", "cooccurrence", "content+cooccurrence"]
            ),
            e.ExpectTableRowCountToEqual(value=n_items * k),
        ],
    )


def model_version(cfg: SimilarItemsConfig, content_record: dict | None) -> str:
    """Same data date, this config and the embedding config -> the same version string."""
    content = (content_record or {}).get("config_fingerprint", "none")
    return f"similar-{cfg.ds.isoformat()}-{cfg.fingerprint()}-{content}"


def run(spark: SparkSession, cfg: SimilarItemsConfig) -> dict[str, Any]:
    wh, ds = cfg.warehouse, cfg.ds
    space = inputs.space_at(spark, wh, ds)
    n_items = len(space.item_ids)
    k = min(cfg.top_k, n_items - 1)
    bc = spark.sparkContext.broadcast(space)

    def run_blocks(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        sp = bc.value
        for batch in batches:
            rows = batch["pos"].to_numpy(dtype=np.int64)
            for start in range(0, len(rows), 512):
                yield similar_block(rows[start : start + 512], sp, k, cfg.cooccurrence_weight)

    positions = spark.createDataFrame(pd.DataFrame({"pos": np.arange(n_items, dtype=np.int64)}))
    parts = max(1, spark.sparkContext.defaultParallelism)
    sims = positions.repartition(parts).mapInPandas(run_blocks, SCHEMA)
    published = write_audit_publish(
        sims,
        wh,
        TABLE,
        ds,
        lambda df: gate_similar(df, n_items, k),
        manifest={
            "top_n": k,
            "model_version": model_version(cfg, read_record(spark, wh, ds, "content")),
        },
    )
    return {
        "model_version": published[MANIFEST_KEY]["model_version"],
        "counts": {"items": n_items, "rows": n_items * k, "cold_items": int(space.is_cold.sum())},
        "manifests": {TABLE: published[MANIFEST_KEY]},
    }


def main(argv: list[str] | None = None) -> int:
    return stage_main("similar_items", SimilarItemsConfig, run, argv)
