"""`make bench`: replay of the nightly pipeline and its peers on one dataset, by an honest protocol.

Protocol (stated in every metrics.json):
1. The landing folder goes through the pipeline's own ingest and clean (same code as the DAG).
2. Listing dates: an item is listed from its landing `first_seen`, else from its first event
   (`--listing-dates auto`; also `landing` or `first_event`). The benchmark writes them into a
   derived landing, so no run sees an item before it was listed. (The nightly pipeline itself
   lists an item without `first_seen` at once: a shop's catalogue is its present, not a replay.)
3. Split (bench.split): `temporal` for shop events, a global UTC-midnight cutoff holding out the
   last `holdout_fraction` of clean events; `user_holdout` for rating data, each user's last
   2 x `holdout_fraction` of ratings. `--protocol auto` picks user_holdout when every clean event
   is a rating. Eval users have training history and at least one held-out item new to them.
4. Head = the fewest most-interacted items holding 80% of training interactions; every other
   catalogue item is tail. Cold items = listed items with no training interactions.
5. Every system recommends top-20 per eval user, excluding items the user interacted with.
   Peers (bench.peers) are tuned on a validation window carved from training by the same
   protocol, with grids widened until the best point is inside them; `published` is the nightly
   DAG's stages with default configuration, run for the last training day: nothing is tuned on
   the test period.
6. Uncertainty: 95% paired bootstrap over eval users (1,000 seeded draws) of published / best
   peer, per metric.
7. Item cold start (bench.split.pick_cold_items): a seeded 10% of the items with training
   interactions lose all of them; the pipeline is run again on that landing and every system is
   scored on the held-out pairs of those items only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import psutil

from bench import audiences as audience_eval
from bench import metrics, peers, uncertainty
from bench.landings import derive_landing
from bench.memory import PeakMemory
from bench.report import write_report
from bench.split import (
    LISTING_DATES,
    PROTOCOLS,
    Split,
    cold_start_truth,
    listing_dates,
    pick_cold_items,
    split_events,
    validation_split,
)
from longtail import columns as C
from longtail import fusion, registry, tables
from longtail.config import ScoreConfig
from longtail.lastday import last_day
from longtail.ranker import load_scorer
from longtail.sparkutil import get_spark
from longtail.stages import fusion_inputs as inputs
from longtail.stages.common import run_stage
from longtail.warehouse.models import meta_path, read_model
from longtail.warehouse.publish import read_table

REPO = Path(__file__).resolve().parents[1]
K = 20
NAN = float("nan")
CI_METRICS = ("ndcg@10", "recall@20", "tail_recall@20")
# The published system and its own parts: never a "peer".
OWN_SYSTEMS = ("published", "content", "cooccurrence", "fusion")
# Why MLlib's ALS is shown but never the best peer: it gets implicit's tuned values, which mean
# something else there, and tuning it on its own grid would cost most of the benchmark's hour.
SPARK_ALS_REFERENCE = (
    "not a tuned peer: MLlib scales regParam by each user's and item's count (ALS-WR), so the "
    "values tuned for implicit's ALS do not carry over; the same model on Spark, for reference"
)
TAIL_TARGETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7)


@dataclass(frozen=True)
class BenchConfig:
    name: str
    landing: str
    work_dir: str
    out_dir: str
    holdout_fraction: float = 0.1
    validation_fraction: float = 0.1
    top_k: int = K
    seed: int = 42
    listing_dates: str = "auto"
    protocol: str = "auto"
    cold_fraction: float = 0.1
    bootstrap_draws: int = 1000

    def __post_init__(self) -> None:
        if not 0 < self.holdout_fraction < 0.5 or not 0 < self.validation_fraction < 0.5:
            raise ValueError("holdout and validation fractions must be in (0, 0.5)")
        if self.listing_dates not in LISTING_DATES:
            raise ValueError(f"listing_dates must be one of {LISTING_DATES}")
        if self.protocol not in ("auto", *PROTOCOLS):
            raise ValueError(f"protocol must be auto or one of {PROTOCOLS}")
        if not 0 < self.cold_fraction < 1:
            raise ValueError("cold_fraction must be in (0, 1)")


# The stages the published recommendations need, in run order (ingest .. publish); the clean
# events alone need the first of them (ingest, clean); a seed changes what comes after content.
PIPELINE = registry.lineage(registry.writer_of(tables.RECOMMENDATIONS))
CLEAN_EVENTS = registry.lineage(registry.writer_of(tables.SILVER_EVENTS))
LEARNED = tuple(
    n for n in PIPELINE if n not in registry.lineage(registry.writer_of(tables.ITEM_EMBEDDINGS))
)


def run_pipeline(
    spark: Any, landing: str, wh: str, ds: Any, *, full: bool, seed: int | None = None
) -> dict[str, dict]:
    """The nightly DAG's stages, in order, with default configs (full=False stops after clean).

    seed: the seed of the learned stages (ALS, the ranker), None = the default configuration's.
    """
    names = PIPELINE if full else CLEAN_EVENTS
    configs = _configs(names, wh, ds, seed, landing)
    return {name: run_stage(spark, name, cfg) for name, cfg in configs.items()}


def _configs(
    names: tuple[str, ...], wh: str, ds: Any, seed: int | None, landing: str | None = None
) -> dict[str, Any]:
    """The named stages' default configs for this run; `seed` for every stage that has one."""
    seeded = {
        n: {"seed": seed}
        for n in names
        if seed is not None and "seed" in registry.stage(n).config_class.field_names()
    }
    return registry.build_configs(ds, wh, landing=landing, top_n=K, overrides=seeded, names=names)


