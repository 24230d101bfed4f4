"""The ranker's temporal label window, found and labelled inside Spark.

The ranker learns from the new (user, item) pairs of a recent window [S, end): pairs a user with
history before S first touched inside it. Only counts, the sampled users and their labels reach
the driver; the events stay in Spark. The same definitions in pandas are
`evaluation.split.new_pairs` (the one new-pair rule) and `ranker.label_window_start` (the
benchmark and the tests use those).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from longtail import columns as C

PAIR_FIRST = "pair_first_us"
USER_FIRST = "user_first_us"


def epoch_us(ts: pd.Timestamp) -> int:
    """A UTC instant in epoch microseconds (rounded up), the unit Spark compares in."""
    return -(-pd.Timestamp(ts).value // 1000)


def window_days(min_days: int, max_days: int) -> list[int]:
    """Window lengths tried, shortest first: min_days doubling while below max_days."""
    out, days = [], min_days
    while days < max_days:
        out.append(days)
        days = min(max_days, days * 2)
    return out


def pick_start(
    end: pd.Timestamp, min_days: int, max_days: int, min_pairs: int, new_pairs: Mapping[int, int]
) -> pd.Timestamp:
    """The latest start whose window holds at least min_pairs new pairs, else end - max_days.

    new_pairs maps each length of `window_days` to the count of new pairs in that window.
    """
    for days in window_days(min_days, max_days):
        if new_pairs[days] >= min_pairs:
            return end - pd.Timedelta(days=days)
    return end - pd.Timedelta(days=max_days)


def pair_firsts(events: DataFrame, end: pd.Timestamp) -> DataFrame:
    """(user_id, item_id, pair_first_us, user_first_us) over events before end.

    A pair is new in [S, end) exactly when pair_first_us >= S and user_first_us < S.
    """
    ts = F.unix_micros(F.col(C.TS))
    pairs = (
        events.where(ts < F.lit(epoch_us(end)))
        .groupBy(C.USER_ID, C.ITEM_ID)
        .agg(F.min(ts).alias(PAIR_FIRST))
    )
    return pairs.withColumn(USER_FIRST, F.min(PAIR_FIRST).over(Window.partitionBy(C.USER_ID)))


def _is_new(start: pd.Timestamp) -> F.Column:
    s = F.lit(epoch_us(start))
    return (F.col(PAIR_FIRST) >= s) & (F.col(USER_FIRST) < s)


def new_pair_counts(firsts: DataFrame, starts: Mapping[int, pd.Timestamp]) -> dict[int, int]:
    """New pairs per window, for all candidate windows in one pass (one row to the driver)."""
    if not starts:
        return {}
    row = firsts.agg(*[F.count_if(_is_new(s)).alias(f"d{d}") for d, s in starts.items()]).first()
    return {d: int(row[f"d{d}"]) for d in starts}


def new_pairs(firsts: DataFrame, start: pd.Timestamp) -> DataFrame:
    """(user_id, item_id): the labels of the window [start, end)."""
    return firsts.where(_is_new(start)).select(C.USER_ID, C.ITEM_ID)


def sample_users(pairs: DataFrame, max_users: int, seed: int) -> list[str]:
    """The users `ranker.sample_users` picks from the labelled users (sha1 of "seed:user").

    Bounded by max_users: only the sample reaches the driver.
    """
    key = F.sha1(F.concat(F.lit(f"{seed}:"), F.col(C.USER_ID)))
    picked = (
        pairs.select(C.USER_ID)
        .distinct()
        .select(C.USER_ID, key.alias("_key"))
        .orderBy("_key", C.USER_ID)
        .limit(max_users)
    )
    return sorted(r[0] for r in picked.collect())


def labels_of(pairs: DataFrame, users: DataFrame) -> dict[str, set[str]]:
    """The sampled users' new items (users: one user_id column, the sample)."""
    rows = pairs.join(users, C.USER_ID, "left_semi").collect()
    truth: dict[str, set[str]] = {}
    for user, item in rows:
        truth.setdefault(user, set()).add(item)
    return truth


def hidden_items(share: float, seed: int) -> F.Column:
    """True for a seeded share of items: the first 8 hex digits of sha1("seed:hide:item_id"),
    read as an unsigned 32-bit number, below share x 2^32. The same items for the same seed."""
    bound = int(share * 2**32)
    key = F.sha1(F.concat(F.lit(f"{seed}:hide:"), F.col(C.ITEM_ID)))
    digest = F.conv(F.substring(key, 1, 8), 16, 10)
    return digest.cast("long") < F.lit(bound)


LAST_ITEMS_MIN = 3


def last_pairs(firsts: DataFrame, share: float, min_items: int = LAST_ITEMS_MIN) -> DataFrame:
    """(user_id, item_id): each user's last max(1, floor(share x n)) of n distinct items, for
    users with at least min_items; ties in time broken by item id, latest id first.

    The labels where a temporal window finds too few returning users: every user is asked to
    predict their own latest items from the rest of their history.
    """
    user = Window.partitionBy(C.USER_ID)
    latest = user.orderBy(F.col(PAIR_FIRST).desc(), F.col(C.ITEM_ID).desc())
    n = F.count(F.lit(1)).over(user)
    ranked = firsts.select(
        C.USER_ID,
        C.ITEM_ID,
        n.alias("_n"),
        F.greatest(F.lit(1), F.floor(n * F.lit(share))).alias("_keep"),
        F.row_number().over(latest).alias("_r"),
    )
    kept = (F.col("_n") >= min_items) & (F.col("_r") <= F.col("_keep"))
    return ranked.where(kept).select(C.USER_ID, C.ITEM_ID)
