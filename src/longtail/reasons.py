"""Why each recommended item is on a shopper's list: a reason code and the history item behind it.

Computed for the final rows only (after the ranker and the tail-aware re-ranking), per user
against that user's own history items: a (history x list) block per user, never users x items.
The published items, ranks and scores do not depend on it.

Codes (`reason`) by the row's `source`, and the `reason_item_id` each carries:

| source | reason | reason_item_id: the history item ... |
|---|---|---|
| cooccurrence | bought_together | with the largest co-occurrence with the item |
| content, tail_explorer | similar_text | whose text vector is most similar (cosine) |
| text_ngram | similar_text | whose character n-gram vector is most similar |
| cold_text | new_in_your_taste | whose text vector is most similar (the item has not sold yet) |
| als | similar_taste | whose ALS item factor has the largest dot product with the item's |
| category | popular_in_your_category | of the item's category with the largest weight |
| popularity | popular | none (null): the list is filled from global popularity |

`similar_taste` names item-item factor similarity, not the exact ALS attribution (which needs the
user's factor solve): it is the history item that "looks most like" the item in taste space, cheap
and stable. The item is the one with the largest positive value, a tie going to the lower item
id (deterministic: history is kept in item-id order); when no history item has a positive value
(e.g. none has a text vector or a factor) both columns are null rather than a made-up reason.
Null therefore means: a candidate source with no supporting history item, or an unknown source.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from longtail import columns as C
from longtail.fusion import HIST_ITEMS, HIST_TS, HIST_WEIGHTS, ItemSpace

BOUGHT_TOGETHER = "bought_together"
SIMILAR_TEXT = "similar_text"
NEW_IN_YOUR_TASTE = "new_in_your_taste"
SIMILAR_TASTE = "similar_taste"
POPULAR_IN_YOUR_CATEGORY = "popular_in_your_category"
POPULAR = "popular"

BY_SOURCE: Mapping[str, str] = {
    "cooccurrence": BOUGHT_TOGETHER,
    "content": SIMILAR_TEXT,
    "text_ngram": SIMILAR_TEXT,
    "tail_explorer": SIMILAR_TEXT,
    "cold_text": NEW_IN_YOUR_TASTE,
    "als": SIMILAR_TASTE,
    "category": POPULAR_IN_YOUR_CATEGORY,
    "popularity": POPULAR,
}
# Every code, and those that always come with a reason_item_id (all but `popular`).
CODES = (
    BOUGHT_TOGETHER,
    SIMILAR_TEXT,
    NEW_IN_YOUR_TASTE,
    SIMILAR_TASTE,
    POPULAR_IN_YOUR_CATEGORY,
    POPULAR,
)
ITEM_REASONS = tuple(c for c in CODES if c != POPULAR)
_TEXT_SOURCES = ("content", "tail_explorer", "cold_text")
# "Positive" support: above float32 rounding noise (orthogonal texts give about 1e-8).
MIN_SUPPORT = 1e-6


def _histories(
    batch: pd.DataFrame, index: Mapping[str, int]
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """user -> (item positions ascending, weights, timestamps), items outside the space dropped."""
    out = {}
    for user, items, weights, ts in zip(
        batch[C.USER_ID], batch[HIST_ITEMS], batch[HIST_WEIGHTS], batch[HIST_TS], strict=True
    ):
        items = [] if items is None else list(items)
        pos = np.array([index.get(str(x), -1) for x in items], dtype=np.int64)
        w = np.asarray([] if weights is None else list(weights), dtype=np.float64)
        t = np.asarray([] if ts is None else list(ts), dtype=np.float64)
        ok = pos >= 0
        pos, w, t = pos[ok], w[ok], t[ok]
        pos, first = np.unique(pos, return_index=True)
        out[str(user)] = (pos, w[first], t[first])
    return out


def _best(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column of a (history x rows) block: the row of its largest value (first on ties) and
    whether that value is positive."""
    if not values.shape[0]:
        return np.zeros(values.shape[1], np.int64), np.zeros(values.shape[1], bool)
    at = np.argmax(values, axis=0)
    return at, values[at, np.arange(values.shape[1])] > MIN_SUPPORT


def _dense(block: object) -> np.ndarray:
    return np.asarray(block.toarray() if hasattr(block, "toarray") else block, dtype=np.float64)