def _learned_stages(wh: str, ds: Any, seed: int | None) -> dict[str, Any]:
    """The night's stages from ALS on (everything after content), with their configs."""
    return _configs(LEARNED, wh, ds, seed)


def run_learned_stages(spark: Any, wh: str, ds: Any, seed: int | None) -> dict[str, dict]:
    """Re-run the night's stages from ALS on (same data, content and date) with another seed."""
    return {
        name: run_stage(spark, name, cfg) for name, cfg in _learned_stages(wh, ds, seed).items()
    }


def _clean_nan(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, np.generic):
        return _clean_nan(value.item())
    if isinstance(value, dict):
        return {k: _clean_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_nan(v) for v in value]
    return value


SINGLE_SOURCES = {
    "content": (fusion.CandidateCounts(0, 60, 0, 0, 0, 0, 0), "content_profile_sim"),
    "cooccurrence": (fusion.CandidateCounts(0, 0, 60, 0, 0, 0, 0), "cooccurrence"),
}


def _pipeline_parts(
    spark: Any,
    wh: str,
    ds: Any,
    interactions: pd.DataFrame,
    users: list[str],
    sources: tuple[str, ...] = tuple(SINGLE_SOURCES),
    with_fusion: bool = True,
) -> dict[str, tuple[float, Any]]:
    """Single sources and the un-re-ranked fusion from the item space and ranker the published
    run used: name -> (score seconds, lists); fusion's lists are {tail_target: lists}."""
    model = read_model(spark, wh, tables.RANKER, ds)
    if model is None:
        raise FileNotFoundError(f"no ranker for ds={ds}: {meta_path(wh, tables.RANKER, ds)}")
    meta, text = model
    booster = load_scorer(text, meta)
    space = inputs.space_at(spark, wh, ds)
    # every user's factors: the offline benchmark's driver holds them, the pipeline never does
    user_factors = read_table(spark, wh, tables.ALS_USER_FACTORS, ds).orderBy(C.USER_ID).toPandas()
    frame = fusion.user_frame(interactions[interactions[C.USER_ID].isin(set(users))], user_factors)
    index = space.index

    def batches() -> Iterator[pd.DataFrame]:
        for start in range(0, len(frame), 256):
            yield frame.iloc[start : start + 256].reset_index(drop=True)

    out: dict[str, tuple[float, Any]] = {}
    for name in sources:
        cc, feature = SINGLE_SOURCES[name]
        t0 = time.perf_counter()
        _, re = fusion.retrieval_from_meta(space, {**meta, "candidate_counts": vars(cc)})
        parts = []
        for batch in batches():
            c = fusion.candidates(batch, space, cc, index, re)
            parts.append(fusion.final_lists(c, c[feature].to_numpy(np.float64), space, K, 0.0))
        lists = metrics.recs_from_frame(pd.concat(parts, ignore_index=True))
        out[name] = (time.perf_counter() - t0, lists)
    if with_fusion:
        t0 = time.perf_counter()
        # the score stage's candidates: the ranker's counts, widened as there (new items, tail)
        counts, re = fusion.retrieval_from_meta(space, meta, **ScoreConfig.default_scoring_counts())
        cands, scores = [], []
        for batch in batches():
            c = fusion.candidates(batch, space, counts, index, re)
            cands.append(c)
            feats = fusion.feature_matrix(c)
            scores.append(booster.predict(feats) if booster is not None else fusion.blend_score(c))
        all_c = pd.concat(cands, ignore_index=True)
        all_s = np.concatenate(scores).astype(np.float64)
        score_s = time.perf_counter() - t0
        pool = all_c.assign(**{C.ITEM_ID: space.item_ids[all_c["item_idx"].to_numpy()]})
        out["candidates"] = (0.0, pool.groupby(C.USER_ID)[C.ITEM_ID].agg(list).to_dict())
        # Each point is the published re-ranking at that tail target, its new-item slots
        # included (a share of the tail target at most) and its tail order; 0.0 is the
        # ranker's own order.
        new_share = ScoreConfig.default("new_item_share")
        shares = _tail_shares(interactions, space)
        tail_s = fusion.ordered_tail(all_c, all_s, space, ScoreConfig.default("tail_cooccurrence"))
        by_target = {
            t: metrics.recs_from_frame(
                fusion.final_lists(
                    all_c,
                    tail_s if t > 0 else all_s,
                    space,
                    K,
                    _user_targets(shares, t),
                    min(new_share, t),
                )
            )
            for t in TAIL_TARGETS
        }
        out["fusion"] = (score_s, by_target)
    return out


