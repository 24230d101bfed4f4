"""Input normalisation shared by the pandas metrics (``ranking``) and the split (``split``).

Every metric first turns the recommendations into one "long" frame (user_id, pos, item_id): each
list is cut to its first k entries and repeats of an item are dropped (the first occurrence keeps
its position), so a duplicated recommendation can never earn a hit, a tail slot or a count twice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from itertools import chain

import numpy as np
import pandas as pd

from longtail.columns import ITEM_ID, RANK, USER_ID

Recs = Mapping[str, Sequence[str]] | pd.DataFrame
Truth = Mapping[str, Collection[str]]
Counts = Mapping[str, int] | pd.Series

POS = "pos"
NAN = float("nan")


def recs_from_frame(df: pd.DataFrame) -> dict[str, list[str]]:
    """Turn a (user_id, rank, item_id) frame into ordered lists; rank order, not value, counts."""
    ordered = df.sort_values([USER_ID, RANK], kind="stable")
    return ordered.groupby(USER_ID, sort=False)[ITEM_ID].agg(list).to_dict()


def check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def _explode(keys: list[object], lists: list[list[object]]) -> tuple[np.ndarray, ...]:
    """Flatten parallel key/list pairs into (key, position, value) arrays, no per-row loop."""
    lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    total = int(lengths.sum())
    key_arr = np.empty(len(keys), dtype=object)
    key_arr[:] = keys
    key_col = np.repeat(key_arr, lengths)
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    pos = np.arange(total, dtype=np.int64) - starts
    values = np.fromiter(chain.from_iterable(lists), dtype=object, count=total)
    return key_col, pos, values


def long_frame(recs: Recs, k: int) -> tuple[pd.DataFrame, pd.Index]:
    """Top-k long frame (user_id, pos, item_id), de-duplicated per user, plus every user in recs.

    The user index is returned separately because users with empty lists have no rows but still
    count (as zeros) in per-user means such as APLT.
    """
    check_k(k)
    if isinstance(recs, pd.DataFrame):
        ordered = recs.sort_values([USER_ID, RANK], kind="stable")
        users = pd.Index(pd.unique(ordered[USER_ID]), dtype=object)
        frame = pd.DataFrame(
            {
                USER_ID: ordered[USER_ID].to_numpy(dtype=object),
                POS: ordered.groupby(USER_ID, sort=False).cumcount().to_numpy(dtype=np.int64),
                ITEM_ID: ordered[ITEM_ID].to_numpy(dtype=object),
            }
        )
        frame = frame[frame[POS] < k]
    else:
        keys = list(recs.keys())
        users = pd.Index(keys, dtype=object)
        user_col, pos, items = _explode(keys, [list(v)[:k] for v in recs.values()])
        frame = pd.DataFrame({USER_ID: user_col, POS: pos, ITEM_ID: items})
    frame = frame[~frame.duplicated([USER_ID, ITEM_ID])]
    return frame.reset_index(drop=True), users


def truth_frame(truth: Truth) -> tuple[pd.DataFrame, pd.Series]:
    """Held-out (user_id, item_id) pairs plus |truth_u| per user (zero-size users included)."""
    keys = list(truth.keys())
    sets = [list(dict.fromkeys(v)) for v in truth.values()]
    user_col, _, items = _explode(keys, sets)
    pairs = pd.DataFrame({USER_ID: user_col, ITEM_ID: items})
    sizes = pd.Series([len(s) for s in sets], index=pd.Index(keys, dtype=object), dtype=np.int64)
    return pairs, sizes


def catalogue_index(catalogue: Iterable[str]) -> pd.Index:
    """Unique catalogue ids in first-seen order, so a repeated id cannot skew coverage or Gini."""
    return pd.Index(pd.unique(np.asarray(list(catalogue), dtype=object)), dtype=object)


def counts_series(train_counts: Counts) -> pd.Series:
    """Item -> training interaction count as a Series with a unique index."""
    if isinstance(train_counts, pd.Series):
        counts = train_counts
    else:
        counts = pd.Series(dict(train_counts), dtype=None if train_counts else np.int64)
    if not counts.index.is_unique:
        counts = counts.groupby(level=0).sum()
    return counts


def top_k(long: pd.DataFrame, k: int) -> pd.DataFrame:
    check_k(k)
    return long[long[POS] < k]
