"""`make bench`: temporal replay of the nightly pipeline and its peers on one dataset.

Protocol (stated in every metrics.json):
1. The landing folder goes through the pipeline's own ingest and clean (same code as the DAG).
2. A global cutoff (UTC midnight) holds out the last `holdout_fraction` of clean events by time.
3. Eval users have training history and at least one held-out item new to them; the held-out
   (user, item) pairs are those new pairs.
4. Head = the fewest most-interacted items holding 80% of training interactions; every other
   catalogue item is tail. Cold items = catalogue items with no training interactions.
5. Every system recommends top-20 per eval user, excluding items the user interacted with:
   popularity; `als` (implicit, tuned on a validation window carved from training); `spark_als`
   (MLlib, same hyper-parameters); `published` (the nightly DAG's stages run for the day before
   the cutoff, with default configuration: no tuning on the test period).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil

from longtail import columns as C
from longtail import fusion
from longtail.bench import metrics, peers
from longtail.bench.report import write_report
from longtail.bench.split import compute_cutoff, make_split, validation_split
from longtail.config import (
    AlsConfig,
    CleanConfig,
    ContentConfig,
    IngestConfig,
    PublishConfig,
    RankerConfig,
    ScoreConfig,
)
from longtail.lastday import last_day
from longtail.ranker import load_booster
from longtail.sparkutil import get_spark
from longtail.stages import clean, content, ingest, publish, score, train_als, train_ranker
from longtail.stages import fusion_inputs as inputs
from longtail.stages.common import run_and_record
from longtail.storage import read_table

REPO = Path(__file__).resolve().parents[3]
K = 20
NAN = float("nan")


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

    def __post_init__(self) -> None:
        if not 0 < self.holdout_fraction < 0.5 or not 0 < self.validation_fraction < 0.5:
            raise ValueError("holdout and validation fractions must be in (0, 0.5)")


class PeakMemory:
    """Peak resident memory of this process and its children (the Spark JVM) while in the block."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()

    def _rss(self) -> float:
        proc = psutil.Process()
        total = proc.memory_info().rss
        for child in proc.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total / 2**20

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, self._rss())
            self._stop.wait(0.05)

    def __enter__(self) -> PeakMemory:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, self._rss())


def _run_pipeline(spark: Any, landing: str, wh: str, ds: Any, *, full: bool) -> dict[str, dict]:
    """The nightly DAG's stages, in order, with default configs (full=False stops after clean)."""
    stages: list[tuple[str, Any, Any]] = [
        ("ingest", ingest, IngestConfig(ds=ds, warehouse=wh, landing=landing)),
        ("clean", clean, CleanConfig(ds=ds, warehouse=wh)),
    ]
    if full:
        stages += [
            ("content", content, ContentConfig(ds=ds, warehouse=wh)),
            ("train_als", train_als, AlsConfig(ds=ds, warehouse=wh)),
            ("train_ranker", train_ranker, RankerConfig(ds=ds, warehouse=wh)),
            ("score", score, ScoreConfig(ds=ds, warehouse=wh, top_n=K)),
            ("publish", publish, PublishConfig(ds=ds, warehouse=wh, top_n=K)),
        ]
    return {name: run_and_record(spark, name, cfg, mod.run) for name, mod, cfg in stages}


def _clean_nan(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean_nan(v) for v in value]
    return value


TAIL_TARGETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7)