def _tail_shares(interactions: pd.DataFrame, space: fusion.ItemSpace) -> pd.DataFrame:
    """Every user's (tail items, distinct items), as score's calibration counts them."""
    pairs = interactions[[C.USER_ID, C.ITEM_ID]].drop_duplicates()
    tail = set(space.item_ids[space.is_tail].astype(str))
    pairs = pairs.assign(t=pairs[C.ITEM_ID].astype(str).isin(tail).astype(float), n=1.0)
    return pairs.groupby(C.USER_ID)[["t", "n"]].sum()


def _user_targets(shares: pd.DataFrame, tail_target: float) -> float | dict[str, float]:
    """The published run's tail targets at `tail_target`: calibrated per user, as in score."""
    if not ScoreConfig.default("calibrate_tail") or tail_target == 0:
        return tail_target
    counts = shares[["t", "n"]].to_numpy()
    prior, shift = fusion.tail_calibration(counts, tail_target)
    own = fusion.calibrated_targets(counts, prior, shift)
    return dict(zip(shares.index.astype(str), own.tolist(), strict=True))


def _choose_protocol(events: pd.DataFrame, requested: str) -> str:
    """`auto`: ratings are not shop events (see bench.split), so all-rating data is held out
    per user; anything with shop events is split in time."""
    if requested != "auto":
        return requested
    types = set(events[C.EVENT_TYPE].unique()) if C.EVENT_TYPE in events else set()
    return "user_holdout" if types == {"rating"} else "temporal"


