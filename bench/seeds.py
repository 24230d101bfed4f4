"""`make bench-seeds`: how far `published` moves when only the learned stages' seed changes.

One run gives one number; it cannot tell a 3% change from the run-to-run spread of a model with
random initialisation (ALS) and a sampled, bagged ranker (LightGBM). This uses the bench's own
protocol (bench.replay steps 1-3: same clean events, split and derived landing), then re-runs the
night's learned stages (ALS, item space, ranker, score, publish) once per seed on the same data and
content, and reports ndcg@10 and aplt@10 of `published` per seed with their mean and spread.
Nothing is chosen from the result: the default configuration keeps its seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench import metrics
from bench.adapters import adapt
from bench.replay import REPO, BenchConfig, prepare, run_learned_stages, run_pipeline
from longtail import columns as C
from longtail import tables
from longtail.sparkutil import get_spark
from longtail.warehouse.publish import read_table

METRICS = ("ndcg@10", "aplt@10")


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation, min and max of one metric over the seeds."""
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def published_metrics(
    recs: dict[str, list[str]], truth: dict[str, set[str]], tail: set[str], users: list[str]
) -> dict[str, float]:
    recs = {u: recs.get(u, []) for u in users}
    return {
        "ndcg@10": metrics.ndcg_at_k(recs, truth, 10),
        "aplt@10": metrics.aplt_at_k(recs, tail, 10, users),
    }


def run_seeds(cfg: BenchConfig, seeds: list[int]) -> dict[str, Any]:
    spark = get_spark("longtail-bench-seeds")
    wh = str(Path(cfg.work_dir) / "warehouse")
    log = lambda msg: print(f"[seeds {cfg.name}] {msg}", flush=True)  # noqa: E731
    prep = prepare(spark, cfg, wh, log)
    ds = prep.ds_train
    run_pipeline(spark, prep.landing, wh, ds, full=True, seed=seeds[0])
    interactions = read_table(spark, wh, tables.INTERACTIONS, ds).select(C.ITEM_ID).toPandas()
    catalogue = read_table(spark, wh, tables.CATALOGUE, ds).select(C.ITEM_ID).toPandas()[C.ITEM_ID]
    train_counts = interactions.groupby(C.ITEM_ID).size()
    _, tail = metrics.head_tail_split(train_counts, catalogue.tolist(), metrics.HEAD_SHARE)
    users = list(prep.split.eval_users)
    wanted = set(users)
    runs = []
    for i, seed in enumerate(seeds):
        if i:
            run_learned_stages(spark, wh, ds, seed)
        published = read_table(spark, wh, tables.RECOMMENDATIONS, ds).toPandas()
        recs = metrics.recs_from_frame(published[published[C.USER_ID].isin(wanted)])
        m = published_metrics(recs, prep.split.truth, set(tail), users)
        log(f"seed {seed}: " + ", ".join(f"{k}={v:.4f}" for k, v in m.items()))
        runs.append({"seed": seed, **m})
    result = {
        "dataset": cfg.name,
        "protocol": {"split": prep.protocol, "pipeline_run_date": ds.isoformat()},
        "varied": "seed of AlsConfig and RankerConfig; data, split, content and all else fixed",
        "runs": runs,
        "summary": {k: spread([r[k] for r in runs]) for k in METRICS},
    }
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "seeds.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True, help="a folder name under --data-dir")
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "datasets"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44, 45, 46])
    parser.add_argument("--work-dir", default=str(REPO / "data" / "bench"))
    parser.add_argument("--reports-dir", default=str(REPO / "reports" / "bench"))
    args = parser.parse_args(argv)
    if len(set(args.seeds)) != len(args.seeds):
        parser.error("--seeds must not repeat")
    landing = Path(args.work_dir) / "landing" / args.dataset
    adapt(args.dataset, args.data_dir, landing)
    cfg = BenchConfig(
        name=args.dataset,
        landing=str(landing),
        work_dir=str(Path(args.work_dir) / "seeds" / args.dataset),
        out_dir=str(Path(args.reports_dir) / args.dataset),
    )
    started = time.time()
    result = run_seeds(cfg, args.seeds)
    print(json.dumps(result["summary"], indent=2))
    print(f"[seeds {cfg.name}] done in {time.time() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
