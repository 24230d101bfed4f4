"""Item space: the night's per-item statistics and co-occurrence neighbours, computed once.

The interactions table grows with users and events; score, similar_items and the benchmark only
need it reduced to items. This stage runs those reductions in Spark once a night and publishes
two item-sized tables; readers assemble the broadcast `fusion.ItemSpace` from them with the
catalogue, text vectors and ALS item factors (`fusion_inputs.space_at`).
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession

from longtail import columns as C
from longtail import gates, tables
from longtail.config import ItemSpaceConfig
from longtail.item_stats import cooccurrence_pairs, item_statistics
from longtail.stages.common import stage_main
from longtail.warehouse.publish import read_table, table_rows, write_audit_publish_set

STATS = tables.ITEM_STATS
COOCCURRENCE = tables.ITEM_COOCCURRENCE


def run(spark: SparkSession, cfg: ItemSpaceConfig) -> dict[str, Any]:
    from longtail.stages.fusion_inputs import window_end

    wh, ds = cfg.warehouse, cfg.ds
    items = read_table(spark, wh, tables.CATALOGUE, ds).select(C.ITEM_ID)
    # The co-occurrence cap counts only catalogue items: restrict before reducing.
    inter = read_table(spark, wh, tables.INTERACTIONS, ds).join(items, C.ITEM_ID, "left_semi")
    stats = item_statistics(inter, window_end(ds), cfg.recent_days)
    pairs = cooccurrence_pairs(inter, cfg.cooccurrence_top, cfg.cooccurrence_user_cap)
    results = write_audit_publish_set(
        {
            STATS: (stats, gates.gate_item_stats),
            COOCCURRENCE: (pairs, lambda df: gates.gate_cooccurrence(df, cfg.cooccurrence_top)),
        },
        wh,
        ds,
    )
    return {
        "counts": {t: table_rows(spark, wh, t, ds) for t in (STATS, COOCCURRENCE)},
        "gates": {t: r.get("statistics") for t, r in results.items()},
    }


def main(argv: list[str] | None = None) -> int:
    return stage_main("item_space", ItemSpaceConfig, run, argv)