def _sum_weights(events: pd.DataFrame) -> pd.DataFrame:
    return events.groupby([C.USER_ID, C.ITEM_ID], as_index=False, sort=True)[C.WEIGHT].sum()


@dataclass
class _Scorer:
    """Scores any system's lists on one split; keeps the per-user values for the bootstrap."""

    users: list[str]
    truth: dict[str, set[str]]
    catalogue: list[str]
    train_counts: pd.Series
    n_train_users: int
    tail: set[str]
    cold: set[str]
    log: Any

    def __post_init__(self) -> None:
        self.systems: dict[str, dict[str, Any]] = {}
        self.curves: dict[str, pd.DataFrame] = {}
        self.per_user: dict[str, pd.DataFrame] = {}

    def evaluate(self, recs: dict[str, list[str]]) -> dict[str, float]:
        recs = {u: recs.get(u, []) for u in self.users}
        return metrics.evaluate(
            recs,
            self.truth,
            self.catalogue,
            self.train_counts,
            self.n_train_users,
            self.tail,
            self.cold,
        )

    def record(
        self, name: str, recs: dict[str, list[str]], fit_s: float, score_s: float, mem_mb: float
    ) -> None:
        recs = {u: recs.get(u, []) for u in self.users}
        m = self.evaluate(recs)
        self.systems[name] = {
            **m,
            "fit_s": round(fit_s, 2),
            "score_s": round(score_s, 2),
            "peak_mem_mb": round(mem_mb, 0),
        }
        self.curves[name] = metrics.popularity_curve(recs, self.train_counts, self.catalogue, k=10)
        self.per_user[name] = metrics.per_user(recs, self.truth, self.tail)
        self.log(f"{name}: " + ", ".join(f"{k}={v:.4f}" for k, v in m.items() if v == v))

    def skip(self, name: str, reason: str) -> None:
        self.systems[name] = {"skipped": reason}
        self.log(f"{name}: skipped ({reason})")


def _run_peers(
    spark: Any,
    cfg: BenchConfig,
    split: Split,
    interactions: pd.DataFrame,
    scorer: _Scorer,
    log: Any,
) -> dict[str, Any]:
    """Every peer, tuned on a validation window carved from training, then run on the split."""
    users = scorer.users
    data = peers.PeerData(
        interactions=interactions[[C.USER_ID, C.ITEM_ID, C.WEIGHT]],
        events=split.train[[C.USER_ID, C.ITEM_ID, C.TS, C.WEIGHT]],
        cutoff=split.cutoff,
    )
    val = validation_split(split.train, cfg.validation_fraction, split.protocol)
    val_data = peers.PeerData(
        interactions=_sum_weights(val.train),
        events=val.train[[C.USER_ID, C.ITEM_ID, C.TS, C.WEIGHT]],
        cutoff=val.cutoff,
    )
    log(f"tuning peers on the validation split ({len(val.eval_users)} users)")
    with PeakMemory() as m_pop:
        pop = peers.popularity(interactions, users, cfg.top_k)
    scorer.record("popularity", pop.recs, pop.fit_s, pop.score_s, m_pop.peak_mb)

    tuning: dict[str, Any] = {}
    for name, spec in peers.TUNED_PEERS.items():
        reason = spec.skip_reason(data)
        if reason:
            scorer.skip(name, reason)
            tuning[name] = {"skipped": reason}
            continue
        tuning[name] = peers.tune_peer(spec, val_data, val.truth, cfg.top_k, cfg.seed)
        t = tuning[name]
        log(f"{name}: best {t['best']} on edge {t['best_on_edge']} ({t['seconds']:.0f}s)")
        with PeakMemory() as mem:
            res = spec.run(data, users, cfg.top_k, t["best"], cfg.seed)
        scorer.record(name, res.recs, res.fit_s, res.score_s, mem.peak_mb)
    if "als" in tuning and "best" in tuning["als"]:
        with PeakMemory() as m_spark:
            sals = peers.spark_als(
                spark, interactions, users, cfg.top_k, tuning["als"]["best"], cfg.seed
            )
        scorer.record("spark_als", sals.recs, sals.fit_s, sals.score_s, m_spark.peak_mb)
        scorer.systems["spark_als"]["reference_only"] = SPARK_ALS_REFERENCE
        out_spark = {"spark_als_params": dict(sals.params)}
    else:
        out_spark = {}
    return {
        "tuning": tuning,
        "validation": {"cutoff": val.cutoff.isoformat(), "n_eval_users": len(val.eval_users)},
        **out_spark,
    }


