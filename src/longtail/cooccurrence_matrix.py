"""Co-occurrence neighbours by sparse products, on the driver and inside Spark partitions.

Counting co-occurrences with a self-join emits one row per co-occurrence (the sum over users of
n_u^2 / 2: 730k rows on the sample, 5.7M at 4x) before grouping them; a sparse product X^T X
counts them in compiled loops. Two users of it:

- train_ranker collects the interactions before its window start for implicit's ALS fit anyway
  (`indexing.collect_indexed_with_lasts`), so it computes the neighbours from those arrays
  (`cooccurrence_from_indexed`), with no second pass in Spark.
- item_space, which holds no interaction matrix, runs `item_stats.cooccurrence_pairs`: each
  Spark partition of users counts its pairs (`pair_counts`), and the partial counts, gathered by
  item, are summed, scored and cut (`summed_best_neighbours`).

Both compute the rows of the self-join, group-by and window they replaced, scores bit for bit
(tests/unit/test_cooccurrence_matrix.py checks them against each other and against a dense
reference).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix, csr_matrix

from longtail import columns as C
from longtail.fusion import COOCCURRENCE_TOP, COOCCURRENCE_USER_CAP, NEIGHBOUR_ID
from longtail.runs import rank_within

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
    rank = rank_within(u)
    u, i = u[rank < cap], i[rank < cap]
    n = np.bincount(i, minlength=n_items).astype(np.int64)
    users = int(u.max()) + 1 if len(u) else 0
    x = csr_matrix((np.ones(len(u), np.int64), (u, i)), shape=(users, n_items))
    rows, cols, score = _concat(
        [best_neighbours(*block, n, top) for block in _co_counts(x, block_items)]
    )
    ids = np.asarray(item_ids, dtype=object)
    return pd.DataFrame({C.ITEM_ID: ids[rows], NEIGHBOUR_ID: ids[cols], C.SCORE: score})


def best_neighbours(
    rows: np.ndarray, cols: np.ndarray, counts: np.ndarray, n: np.ndarray, top: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, score) of each row's `top` best columns: score = count / sqrt(n_row * n_col)
    in double (Spark's operations: a long product, its square root, a division), ordered by
    score desc, then col asc. The (row, col) pairs are distinct and sorted (a canonical CSR's
    order), every row's pairs present."""
    score = counts.astype(np.float64) / np.sqrt((n[rows] * n[cols]).astype(np.float64))
    order = np.lexsort((-score, rows))  # stable: equal scores keep their col order
    rows, cols, score = rows[order], cols[order], score[order]
    keep = rank_within(rows) < top
    return rows[keep], cols[keep], score[keep]


def _co_counts(
    x: csr_matrix, block_items: int
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(item, neighbour, co) of X^T X without its diagonal, in (item, neighbour) order, one
    block of `block_items` items at a time (the bound on what a block holds)."""
    xt = x.T.tocsr()
    for a in range(0, x.shape[1], block_items):
        rows, cols, counts = _canonical(xt[a : a + block_items] @ x)
        rows += a
        off = rows != cols
        yield rows[off], cols[off], counts[off]


def _canonical(m: csr_matrix) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, value) of a CSR matrix, duplicates summed, in (row, col) order."""
    m.sum_duplicates()  # also sorts each row's columns
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    return rows, m.indices.astype(np.int64), m.data


def pair_counts(
    users: np.ndarray, items: np.ndarray, block_items: int = BLOCK_ITEMS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(item, neighbour, co) for every ordered pair of distinct items (both directions): how
    many of the given users hold both. items are integer positions, one (user, item) row per
    pair, every row of a user present: item_stats runs it on each partition of the capped
    interactions partitioned by user and sums the partitions' counts, in place of a self-join
    that emits a row per co-occurrence (the sum over users of n_u^2)."""
    items = np.asarray(items, dtype=np.int64)
    local, i = np.unique(items, return_inverse=True)
    _, u = np.unique(np.asarray(users), return_inverse=True)
    shape = (int(u.max(initial=-1)) + 1, len(local))
    x = csr_matrix((np.ones(len(i), np.int64), (u, i)), shape=shape)
    blocks = _co_counts(x, block_items)
    return _concat([(local[rows], local[cols], co) for rows, cols, co in blocks])


def summed_best_neighbours(
    rows: np.ndarray, cols: np.ndarray, counts: np.ndarray, n: np.ndarray, top: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """best_neighbours of partial counts: the counts of each (row, col) summed first."""
    rows, cols = np.asarray(rows, np.int64), np.asarray(cols, np.int64)
    if not len(rows):
        return rows, cols, np.zeros(0, np.float64)
    shape = (int(rows.max()) + 1, len(n))
    rows, cols, summed = _canonical(
        coo_matrix((np.asarray(counts, np.int64), (rows, cols)), shape=shape).tocsr()
    )
    return best_neighbours(rows, cols, summed, n, top)


def _concat(
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(3))  # type: ignore[return-value]
