"""Driver-side inputs of the fusion stages, read from the warehouse as pandas frames."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time, timedelta

import pandas as pd
from pyspark.sql import SparkSession

from longtail import columns as C
from longtail import rules as business_rules
from longtail import tables, text_ngrams
from longtail.config import StageConfig
from longtail.evaluation import HEAD_SHARE
from longtail.fusion import ItemSpace, assemble_item_space
from longtail.rules import Rules
from longtail.warehouse.publish import read_table
from longtail.warehouse.records import read_record


def window_end(ds: date) -> pd.Timestamp:
    return pd.Timestamp(datetime.combine(ds + timedelta(days=1), time.min), tz="UTC")


def catalogue(spark: SparkSession, wh: str, ds: date) -> pd.DataFrame:
    return read_table(spark, wh, tables.CATALOGUE, ds).orderBy(C.ITEM_ID).toPandas()


def embeddings(spark: SparkSession, wh: str, ds: date) -> pd.DataFrame:
    return (
        read_table(spark, wh, tables.ITEM_EMBEDDINGS, ds).select(C.ITEM_ID, C.EMBEDDING).toPandas()
    )


def item_factors(spark: SparkSession, wh: str, ds: date) -> pd.DataFrame:
    return read_table(spark, wh, tables.ALS_ITEM_FACTORS, ds).orderBy(C.ITEM_ID).toPandas()


def night_rules(spark: SparkSession, wh: str, ds: date) -> Rules | None:
    """The shop's rules as the night's ingest validated and recorded them (None: no file)."""
    return business_rules.from_record(read_record(spark, wh, ds, "ingest"))


def text_model_version(
    spark: SparkSession, prefix: str, cfg: StageConfig, rules: Rules | None
) -> str:
    """`<prefix>-<ds>-<config hash>-<embedding config hash>[-r<rules hash>]` for the tables built
    from the night's text vectors: same data date, config, embeddings and rules, same version."""
    content = (read_record(spark, cfg.warehouse, cfg.ds, "content") or {}).get(
        "config_fingerprint", "none"
    )
    version = f"{prefix}-{cfg.ds.isoformat()}-{cfg.fingerprint()}-{content}"
    return version if rules is None else f"{version}-r{rules.fingerprint()}"


def restrict(space: ItemSpace, cat: pd.DataFrame, rules: Rules | None) -> ItemSpace:
    """The space with the night's availability and the shop's rules: `allowed` (None when every
    item is) and the caps and boosts as per-item arrays. Unchanged without either."""
    items = cat.drop_duplicates(C.ITEM_ID)
    items = items.set_index(items[C.ITEM_ID].astype(str).to_numpy()).reindex(space.item_ids)
    items = items.reset_index(drop=True)
    items[C.ITEM_ID] = space.item_ids
    ok = business_rules.allowed(items, rules)
    return dataclasses.replace(
        space,
        allowed=None if ok.all() else ok,
        rules=business_rules.item_rules(items, rules),
    )


def space_at(
    spark: SparkSession,
    wh: str,
    ds: date,
    head_share: float = HEAD_SHARE,
    rules: Rules | None = None,
) -> ItemSpace:
    """The item space for scoring on ds: everything up to the end of ds, with the night's
    availability and the given rules (`restrict`).

    Reads the night's item-sized reductions (stages/item_space.py) beside the catalogue and
    vectors: nothing here grows with users or events. Carries the n-gram channel on nights the
    content stage switched it on.
    """
    cat = catalogue(spark, wh, ds)
    space = assemble_item_space(
        cat,
        read_table(spark, wh, tables.ITEM_STATS, ds).toPandas(),
        read_table(spark, wh, tables.ITEM_COOCCURRENCE, ds).toPandas(),
        embeddings(spark, wh, ds),
        item_factors(spark, wh, ds),
        window_end(ds),
        head_share=head_share,
    )
    return with_text_ngrams(spark, wh, ds, restrict(space, cat, rules), cat)


def with_text_ngrams(
    spark: SparkSession, wh: str, ds: date, space: ItemSpace, cat: pd.DataFrame
) -> ItemSpace:
    """The space with the character n-gram channel when the night's content record has it on
    (computed from the catalogue, the same in training and scoring), unchanged otherwise."""
    if not text_ngrams.channel_on(read_record(spark, wh, ds, "content")):
        return space
    return text_ngrams.attach(space, cat)