def _reuse_embedding_cache(wh: Path, wh_cold: Path, ds: Any) -> None:
    """The cold-start run sees the same texts: give it the published run's embedding cache as
    the night before `ds` (the content stage re-embeds a night's own cache entries on a re-run,
    so under `ds` itself they would all be encoded again)."""
    cache = wh / "_cache"
    if not cache.exists():
        return
    target = wh_cold / "_cache"
    shutil.copytree(cache, target)
    before = (pd.Timestamp(ds) - pd.Timedelta(days=1)).date().isoformat()
    for night in target.glob(f"*/*/ds={ds.isoformat()}"):
        dest = night.with_name(f"ds={before}")
        if not dest.exists():
            night.rename(dest)
            continue
        for part in night.glob("part-*"):  # part names are unique per write
            part.rename(dest / part.name)
        shutil.rmtree(night)


def _cold_start(
    spark: Any,
    cfg: BenchConfig,
    split: Split,
    listed: pd.Series | None,
    interactions: pd.DataFrame,
    wh: str,
    als_params: dict | None,
    log: Any,
) -> dict[str, Any]:
    """Item cold start: a seeded share of trained-on items loses its interactions; the pipeline
    runs again on that landing and every system is scored on those items' held-out pairs."""
    seed = cfg.seed
    cold_items = pick_cold_items(interactions, cfg.cold_fraction, seed)
    truth = cold_start_truth(split.truth, cold_items)
    users = sorted(truth)
    n_pairs = sum(len(v) for v in truth.values())
    protocol = {
        "n_items": len(cold_items),
        "n_test_pairs": n_pairs,
        "n_eval_users": len(users),
        "seed": seed,
        "fraction": cfg.cold_fraction,
    }
    log(f"cold start: {len(cold_items)} items lose their training, {n_pairs} held-out pairs")
    if not users:
        return {"protocol": protocol, "systems": {}}
    work = Path(cfg.work_dir)
    wh_cold = str(work / "warehouse_cold")
    shutil.rmtree(wh_cold, ignore_errors=True)
    ds = split.run_date
    _reuse_embedding_cache(Path(wh), Path(wh_cold), ds)
    landing = derive_landing(
        spark,
        cfg.landing,
        work / "landing_cold",
        first_seen=listed,
        drop_items=cold_items,
        user_cutoffs=split.user_cutoffs,
    )
    run_pipeline(spark, str(landing), wh_cold, ds, full=True)
    cold_inter = read_table(spark, wh_cold, tables.INTERACTIONS, ds).toPandas()
    lists: dict[str, dict[str, list[str]]] = {}
    lists["popularity"] = peers.popularity(cold_inter, users, cfg.top_k).recs
    if als_params is not None:
        lists["als"] = peers.als(cold_inter, users, cfg.top_k, als_params, seed).recs
    parts = _pipeline_parts(spark, wh_cold, ds, cold_inter, users, ("content",), False)
    lists["content"] = parts["content"][1]
    published = read_table(spark, wh_cold, tables.RECOMMENDATIONS, ds).toPandas()
    lists["published"] = metrics.recs_from_frame(published[published[C.USER_ID].isin(set(users))])
    cold_catalogue = (
        read_table(spark, wh_cold, tables.CATALOGUE, ds)
        .select(C.ITEM_ID)
        .toPandas()[C.ITEM_ID]
        .tolist()
    )
    _, cold_tail = metrics.head_tail_split(cold_inter.groupby(C.ITEM_ID).size(), cold_catalogue)
    systems = {}
    for name, recs in lists.items():
        recs = {u: recs.get(u, []) for u in users}
        systems[name] = {
            "recall@20": metrics.recall_at_k(recs, truth, 20),
            "ndcg@10": metrics.ndcg_at_k(recs, truth, 10),
            "aplt@10": metrics.aplt_at_k(recs, cold_tail, 10, users),
            "coverage@10": metrics.coverage_at_k(recs, cold_catalogue, 10),
            "cold_items@20": len({i for r in recs.values() for i in r[:20]} & set(cold_items)),
        }
        log(f"cold start {name}: {systems[name]}")
    audiences = _cold_audiences(spark, wh_cold, ds, cold_inter, cold_items, truth, log)
    return {"protocol": protocol, "systems": systems, "audiences": audiences}


