"""The head/tail split and the new-pair rule, one definition each (pandas/numpy).

Their Spark twins, ``spark.item_flags`` and ``spark.new_pairs``, call or mirror these: the
published ``is_long_tail`` (``fusion.head_tail``), the quality stage's APLT and tail recall, the
ranker's labels and the benchmark's truth all come from here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import numpy as np
import pandas as pd

from longtail import columns as C
from longtail.evaluation import HEAD_SHARE
from longtail.evaluation.frames import Counts, catalogue_index, counts_series

# Absolute slack on the head threshold, so e.g. 0.07 * 100 == 7.000000000000001 still stops at
# a count of 7 (interaction counts are whole numbers: a real shortfall is at least 1).
_SLACK = 1e-9


def _check_share(head_share: float) -> None:
    if not 0.0 < head_share <= 1.0:
        raise ValueError(f"head_share must be in (0, 1], got {head_share}")


def n_head(ordered_counts: np.ndarray, head_share: float = HEAD_SHARE) -> int:
    """Length of the shortest prefix of ``ordered_counts`` (most interacted first) reaching
    ``head_share`` of the total; 0 when there are no interactions."""
    _check_share(head_share)
    cum = np.cumsum(np.asarray(ordered_counts).astype(np.float64))
    total = float(cum[-1]) if len(cum) else 0.0
    if total <= 0:
        return 0
    return int(np.searchsorted(cum, head_share * total - _SLACK, side="left")) + 1


def head_tail(counts: np.ndarray, head_share: float = HEAD_SHARE) -> np.ndarray:
    """is_tail per item of ``counts`` (items in id order): outside the fewest most-interacted
    items holding ``head_share`` of all interactions, ties by position (= item id)."""
    counts = np.asarray(counts)
    order = np.lexsort((np.arange(len(counts)), -counts))
    is_tail = np.ones(len(counts), bool)
    is_tail[order[: n_head(counts[order], head_share)]] = False
    return is_tail


def popularity_order(train_counts: Counts, catalogue: Iterable[str]) -> pd.DataFrame:
    """Catalogue items, most interacted first (ties by item id ascending), with count ``n``."""
    cat = catalogue_index(catalogue)
    counts = counts_series(train_counts).reindex(cat, fill_value=0)
    frame = pd.DataFrame({C.ITEM_ID: cat, "n": counts.to_numpy()})
    return frame.sort_values(["n", C.ITEM_ID], ascending=[False, True], kind="stable").reset_index(
        drop=True
    )


def head_tail_split(
    train_counts: Counts, catalogue: Iterable[str], head_share: float = HEAD_SHARE
) -> tuple[set[str], set[str]]:
    """Split the catalogue into (head, tail) by share of training interactions.

    Head is the smallest prefix of items, most interacted first (ties by item id ascending so
    reruns agree), whose counts reach ``head_share`` of all catalogue interactions. Tail is the
    rest of the catalogue, including never-interacted items. Counts for items outside the
    catalogue are ignored: the catalogue defines what can be recommended. The same split as
    ``head_tail`` gives the pipeline's items.
    """
    _check_share(head_share)
    frame = popularity_order(train_counts, catalogue)
    head = n_head(frame["n"].to_numpy(), head_share)
    ordered = frame[C.ITEM_ID].tolist()
    return set(ordered[:head]), set(ordered[head:])


def new_pairs(
    before: pd.DataFrame, after: pd.DataFrame, users: Collection[str] | None = None
) -> dict[str, set[str]]:
    """The held-out pairs that count: user -> the items of ``after`` they had not interacted with
    in ``before``, for the users of ``users`` (default: the users with history in ``before``).

    Users in the order they first appear in ``after``. The ranker's labels (the window after S),
    the benchmark's truth (after the cutoff) and the quality stage's truth (what arrived after
    the evaluated night, of the users it listed) are all this rule.
    """
    seen = set(zip(before[C.USER_ID], before[C.ITEM_ID], strict=True))
    judged = set(before[C.USER_ID]) if users is None else set(users)
    truth: dict[str, set[str]] = {}
    for u, i in zip(after[C.USER_ID], after[C.ITEM_ID], strict=True):
        if u in judged and (u, i) not in seen:
            truth.setdefault(u, set()).add(i)
    return truth
