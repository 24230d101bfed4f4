"""The quality stage's Spark metrics equal the pandas reference (`evaluate_previous`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from longtail.evaluation import HEAD_SHARE
from longtail.stages.quality import evaluate_previous, spark_metrics

PAIR = "user_id string, item_id string"
RECS = "user_id string, rank int, item_id string"


def _frames(
    recs: list[tuple[str, int, str]],
    history: list[tuple[str, str]],
    arrived: list[tuple[str, str]],
    catalogue: list[str],
) -> tuple[pd.DataFrame, ...]:
    return (
        pd.DataFrame(recs, columns=["user_id", "rank", "item_id"]),
        pd.DataFrame(history, columns=["user_id", "item_id"], dtype=object),
        pd.DataFrame(arrived, columns=["user_id", "item_id"], dtype=object),
        pd.DataFrame({"item_id": catalogue}, dtype=object),
    )


def _both(spark: Any, recs, history, arrived, catalogue) -> tuple[dict, dict]:
    r, h, a, c = _frames(recs, history, arrived, catalogue)
    want = evaluate_previous(r, h, a.drop_duplicates(), c["item_id"].tolist())
    got = spark_metrics(
        spark.createDataFrame(recs, RECS),
        spark.createDataFrame(history, PAIR),
        spark.createDataFrame(arrived, PAIR),
        spark.createDataFrame([(i,) for i in catalogue], "item_id string"),
    )
    return got, want


def _assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for key, expected in want.items():
        if key.startswith("n_"):
            assert got[key] == expected, key
        elif math.isnan(expected):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(float(expected), abs=1e-9, rel=0), key


def _handmade() -> tuple[list, list, list, list]:
    # Counts in the catalogue: a 3, b 3, c 2, d 2, e 1; 80% of 11 = 8.8 -> head {a, b, c, d}
    # only because of the id tie-break between c and d; zz (5) is outside the catalogue.
    history = [("h1", "a"), ("h2", "a"), ("h3", "a"), ("h1", "b"), ("h2", "b"), ("h3", "b")]
    history += [("h1", "c"), ("u1", "c"), ("h1", "d"), ("h2", "d"), ("h3", "e"), ("h3", "e")]
    history += [("h9", "zz")] * 5
    catalogue = ["a", "b", "c", "d", "e", "f", "g", "h", "a"] + [f"t{i:02d}" for i in range(30)]
    recs = [("u1", r, i) for r, i in enumerate(["zz", "f", "a", "f", "g", "t01"], start=1)]
    recs += [("u2", r, f"t{r:02d}") for r in range(25, 0, -1)]  # a long list, rows reversed
    recs += [("u3", 2, "b"), ("u3", 1, "c")]  # no truth
    recs += [("u4", r, f"t{(r * 7) % 30:02d}") for r in range(1, 13)]
    arrived = [("u1", "f"), ("u1", "c"), ("u1", "yy"), ("u1", "g"), ("u1", "t01")]  # c seen
    arrived += [("u2", f"t{i:02d}") for i in range(0, 30, 2)]  # 15 truth items, some past 20
    arrived += [("u4", "t07"), ("u4", "t14"), ("u4", "h")]
    arrived += [("x9", "a"), ("x9", "f"), ("u2", "t04")]  # unlisted user; repeat pair
    return recs, history, arrived, catalogue


def test_spark_metrics_equal_the_pandas_reference(spark):
    got, want = _both(spark, *_handmade())
    assert want["n_eval_users"] == 3 and not math.isnan(want["tail_recall@20"])
    _assert_same(got, want)


@pytest.mark.parametrize("seed", [3, 11])
def test_spark_metrics_equal_the_reference_on_random_data(spark, seed):
    rng = np.random.default_rng(seed)
    items = [f"i{j:02d}" for j in range(40)]
    catalogue = items[:32] + items[:3]  # i32.. are recommended or bought but not listed
    pop = rng.zipf(1.6, size=len(items)).astype(float)
    pop /= pop.sum()
    users = [f"u{j}" for j in range(30)]
    history = [(u, str(i)) for u in users for i in rng.choice(items, size=6, p=pop)]
    recs = []
    for u in users[:24]:
        n = int(rng.integers(1, 26))
        ranks = rng.permutation(n) + 1  # rows out of rank order; repeats of an item allowed
        recs += [(u, int(r), str(rng.choice(items))) for r in ranks]
    arrived = [(u, str(i)) for u in users for i in rng.choice(items, size=int(rng.integers(0, 25)))]
    got, want = _both(spark, recs, history, arrived, catalogue)
    assert want["n_eval_users"] > 5
    _assert_same(got, want)


def test_no_truth_and_no_tail_truth(spark):
    recs, history, _, catalogue = _handmade()
    got, want = _both(spark, recs, history, history[:4], catalogue)  # nothing new arrived
    assert "ndcg@10" not in want
    _assert_same(got, want)
    got, want = _both(spark, recs, history, [("u1", "a"), ("u3", "zz")], catalogue)
    assert math.isnan(want["tail_recall@20"])  # a is head, zz outside the catalogue
    _assert_same(got, want)


def _publish_inputs(spark, wh: str, prev, ds) -> tuple[list, list, list, list]:
    from longtail.warehouse.publish import write_audit_publish

    recs, history, arrived, catalogue = _handmade()
    old = [("u3", "a", "2024-05-01 23:00:00")]  # before the window: u3 stays without truth
    events = [(u, i, "2024-05-03 08:00:00") for u, i in arrived] + old
    for table, night, rows, schema in (
        ("recommendations", prev, recs, RECS),
        ("interactions", prev, history, PAIR),
        ("catalogue", prev, [(i,) for i in catalogue], "item_id string"),
        ("silver_events", ds, events, f"{PAIR}, ts string"),
    ):
        frame = spark.createDataFrame(rows, schema)
        if table == "silver_events":
            frame = frame.withColumn("ts", frame["ts"].cast("timestamp"))
        write_audit_publish(frame, wh, table, night)
    return recs, history, arrived, catalogue


def test_the_stage_publishes_the_reference_metrics(spark, tmp_path):
    from datetime import date

    from longtail.config import QualityConfig
    from longtail.stages.quality import night_head_share, run
    from longtail.warehouse.publish import read_table

    prev, ds, wh = date(2024, 5, 1), date(2024, 5, 3), str(tmp_path / "wh")
    recs, history, arrived, catalogue = _publish_inputs(spark, wh, prev, ds)
    assert night_head_share(spark, wh, prev) == HEAD_SHARE  # no score record: the default

    out = run(spark, QualityConfig(ds=ds, warehouse=wh))
    want = evaluate_previous(*_frames(recs, history, arrived, catalogue)[:3], catalogue)
    assert out["metrics"]["evaluated_run"] == prev.isoformat()
    _assert_same({k: out["metrics"][k] for k in want}, want)
    (row,) = read_table(spark, wh, "quality_metrics", ds).collect()
    assert row["n_test_pairs"] == want["n_test_pairs"]
    assert row["ndcg_at_10"] == pytest.approx(want["ndcg@10"], abs=1e-9, rel=0)


def test_the_stage_splits_at_the_evaluated_nights_head_share(spark, tmp_path):
    """A user's score.head_share decides the night's is_long_tail; aplt and tail recall use it."""
    from datetime import date

    from longtail.config import QualityConfig
    from longtail.stages.quality import run
    from longtail.warehouse.records import write_record

    prev, ds, wh = date(2024, 5, 1), date(2024, 5, 3), str(tmp_path / "wh")
    recs, history, arrived, catalogue = _publish_inputs(spark, wh, prev, ds)
    write_record(spark, wh, prev, "score", {"config": {"head_share": 0.5}})

    out = run(spark, QualityConfig(ds=ds, warehouse=wh))
    frames = _frames(recs, history, arrived, catalogue)[:3]
    want = evaluate_previous(*frames, catalogue, head_share=0.5)
    _assert_same({k: out["metrics"][k] for k in want}, want)
    assert want["aplt@10"] != evaluate_previous(*frames, catalogue)["aplt@10"]