def _cold_audiences(
    spark: Any,
    wh_cold: str,
    ds: Any,
    cold_inter: pd.DataFrame,
    cold_items: Any,
    truth: dict,
    log: Any,
) -> dict[str, Any]:
    """The nightly item_audiences stage on the cold-start warehouse, judged by audience recall
    on the cold items' held-out buyers against the popularity and content-neighbour baselines."""
    name = registry.writer_of(tables.ITEM_AUDIENCES)
    cfg = registry.build_configs(ds, wh_cold, names=(name,))[name]
    record = run_stage(spark, name, cfg)
    k = cfg.audience_size
    buyers = audience_eval.buyers_of(truth, cold_items)
    space = inputs.space_at(spark, wh_cold, ds)
    table = read_table(spark, wh_cold, tables.ITEM_AUDIENCES, ds).toPandas()
    lists = {
        "published": audience_eval.from_table(table),
        "content_neighbours": audience_eval.content_neighbour_audience(
            space.item_ids, space.embeddings, cold_inter, list(buyers), k
        ),
        "popularity": audience_eval.popularity_audience(cold_inter, list(buyers), k),
    }
    systems = {name: audience_eval.audience_recall(a, buyers, k) for name, a in lists.items()}
    for name, values in systems.items():
        log(f"cold-start audiences {name}: {values}")
    return {
        "protocol": {
            "audience_size": k,
            "n_items_with_buyers": len(buyers),
            "n_pairs": sum(len(b) for b in buyers.values()),
            "n_target_items": record["counts"]["items"],
        },
        "systems": systems,
    }


class Prepared(NamedTuple):
    """Steps 1-2 of the protocol: clean events, the split, and the landing the pipeline runs on."""

    events: pd.DataFrame
    split: Split
    protocol: str
    ds_train: Any
    listed: pd.Series | None
    landing: str


