"""The dense candidate generator the index-based one replaced, kept as the tests' reference.

It scores every user of a block against every item, so its candidates and features are the
definition the retrieval must reproduce exactly on small catalogues.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from longtail import columns as C
from longtail.fusion import SOURCES, CandidateCounts, ItemSpace, history_matrix
from longtail.scoring import top_n_indices


def _top_mask(scores: np.ndarray, k: int, valid: np.ndarray) -> np.ndarray:
    """Boolean mask of each row's k best valid entries."""
    mask = np.zeros(scores.shape, bool)
    if k <= 0:
        return mask
    masked = np.where(valid, scores, -np.inf)
    best = top_n_indices(masked, k)
    rows = np.repeat(np.arange(scores.shape[0]), best.shape[1])
    cols = best.ravel()
    keep = np.isfinite(masked[rows, cols])
    mask[rows[keep], cols[keep]] = True
    return mask


# Cells of (recent item x all items) similarities computed at once: bounds the temporary arrays
# (the product and its rows gathered per user) to about 256 MB whatever the catalogue size.
_SIM_CELLS = 32_000_000


def _recent_similarity(
    recent: list[np.ndarray], embeddings: np.ndarray, shape: tuple[int, int]
) -> np.ndarray:
    """Per user: max similarity of every item to any of the user's recent items.

    One matrix product per group of users over the distinct recent items of the group, then a
    segmented max: a per-user product reads the whole embedding table once per user.
    """
    out = np.zeros(shape, np.float32)
    lengths = np.array([len(js) for js in recent], dtype=np.int64)
    users = np.flatnonzero(lengths > 0)
    if not len(users):
        return out
    per_group = max(1, _SIM_CELLS // max(1, int(lengths.max()) * embeddings.shape[0]))
    for start in range(0, len(users), per_group):
        group = users[start : start + per_group]
        flat = np.concatenate([recent[r] for r in group])
        distinct, inverse = np.unique(flat, return_inverse=True)
        sims = embeddings[distinct] @ embeddings.T
        starts = np.concatenate([[0], np.cumsum(lengths[group])[:-1]])
        out[group] = np.maximum.reduceat(sims[inverse], starts, axis=0)
    return out


def candidates(
    batch: pd.DataFrame, space: ItemSpace, counts: CandidateCounts, index: dict[str, int]
) -> pd.DataFrame:
    """Candidate rows with features for a batch of users (see module doc for the columns)."""
    n_items = len(space.item_ids)
    hist, recents, excluded = history_matrix(batch, index, n_items)
    allowed = np.ones((len(batch), n_items), bool)
    if excluded.nnz:
        allowed[excluded.nonzero()] = False

    has_u = (
        batch[C.FACTORS].notna().to_numpy() if C.FACTORS in batch else np.zeros(len(batch), bool)
    )
    dim = space.als_factors.shape[1]
    u = np.zeros((len(batch), dim), np.float32)
    for r in np.flatnonzero(has_u):
        vec = np.asarray(batch[C.FACTORS].iloc[r], dtype=np.float32)
        if vec.shape[0] == dim:
            u[r] = vec
    als = u @ space.als_factors.T

    profile = np.asarray(hist @ space.embeddings, dtype=np.float32)
    norms = np.linalg.norm(profile, axis=1, keepdims=True)
    profile = np.divide(profile, norms, out=np.zeros_like(profile), where=norms > 0)
    prof_sim = profile @ space.embeddings.T
    recent_sim = _recent_similarity(
        [js[: counts.recent_items] for js in recents], space.embeddings, prof_sim.shape
    )

    binary = hist.copy()
    binary.data[:] = 1.0
    cooc = np.asarray((binary @ space.cooc).todense(), dtype=np.float32)

    if space.n_categories:
        onehot = csr_matrix(
            (
                np.ones(int((space.category >= 0).sum()), np.float32),
                (np.flatnonzero(space.category >= 0), space.category[space.category >= 0]),
            ),
            shape=(n_items, space.n_categories),
        )
        user_cat = np.asarray((binary @ onehot).todense(), dtype=np.float32)
        user_cat /= np.maximum(user_cat.sum(axis=1, keepdims=True), 1.0)
        cat_aff = np.where(space.category >= 0, user_cat[:, np.maximum(space.category, 0)], 0.0)
    else:
        cat_aff = np.zeros_like(prof_sim)
    cat_pop = cat_aff * space.recent_popularity[None, :]
    has_text = np.abs(space.embeddings).sum(axis=1) > 0

    lookups = {
        "als": _top_mask(
            als,
            counts.als_tail,
            allowed & has_u[:, None] & (space.has_factors & space.is_tail)[None, :],
        ),
        "cooccurrence": _top_mask(
            cooc, counts.cooccurrence_tail, allowed & (cooc > 0) & space.is_tail[None, :]
        ),
    }
    selections = {
        "als": _top_mask(als, counts.als, allowed & has_u[:, None] & space.has_factors[None, :]),
        "cooccurrence": _top_mask(cooc, counts.cooccurrence, allowed & (cooc > 0)),
        "text_ngram": np.zeros(prof_sim.shape, bool),  # the n-gram channel is not in these spaces
        "content": _top_mask(prof_sim, counts.content, allowed & has_text[None, :])
        | _top_mask(recent_sim, counts.content // 2, allowed & has_text[None, :]),
        "category": _top_mask(cat_pop, counts.category, allowed & (cat_pop > 0)),
        "tail_explorer": _top_mask(
            prof_sim, counts.tail_explorer, allowed & (space.is_tail & has_text)[None, :]
        ),
        "cold_text": _top_mask(
            prof_sim, counts.cold_text, allowed & (space.is_cold & has_text)[None, :]
        ),
        "popularity": _top_mask(
            np.broadcast_to(space.popularity + space.recent_popularity, prof_sim.shape),
            counts.popularity,
            allowed,
        ),
    }
    # a pair only the tail lookups found; then the lookups join their sources
    tail_lookup = (lookups["als"] | lookups["cooccurrence"]) & ~np.logical_or.reduce(
        list(selections.values())
    )
    for name, mask in lookups.items():
        selections[name] = selections[name] | mask
    source = np.full(prof_sim.shape, 255, np.uint8)
    n_sources = np.zeros(prof_sim.shape, np.uint8)
    for s_idx in range(len(SOURCES) - 1, -1, -1):
        sel = selections[SOURCES[s_idx]]
        source[sel] = s_idx
        n_sources += sel
    rows, cols = np.nonzero(source != 255)

    user_items = np.log1p(np.diff(binary.indptr)).astype(np.float32)
    priced = binary.multiply(np.nan_to_num(space.price, nan=0.0)[None, :]).tocsr()
    n_priced = binary.multiply((~np.isnan(space.price)).astype(np.float32)[None, :]).sum(axis=1)
    mean_price = np.asarray(priced.sum(axis=1)).ravel() / np.maximum(
        np.asarray(n_priced).ravel(), 1
    )
    mean_price = np.where(np.asarray(n_priced).ravel() > 0, mean_price, np.nan)
    price_ratio = space.price[cols] / mean_price[rows]

    return pd.DataFrame(
        {
            C.USER_ID: batch[C.USER_ID].to_numpy()[rows],
            "item_idx": cols.astype(np.int32),
            C.SOURCE: np.asarray(SOURCES, dtype=object)[source[rows, cols]],
            "als_score": als[rows, cols],
            "content_profile_sim": prof_sim[rows, cols],
            "content_recent_sim": recent_sim[rows, cols],
            "cooccurrence": cooc[rows, cols],
            "category_affinity": cat_aff[rows, cols].astype(np.float32),
            "item_popularity": space.popularity[cols],
            "item_recent_popularity": space.recent_popularity[cols],
            "item_age_days": space.age_days[cols],
            "is_tail": space.is_tail[cols].astype(np.float32),
            "is_cold": space.is_cold[cols].astype(np.float32),
            "item_has_factors": space.has_factors[cols].astype(np.float32),
            "user_items": user_items[rows],
            "price_ratio": price_ratio.astype(np.float32),
            "n_sources": n_sources[rows, cols].astype(np.float32),
            "tail_lookup": tail_lookup[rows, cols],
        }
    )
