"""Train ALS on the driver from the silver interactions; publish user and item factors.

The factors are fitted every night on everything up to ds. The regularisation and confidence
scaling are chosen on a validation window (als_selection) as of the night's cadence anchor
(`select_every_days`, cadence.py): the nights of one week share the choice, and a night that
finds it in an earlier night's record with the same inputs key does not fit the grid again.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from longtail import als_selection, cadence, gates, label_window, tables
from longtail import columns as C
from longtail.als import IndexedInteractions, factors_frame, fit_als
from longtail.cleaning import build_interactions
from longtail.config import AlsConfig
from longtail.indexing import collect_indexed, collect_indexed_with_firsts
from longtail.stages import fusion_inputs as inputs
from longtail.stages.common import stage_main
from longtail.warehouse.publish import read_table, write_audit_publish_set
from longtail.warehouse.records import read_record

USER_FACTORS = tables.ALS_USER_FACTORS
ITEM_FACTORS = tables.ALS_ITEM_FACTORS


def model_version(cfg: AlsConfig) -> str:
    """Same data date + same config -> same version string, so re-runs are recognisable."""
    return f"als-{cfg.ds.isoformat()}-{cfg.fingerprint()}"


def run(spark: SparkSession, cfg: AlsConfig) -> dict[str, Any]:
    table = read_table(spark, cfg.warehouse, tables.INTERACTIONS, cfg.ds)
    chosen = {"regularization": cfg.regularization, "alpha": cfg.alpha}
    selection: dict[str, Any] | None = None
    anchored: dict[str, Any] | None = None
    interactions: IndexedInteractions | None = None
    if cfg.select:
        chosen, selection, anchored, interactions = _anchored_selection(spark, cfg, table)
    if interactions is None:
        interactions = collect_indexed(table)
    model = fit_als(
        interactions,
        factors=cfg.factors,
        regularization=chosen["regularization"],
        alpha=chosen["alpha"],
        iterations=cfg.iterations,
        seed=cfg.seed,
        num_threads=cfg.num_threads,
    )
    users = spark.createDataFrame(factors_frame(model.user_ids, model.user_factors, C.USER_ID))
    items = spark.createDataFrame(factors_frame(model.item_ids, model.item_factors, C.ITEM_ID))
    # Published together: user and item factors of one fit, never one of them from another run.
    write_audit_publish_set(
        {
            USER_FACTORS: (users, lambda df: gates.gate_factors(df, C.USER_ID, cfg.factors)),
            ITEM_FACTORS: (items, lambda df: gates.gate_factors(df, C.ITEM_ID, cfg.factors)),
        },
        cfg.warehouse,
        cfg.ds,
    )
    return {
        "model_version": model_version(cfg),
        # What every later ALS fit of this night uses (train_ranker's window model included).
        "chosen": chosen,
        "selection": selection,
        # The selection's anchor, inputs key and (when copied) the night it came from; the
        # events digest is reused by train_ranker when its anchor is the same.
        "cadence": anchored,
        "counts": {
            "users": len(model.user_ids),
            "items": len(model.item_ids),
            "nnz": len(interactions.weight),
        },
    }


def _anchored_selection(
    spark: SparkSession, cfg: AlsConfig, table: DataFrame
) -> tuple[dict[str, float], dict[str, Any], dict[str, Any], IndexedInteractions | None]:
    """(chosen, selection record, cadence record, the night's interactions when collected here).

    The choice is made on the interactions as of the anchor's end: on the anchor night itself
    the night's own table (collected once, with first events, for the choice and the fit);
    later nights rebuild them from the silver events before that end, unless an earlier night
    of the same anchor recorded the same inputs key, whose choice is then copied.
    """
    wh, ds = cfg.warehouse, cfg.ds
    first = cadence.anchor(ds, cfg.select_every_days)
    anchored: dict[str, Any] = {
        "every_days": cfg.select_every_days,
        "anchor": first.isoformat(),
        "events": None,
        "key": None,
        "reused_from": None,
    }
    end_us = label_window.epoch_us(inputs.window_end(first))
    events: DataFrame | None = None
    if cfg.select_every_days > 1:  # nothing to share when every night chooses for itself
        events = read_table(spark, wh, tables.SILVER_EVENTS, ds)
        anchored["events"] = cadence.events_digest(events, end_us)
        anchored["key"] = cadence.inputs_key(
            {
                "step": "als_selection",
                "anchor": first,
                "config": cfg.fingerprint(exclude=("warehouse", "landing", "ds")),
                "events": anchored["events"],
            }
        )
        for night in cadence.earlier_nights(ds, cfg.select_every_days):
            earlier = read_record(spark, wh, night, "train_als") or {}
            same = (earlier.get("cadence") or {}).get("key") == anchored["key"]
            if same and earlier.get("selection"):
                anchored["reused_from"] = night.isoformat()
                return dict(earlier["chosen"]), earlier["selection"], anchored, None
    night_ii: IndexedInteractions | None = None
    if first == ds:  # the night's own table (always, nightly): its events all end before then
        night_ii, first_us = collect_indexed_with_firsts(table)
        ii = night_ii
    else:  # a later night of a longer cadence: events were read above
        assert events is not None
        before = events.where(F.unix_micros(F.col(C.TS)) < F.lit(end_us))
        ii, first_us = collect_indexed_with_firsts(build_interactions(before))
    picked, split = als_selection.choose(
        ii,
        first_us,
        factors=cfg.factors,
        regularization=cfg.regularization,
        alpha=cfg.alpha,
        iterations=cfg.iterations,
        seed=cfg.seed,
        num_threads=cfg.num_threads,
        regularizations=cfg.regularization_grid,
        alpha_factors=cfg.alpha_factors,
        share=cfg.validation_share,
        max_users=cfg.validation_users,
        min_users=cfg.min_validation_users,
    )
    return picked.chosen, picked.record(split), anchored, night_ii


def main(argv: list[str] | None = None) -> int:
    return stage_main("train_als", AlsConfig, run, argv)