def prepare(spark: Any, cfg: BenchConfig, wh: str, log: Any) -> Prepared:
    """Clean every event with the pipeline's own stages, split them, derive the bench landing."""
    work = Path(cfg.work_dir)
    # 1. All clean events, through the pipeline's own ingest + clean.
    ds_final = pd.Timestamp(last_day(cfg.landing)).date()
    log(f"ingest + clean up to {ds_final}")
    run_pipeline(spark, cfg.landing, wh, ds_final, full=False)
    events = (
        read_table(spark, wh, tables.SILVER_EVENTS, ds_final)
        .select(C.USER_ID, C.ITEM_ID, C.TS, C.EVENT_TYPE, C.WEIGHT)
        .toPandas()
    )
    events[C.TS] = pd.to_datetime(events[C.TS], utc=True)
    given = (
        read_table(spark, wh, tables.CATALOGUE, ds_final)
        .select(C.ITEM_ID, C.FIRST_SEEN)
        .toPandas()
        .set_index(C.ITEM_ID)[C.FIRST_SEEN]
    )

    # 2. The split, the listing dates, and the landing the pipeline is run on.
    protocol = _choose_protocol(events, cfg.protocol)
    split = split_events(events, protocol, cfg.holdout_fraction)
    ds_train = split.run_date
    log(
        f"{protocol} split: run date {ds_train} ({len(split.train)} train / "
        f"{len(split.test)} held-out events, {len(split.eval_users)} eval users)"
    )
    listed = (
        None if cfg.listing_dates == "landing" else listing_dates(given, events, cfg.listing_dates)
    )
    bench_landing = str(
        derive_landing(
            spark, cfg.landing, work / "landing", first_seen=listed, user_cutoffs=split.user_cutoffs
        )
    )
    return Prepared(events, split, protocol, ds_train, listed, bench_landing)


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    spark = get_spark("longtail-bench")
    work = Path(cfg.work_dir)
    wh = str(work / "warehouse")
    log = lambda msg: print(f"[bench {cfg.name}] {msg}", flush=True)  # noqa: E731

    events, split, protocol, ds_train, listed, bench_landing = prepare(spark, cfg, wh, log)

    # 3. The pipeline itself, run for the last training day.
    with PeakMemory() as mem:
        records = run_pipeline(spark, bench_landing, wh, ds_train, full=True)
    interactions = read_table(spark, wh, tables.INTERACTIONS, ds_train).toPandas()
    catalogue = (
        read_table(spark, wh, tables.CATALOGUE, ds_train)
        .select(C.ITEM_ID)
        .toPandas()[C.ITEM_ID]
        .tolist()
    )
    published = read_table(spark, wh, tables.RECOMMENDATIONS, ds_train).toPandas()
    users = split.eval_users
    train_counts = interactions.groupby(C.ITEM_ID).size()
    n_train_users = interactions[C.USER_ID].nunique()
    head, tail = metrics.head_tail_split(train_counts, catalogue, metrics.HEAD_SHARE)
    cold = set(catalogue) - set(train_counts.index)
    truth = split.truth
    n_pairs = sum(len(v) for v in truth.values())
    unlisted = {i for u in truth for i in truth[u]} - set(catalogue)
    scorer = _Scorer(users, truth, catalogue, train_counts, n_train_users, set(tail), cold, log)

    # 4. Peers, same split (training interactions = the pipeline's own silver interactions).
    peer_out = _run_peers(spark, cfg, split, interactions, scorer, log)
    tuning = peer_out["tuning"]

    pub_recs = metrics.recs_from_frame(published[published[C.USER_ID].isin(set(users))])
    scorer.record(
        "published",
        pub_recs,
        sum(records[s]["seconds"] for s in ("content", "train_als", "item_space", "train_ranker")),
        records["score"]["seconds"],
        mem.peak_mb,
    )

    # 5. The pipeline's parts on their own, and the accuracy / tail-share trade-off of its
    #    re-ranking, from the same item space and ranker the published run used.
    parts = _pipeline_parts(spark, wh, ds_train, interactions, users)
    for name in SINGLE_SOURCES:
        score_s, lists = parts[name]
        scorer.record(name, lists, NAN, score_s, NAN)
    fusion_s, by_target = parts["fusion"]
    scorer.record("fusion", by_target[0.0], NAN, fusion_s, NAN)
    tradeoff = []
    for target, lists in by_target.items():
        m = scorer.evaluate(lists)
        tradeoff.append(
            {
                "system": "published (tail target)",
                "tail_target": target,
                **{k: m[k] for k in ("ndcg@10", "recall@20", "aplt@10", "tail_recall@20")},
            }
        )

    # 6. Published against the best peer, with paired bootstrap intervals.
    best_peer = uncertainty.best_peer(scorer.systems, CI_METRICS, exclude=OWN_SYSTEMS)
    ci = uncertainty.ci_table(
        scorer.per_user, best_peer, CI_METRICS, draws=cfg.bootstrap_draws, seed=cfg.seed
    )
    log(f"published / best peer: {ci} (best peers {best_peer})")

    # 7. Item cold start.
    als_best = tuning.get("als", {}).get("best")
    cold_start = _cold_start(spark, cfg, split, listed, interactions, wh, als_best, log)

    result = {
        "dataset": cfg.name,
        "protocol": {
            "split": protocol,
            "cutoff": split.cutoff.isoformat(),
            "pipeline_run_date": ds_train.isoformat(),
            "holdout_fraction": cfg.holdout_fraction
            if protocol == "temporal"
            else 2 * cfg.holdout_fraction,
            "listing_dates": cfg.listing_dates,
            "n_items_listed": len(catalogue),
            "n_events": len(events),
            "n_train_events": len(split.train),
            "n_test_events": len(split.test),
            "n_train_users": int(n_train_users),
            "n_catalogue_items": len(catalogue),
            "n_eval_users": len(users),
            "n_test_pairs": n_pairs,
            "n_test_pairs_unlisted": sum(1 for u in truth for i in truth[u] if i in unlisted),
            "n_head_items": len(head),
            "n_tail_items": len(tail),
            "n_cold_items": len(cold),
            "n_test_pairs_tail": sum(1 for u in truth for i in truth[u] if i in tail),
            "n_test_pairs_cold": sum(1 for u in truth for i in truth[u] if i in cold),
            "k": cfg.top_k,
            "head_share": metrics.HEAD_SHARE,
            "relevance": "binary; recall normalised by min(K, held-out count)",
            "validation": peer_out["validation"],
            "spark_als_params": peer_out.get("spark_als_params"),
            "seed": cfg.seed,
            "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB",
            "date": pd.Timestamp.now(tz="UTC").date().isoformat(),
            "clean_counts": records["clean"]["counts"],
        },
        "systems": scorer.systems,
        "tuning": tuning,
        "best_peer": best_peer,
        "ci": ci,
        "ci_protocol": uncertainty.ci_protocol(cfg.bootstrap_draws, cfg.seed, 0.95),
        "candidate_recall@all": metrics.candidate_recall(parts["candidates"][1], truth),
        "cold_start": cold_start,
        "tradeoff": tradeoff,
        "ranker": records["train_ranker"].get("training"),
    }
    result = _clean_nan(result)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2, sort_keys=False))
    write_report(result, scorer.curves, out / "report.html")
    log(f"wrote {out / 'metrics.json'} and {out / 'report.html'}")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="a folder name under --data-dir (see bench.adapters)")
    src.add_argument("--landing", help="any folder in the landing contract")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "datasets"))
    parser.add_argument("--name", default=None)
    parser.add_argument("--holdout-fraction", type=float, default=0.1)
    parser.add_argument("--listing-dates", choices=LISTING_DATES, default="auto")
    parser.add_argument("--protocol", choices=("auto", *PROTOCOLS), default="auto")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bootstrap-draws", type=int, default=1000)
    parser.add_argument("--work-dir", default=str(REPO / "data" / "bench"))
    parser.add_argument("--reports-dir", default=str(REPO / "reports" / "bench"))
    args = parser.parse_args(argv)
    if args.dataset:
        from bench.adapters import adapt

        name = args.name or args.dataset
        landing = Path(args.work_dir) / "landing" / args.dataset
        adapt(args.dataset, args.data_dir, landing)
    else:
        landing = Path(args.landing).resolve()
        name = args.name or landing.name
    cfg = BenchConfig(
        name=name,
        landing=str(landing),
        work_dir=str(Path(args.work_dir) / "runs" / name),
        out_dir=str(Path(args.reports_dir) / name),
        holdout_fraction=args.holdout_fraction,
        listing_dates=args.listing_dates,
        protocol=args.protocol,
        seed=args.seed,
        bootstrap_draws=args.bootstrap_draws,
    )
    started = time.time()
    run_bench(cfg)
    print(f"[bench {name}] done in {time.time() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