def _pipeline_parts(
    spark: Any,
    wh: str,
    ds: Any,
    interactions: pd.DataFrame,
    users: list[str],
    record: Any,
    log: Any,
) -> list[tuple[float, dict[str, list[str]]]]:
    """Score single sources and the un-re-ranked fusion; return lists per tail target."""
    meta_path = Path(wh) / "ranker" / f"ds={ds.isoformat()}"
    meta = json.loads((meta_path / "meta.json").read_text())
    text = (meta_path / "model.txt").read_text()
    booster = load_booster(text) if text.strip() else None
    space = inputs.space_at(spark, wh, ds)
    user_factors = inputs.factors(spark, wh, ds, users=True)
    frame = fusion.user_frame(interactions[interactions[C.USER_ID].isin(set(users))], user_factors)
    counts = fusion.CandidateCounts(**meta["candidate_counts"])
    index = space.index

    def lists_of(df: pd.DataFrame) -> dict[str, list[str]]:
        return metrics.recs_from_frame(df)

    only = {
        "content": (fusion.CandidateCounts(0, 60, 0, 0, 0, 0, 0), "content_profile_sim"),
        "cooccurrence": (fusion.CandidateCounts(0, 0, 60, 0, 0, 0, 0), "cooccurrence"),
    }
    for name, (cc, feature) in only.items():
        t0 = time.perf_counter()
        parts = []
        for start in range(0, len(frame), 256):
            batch = frame.iloc[start : start + 256].reset_index(drop=True)
            c = fusion.candidates(batch, space, cc, index)
            parts.append(fusion.final_lists(c, c[feature].to_numpy(np.float64), space, K, 0.0))
        score_s = time.perf_counter() - t0
        record(name, lists_of(pd.concat(parts, ignore_index=True)), NAN, score_s, NAN)

    t0 = time.perf_counter()
    cands, scores = [], []
    for start in range(0, len(frame), 256):
        batch = frame.iloc[start : start + 256].reset_index(drop=True)
        c = fusion.candidates(batch, space, counts, index)
        cands.append(c)
        feats = fusion.feature_matrix(c)
        scores.append(booster.predict(feats) if booster is not None else fusion.blend_score(c))
    all_c = pd.concat(cands, ignore_index=True)
    all_s = np.concatenate(scores).astype(np.float64)
    score_s = time.perf_counter() - t0
    out = []
    for target in TAIL_TARGETS:
        lists = lists_of(fusion.final_lists(all_c, all_s, space, K, target))
        if target == 0.0:
            record("fusion", lists, NAN, score_s, NAN)
        out.append((target, lists))
    log(f"candidate recall on the ranker's window: {meta.get('candidate_recall')}")
    return out