def _support(
    source: str, hist: np.ndarray, items: np.ndarray, space: ItemSpace
) -> tuple[np.ndarray, np.ndarray]:
    """(history positions into `hist`, found) of the supporting item for rows of one source."""
    if source == "cooccurrence":
        return _best(_sparse_block(space.cooc, hist, items))
    if source == "text_ngram" and space.ngram_vectors is not None:
        x = space.ngram_vectors
        return _best(_dense(x[hist] @ x[items].T))
    # Only the rows at hand are widened to float64: widening the whole matrix here made every
    # shopper's call cost the size of the catalogue (users x items over a night).
    if source in _TEXT_SOURCES or source == "text_ngram":
        return _best(_rows64(space.embeddings, hist) @ _rows64(space.embeddings, items).T)
    if source == "als":
        return _best(_rows64(space.als_factors, hist) @ _rows64(space.als_factors, items).T)
    raise ValueError(source)


def _sparse_block(m: Any, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """m[rows][:, cols] as a dense float64 block, read from the CSR arrays directly (scipy's
    column indexing cost more than the rest of a shopper's reasons)."""
    if len(np.unique(cols)) != len(cols) or not m.has_canonical_format:  # scipy's rules then
        return _dense(m[rows][:, cols])
    out = np.zeros((len(rows), len(cols)), np.float64)
    starts, ends = m.indptr[rows], m.indptr[np.asarray(rows) + 1]
    lengths = ends - starts
    if not len(cols) or not lengths.sum():
        return out
    before = np.r_[0, np.cumsum(lengths)[:-1]]  # entries of the earlier rows
    entry = np.repeat(starts - before, lengths) + np.arange(lengths.sum())
    row = np.repeat(np.arange(len(rows)), lengths)
    by_col = np.argsort(cols, kind="stable")
    at = np.searchsorted(cols[by_col], m.indices[entry])
    hit = at < len(cols)
    hit[hit] = cols[by_col[at[hit]]] == m.indices[entry[hit]]
    out[row[hit], by_col[at[hit]]] = m.data[entry[hit]]
    return out


def _rows64(matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.asarray(matrix[rows], dtype=np.float64)


def _category_support(
    hist: np.ndarray, weights: np.ndarray, ts: np.ndarray, items: np.ndarray, space: ItemSpace
) -> tuple[np.ndarray, np.ndarray]:
    """The history item of each row's category with the largest weight (then the most recent,
    then the lower id)."""
    at = np.zeros(len(items), np.int64)
    found = np.zeros(len(items), bool)
    cats = space.category[hist]
    for k, cat in enumerate(space.category[items]):
        mine = np.flatnonzero((cats == cat) & (cat >= 0))
        if len(mine):
            order = np.lexsort((hist[mine], -ts[mine], -weights[mine]))
            at[k], found[k] = mine[order[0]], True
    return at, found


def explain(
    lists: pd.DataFrame,
    batch: pd.DataFrame,
    space: ItemSpace,
    index: Mapping[str, int] | None = None,
) -> pd.DataFrame:
    """`reason_item_id` and `reason` for each row of `lists` (user_id, item_id, source), in its
    order and index. `batch` holds the same users' history (fusion.HIST_* columns)."""
    index = index if index is not None else space.index
    n = len(lists)
    reason_item = np.full(n, None, dtype=object)
    reason = np.full(n, None, dtype=object)
    if not n:
        return pd.DataFrame({C.REASON_ITEM_ID: reason_item, C.REASON: reason}, index=lists.index)
    histories = _histories(batch, index)
    user = lists[C.USER_ID].astype(str).to_numpy()
    source = lists[C.SOURCE].astype(str).to_numpy()
    item = np.array([index.get(str(x), -1) for x in lists[C.ITEM_ID]], dtype=np.int64)
    codes, users = pd.factorize(user, sort=True)
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, codes[order][1:] != codes[order][:-1]])
    for a, b in zip(starts, np.r_[starts[1:], n], strict=True):
        rows = order[a:b]
        hist, weights, ts = histories.get(str(users[codes[rows[0]]]), (np.zeros(0, np.int64),) * 3)
        for src in sorted(set(source[rows])):
            mine = rows[(source[rows] == src) & (item[rows] >= 0)]
            code = BY_SOURCE.get(src)
            if code is None or not len(mine):
                continue
            if code == POPULAR:
                reason[mine] = POPULAR
                continue
            if src == "category":
                at, found = _category_support(hist, weights, ts, item[mine], space)
            else:
                at, found = _support(src, hist, item[mine], space)
            hit = mine[found]
            reason[hit] = code
            reason_item[hit] = [str(x) for x in space.item_ids[hist[at[found]]]]
    return pd.DataFrame({C.REASON_ITEM_ID: reason_item, C.REASON: reason}, index=lists.index)
