"""Co-occurrence neighbours from an interaction matrix that is already on the driver.

train_ranker collects the interactions before its window start for implicit's ALS fit anyway
(`indexing.collect_indexed`). Computing the same neighbours from those arrays with a sparse
product avoids a second pass over them in Spark: the user self-join, the largest shuffle of
the step (on the sample, 730k pair rows and 22 Spark jobs, seconds of a night spent on tiny
data). The item_space stage, which holds no interaction matrix, keeps the Spark path
(`item_stats.cooccurrence_pairs`); both compute the same rows, scores bit for bit
(tests/unit/test_cooccurrence_matrix.py checks them against each other).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from longtail import columns as C
from longtail.fusion import COOCCURRENCE_TOP, COOCCURRENCE_USER_CAP, NEIGHBOUR_ID

# Rows of the item x item product computed at a time: bounds the driver's memory to about
# this many items' co-count rows, whatever the catalogue.
BLOCK_ITEMS = 2048
# A pair without a last event (Spark: null), as `indexing.collect_indexed_with_lasts` gives it.
NO_TIME = np.iinfo(np.int64).min


def cooccurrence_from_indexed(
    user_idx: np.ndarray,
    item_idx: np.ndarray,
    last_us: np.ndarray,
    item_ids: np.ndarray,
    keep_items: np.ndarray,
    top: int = COOCCURRENCE_TOP,
    cap: int = COOCCURRENCE_USER_CAP,
    block_items: int = BLOCK_ITEMS,
) -> pd.DataFrame:
    """(item_id, neighbour_id, score), the rows `item_stats.cooccurrence_pairs` computes.

    user_idx, item_idx, last_us: one entry per (user, item) pair (last_us: the pair's last
    event in epoch microseconds, NO_TIME for none); item_ids: the sorted ids item_idx points
    into (code point order, Spark's string order); keep_items: which of them count (the
    catalogue's). Each user keeps their `cap` most recent kept items (last event desc, then
    item id asc); n = an item's users after the cap; score = co-count / sqrt(n_i * n_j) in
    double, the same operations as Spark's; each item keeps its `top` best neighbours (score
    desc, neighbour id asc).
    """
    n_items = len(item_ids)
    kept = np.asarray(keep_items, dtype=bool)[item_idx]
    u = np.asarray(user_idx, dtype=np.int64)[kept]
    i = np.asarray(item_idx, dtype=np.int64)[kept]
    t = np.asarray(last_us, dtype=np.int64)[kept]
    missing = t == NO_TIME  # desc_nulls_last: a pair without a last event sorts after the rest
    order = np.lexsort((i, -np.where(missing, 0, t), missing, u))
    u, i = u[order], i[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]]) if len(u) else np.zeros(0, np.int64)
    lengths = np.diff(np.r_[starts, len(u)])
    rank = np.arange(len(u)) - np.repeat(starts, lengths)
    u, i = u[rank < cap], i[rank < cap]
    n = np.bincount(i, minlength=n_items).astype(np.int64)
    users = int(u.max()) + 1 if len(u) else 0
    x = csr_matrix((np.ones(len(u), np.int64), (u, i)), shape=(users, n_items))
    xt = x.T.tocsr()
    frames = []
    for a in range(0, n_items, block_items):
        b = min(a + block_items, n_items)
        co = (xt[a:b] @ x).tocoo()
        rows, cols, counts = co.row.astype(np.int64) + a, co.col.astype(np.int64), co.data
        off = rows != cols
        rows, cols, counts = rows[off], cols[off], counts[off]
        score = counts.astype(np.float64) / np.sqrt((n[rows] * n[cols]).astype(np.float64))
        best = np.lexsort((cols, -score, rows))
        rows, cols, score = rows[best], cols[best], score[best]
        first = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]]) if len(rows) else rows
        within = np.arange(len(rows)) - np.repeat(first, np.diff(np.r_[first, len(rows)]))
        keep = within < top
        frames.append((rows[keep], cols[keep], score[keep]))
    rows = np.concatenate([f[0] for f in frames]) if frames else np.zeros(0, np.int64)
    cols = np.concatenate([f[1] for f in frames]) if frames else np.zeros(0, np.int64)
    score = np.concatenate([f[2] for f in frames]) if frames else np.zeros(0, np.float64)
    ids = np.asarray(item_ids, dtype=object)
    return pd.DataFrame({C.ITEM_ID: ids[rows], NEIGHBOUR_ID: ids[cols], C.SCORE: score})
