"""Audiences for new and long-tail products: for each, the shoppers most likely to want it.

The question a launch or a campaign asks ("who will want this new product?") is the transpose of
the nightly lists ("which products for this shopper?"). It is answered from the same signals the
`cold_text` candidate source uses: a shopper's text profile (the log-weighted sum of their history
items' text vectors, normalised; `fusion.text_profiles`) against the item's text vector. The
score is that cosine times log(1 + the shopper's distinct items): how close the item is to their
taste, and how much they buy. The cosine alone ranks a one-purchase shopper whose single item
happens to match above a regular whose taste is as close; on the benchmark's cold-start protocol
it found fewer of the held-out buyers than simply taking the most active shoppers (README,
Benchmark). On nights the character n-gram channel is on (the encoder cannot read the
catalogue), the n-gram vectors replace the dense ones.

Targets: every recommendable item listed in the last `new_item_days` or never sold at all (new
products waiting for a first buyer), optionally every long-tail item too; an item without a text
vector has nothing to match on and is left out (counted in the run record).

Shoppers are searched exactly: every target against every shopper of a block, a chunk of shoppers
at a time, keeping each target's best k (`keep_best`); the blocks' answers are then merged per
item (`merge`). A graph index over shoppers (HNSW) answers k = 500 poorly: on the 4x scale shop
it kept 65% of the exact audiences, at about the exact search's cost, because the search must
widen to at least k. The exact product is targets x shoppers: the new items, not the catalogue.
A shopper who already owns the item (purchased, rated, reviewed) is never in its audience, nor
one whose profile points away from it (cosine <= 0): a small shop's audiences are shorter than
k. The activity weight is folded into the shoppers' vectors, so the search is an inner product.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from longtail import columns as C
from longtail import reasons
from longtail.fusion import ItemSpace, history_matrix, ngram_profiles, text_profiles
from longtail.retrieval import VectorIndex

IS_NEW = "is_new"
# The reason every audience row carries: the item is new (or rare) and close to what they bought.
REASON = reasons.NEW_IN_YOUR_TASTE
BLOCK_COLUMNS = (C.ITEM_ID, C.USER_ID, C.SCORE, IS_NEW, C.REASON_ITEM_ID)
COLUMNS = (C.ITEM_ID, C.RANK, C.USER_ID, C.SCORE, IS_NEW, C.REASON_ITEM_ID)
# Shoppers scored per exact product: a (targets x chunk) float32 matrix, 130 MB for 8,000 targets.
CHUNK_USERS = 4096


def targets(
    space: ItemSpace, new_item_days: int, include_long_tail: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """(item positions ascending, is_new per position, items skipped for having no text).

    New: listed at most `new_item_days` days before the night's end, or never sold. Only items a
    list may show (titled, available, not excluded by the shop's rules) get an audience.
    """
    new = (space.age_days <= new_item_days) | space.is_cold
    pick = new | space.is_tail if include_long_tail else new
    ok = space.recommendable
    if ok is not None:
        pick = pick & ok
    has_text = _has_text(space)
    chosen = np.flatnonzero(pick & has_text)
    return chosen, new[chosen], int((pick & ~has_text).sum())


def _has_text(space: ItemSpace) -> np.ndarray:
    if space.ngram_vectors is not None:
        return np.diff(space.ngram_vectors.indptr) > 0
    return np.abs(space.embeddings).sum(axis=1) > 0


def block_audiences(
    batch: pd.DataFrame,
    space: ItemSpace,
    items: np.ndarray,
    is_new: np.ndarray,
    k: int,
    index: Mapping[str, int] | None = None,
    chunk_users: int = CHUNK_USERS,
) -> pd.DataFrame:
    """Each target item's best k shoppers among this block's (BLOCK_COLUMNS rows).

    batch: one row per shopper with the `fusion.HIST_*` and `EXCLUDED` columns
    (user_histories.fusion_users). The block is searched exactly, `chunk_users` shoppers at a
    time, keeping each target's best k so far (ties: the lower user id, as `merge` breaks them),
    so the answer does not depend on the chunk size, and the blocks' merged answers are the exact
    answer over all shoppers. Reasons are found for the block's final rows only.
    """
    index = index if index is not None else space.index
    empty = pd.DataFrame(
        {
            C.ITEM_ID: pd.Series([], dtype=object),
            C.USER_ID: pd.Series([], dtype=object),
            C.SCORE: pd.Series([], dtype=np.float64),
            IS_NEW: pd.Series([], dtype=bool),
            C.REASON_ITEM_ID: pd.Series([], dtype=object),
        }
    )
    if not len(batch) or not len(items) or k <= 0:
        return empty
    batch = batch.sort_values(C.USER_ID, kind="stable").reset_index(drop=True)
    user_pos = np.full((len(items), k), -1, np.int64)
    scores = np.full((len(items), k), -np.inf, np.float32)
    step = max(1, chunk_users)
    for start in range(0, len(batch), step):
        pos, val = _search_chunk(batch.iloc[start : start + step], space, items, k, index)
        keep_best(user_pos, scores, np.where(pos >= 0, pos + start, -1), val)
    # a shopper whose profile points away from the item (cosine <= 0) is nobody's audience
    t, col = np.nonzero((user_pos >= 0) & (scores > reasons.MIN_SUPPORT))
    if not len(t):
        return empty
    users = batch[C.USER_ID].astype(str).to_numpy()
    out = pd.DataFrame(
        {
            C.ITEM_ID: space.item_ids[items[t]].astype(str),
            C.USER_ID: users[user_pos[t, col]],
            C.SCORE: scores[t, col].astype(np.float64),
            IS_NEW: is_new[t].astype(bool),
        }
    )
    source = "text_ngram" if space.ngram_vectors is not None else "cold_text"
    why = reasons.explain(out.assign(**{C.SOURCE: source}), batch, space, index)
    out[C.REASON_ITEM_ID] = why[C.REASON_ITEM_ID].to_numpy()
    return out[list(BLOCK_COLUMNS)]


def _search_chunk(
    chunk: pd.DataFrame,
    space: ItemSpace,
    items: np.ndarray,
    k: int,
    index: Mapping[str, int],
) -> tuple[np.ndarray, np.ndarray]:
    """Per target the k best shoppers of this chunk: (positions in the chunk, scores), best
    first, ties to the lower position, -1/-inf padded. Exact: one targets x chunk product."""
    hist, _, owned = history_matrix(chunk, index, len(space.item_ids))
    # per target, the chunk's shoppers who own it: never in its audience
    owners = owned[:, items].T.tocsr()
    excluded = [
        np.sort(owners.indices[owners.indptr[t] : owners.indptr[t + 1]]).astype(np.int64)
        for t in range(len(items))
    ]
    activity = activity_weights(hist)
    if space.ngram_vectors is not None:
        return _ngram_search(hist, space, items, k, excluded, activity)
    profile, has = text_profiles(hist, space.embeddings)
    profile *= activity[:, None]
    shoppers = VectorIndex.build(profile, np.flatnonzero(has), exact_max_items=len(chunk))
    return shoppers.search(space.embeddings[items], k, excluded)


def keep_best(pos: np.ndarray, val: np.ndarray, new_pos: np.ndarray, new_val: np.ndarray) -> None:
    """Merge a later chunk's best-first lists into the running ones, in place.

    Both are (targets, k), best first, ties to the lower position, and every position in the new
    lists is above every running one: a stable sort of the two lists side by side keeps that
    tie order. Only targets whose new best beats their running k-th are touched.
    """
    rows = np.flatnonzero(new_val[:, 0] > val[:, -1])
    if not len(rows):
        return
    p = np.concatenate([pos[rows], new_pos[rows]], axis=1)
    v = np.concatenate([val[rows], new_val[rows]], axis=1)
    order = np.argsort(-v, axis=1, kind="stable")[:, : pos.shape[1]]
    pos[rows] = np.take_along_axis(p, order, axis=1)
    val[rows] = np.take_along_axis(v, order, axis=1)


def activity_weights(hist: csr_matrix) -> np.ndarray:
    """log(1 + distinct history items) per shopper (float32): the audience score's weight."""
    return np.log1p(np.diff(hist.indptr)).astype(np.float32)


def _ngram_search(
    hist: csr_matrix,
    space: ItemSpace,
    items: np.ndarray,
    k: int,
    excluded: list[np.ndarray],
    activity: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """block_audiences on the n-gram channel: item n-gram rows against the shoppers' n-gram
    profiles, a sparse product (an inverted-index lookup: only shared n-grams are touched)."""
    x = space.ngram_vectors
    assert x is not None
    profile = ngram_profiles(hist, x)
    sims = (x[items] @ profile.T).tocsr()
    pos = np.full((len(items), k), -1, np.int64)
    val = np.full((len(items), k), -np.inf, np.float32)
    for t in range(len(items)):
        lo, hi = sims.indptr[t], sims.indptr[t + 1]
        users = sims.indices[lo:hi].astype(np.int64)
        s = sims.data[lo:hi].astype(np.float32) * activity[users]
        keep = (s > 0) & ~np.isin(users, excluded[t])
        users, s = users[keep], s[keep]
        order = np.lexsort((users, -s))[:k]
        pos[t, : len(order)], val[t, : len(order)] = users[order], s[order]
    return pos, val


def merge(blocks: pd.DataFrame, k: int) -> pd.DataFrame:
    """The pandas reference of the stage's merge: per item the k best rows over all blocks by
    score, ties to the lower user id, ranked 1..k (COLUMNS)."""
    df = blocks.sort_values([C.ITEM_ID, C.SCORE, C.USER_ID], ascending=[True, False, True])
    df = df.assign(**{C.RANK: df.groupby(C.ITEM_ID).cumcount() + 1})
    df = df[df[C.RANK] <= k].astype({C.RANK: np.int32})
    return df[list(COLUMNS)].reset_index(drop=True)
