"""The driver's co-occurrence neighbours (cooccurrence_matrix, train_ranker's path) against hand
values, a dense numpy reference, and Spark's item_stats.cooccurrence_pairs (item_space's path):
the same rows, the scores bit for bit."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from tests.unit.test_item_stats import (
    as_neighbours,
    assert_same_neighbours,
    by_hand_cap3_top2,
    dense_reference,
    interactions_pd,
)

from longtail import columns as C
from longtail.cooccurrence_matrix import (
    NO_TIME,
    cooccurrence_from_indexed,
    pair_counts,
    summed_best_neighbours,
)
from longtail.fusion import NEIGHBOUR_ID
from longtail.indexing import collect_indexed_with_lasts
from longtail.item_stats import cooccurrence_pairs


def _indexed(inter: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    _, u = np.unique(inter[C.USER_ID].to_numpy(dtype=str), return_inverse=True)
    items, i = np.unique(inter[C.ITEM_ID].to_numpy(dtype=str), return_inverse=True)
    last = inter["last_ts"]
    last_us = np.where(
        last.isna(), NO_TIME, last.fillna(pd.Timestamp(0, tz="UTC")).astype("int64") // 1000
    )
    return u, i, last_us.astype(np.int64), items


def _driver(inter: pd.DataFrame, top: int, cap: int, keep: set[str] | None = None, **kw: Any):
    u, i, last_us, items = _indexed(inter)
    mask = np.ones(len(items), bool) if keep is None else np.isin(items, sorted(keep))
    return cooccurrence_from_indexed(u, i, last_us, items, mask, top, cap, **kw)


def test_by_hand_with_cap_and_ties() -> None:
    got = as_neighbours(_driver(interactions_pd(), top=2, cap=3))
    assert_same_neighbours(got, by_hand_cap3_top2())


def test_items_outside_the_catalogue_neither_count_nor_take_a_place_in_the_cap() -> None:
    # without b, u2's and u3's a is what is left; u1 keeps a, c, d (e tied and last): as if
    # b's rows had never been there
    inter = interactions_pd()
    got = as_neighbours(_driver(inter, top=5, cap=3, keep={"a", "c", "d", "e"}))
    want = dense_reference(inter[inter[C.ITEM_ID] != "b"], cap=3, top=5)
    assert_same_neighbours(got, want)


@pytest.mark.parametrize(("cap", "top", "block"), [(3, 2, 1), (200, 50, 2), (2, 1, 2048)])
def test_matches_a_dense_reference(cap: int, top: int, block: int) -> None:
    inter = interactions_pd()
    got = as_neighbours(_driver(inter, top=top, cap=cap, block_items=block))
    want = dense_reference(inter, cap, top)
    assert_same_neighbours(got, want)


def _random_interactions(seed: int, users: int = 60, items: int = 40) -> pd.DataFrame:
    """Many ties: few distinct last events, so the cap's and the top's tie rules decide; some
    pairs have none (null, after every time, 1969's included), some a time before 1970."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        for i in rng.choice(items, size=rng.integers(1, 15), replace=False):
            day = int(rng.integers(0, 5))
            last = {3: None, 4: "1969-12-31"}.get(day, f"2024-05-{10 + day}")
            rows.append((f"u{u:03d}", f"i{i:03d}", last))
    df = pd.DataFrame(rows, columns=[C.USER_ID, C.ITEM_ID, "last_ts"])
    df["last_ts"] = pd.to_datetime(df["last_ts"], utc=True)
    df["first_ts"] = df["last_ts"]
    df[C.WEIGHT] = 1.0
    return df


@pytest.mark.parametrize("seed", [1, 2])
def test_equals_the_spark_path_bit_for_bit(spark: Any, seed: int) -> None:
    inter = _random_interactions(seed)
    keep = {f"i{i:03d}" for i in range(40) if i % 7}
    frame = spark.createDataFrame(inter[[C.USER_ID, C.ITEM_ID, "last_ts"]])
    ids = spark.createDataFrame([(x,) for x in sorted(keep)], f"{C.ITEM_ID} string")
    want = cooccurrence_pairs(frame.join(ids, C.ITEM_ID, "left_semi"), top=4, cap=5).toPandas()
    got = _driver(inter, top=4, cap=5, keep=keep, block_items=7)
    key = [C.ITEM_ID, NEIGHBOUR_ID]
    want = want.sort_values(key).reset_index(drop=True)
    got = got.sort_values(key).reset_index(drop=True)
    assert len(want) > 100
    assert got[key].equals(want[key])
    assert (got[C.SCORE].to_numpy().view(np.int64) == want[C.SCORE].to_numpy().view(np.int64)).all()


def test_collected_last_events_give_the_spark_rows(spark: Any) -> None:
    # the arrays train_ranker collects (ids sorted in Spark, nulls as NO_TIME) feed it directly
    inter = _random_interactions(3)
    frame = spark.createDataFrame(inter)
    ii, last_us = collect_indexed_with_lasts(frame)
    assert (last_us == NO_TIME).sum() == inter["last_ts"].isna().sum() > 0
    got = cooccurrence_from_indexed(
        ii.user_idx, ii.item_idx, last_us, ii.item_ids, np.ones(len(ii.item_ids), bool), 4, 5
    )
    want = cooccurrence_pairs(frame, top=4, cap=5).toPandas()
    key = [C.ITEM_ID, NEIGHBOUR_ID]
    got, want = (f.sort_values(key).reset_index(drop=True) for f in (got, want))
    assert got[key].equals(want[key])
    assert (got[C.SCORE].to_numpy().view(np.int64) == want[C.SCORE].to_numpy().view(np.int64)).all()


def test_no_interactions_give_no_rows() -> None:
    empty = np.zeros(0, np.int64)
    got = cooccurrence_from_indexed(empty, empty, empty, np.array(["a"]), np.ones(1, bool))
    assert got.empty
    assert got.columns.tolist() == [C.ITEM_ID, NEIGHBOUR_ID, C.SCORE]


def test_partial_counts_of_split_users_sum_to_the_whole() -> None:
    # each partition of users counts its own pairs; summed, they are the counts of all users
    inter = _random_interactions(4)
    users = inter[C.USER_ID].to_numpy()
    items = np.unique(inter[C.ITEM_ID], return_inverse=True)[1]
    whole = pair_counts(users, items)
    odd = np.array([int(u[1:]) % 2 == 1 for u in users])
    parts = [pair_counts(users[m], items[m], block_items=3) for m in (odd, ~odd)]
    n = np.bincount(items)
    want = summed_best_neighbours(*whole, n, 1000)
    got = summed_best_neighbours(
        *(np.concatenate([p[k] for p in parts]) for k in range(3)), n, 1000
    )
    for w, g in zip(want, got, strict=True):
        np.testing.assert_array_equal(w, g)
    # by hand: a pair's count is the users holding both; both directions, no item with itself
    i, j, co = whole
    assert not (i == j).any()
    a, b = items[users == users[0]][:2]
    holders = {u for u, x in zip(users, items, strict=True) if x == a} & {
        u for u, x in zip(users, items, strict=True) if x == b
    }
    assert co[(i == a) & (j == b)].tolist() == co[(i == b) & (j == a)].tolist() == [len(holders)]


def test_spark_path_sums_counts_across_partitions(spark: Any) -> None:
    # AQE would put a small input into one partition: force several, so counts meet in the sum
    inter = _random_interactions(5)
    conf = {
        "spark.sql.adaptive.coalescePartitions.enabled": "false",
        "spark.sql.shuffle.partitions": "5",
    }
    before = {k: spark.conf.get(k) for k in conf}
    for k, v in conf.items():
        spark.conf.set(k, v)
    try:
        frame = spark.createDataFrame(inter[[C.USER_ID, C.ITEM_ID, "last_ts"]])
        want = cooccurrence_pairs(frame, top=4, cap=5).toPandas()
    finally:
        for k, v in before.items():
            spark.conf.set(k, v)
    got = _driver(inter, top=4, cap=5)
    key = [C.ITEM_ID, NEIGHBOUR_ID]
    got, want = (f.sort_values(key).reset_index(drop=True) for f in (got, want))
    assert len(want) > 100
    assert got[key].equals(want[key])
    assert (got[C.SCORE].to_numpy().view(np.int64) == want[C.SCORE].to_numpy().view(np.int64)).all()
