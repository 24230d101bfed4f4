"""Score every user with history inside Spark and stage the top-N list for publishing.

Default strategy "fusion": multi-source candidates, the LightGBM ranker trained by train_ranker
(its best single feature when the model fell back, or a fixed blend when none could be
trained), then a tail-aware re-ranking, for every user with history; any list short of N is
filled with popularity. Strategy "als" keeps the plain ALS
top-N. Either way the item arrays are built once on the driver and broadcast; each Arrow batch
of users is scored as one block. Every final row then gets its reason and reason item
(longtail.reasons; for "als", scoring.with_als_reasons), from its own user's history only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import (
    BooleanType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from longtail import columns as C
from longtail import fusion, reasons, tables
from longtail.config import AlsConfig, ConfigError, ScoreConfig
from longtail.ranker import load_scorer
from longtail.rules import CapCounter, Rules
from longtail.scoring import (
    REASON_FIELDS,
    RECOMMENDATION_SCHEMA,
    SOURCE_POPULARITY,
    ScoringModel,
    popularity,
    score_all,
    users_to_score,
    with_als_reasons,
)
from longtail.stages import fusion_inputs as inputs
from longtail.stages.common import stage_main
from longtail.user_histories import fusion_users
from longtail.warehouse.models import meta_path, read_model
from longtail.warehouse.publish import read_table, table_rows
from longtail.warehouse.records import read_record
from longtail.warehouse.staging import stage_for_later

TABLE = tables.RECOMMENDATIONS
OUTPUT_SCHEMA = StructType(
    [
        *RECOMMENDATION_SCHEMA.fields,
        StructField(C.IS_LONG_TAIL, BooleanType(), False),
        *REASON_FIELDS,
    ]
)


def popular_order(space: fusion.ItemSpace) -> np.ndarray:
    """Item positions by recent popularity, then all-time, then id (the fallback list);
    items that cannot be recommended (no title, unavailable, excluded by rules) are left out."""
    ids = np.arange(len(space.item_ids))
    order = np.lexsort((ids, -space.popularity, -space.recent_popularity))
    ok = space.recommendable
    return order if ok is None else order[ok[order]]


def fill_lists(
    lists: pd.DataFrame, users: pd.DataFrame, space: fusion.ItemSpace, order: np.ndarray, n: int
) -> pd.DataFrame:
    """Give every user exactly n rows: short lists continue with popular items they do not have,
    scored below their last score."""
    # Only short lists are split into a frame per user: splitting every list cost more than
    # filling the short ones.
    sizes = lists[C.USER_ID].value_counts()
    full = set(sizes.index[sizes.to_numpy() >= n])
    short = lists[~lists[C.USER_ID].isin(full)]
    by_user = dict(tuple(short.groupby(C.USER_ID, sort=False))) if len(short) else {}
    capped = space.rules is not None and bool(space.rules.caps)
    index = space.index if capped else {}
    extra = []
    for row in users.itertuples(index=False):
        user = getattr(row, C.USER_ID)
        if user in full:
            continue
        have = by_user.get(user)  # a short list (fewer than n rows), or none
        k = 0 if have is None else len(have)
        taken = set(have[C.ITEM_ID]) if k else set()
        excluded = set(
            getattr(row, fusion.EXCLUDED) if getattr(row, fusion.EXCLUDED) is not None else []
        )
        last = float(have[C.SCORE].min()) if k else None
        picks: list[int] = []
        # The shop's caps count the ranked part of the list too (longtail.rules).
        caps = CapCounter(space.rules, [index[str(x)] for x in taken]) if capped else None
        for j in order:  # stops after n - k picks: never a walk over the whole catalogue
            if len(picks) == n - k:
                break
            if (
                space.item_ids[j] not in taken
                and space.item_ids[j] not in excluded
                and (caps is None or caps.take(int(j)))
            ):
                picks.append(int(j))
        if last is None:
            scores = space.recent_popularity[picks].astype(np.float64)
        else:
            scores = np.array([min(last, 0.0) - (i + 1) for i in range(len(picks))])
        extra.append(
            pd.DataFrame(
                {
                    C.USER_ID: user,
                    C.RANK: np.arange(k + 1, k + len(picks) + 1, dtype=np.int32),
                    C.ITEM_ID: space.item_ids[picks],
                    C.SCORE: scores,
                    C.SOURCE: SOURCE_POPULARITY,
                    C.IS_LONG_TAIL: space.is_tail[picks],
                }
            )
        )
    return pd.concat([lists, *extra], ignore_index=True) if extra else lists


def night_tail_calibration(
    interactions: DataFrame, space: fusion.ItemSpace, cfg: ScoreConfig
) -> tuple[float, float] | None:
    """`fusion.tail_calibration` over every user of the night, summed in Spark: per user only
    (tail items, items) is formed, and the three means are DECIMAL sums, so the result does not
    depend on the order rows arrive in. None when the lists are not calibrated."""
    if not cfg.calibrate_tail or cfg.tail_target == 0:
        return None
    spark = interactions.sparkSession
    tail = spark.createDataFrame(
        pd.DataFrame({C.ITEM_ID: space.item_ids[space.is_tail].astype(str)}),
        StructType([StructField(C.ITEM_ID, StringType(), False)]),
    ).withColumn("_tail", F.lit(1))
    m = fusion.CALIBRATION_PSEUDO
    per_user = (
        interactions.select(C.USER_ID, C.ITEM_ID)
        .distinct()
        .join(F.broadcast(tail), C.ITEM_ID, "left")
        .groupBy(C.USER_ID)
        .agg(F.sum(F.coalesce("_tail", F.lit(0))).alias("t"), F.count("*").alias("n"))
    )

    def mean(expr: Any) -> Any:
        return F.avg(expr.cast("double").cast("decimal(38,18)"))

    row = per_user.agg(
        mean(F.col("t") / F.col("n")).alias("a"),
        mean(F.col("t") / (F.col("n") + m)).alias("b"),
        mean(F.lit(1.0) / (F.col("n") + m)).alias("d"),
    ).first()
    if row is None or row["a"] is None:
        return 0.0, cfg.tail_target
    prior = float(row["a"])
    return prior, cfg.tail_target - (float(row["b"]) + m * prior * float(row["d"]))


def night_lists(
    batch: pd.DataFrame,
    space: fusion.ItemSpace,
    retrieval: fusion.Retrieval,
    booster: Any,
    counts: fusion.CandidateCounts,
    cfg: ScoreConfig,
    calibration: tuple[float, float] | None,
    penalty: np.ndarray | None = None,
    new_slots: tuple[float, int] | None = None,
    tail_penalty: np.ndarray | None = None,
) -> pd.DataFrame:
    """The ranked part of a batch's lists as the night builds them (before the popularity fill
    and reasons)."""
    shape = list_shape(cfg, calibration, penalty, new_slots, tail_penalty)
    return fusion.recommend(batch, space, counts, booster, shape, retrieval=retrieval)


def list_shape(
    cfg: ScoreConfig,
    calibration: tuple[float, float] | None,
    penalty: np.ndarray | None = None,
    new_slots: tuple[float, int] | None = None,
    tail_penalty: np.ndarray | None = None,
) -> fusion.ListShape:
    """The config's list settings with the night's calibration, penalties and new-item bar
    (None: even new-item slots, no spread, as the exposure sample's lists are built)."""
    return fusion.ListShape(
        n=cfg.top_n,
        tail_target=cfg.tail_target,
        new_target=cfg.new_item_share,
        calibration=calibration,
        penalty=penalty,
        new_slots=new_slots,
        tail_cooccurrence=cfg.tail_cooccurrence,
        tail_penalty=tail_penalty,
    )


def score_fusion_batch(
    batch: pd.DataFrame,
    space: fusion.ItemSpace,
    retrieval: fusion.Retrieval,
    index: dict[str, int],
    order: np.ndarray,
    booster: Any,
    counts: fusion.CandidateCounts,
    cfg: ScoreConfig,
    version: str,
    calibration: tuple[float, float] | None = None,
    penalty: np.ndarray | None = None,
    new_slots: tuple[float, int] | None = None,
    tail_penalty: np.ndarray | None = None,
) -> pd.DataFrame:
    lists = night_lists(
        batch, space, retrieval, booster, counts, cfg, calibration, penalty, new_slots, tail_penalty
    )
    out = fill_lists(lists, batch, space, order, cfg.top_n)
    out = out.sort_values([C.USER_ID, C.RANK], kind="stable")
    out[C.MODEL_VERSION] = version
    out[C.RANK] = out[C.RANK].astype(np.int32)
    # Reasons of the final rows only, each against its own user's history (longtail.reasons).
    why = reasons.explain(out, batch, space, index)
    out[C.REASON_ITEM_ID], out[C.REASON] = why[C.REASON_ITEM_ID], why[C.REASON]
    return out[[f.name for f in OUTPUT_SCHEMA.fields]]


def _run_fusion(
    spark: SparkSession, cfg: ScoreConfig, rules: Rules | None
) -> tuple[DataFrame, str, tuple[float, float] | None, dict[str, Any]]:
    wh, ds = cfg.warehouse, cfg.ds
    model = read_model(spark, wh, tables.RANKER, ds)
    if model is None:
        raise FileNotFoundError(
            f"no ranker for ds={ds}: run train_ranker first ({meta_path(wh, tables.RANKER, ds)})"
        )
    meta, model_text = model
    space = inputs.space_at(spark, wh, ds, cfg.head_share, rules)
    counts, retrieval = fusion.retrieval_from_meta(space, meta, **cfg.scoring_counts())
    interactions = read_table(spark, wh, tables.INTERACTIONS, ds)
    users = fusion_users(interactions, read_table(spark, wh, tables.ALS_USER_FACTORS, ds))
    calibration = night_tail_calibration(interactions, space, cfg)
    bc = spark.sparkContext.broadcast((space, retrieval, model_text, meta))
    version = versioned(meta["model_version"], rules)
    parts = max(2, spark.sparkContext.defaultParallelism * 2)
    strength = cfg.spread if cfg.spread is not None else (meta.get("spread") or {}).get("strength")
    spread: dict[str, Any] = {
        "strength": float(strength or 0.0),
        "chosen_by": "config" if cfg.spread is not None else "train_ranker",
    }
    cap = new_item_cap(cfg)
    matched = cfg.new_item_slots == "matched" and cap > 0 and bool(space.is_cold.any())
    new_items: dict[str, Any] = {
        "slots": cfg.new_item_slots,
        "share": cfg.new_item_share,
        "candidates": counts.cold_text,
    }
    exposure, new_slots = None, None
    spread["tail_strength"] = float(cfg.tail_spread)
    if spread["strength"] > 0 or matched or cfg.tail_spread > 0:
        sample = _exposure_sample(users, cfg.spread_sample_users)
        shown, top_new, n_sampled = _night_sample(
            sample, bc, counts, cfg, calibration, len(space.item_ids), parts, cap
        )
        if spread["strength"] > 0 or cfg.tail_spread > 0:
            # One array for both penalties: spread's, and the floors' tail picks'
            # (fusion.ListShape.tail_penalty), each its strength times it.
            exposure = spark.sparkContext.broadcast(fusion.exposure_penalty(shown, space.is_cold))
            spread.update(sample_users=cfg.spread_sample_users, items_shown=int((shown > 0).sum()))
        if matched:
            bar = fusion.new_item_threshold(top_new, n_sampled, cfg.new_item_share * cfg.top_n)
            new_slots = (bar, cap)
            new_items.update(
                max_per_list=cap,
                # None: no bar (every new candidate, up to max_per_list, gets a slot).
                threshold=bar if np.isfinite(bar) else None,
                sample_users=n_sampled,
            )

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        sp, re, text, model_meta = bc.value
        booster = load_scorer(text, model_meta)
        index, order = sp.index, popular_order(sp)
        e = None if exposure is None else exposure.value
        pen = spread["strength"] * e if e is not None and spread["strength"] > 0 else None
        tail_pen = cfg.tail_spread * e if e is not None and cfg.tail_spread > 0 else None
        for batch in batches:
            if len(batch):
                yield score_fusion_batch(
                    batch,
                    sp,
                    re,
                    index,
                    order,
                    booster,
                    counts,
                    cfg,
                    version,
                    calibration,
                    pen,
                    new_slots,
                    tail_pen,
                )

    recs = users.repartition(parts, C.USER_ID).mapInPandas(run, OUTPUT_SCHEMA)
    return recs, version, calibration, {"spread": spread, "new_items": new_items}


def _exposure_sample(users: DataFrame, n: int) -> DataFrame:
    """A fixed pseudo-random sample of n users (by a hash of the id): the same users for the
    same night, whatever the partitioning."""
    h = F.xxhash64(F.col(C.USER_ID))
    return users.withColumn("_h", h).orderBy("_h", C.USER_ID).limit(n).drop("_h")


def new_item_cap(cfg: ScoreConfig) -> int:
    """The most new-item slots one list gets under "matched" slots."""
    return int(np.floor(cfg.new_item_max_share * cfg.top_n + 1e-9))


SAMPLE_SCHEMA = StructType(
    [
        StructField("item_idx", LongType(), True),
        StructField("count", LongType(), True),
        StructField("new_score", DoubleType(), True),
    ]
)


def _night_sample(
    sample: DataFrame,
    bc: Any,
    counts: fusion.CandidateCounts,
    cfg: ScoreConfig,
    calibration: tuple[float, float] | None,
    n_items: int,
    parts: int,
    cap: int,
) -> tuple[np.ndarray, np.ndarray, int]:
    """One pass over the sample's lists, scored as the night scores them before any spreading
    and with new_item_share slots each: (how many lists show each item in their top 10, each
    user's `cap` best new-candidate scores pooled, how many users have lists). Each partition
    sends one row per item it shows, one per kept score and its user count: sample-sized."""

    def rows(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        sp, re, text, model_meta = bc.value
        booster = load_scorer(text, model_meta)
        shown = np.zeros(n_items, np.int64)
        top: list[np.ndarray] = []
        users = 0
        shape = list_shape(cfg, calibration)
        index = sp.index  # a property that builds the id -> position dict: once, not per item
        for batch in batches:
            for b, cands, scores in fusion.scored_blocks(
                batch, sp, counts, booster, index=index, retrieval=re
            ):
                lists = fusion.block_lists(b, cands, scores, sp, shape, index)
                top10 = lists[lists[C.RANK] <= 10][C.ITEM_ID].astype(str)
                np.add.at(shown, [index[x] for x in top10], 1)
                ids = cands[C.USER_ID].to_numpy()
                top.append(
                    fusion.top_new_scores(
                        ids, scores, sp.is_cold[cands["item_idx"].to_numpy()], cap
                    )
                )
                users += len(pd.unique(ids))
        at = np.flatnonzero(shown)
        new = np.concatenate(top) if top else np.zeros(0)
        yield pd.DataFrame(
            {
                "item_idx": pd.array([*at, *[None] * (len(new) + 1)], dtype="Int64"),
                "count": pd.array([*shown[at], *[None] * len(new), users], dtype="Int64"),
                "new_score": pd.array([*[None] * len(at), *new, None], dtype="Float64"),
            }
        )

    got = sample.repartition(parts, C.USER_ID).mapInPandas(rows, SAMPLE_SCHEMA).collect()
    shown = np.zeros(n_items, np.float64)
    top_new, n_users = [], 0
    for r in got:  # sample-sized: items shown, the kept scores, a count per partition
        if r["item_idx"] is not None:
            shown[int(r["item_idx"])] += float(r["count"])
        elif r["new_score"] is not None:
            top_new.append(float(r["new_score"]))
        else:
            n_users += int(r["count"])
    return shown, np.asarray(top_new, np.float64), n_users


def _run_als(
    spark: SparkSession, cfg: ScoreConfig, als_record: dict, rules: Rules | None
) -> tuple[DataFrame, str]:
    wh, ds = cfg.warehouse, cfg.ds
    if rules is not None and (rules.boost or rules.max_per_category or rules.max_per_brand):
        raise ConfigError("the rules file's caps and boosts need strategy=fusion")
    space = inputs.space_at(spark, wh, ds, cfg.head_share, rules)
    events = read_table(spark, wh, tables.SILVER_EVENTS, ds)
    catalogue = read_table(spark, wh, tables.CATALOGUE, ds)
    since = (ds - timedelta(days=cfg.popularity_days - 1)).isoformat()
    pop = popularity(events, catalogue, since).toPandas()
    items = read_table(spark, wh, tables.ALS_ITEM_FACTORS, ds).orderBy(C.ITEM_ID).toPandas()
    if space.allowed is not None:  # unavailable and excluded items are never recommended
        shown = set(space.item_ids[space.allowed])
        pop = pop[pop[C.ITEM_ID].isin(shown)].reset_index(drop=True)
        items = items[items[C.ITEM_ID].isin(shown)].reset_index(drop=True)
    model = ScoringModel(
        item_ids=items[C.ITEM_ID].to_numpy(dtype=str),
        item_factors=np.stack(items[C.FACTORS].to_numpy()).astype(np.float32)
        if len(items)
        else np.zeros((0, 1), np.float32),
        popular_ids=pop[C.ITEM_ID].to_numpy(dtype=str),
        popular_scores=pop["recent_users"].to_numpy(dtype=np.float64),
        top_n=cfg.top_n,
        min_user_items=AlsConfig.from_record(als_record).min_user_items,
        model_version=versioned(als_record["model_version"], rules),
    )
    users = users_to_score(
        read_table(spark, wh, tables.INTERACTIONS, ds),
        read_table(spark, wh, tables.ALS_USER_FACTORS, ds),
    )
    tail = spark.createDataFrame(
        pd.DataFrame({C.ITEM_ID: space.item_ids, C.IS_LONG_TAIL: space.is_tail.astype(bool)})
    )
    recs = score_all(spark, users, model).join(F.broadcast(tail), C.ITEM_ID, "left")
    recs = with_als_reasons(
        recs,
        read_table(spark, wh, tables.INTERACTIONS, ds),
        read_table(spark, wh, tables.ALS_ITEM_FACTORS, ds),
    )
    return recs.select(*[f.name for f in OUTPUT_SCHEMA.fields]), model.model_version


def versioned(version: str, rules: Rules | None) -> str:
    """The model version, plus `-r<rules fingerprint>` when the shop has rules: other rules,
    other lists, another version. Unchanged without a rules file."""
    return version if rules is None else f"{version}-r{rules.fingerprint()}"


def run(spark: SparkSession, cfg: ScoreConfig) -> dict[str, Any]:
    wh, ds = cfg.warehouse, cfg.ds
    als_record = read_record(spark, wh, ds, "train_als")
    if als_record is None:
        raise FileNotFoundError(f"no train_als record for ds={ds}: run train_als first")
    n_catalogue = table_rows(spark, wh, tables.CATALOGUE, ds)
    if n_catalogue < cfg.top_n:
        raise ValueError(f"the catalogue has {n_catalogue} items, fewer than top_n={cfg.top_n}")
    rules = inputs.night_rules(spark, wh, ds)
    if cfg.strategy == "fusion":
        # Every shopper through the ranker, however short the history: one item already has
        # neighbours, text and a category to retrieve from.
        recs, version, calibration, lists_record = _run_fusion(spark, cfg, rules)
    else:
        (recs, version), calibration = _run_als(spark, cfg, als_record, rules), None
        lists_record = {"spread": None, "new_items": None}

    # Staged in a folder private to this attempt; publish takes the one named in this stage's run
    # record, so two runs of one date never publish a mixture of each other's output.
    def inspect(staged: DataFrame) -> tuple[dict[str, int], int, Any]:
        by_source = {r[C.SOURCE]: r["count"] for r in staged.groupBy(C.SOURCE).count().collect()}
        n_users = (
            read_table(spark, wh, tables.INTERACTIONS, ds).select(C.USER_ID).distinct().count()
        )
        top10 = staged.where(F.col(C.RANK) <= 10)
        return by_source, n_users, top10.agg(F.avg(F.col(C.IS_LONG_TAIL).cast("double"))).first()[0]

    attempt, (by_source, n_users, tail_share) = stage_for_later(recs, wh, TABLE, ds, inspect)
    return {
        "model_version": version,
        "strategy": cfg.strategy,
        **({"rules": rules.to_record(), "rules_fingerprint": rules.fingerprint()} if rules else {}),
        tables.STAGED_ATTEMPT: attempt,
        # Per-user tail targets: own history's share shrunk to `prior`, plus `shift`.
        "tail_calibration": None
        if calibration is None
        else {"prior": calibration[0], "shift": calibration[1]},
        # The exposure penalty (fusion.spread_scores): its strength and where it came from; the
        # new-item slots: how they were shared out, and the night's bar for one.
        **lists_record,
        "counts": {
            "users": n_users,
            "rows": sum(by_source.values()),
            "rows_by_source": dict(sorted(by_source.items())),
            "tail_share_top10": tail_share,
        },
    }


def main(argv: list[str] | None = None) -> int:
    return stage_main("score", ScoreConfig, run, argv)
