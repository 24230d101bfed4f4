"""Publish: gate the staged recommendations and swap them into place atomically.

The partition gets its `_manifest.json` (rows, users, top_n, model version, schema, files) and the
table its `_latest.json`; the manifest's summary goes into the run record, where the DAG's
operator finds it for the `recommendations` asset event.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession

from longtail import gates, tables
from longtail.config import PublishConfig
from longtail.errors import PermanentError
from longtail.fusion import SOURCES
from longtail.stages.common import stage_main
from longtail.stages.fusion_inputs import night_rules
from longtail.warehouse.layout import table_path
from longtail.warehouse.publish import MANIFEST_KEY, publish_staged, read_table
from longtail.warehouse.records import read_record
from longtail.warehouse.staging import discard_staged

TABLE = tables.RECOMMENDATIONS


def run(spark: SparkSession, cfg: PublishConfig) -> dict[str, Any]:
    score = read_record(spark, cfg.warehouse, cfg.ds, "score")
    if score is None:
        raise FileNotFoundError(f"no score record for ds={cfg.ds}: run score first")
    expected_users = int(score["counts"]["users"])
    attempt = score.get(tables.STAGED_ATTEMPT)
    # The shop's rules and the night's availability are checked when there is something to
    # check; otherwise the gate is the output contract alone, as before rules existed.
    rules = night_rules(spark, cfg.warehouse, cfg.ds)
    catalogue = read_table(spark, cfg.warehouse, tables.CATALOGUE, cfg.ds)
    if rules is None and catalogue.where(~gates.allowed_item(catalogue, None)).isEmpty():
        catalogue = None
    # Every reason item must be one of the user's own history items (the night's interactions).
    history = read_table(spark, cfg.warehouse, tables.INTERACTIONS, cfg.ds)
    try:
        result = publish_staged(
            spark,
            cfg.warehouse,
            TABLE,
            cfg.ds,
            lambda df: gates.gate_recommendations(
                df, cfg.top_n, expected_users, SOURCES, catalogue, rules, history
            ),
            attempt,
            manifest={
                "users": expected_users,
                "top_n": cfg.top_n,
                "model_version": score["model_version"],
            },
        )
    except PermanentError:  # failed its gate: this output will never be published
        discard_staged(spark, cfg.warehouse, TABLE, cfg.ds, attempt)
        raise
    return {
        "published": table_path(cfg.warehouse, TABLE, cfg.ds),
        "model_version": score["model_version"],
        "counts": {"users": expected_users, "rows": expected_users * cfg.top_n},
        "gate": result.get("statistics"),
        "manifests": {TABLE: result[MANIFEST_KEY]},
    }


def main(argv: list[str] | None = None) -> int:
    return stage_main("publish", PublishConfig, run, argv)
