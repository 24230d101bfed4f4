"""Train the LightGBM fusion ranker on a temporal window and publish it with its metadata.

Features come from events before the window start S (including an ALS model fitted on them),
labels from the new (user, item) pairs in [S, end of ds). Items first listed or first sold
inside the window, and a seeded share of items whose earlier events are hidden from the
features, are the cold successes the ranker learns from. When the model is too small to trust
(too few training users or trees) or loses to one of its own features on the validation users,
that feature ranks instead, and meta.json says why. Where the widest window finds fewer than
`min_label_users` returning users (rating data), each user's own last items are the labels.
The window, the labels and every user-sized reduction are computed in Spark; the driver holds
item-sized arrays, the ALS matrix and a bounded sample of labelled users. The model, its
feature list, candidate settings, window and feature importance are written to
`ranker/ds=<ds>/`.

Training runs as of the night's cadence anchor (`retrain_every_days`, cadence.py): the window
ends at the end of the anchor date and the catalogue holds the items listed by then, so every
night of a week publishes the same model, and a night that finds it under an earlier night of
the week with the same inputs key copies it instead of training again.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

from longtail import cadence, label_window, tables, text_ngrams
from longtail import columns as C
from longtail.als import factors_frame, fit_als
from longtail.cleaning import build_interactions
from longtail.config import AlsConfig, ContentConfig, ItemSpaceConfig, RankerConfig, ScoreConfig
from longtail.cooccurrence_matrix import cooccurrence_from_indexed
from longtail.fusion import (
    FEATURES,
    CandidateCounts,
    ItemSpace,
    assemble_item_space,
    frame_features,
)
from longtail.indexing import collect_indexed_with_lasts
from longtail.item_stats import item_statistics
from longtail.ranker import (
    TrainingSet,
    choose_spread_strength,
    fallback,
    fit,
    load_scorer,
    training_set,
)
from longtail.stages import fusion_inputs as inputs
from longtail.stages.common import stage_main
from longtail.user_histories import fusion_users
from longtail.warehouse.models import Model, publish_model, read_model
from longtail.warehouse.publish import read_table
from longtail.warehouse.records import read_record

TABLE = tables.RANKER


_NOT_DS = ("warehouse", "landing", "ds")


def model_version(cfg: RankerConfig) -> str:
    """`fusion-<ds>-<config hash>` when trained every night (as always); with a longer cadence
    `fusion-<anchor>-<config hash without the date>`, the same for every night that shares it."""
    if cfg.retrain_every_days == 1:
        return f"fusion-{cfg.ds.isoformat()}-{cfg.fingerprint()}"
    first = cadence.anchor(cfg.ds, cfg.retrain_every_days)
    return f"fusion-{first.isoformat()}-{cfg.fingerprint(exclude=_NOT_DS)}"


def run(spark: SparkSession, cfg: RankerConfig) -> dict[str, Any]:
    wh, ds = cfg.warehouse, cfg.ds
    als_record = read_record(spark, wh, ds, "train_als")
    if als_record is None:
        raise FileNotFoundError(f"no train_als record for ds={ds}: run train_als first")
    # The night's ALS settings as fitted: chosen on its validation window where it chose them.
    als_cfg = AlsConfig(**{**als_record["config"], **(als_record.get("chosen") or {})})
    space_record = read_record(spark, wh, ds, "item_space")
    if space_record is None:
        raise FileNotFoundError(f"no item_space record for ds={ds}: run item_space first")
    space_cfg = ItemSpaceConfig.from_record(space_record)
    first = cadence.anchor(ds, cfg.retrain_every_days)
    end = inputs.window_end(first)
    events = read_table(spark, wh, tables.SILVER_EVENTS, ds).select(
        C.USER_ID, C.ITEM_ID, C.TS, C.EVENT_TYPE, C.WEIGHT
    )
    cat = catalogue_as_of(inputs.catalogue(spark, wh, ds), end)
    content_record = read_record(spark, wh, ds, "content")
    key = None
    if cfg.retrain_every_days > 1:  # nothing to share when every night trains its own
        key = _inputs_key(cfg, als_record, als_cfg, space_cfg, content_record, events, cat, first)
    anchored = {
        "every_days": cfg.retrain_every_days,
        "anchor": first.isoformat(),
        "key": key,
        "reused_from": None,
    }
    earlier = _earlier_model(spark, cfg, key) if key is not None else None
    if earlier is not None:
        night, model = earlier
        publish_model(spark, wh, TABLE, ds, model.text, model.meta)
        anchored["reused_from"] = night.isoformat()
        return _record(model.meta, anchored)
    firsts = label_window.pair_firsts(events, end).cache()
    labels = None
    try:
        lengths = label_window.window_days(cfg.label_window_days, cfg.max_label_window_days)
        counts_by_days = label_window.new_pair_counts(
            firsts, {d: end - pd.Timedelta(days=d) for d in lengths}
        )
        start = label_window.pick_start(
            end,
            cfg.label_window_days,
            cfg.max_label_window_days,
            cfg.min_label_pairs,
            counts_by_days,
        )
        labels = label_window.new_pairs(firsts, start).cache()
        n_pairs, n_users = _sizes(labels)
        rule = "temporal"
        if n_users < cfg.min_label_users:
            last = label_window.last_pairs(firsts, cfg.last_items_share).cache()
            m_pairs, m_users = _sizes(last)
            if m_users > n_users:  # each user's own latest items, features up to the end
                labels.unpersist()
                labels, n_pairs, n_users, rule, start = last, m_pairs, m_users, "last_items", end
            else:
                last.unpersist()
        sampled = label_window.sample_users(labels, cfg.max_train_users, cfg.seed)
        sample = spark.createDataFrame(
            [(u,) for u in sampled], StructType([StructField(C.USER_ID, StringType())])
        )
        truth = label_window.labels_of(labels, sample) if sampled else {}
    finally:  # only the sample's labels (a dict) are used from here on
        firsts.unpersist()
        if labels is not None:
            labels.unpersist()
    meta: dict[str, Any] = {
        "model_version": model_version(cfg),
        "trained_as_of": first.isoformat(),
        "features": list(FEATURES),
        "candidate_counts": cfg.candidate_counts(),
        "retrieval": {"exact_max_items": cfg.retrieval_exact_max_items},
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "label_rule": rule,
        "label_pairs": int(n_pairs),
        "label_users": int(n_users),
    }
    booster_text = ""
    ts = None
    if truth:
        held = None
        if rule == "last_items":  # the sample's own labels leave its feature history
            pairs = [(u, i) for u, items in sorted(truth.items()) for i in sorted(items)]
            held = spark.createDataFrame(pairs, [C.USER_ID, C.ITEM_ID])
        ngrams = text_ngrams.channel_on(content_record)
        ts = _training_set(
            spark, cfg, als_cfg, space_cfg, events, cat, ngrams, start, end, sample, truth, held
        )
        meta["candidate_recall"] = ts.candidate_recall
        meta["features"] = list(frame_features(ts.frame))  # + the n-gram channel's, when on
        if ts.n_users >= 10:
            booster, report = fit(ts, cfg.lightgbm(), cfg.seed)
            booster_text = booster.model_to_string()
            meta["training"] = report
            weak = fallback(report)
            if weak is not None:
                meta["single_feature"], meta["fallback_reason"] = weak
    if "single_feature" in meta:
        meta["ranker"] = "single-feature"
    else:
        meta["ranker"] = "lightgbm-lambdarank" if booster_text else "blend"
    meta["spread"] = _spread(ts, booster_text, meta, cfg)
    meta["model_sha256"] = _sha256(booster_text)
    if key is not None:
        meta["inputs_key"] = key
    publish_model(spark, wh, TABLE, ds, booster_text, meta)
    return _record(meta, anchored)


def _record(meta: dict[str, Any], anchored: dict[str, Any]) -> dict[str, Any]:
    counts = {"label_pairs": meta["label_pairs"], "label_users": meta["label_users"]}
    return {"counts": counts, **meta, "cadence": anchored}


def catalogue_as_of(cat: pd.DataFrame, end: pd.Timestamp) -> pd.DataFrame:
    """The catalogue's items listed before end (items without a listing date stay): what the
    anchor's night could list. Availability is dropped: training never reads it, and it changes
    nightly."""
    listed = pd.to_datetime(cat[C.FIRST_SEEN], utc=True, errors="coerce")
    kept = cat[~(listed >= end).to_numpy()]
    return kept.drop(columns=[C.AVAILABLE], errors="ignore").reset_index(drop=True)


def _inputs_key(
    cfg: RankerConfig,
    als_record: dict[str, Any],
    als_cfg: AlsConfig,
    space_cfg: ItemSpaceConfig,
    content_record: dict[str, Any] | None,
    events: DataFrame,
    cat: pd.DataFrame,
    first: date,
) -> str:
    """Every input training reads, as of the end of the anchor `first`: the configs (chosen
    ALS settings included, dates left out), the events before that end (train_als's digest
    when its anchor is the same), the catalogue as of then (texts included: the vectors are a
    function of them and the content config) and whether the n-gram channel is on."""
    end = inputs.window_end(first)
    als_anchor = als_record.get("cadence") or {}
    if als_anchor.get("anchor") == first.isoformat() and als_anchor.get("events"):
        digest = als_anchor["events"]
    else:
        digest = cadence.events_digest(events, label_window.epoch_us(end))
    content = ContentConfig.from_record(content_record) if content_record else None
    return cadence.inputs_key(
        {
            "step": "train_ranker",
            "anchor": end.isoformat(),
            "ranker": cfg.fingerprint(exclude=_NOT_DS),
            "als": als_cfg.fingerprint(exclude=_NOT_DS),
            "item_space": space_cfg.fingerprint(exclude=_NOT_DS),
            "content": content.fingerprint(exclude=_NOT_DS) if content else None,
            "ngrams": text_ngrams.channel_on(content_record),
            "events": digest,
            "catalogue": cadence.frame_digest(cat, C.ITEM_ID),
        }
    )


def _earlier_model(spark: SparkSession, cfg: RankerConfig, key: str) -> tuple[date, Model] | None:
    """(night, model) of the newest earlier night of the same anchor trained on the same
    inputs; None when there is none (the first night of a week, a changed input, a night that
    retention removed)."""
    for night in cadence.earlier_nights(cfg.ds, cfg.retrain_every_days):
        model = read_model(spark, cfg.warehouse, TABLE, night)
        # the text must be the one its meta describes (not a re-run's, swapped in between reads)
        if (
            model is not None
            and model.meta.get("inputs_key") == key
            and model.meta.get("model_sha256") == _sha256(model.text)
        ):
            return night, model
    return None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _spread(
    ts: TrainingSet | None, booster_text: str, meta: dict[str, Any], cfg: RankerConfig
) -> dict[str, Any]:
    """The exposure-penalty strength for the score stage, chosen on the validation users with
    the scorer it will use and the lists' default shape (score's top_n and shares)."""
    if ts is None or ts.n_users < 10:
        return {"strength": 0.0, "users": 0, "reason": "no training set"}
    return choose_spread_strength(
        ts,
        load_scorer(booster_text, meta),
        cfg,
        ScoreConfig.default("top_n"),
        ScoreConfig.default("tail_target"),
        ScoreConfig.default("new_item_share"),
    )


def _training_set(
    spark: SparkSession,
    cfg: RankerConfig,
    als_cfg: AlsConfig,
    space_cfg: ItemSpaceConfig,
    events: DataFrame,
    cat: pd.DataFrame,
    ngrams: bool,
    start: pd.Timestamp,
    end: pd.Timestamp,
    sample: DataFrame,
    truth: dict[str, set[str]],
    held: DataFrame | None = None,
) -> TrainingSet:
    """Candidates and labels for the sampled users, with features as of the window start.

    Everything the features see is rebuilt from the events before start (interactions, item
    statistics and co-occurrence with the night's item_space settings, and an ALS fit), less
    the events of a seeded `item_dropout` share of items, which so look brand-new; no
    feature knows the labels: the night's own ALS and item_space tables, built through ds, have
    seen every label pair. Only item-sized frames, the ALS matrix (which implicit fits on the
    driver) and the sample's history rows reach the driver. The co-occurrence neighbours are
    computed from that matrix (item_space's rows, bit for bit), not by a second pass in Spark.
    """
    before = events.where(F.unix_micros(F.col(C.TS)) < F.lit(label_window.epoch_us(start)))
    if held is not None:
        before = before.join(held, [C.USER_ID, C.ITEM_ID], "left_anti")
    before = before.where(~label_window.hidden_items(cfg.item_dropout, cfg.seed))
    interactions = build_interactions(before).cache()
    try:
        indexed, last_us = collect_indexed_with_lasts(interactions)
        model = fit_als(
            indexed,
            factors=als_cfg.factors,
            regularization=als_cfg.regularization,
            alpha=als_cfg.alpha,
            iterations=als_cfg.iterations,
            seed=als_cfg.seed,
        )
        # The whole catalogue: an item first listed or first sold inside the window is a cold
        # success, exactly what the ranker has to learn to find.
        ids = spark.createDataFrame(
            [(str(i),) for i in cat[C.ITEM_ID]], StructType([StructField(C.ITEM_ID, StringType())])
        )
        in_catalogue = interactions.join(ids, C.ITEM_ID, "left_semi")
        space = assemble_item_space(
            cat,
            item_statistics(in_catalogue, start, space_cfg.recent_days).toPandas(),
            # item_space's neighbours, from the matrix the ALS fit already holds
            cooccurrence_from_indexed(
                indexed.user_idx,
                indexed.item_idx,
                last_us,
                indexed.item_ids,
                np.isin(indexed.item_ids, cat[C.ITEM_ID].to_numpy(dtype=str)),
                space_cfg.cooccurrence_top,
                space_cfg.cooccurrence_user_cap,
            ),
            inputs.embeddings(spark, cfg.warehouse, cfg.ds),
            factors_frame(model.item_ids, model.item_factors, C.ITEM_ID),
            start,
        )
        space = _listed_in_window_ages(space, cat, start, end)
        space = text_ngrams.attach(space, cat) if ngrams else space
        sampled = np.isin(model.user_ids, list(truth))
        factors = factors_frame(model.user_ids[sampled], model.user_factors[sampled], C.USER_ID)
        rows = fusion_users(
            interactions.join(sample, C.USER_ID, "left_semi"),
            spark.createDataFrame(factors) if len(factors) else _no_factors(spark),
        ).toPandas()
    finally:
        interactions.unpersist()
    return training_set(
        space,
        rows,
        truth,
        CandidateCounts.of(cfg),
        exact_max_items=cfg.retrieval_exact_max_items,
    )


def _listed_in_window_ages(
    space: ItemSpace, catalogue: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp
) -> ItemSpace:
    """Items listed inside [start, end) get their age at end, in (0, window], not 0.

    At the window start they did not exist yet, so every one would have age 0, a value that
    scoring never sees on a new item (and, where listing dates are first sales, one that would
    mean "will sell"). At end they look like what a night scores: items listed days ago.
    """
    first = pd.to_datetime(catalogue.set_index(C.ITEM_ID)[C.FIRST_SEEN], utc=True, errors="coerce")
    first = first.reindex(space.item_ids)
    late = (first >= start).to_numpy()
    if not late.any():
        return space
    age = space.age_days.copy()
    age[late] = ((end - first[late]).dt.total_seconds() / 86400.0).to_numpy(np.float32)
    return dataclasses.replace(space, age_days=age)


def _sizes(pairs: DataFrame) -> tuple[int, int]:
    """(pairs, distinct users) of a label frame, as one row."""
    row = pairs.agg(F.count(F.lit(1)), F.count_distinct(C.USER_ID)).first()
    return int(row[0]), int(row[1])


def _no_factors(spark: SparkSession) -> DataFrame:
    schema = StructType(
        [StructField(C.USER_ID, StringType()), StructField(C.FACTORS, ArrayType(FloatType()))]
    )
    return spark.createDataFrame([], schema)


def main(argv: list[str] | None = None) -> int:
    return stage_main("train_ranker", RankerConfig, run, argv)