def run_bench(cfg: BenchConfig) -> dict[str, Any]:
    spark = get_spark("longtail-bench")
    wh = str(Path(cfg.work_dir) / "warehouse")
    log = lambda msg: print(f"[bench {cfg.name}] {msg}", flush=True)  # noqa: E731

    # 1. All clean events, through the pipeline's own ingest + clean.
    ds_final = pd.Timestamp(last_day(cfg.landing)).date()
    log(f"ingest + clean up to {ds_final}")
    _run_pipeline(spark, cfg.landing, wh, ds_final, full=False)
    events = (
        read_table(spark, wh, "silver_events", ds_final)
        .select(C.USER_ID, C.ITEM_ID, C.TS, C.WEIGHT)
        .toPandas()
    )
    events[C.TS] = pd.to_datetime(events[C.TS], utc=True)

    # 2. Global cutoff and the eval set.
    cutoff = compute_cutoff(events[C.TS], cfg.holdout_fraction)
    split = make_split(events, cutoff)
    ds_train = (cutoff - pd.Timedelta(days=1)).date()
    log(f"cutoff {cutoff} ({len(split.train)} train / {len(split.test)} held-out events)")

    # 3. The pipeline itself, run for the day before the cutoff.
    with PeakMemory() as mem:
        records = _run_pipeline(spark, cfg.landing, wh, ds_train, full=True)
    interactions = read_table(spark, wh, "interactions", ds_train).toPandas()
    catalogue = (
        read_table(spark, wh, "catalogue", ds_train)
        .select(C.ITEM_ID)
        .toPandas()[C.ITEM_ID]
        .tolist()
    )
    published = read_table(spark, wh, "recommendations", ds_train).toPandas()
    users = split.eval_users
    train_counts = interactions.groupby(C.ITEM_ID).size()
    n_train_users = interactions[C.USER_ID].nunique()
    head, tail = metrics.head_tail_split(train_counts, catalogue, 0.8)
    cold = set(catalogue) - set(train_counts.index)
    truth = split.truth
    n_pairs = sum(len(v) for v in truth.values())

    systems: dict[str, dict[str, Any]] = {}
    curves: dict[str, pd.DataFrame] = {}

    def record(name: str, recs: dict[str, list[str]], fit_s: float, score_s: float, mem_mb: float):
        recs = {u: recs.get(u, []) for u in users}
        m = metrics.evaluate(recs, truth, catalogue, train_counts, n_train_users, tail, cold)
        systems[name] = {
            **m,
            "fit_s": round(fit_s, 2),
            "score_s": round(score_s, 2),
            "peak_mem_mb": round(mem_mb, 0),
        }
        curves[name] = metrics.popularity_curve(recs, train_counts, catalogue, k=10)
        log(f"{name}: " + ", ".join(f"{k}={v:.4f}" for k, v in m.items() if v == v))

    # 4. Peers, same split (training interactions = the pipeline's own silver interactions).
    with PeakMemory() as m_pop:
        pop = peers.popularity(interactions, users, cfg.top_k)
    record("popularity", pop.recs, pop.fit_s, pop.score_s, m_pop.peak_mb)

    def _evaluate_lists(lists: dict[str, list[str]]) -> dict[str, float]:
        lists = {u: lists.get(u, []) for u in users}
        m = metrics.evaluate(lists, truth, catalogue, train_counts, n_train_users, tail, cold)
        return {k: m[k] for k in ("ndcg@10", "recall@20", "aplt@10", "tail_recall@20")}

    val_events = events[events[C.TS] < cutoff]
    val = validation_split(val_events, cfg.validation_fraction)
    val_inter = val.train.groupby([C.USER_ID, C.ITEM_ID], as_index=False)[C.WEIGHT].sum()
    log(f"tuning als on validation cutoff {val.cutoff} ({len(val.eval_users)} users)")
    t0 = time.perf_counter()
    best, trials = peers.tune_als(val_inter, val.truth, seed=cfg.seed, k=cfg.top_k)
    tune_s = time.perf_counter() - t0
    log(f"best als params {best} (tuning {tune_s:.0f}s)")
    with PeakMemory() as m_als:
        als = peers.als(interactions, users, cfg.top_k, best, cfg.seed)
    record("als", als.recs, als.fit_s, als.score_s, m_als.peak_mb)
    with PeakMemory() as m_spark:
        sals = peers.spark_als(spark, interactions, users, cfg.top_k, best, cfg.seed)
    record("spark_als", sals.recs, sals.fit_s, sals.score_s, m_spark.peak_mb)

    pub_recs = metrics.recs_from_frame(published[published[C.USER_ID].isin(set(users))])
    record(
        "published",
        pub_recs,
        sum(records[s]["seconds"] for s in ("content", "train_als", "train_ranker")),
        records["score"]["seconds"],
        mem.peak_mb,
    )

    # 5. The pipeline's parts on their own, and the accuracy / tail-share trade-off of its
    #    re-ranking, from the same item space and ranker the published run used.
    tradeoff = _pipeline_parts(spark, wh, ds_train, interactions, users, record, log)
    tradeoff = [
        {"system": "published (tail target)", "tail_target": t, **_evaluate_lists(lists)}
        for t, lists in tradeoff
    ]

    result = {
        "dataset": cfg.name,
        "protocol": {
            "cutoff": cutoff.isoformat(),
            "pipeline_run_date": ds_train.isoformat(),
            "holdout_fraction": cfg.holdout_fraction,
            "n_events": len(events),
            "n_train_events": len(split.train),
            "n_test_events": len(split.test),
            "n_train_users": int(n_train_users),
            "n_catalogue_items": len(catalogue),
            "n_eval_users": len(users),
            "n_test_pairs": n_pairs,
            "n_head_items": len(head),
            "n_tail_items": len(tail),
            "n_cold_items": len(cold),
            "n_test_pairs_tail": sum(1 for u in truth for i in truth[u] if i in tail),
            "n_test_pairs_cold": sum(1 for u in truth for i in truth[u] if i in cold),
            "k": cfg.top_k,
            "head_share": 0.8,
            "relevance": "binary; recall normalised by min(K, held-out count)",
            "als_tuning": {
                "best": best,
                "trials": trials,
                "seconds": round(tune_s, 1),
                "validation_cutoff": val.cutoff.isoformat(),
            },
            "machine": f"{os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB",
            "date": pd.Timestamp.now(tz="UTC").date().isoformat(),
            "clean_counts": records["clean"]["counts"],
        },
        "systems": systems,
        "tradeoff": tradeoff,
        "ranker": records["train_ranker"].get("training"),
    }
    result = _clean_nan(result)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(result, indent=2, sort_keys=False))
    write_report(result, curves, out / "report.html")
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
    parser.add_argument("--work-dir", default=str(REPO / "data" / "bench"))
    parser.add_argument("--reports-dir", default=str(REPO / "reports" / "bench"))
    args = parser.parse_args(argv)
    if args.dataset:
        from longtail.bench.adapters import adapt

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
    )
    started = time.time()
    run_bench(cfg)
    print(f"[bench {name}] done in {time.time() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
