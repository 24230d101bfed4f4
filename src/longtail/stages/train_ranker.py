"""Train the LightGBM fusion ranker on a temporal window and publish it with its metadata.

Features come from events before the window start S (including an ALS model fitted on them),
labels from the new (user, item) pairs in [S, end of ds). The model, its feature list, candidate
settings, window and feature importance are written to `ranker/ds=<ds>/`.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pandas as pd
from pyspark.sql import SparkSession

from longtail import columns as C
from longtail import tables
from longtail.als import factors_frame, fit_als
from longtail.config import RankerConfig
from longtail.fusion import FEATURES, CandidateCounts, build_item_space
from longtail.ranker import (
    aggregate,
    fit,
    label_window_start,
    new_pairs,
    sample_users,
    training_set,
)
from longtail.stages import fusion_inputs as inputs
from longtail.stages.common import stage_main
from longtail.storage import (
    Fs,
    claim_staging,
    discard_staged,
    publish_staged,
    read_record,
    staging_path,
)

TABLE = tables.RANKER


def model_version(cfg: RankerConfig) -> str:
    return f"fusion-{cfg.ds.isoformat()}-{cfg.fingerprint()}"


def run(spark: SparkSession, cfg: RankerConfig) -> dict[str, Any]:
    wh, ds = cfg.warehouse, cfg.ds
    als_record = read_record(spark, wh, ds, "train_als")
    if als_record is None:
        raise FileNotFoundError(f"no train_als record for ds={ds}: run train_als first")
    als_cfg = als_record["config"]
    events = inputs.events(spark, wh, ds)
    end = inputs.window_end(ds)
    start = label_window_start(
        events, end, cfg.label_window_days, cfg.max_label_window_days, cfg.min_label_pairs
    )
    before = events[events[C.TS] < start]
    inside = events[(events[C.TS] >= start) & (events[C.TS] < end)]
    truth = new_pairs(before, inside)
    counts = CandidateCounts(**cfg.candidate_counts())
    meta: dict[str, Any] = {
        "model_version": model_version(cfg),
        "features": list(FEATURES),
        "candidate_counts": cfg.candidate_counts(),
        "retrieval": {"exact_max_items": cfg.retrieval_exact_max_items},
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "label_pairs": sum(len(v) for v in truth.values()),
        "label_users": len(truth),
    }
    booster_text = ""
    if len(before) and len(truth):
        interactions = aggregate(before)
        model = fit_als(
            interactions,
            factors=als_cfg["factors"],
            regularization=als_cfg["regularization"],
            alpha=als_cfg["alpha"],
            iterations=als_cfg["iterations"],
            seed=als_cfg["seed"],
        )
        cat = inputs.catalogue(spark, wh, ds)
        first_seen = pd.to_datetime(cat[C.FIRST_SEEN], utc=True, errors="coerce")
        cat = cat[first_seen.isna() | (first_seen < start)]
        space = build_item_space(
            cat,
            interactions,
            inputs.embeddings(spark, wh, ds),
            factors_frame(model.item_ids, model.item_factors, C.ITEM_ID),
            start,
        )
        users = sample_users(sorted(truth), cfg.max_train_users, cfg.seed)
        ts = training_set(
            space,
            interactions,
            factors_frame(model.user_ids, model.user_factors, C.USER_ID),
            {u: truth[u] for u in users},
            counts,
            exact_max_items=cfg.retrieval_exact_max_items,
        )
        meta["candidate_recall"] = ts.candidate_recall
        if ts.n_users >= 10:
            params = {
                "n_estimators": cfg.n_estimators,
                "learning_rate": cfg.learning_rate,
                "num_leaves": cfg.num_leaves,
                "min_child_samples": cfg.min_child_samples,
            }
            booster, report = fit(ts, params, cfg.seed)
            booster_text = booster.model_to_string()
            meta["training"] = report
    meta["ranker"] = "lightgbm-lambdarank" if booster_text else "blend"
    attempt = uuid.uuid4().hex[:12]
    staged = staging_path(wh, TABLE, ds, attempt)
    fs = Fs(spark, staged)
    try:
        claim_staging(fs, wh, TABLE, ds, attempt)
        fs.write_text(f"{staged}/model.txt", booster_text)
        fs.write_text(f"{staged}/meta.json", json.dumps(meta, indent=2, sort_keys=True))
        fs.write_text(f"{staged}/_SUCCESS", "")
        publish_staged(spark, wh, TABLE, ds, attempt=attempt)
    finally:
        discard_staged(spark, wh, TABLE, ds, attempt)
    return {
        "counts": {"label_pairs": meta["label_pairs"], "label_users": meta["label_users"]},
        **meta,
    }


def main(argv: list[str] | None = None) -> int:
    return stage_main("train_ranker", RankerConfig, run, argv)
