"""The ranker's label window computed in Spark against the pandas reference (`ranker.new_pairs`,
`ranker.label_window_start`, `ranker.sample_users`) and against hand-counted cases."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from longtail import columns as C
from longtail import label_window, ranker

END = pd.Timestamp("2024-03-01", tz="UTC")


def random_events(seed: int, n: int = 3000) -> pd.DataFrame:
    """Users arrive over 90 days, each touching items (some repeatedly) from a skewed catalogue."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 300, n)
    arrival = rng.uniform(0, 90, 300)  # days before END at which each user starts
    days_before = arrival[users] * rng.uniform(0, 1, n)
    ts = END - pd.to_timedelta(np.round(days_before * 86400e6), unit="us")
    return pd.DataFrame(
        {
            C.USER_ID: [f"u{u:03d}" for u in users],
            C.ITEM_ID: [f"i{i:03d}" for i in rng.zipf(1.5, n) % 400],
            C.TS: ts,
            C.EVENT_TYPE: "purchase",
            C.WEIGHT: 1.0,
        }
    )


def _spark_frame(spark: Any, events: pd.DataFrame) -> Any:
    return spark.createDataFrame(events.assign(**{C.TS: events[C.TS].dt.tz_convert(None)}))


def test_window_days_double_up_to_the_maximum() -> None:
    assert label_window.window_days(7, 365) == [7, 14, 28, 56, 112, 224]
    assert label_window.window_days(5, 12) == [5, 10]
    assert label_window.window_days(30, 30) == []


def test_pick_start_takes_the_shortest_window_with_enough_pairs() -> None:
    counts = {7: 10, 14: 40, 28: 90}
    assert label_window.pick_start(END, 7, 50, 40, counts) == END - pd.Timedelta(days=14)
    assert label_window.pick_start(END, 7, 50, 5, counts) == END - pd.Timedelta(days=7)
    assert label_window.pick_start(END, 7, 50, 91, counts) == END - pd.Timedelta(days=50)


def test_pair_firsts_by_hand(spark: Any) -> None:
    events = pd.DataFrame(
        {
            C.USER_ID: ["a", "a", "a", "b", "b"],
            C.ITEM_ID: ["x", "x", "y", "y", "z"],
            C.TS: pd.to_datetime(
                ["2024-02-01", "2024-01-01", "2024-02-20", "2024-02-27", "2024-03-01"], utc=True
            ),
            C.EVENT_TYPE: "view",
            C.WEIGHT: 1.0,
        }
    )
    firsts = label_window.pair_firsts(_spark_frame(spark, events), END).toPandas()
    got = {
        (r[C.USER_ID], r[C.ITEM_ID]): (r[label_window.PAIR_FIRST], r[label_window.USER_FIRST])
        for _, r in firsts.iterrows()
    }
    us = lambda text: pd.Timestamp(text, tz="UTC").value // 1000  # noqa: E731
    # b's event at END itself is outside the window: b/z does not exist
    assert got == {
        ("a", "x"): (us("2024-01-01"), us("2024-01-01")),
        ("a", "y"): (us("2024-02-20"), us("2024-01-01")),
        ("b", "y"): (us("2024-02-27"), us("2024-02-27")),
    }
    start = END - pd.Timedelta(days=14)  # 2024-02-16: a/y is new, b has no history before
    labels = label_window.new_pairs(
        label_window.pair_firsts(_spark_frame(spark, events), END), start
    )
    assert [tuple(r) for r in labels.collect()] == [("a", "y")]


@pytest.mark.parametrize("seed", [0, 1])
def test_spark_window_and_labels_equal_the_pandas_reference(spark: Any, seed: int) -> None:
    events = random_events(seed)
    firsts = label_window.pair_firsts(_spark_frame(spark, events), END).cache()
    days = label_window.window_days(2, 64)
    counts = label_window.new_pair_counts(firsts, {d: END - pd.Timedelta(days=d) for d in days})
    ts = events[C.TS]
    for d in days:  # every candidate window counted the way ranker.new_pairs counts it
        s = END - pd.Timedelta(days=d)
        expected = ranker.new_pairs(events[ts < s], events[(ts >= s) & (ts < END)])
        assert counts[d] == sum(len(v) for v in expected.values()), d
    min_pairs = sorted(counts.values())[len(counts) // 2]  # a threshold met part-way up
    start = label_window.pick_start(END, 2, 64, min_pairs, counts)
    assert start == ranker.label_window_start(events, END, 2, 64, min_pairs)

    truth = ranker.new_pairs(events[ts < start], events[(ts >= start) & (ts < END)])
    labels = label_window.new_pairs(firsts, start)
    assert len(truth) > 20
    picked = label_window.sample_users(labels, 15, 42)
    assert picked == ranker.sample_users(sorted(truth), 15, 42)
    sample = spark.createDataFrame([(u,) for u in picked], f"{C.USER_ID} string")
    assert label_window.labels_of(labels, sample) == {u: truth[u] for u in picked}
    firsts.unpersist()
