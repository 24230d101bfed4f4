"""Multi-source candidates and their fusion features for a batch of users.

Each source retrieves its own top-k from the night's `Retrieval` (vector indexes, each item's
nearest texts, every category's popular items, the popularity order) without scoring every item;
features are then computed for those (user, item) pairs only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from longtail import columns as C
from longtail.config import RankerConfig
from longtail.fusion.history import history_matrix, ngram_profiles, text_profiles
from longtail.fusion.space import ItemSpace
from longtail.retrieval import EXACT_MAX_ITEMS, VectorIndex, content_neighbours, is_excluded

SOURCES = (
    "als",
    "cooccurrence",
    "text_ngram",
    "content",
    "category",
    "tail_explorer",
    "cold_text",
    "popularity",
)
FEATURES = (
    "als_score",
    "content_profile_sim",
    "content_recent_sim",
    "cooccurrence",
    "category_affinity",
    "item_popularity",
    "item_recent_popularity",
    "item_age_days",
    "is_tail",
    "is_cold",
    "item_has_factors",
    "user_items",
    "price_ratio",
    "n_sources",
)
# Candidate column: the pair was found only by the score stage's tail lookups (als_tail,
# cooccurrence_tail); the tail floor lets such rows take only warm tail items' positions.
TAIL_LOOKUP = "tail_lookup"
# Ranker features of the n-gram channel: in the candidates (and the ranker's feature list, see
# frame_features) only when the item space carries it, so nights without it rank as before.
NGRAM_FEATURES = (
    "text_ngram_profile_sim",
    "text_ngram_recent_sim",
)

_COUNTS = RankerConfig.default_candidate_counts()


@dataclass(frozen=True)
class CandidateCounts:
    """Candidates per source; the defaults are RankerConfig's (`RankerConfig.candidate_counts`
    gives a config's counts, `of` makes them)."""

    als: int = _COUNTS["als"]
    content: int = _COUNTS["content"]
    cooccurrence: int = _COUNTS["cooccurrence"]
    category: int = _COUNTS["category"]
    tail_explorer: int = _COUNTS["tail_explorer"]
    cold_text: int = _COUNTS["cold_text"]
    popularity: int = _COUNTS["popularity"]
    recent_items: int = _COUNTS["recent_items"]
    # Off unless the space carries the n-gram channel; half as many again from recent items.
    text_ngram: int = _COUNTS["text_ngram"]
    # The als and cooccurrence sources' extra top-k within the long tail (the same signals,
    # looked up deeper; their rows are the als and cooccurrence sources'). The ranker trains
    # without them; the score stage sets them (ScoreConfig.k_als_tail, k_cooccurrence_tail).
    als_tail: int = 0
    cooccurrence_tail: int = 0

    @classmethod
    def of(cls, cfg: RankerConfig) -> CandidateCounts:
        return cls(**cfg.candidate_counts())


# Extra entries kept per item's nearest texts and per category's popular head beyond the source's
# k, so that a user's own excluded items (often among them) do not shorten their list.
NEIGHBOUR_MARGIN = 32


@dataclass
class Retrieval:
    """Item-side lookups of one night's candidate sources: built once, broadcast with the space.

    Each source finds its top-k per user from these without touching every item: vector indexes
    (exact or HNSW, see `longtail.retrieval`) over text vectors and ALS factors, each item's
    nearest texts, every category's items by recent popularity, and the popularity order.
    """

    text: VectorIndex
    als: VectorIndex
    neighbours: np.ndarray  # (I, K) int32 nearest texts per item (itself included), -1 padded
    neighbour_sims: np.ndarray  # (I, K) float32
    category_head: np.ndarray  # (categories, K) int64 recently popular items by category, -1 pad
    popular: np.ndarray  # item positions by -(popularity + recent popularity), then position

    @property
    def method(self) -> str:
        return "exact" if self.text.exact and self.als.exact else "hnsw"


def build_retrieval(
    space: ItemSpace, counts: CandidateCounts, exact_max_items: int = EXACT_MAX_ITEMS
) -> Retrieval:
    n = len(space.item_ids)
    has_text = np.abs(space.embeddings).sum(axis=1) > 0
    text = VectorIndex.build(space.embeddings, np.flatnonzero(has_text), exact_max_items)
    als = VectorIndex.build(space.als_factors, np.flatnonzero(space.has_factors), exact_max_items)
    k_recent = counts.content // 2
    if k_recent > 0:
        nb, nb_sims = content_neighbours(text, k_recent + NEIGHBOUR_MARGIN, n)
    else:
        nb, nb_sims = np.full((n, 0), -1, np.int32), np.zeros((n, 0), np.float32)
    known = np.flatnonzero((space.category >= 0) & (space.recent_popularity > 0))
    cat_order = known[np.lexsort((known, -space.recent_popularity[known], space.category[known]))]
    cat_start = np.searchsorted(space.category[cat_order], np.arange(space.n_categories + 1))
    width = counts.category + NEIGHBOUR_MARGIN
    head = np.full((space.n_categories, width), -1, np.int64)
    for c in range(space.n_categories):
        top = cat_order[cat_start[c] : cat_start[c + 1]][:width]
        head[c, : len(top)] = top
    pop = space.popularity + space.recent_popularity
    return Retrieval(
        text=text,
        als=als,
        neighbours=nb,
        neighbour_sims=nb_sims,
        category_head=head,
        popular=np.lexsort((np.arange(n), -pop)).astype(np.int64),
    )


def retrieval_from_meta(
    space: ItemSpace,
    meta: dict,
    cold_text: int | None = None,
    als_tail: int = 0,
    cooccurrence_tail: int = 0,
) -> tuple[CandidateCounts, Retrieval]:
    """The candidate counts and retrieval a published ranker was trained with, widened as the
    score stage asks (`ScoreConfig.scoring_counts`): `cold_text`, if given, replaces the count
    of new-item candidates; `als_tail` and `cooccurrence_tail` add the tail lookups."""
    counts = CandidateCounts(**meta["candidate_counts"])
    if cold_text is not None:
        counts = replace(counts, cold_text=cold_text)
    counts = replace(counts, als_tail=als_tail, cooccurrence_tail=cooccurrence_tail)
    limit = meta.get("retrieval", {}).get("exact_max_items", EXACT_MAX_ITEMS)
    return counts, build_retrieval(space, counts, int(limit))


def _flat(pos: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(user rows, item positions) of the valid entries of a padded (users x k) answer."""
    ok = pos >= 0
    return np.repeat(rows, ok.sum(axis=1)), pos[ok]


def _top_sparse(
    m: csr_matrix, k: int, excluded: csr_matrix, subset: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k largest positive entries outside its exclusions (and, given a column mask
    `subset`, inside it); ties to the lower column."""
    coo = m.tocoo()
    keep = coo.data > 0
    if subset is not None:
        keep &= subset[coo.col]
    if excluded.nnz and coo.nnz:  # (scipy answers an empty lookup with a matrix, not an array)
        keep &= np.asarray(excluded[coo.row, coo.col]).ravel() == 0
    r, c, v = coo.row[keep], coo.col[keep], coo.data[keep]
    order = np.lexsort((c, -v, r))
    r, c = r[order], c[order]
    first = np.searchsorted(r, r, side="left")
    take = np.arange(len(r)) - first < k
    return r[take].astype(np.int64), c[take].astype(np.int64)


def _top_per_row(
    rows: np.ndarray, items: np.ndarray, vals: np.ndarray, k: int, ex: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k best distinct items outside its exclusions; ties to the lower position."""
    keep = ~is_excluded(rows, items, ex)
    rows, items, vals = rows[keep], items[keep], vals[keep]
    order = np.lexsort((-vals, items, rows))  # each (row, item) at its best value first
    rows, items, vals = rows[order], items[order], vals[order]
    first = np.ones(len(rows), bool)
    first[1:] = (rows[1:] != rows[:-1]) | (items[1:] != items[:-1])
    rows, items, vals = rows[first], items[first], vals[first]
    order = np.lexsort((items, -vals, rows))
    rows, items = rows[order], items[order]
    take = np.arange(len(rows)) - np.searchsorted(rows, rows, side="left") < k
    return rows[take].astype(np.int64), items[take].astype(np.int64)


def _recent_candidates(
    recents: list[np.ndarray], ex: list[np.ndarray], re: Retrieval, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per user the k items most similar to any recent item, from the items' nearest texts."""
    lengths = np.array([len(js) for js in recents], dtype=np.int64)
    if k <= 0 or not lengths.sum() or not re.neighbours.shape[1]:
        return _concat([], [])
    js = np.concatenate(recents).astype(np.int64)
    nb, sims = re.neighbours[js], re.neighbour_sims[js]
    rows = np.repeat(np.repeat(np.arange(len(recents)), lengths), nb.shape[1])
    ok = nb.ravel() >= 0
    return _top_per_row(rows[ok], nb.ravel()[ok].astype(np.int64), sims.ravel()[ok], k, ex)


def _category_candidates(
    user_cat: np.ndarray, ex: list[np.ndarray], space: ItemSpace, re: Retrieval, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per user the k items with the largest (share of the user's history in the item's
    category x the item's recent popularity), from each category's head by recent popularity."""
    rows, cats = np.nonzero(user_cat > 0)
    if k <= 0 or not len(rows):
        return _concat([], [])
    head = re.category_head[cats]  # (pairs, width) item positions, -1 padded
    r = np.repeat(rows, head.shape[1])
    items = head.ravel()
    ok = items >= 0
    score = (user_cat[rows, cats][:, None] * space.recent_popularity[np.maximum(head, 0)]).ravel()
    return _top_per_row(r[ok], items[ok], score[ok].astype(np.float32), k, ex)


def _popular_candidates(ex: list[np.ndarray], re: Retrieval, k: int) -> tuple[np.ndarray, ...]:
    if k <= 0 or not len(ex):
        return _concat([], [])
    head = re.popular[: k + max(len(e) for e in ex)]
    rows = np.repeat(np.arange(len(ex)), len(head))
    items = np.tile(head, len(ex))
    rank = np.tile(-np.arange(len(head), dtype=np.float32), len(ex))
    return _top_per_row(rows, items, rank, k, ex)


def _concat(rows: list[np.ndarray], cols: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows).astype(np.int64), np.concatenate(cols).astype(np.int64)


def _union(*found: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """One source's (user rows, item positions) from several lookups; repeats are removed where
    the sources are merged."""
    return _concat([r for r, _ in found], [c for _, c in found])


def _rowwise_dot(a: np.ndarray, rows: np.ndarray, b: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """a[rows[i]] . b[cols[i]] for every pair, in chunks so the gathered rows stay small."""
    out = np.zeros(len(rows), np.float32)
    step = max(1, 4_000_000 // max(1, a.shape[1]))
    for s in range(0, len(rows), step):
        out[s : s + step] = np.einsum(
            "ij,ij->i", a[rows[s : s + step]], b[cols[s : s + step]], dtype=np.float32
        )
    return out


def candidates(
    batch: pd.DataFrame,
    space: ItemSpace,
    counts: CandidateCounts,
    index: dict[str, int],
    retrieval: Retrieval | None = None,
) -> pd.DataFrame:
    """Candidate rows with features for a batch of users (see module doc for the columns).

    Each source retrieves its own top-k (index search, sparse lookups, per-category lists);
    als and cooccurrence add their top `als_tail` / `cooccurrence_tail` among tail items;
    features are then computed for those (user, item) pairs only.
    """
    re = retrieval if retrieval is not None else build_retrieval(space, counts)
    n_items = len(space.item_ids)
    hist, recents, excluded = history_matrix(batch, index, n_items)
    ex = [excluded.indices[excluded.indptr[r] : excluded.indptr[r + 1]] for r in range(len(batch))]
    ex = [np.sort(e).astype(np.int64) for e in ex]

    has_u = (
        batch[C.FACTORS].notna().to_numpy() if C.FACTORS in batch else np.zeros(len(batch), bool)
    )
    dim = space.als_factors.shape[1]
    u = np.zeros((len(batch), dim), np.float32)
    for r in np.flatnonzero(has_u):
        vec = np.asarray(batch[C.FACTORS].iloc[r], dtype=np.float32)
        if vec.shape[0] == dim:
            u[r] = vec
        else:
            has_u[r] = False

    profile, has_p = text_profiles(hist, space.embeddings)

    binary = hist.copy()
    binary.data[:] = 1.0
    cooc = (binary @ space.cooc).tocsr()
    cooc.sort_indices()

    if space.n_categories:
        known = np.flatnonzero(space.category >= 0)
        onehot = csr_matrix(
            (np.ones(len(known), np.float32), (known, space.category[known])),
            shape=(n_items, space.n_categories),
        )
        user_cat = np.asarray((binary @ onehot).todense(), dtype=np.float32)
        user_cat /= np.maximum(user_cat.sum(axis=1, keepdims=True), 1.0)
    else:
        user_cat = np.zeros((len(batch), 0), np.float32)

    def search(
        idx: VectorIndex, q: np.ndarray, who: np.ndarray, k: int, subset: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        pos, _ = idx.search(q[who], k, [ex[r] for r in who], subset)
        return _flat(pos, who)

    users_u, users_p = np.flatnonzero(has_u), np.flatnonzero(has_p)
    recent = [js[: counts.recent_items] for js in recents]
    profile_hits = search(re.text, profile, users_p, counts.content)
    recent_hits = _recent_candidates(recent, ex, re, counts.content // 2)
    lookups = {  # the tail lookups' rows, kept apart to mark the pairs only they found
        "als": search(re.als, u, users_u, counts.als_tail, space.is_tail),
        "cooccurrence": _top_sparse(cooc, counts.cooccurrence_tail, excluded, space.is_tail),
    }
    found = {
        "als": search(re.als, u, users_u, counts.als),
        "cooccurrence": _top_sparse(cooc, counts.cooccurrence, excluded),
        "text_ngram": _ngram_candidates(hist, recent, excluded, ex, space, counts.text_ngram),
        "content": _union(profile_hits, recent_hits),
        "category": _category_candidates(user_cat, ex, space, re, counts.category),
        "tail_explorer": search(re.text, profile, users_p, counts.tail_explorer, space.is_tail),
        "cold_text": search(re.text, profile, users_p, counts.cold_text, space.is_cold),
        "popularity": _popular_candidates(ex, re, counts.popularity),
    }
    # One key per (user, item) and source; a pair's source is the first in SOURCES naming it.
    per_source = [np.unique(found[s][0] * n_items + found[s][1]) for s in SOURCES]
    extra = {s: (r * n_items + c).astype(np.int64) for s, (r, c) in lookups.items()}
    looked_up = np.setdiff1d(np.concatenate(list(extra.values())), np.concatenate(per_source))
    per_source = [
        np.union1d(k, extra[s]) if s in extra else k
        for s, k in zip(SOURCES, per_source, strict=True)
    ]
    keys = np.concatenate(per_source)
    src = np.concatenate([np.full(len(k), i, np.uint8) for i, k in enumerate(per_source)])
    order = np.lexsort((src, keys))
    keys, src = keys[order], src[order]
    uniq, first, n_sources = np.unique(keys, return_index=True, return_counts=True)
    source = src[first]
    recommendable = space.recommendable
    if recommendable is not None:  # nameless, unavailable and excluded items never are
        keep = recommendable[uniq % n_items]
        uniq, source, n_sources = uniq[keep], source[keep], n_sources[keep]
    rows, cols = uniq // n_items, uniq % n_items

    recent_sim = np.zeros(len(rows), np.float32)
    bounds = np.searchsorted(rows, np.arange(len(batch) + 1))
    for r in range(len(batch)):
        lo, hi = bounds[r], bounds[r + 1]
        if hi > lo and len(recent[r]):
            sims = space.embeddings[cols[lo:hi]] @ space.embeddings[recent[r]].T
            recent_sim[lo:hi] = sims.max(axis=1)
    cooc_val = np.zeros(len(rows), np.float32)
    if cooc.nnz:
        ckeys = np.repeat(np.arange(cooc.shape[0]), np.diff(cooc.indptr)) * n_items + cooc.indices
        at = np.searchsorted(ckeys, uniq)
        hit = (at < len(ckeys)) & (ckeys[np.minimum(at, len(ckeys) - 1)] == uniq)
        cooc_val[hit] = cooc.data[at[hit]]
    cat = space.category[cols]
    cat_aff = (
        np.where(cat >= 0, user_cat[rows, np.maximum(cat, 0)], 0.0)
        if space.n_categories
        else np.zeros(len(rows))
    )

    user_items = np.log1p(np.diff(binary.indptr)).astype(np.float32)
    priced = binary.multiply(np.nan_to_num(space.price, nan=0.0)[None, :]).tocsr()
    n_priced = binary.multiply((~np.isnan(space.price)).astype(np.float32)[None, :]).sum(axis=1)
    mean_price = np.asarray(priced.sum(axis=1)).ravel() / np.maximum(
        np.asarray(n_priced).ravel(), 1
    )
    mean_price = np.where(np.asarray(n_priced).ravel() > 0, mean_price, np.nan)
    price_ratio = space.price[cols] / mean_price[rows]

    frame = pd.DataFrame(
        {
            C.USER_ID: batch[C.USER_ID].to_numpy()[rows],
            "item_idx": cols.astype(np.int32),
            C.SOURCE: np.asarray(SOURCES, dtype=object)[source],
            "als_score": _rowwise_dot(u, rows, space.als_factors, cols),
            "content_profile_sim": _rowwise_dot(profile, rows, space.embeddings, cols),
            "content_recent_sim": recent_sim,
            "cooccurrence": cooc_val,
            "category_affinity": cat_aff.astype(np.float32),
            "item_popularity": space.popularity[cols],
            "item_recent_popularity": space.recent_popularity[cols],
            "item_age_days": space.age_days[cols],
            "is_tail": space.is_tail[cols].astype(np.float32),
            "is_cold": space.is_cold[cols].astype(np.float32),
            "item_has_factors": space.has_factors[cols].astype(np.float32),
            "user_items": user_items[rows],
            "price_ratio": price_ratio.astype(np.float32),
            "n_sources": n_sources.astype(np.float32),
            # found only by the tail lookups (not a feature: the ranker is trained without them)
            TAIL_LOOKUP: np.isin(uniq, looked_up, assume_unique=True),
        }
    )
    if space.ngram_vectors is not None:
        profile_ng, recent_ng = _ngram_features(hist, recent, rows, cols, bounds, space)
        frame["text_ngram_profile_sim"], frame["text_ngram_recent_sim"] = profile_ng, recent_ng
    return frame


def _ngram_candidates(
    hist: csr_matrix,
    recent: list[np.ndarray],
    excluded: csr_matrix,
    ex: list[np.ndarray],
    space: ItemSpace,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """text_ngram: per user the k items with the largest history-weighted sum of n-gram
    neighbour similarities (an item-kNN profile), and k // 2 nearest to any recent item.
    Cold items take part: the neighbours come from text alone. Nothing without the channel."""
    nb = space.ngram_neighbours
    if nb is None or k <= 0 or not nb.nnz:
        return _concat([], [])
    profile = _top_sparse((hist @ nb).tocsr(), k, excluded)
    lengths = np.array([len(js) for js in recent], dtype=np.int64)
    if k // 2 <= 0 or not lengths.sum():
        return profile
    sub = nb[np.concatenate(recent).astype(np.int64)].tocoo()
    owners = np.repeat(np.arange(len(recent)), lengths)[sub.row]
    near = _top_per_row(owners, sub.col.astype(np.int64), sub.data, k // 2, ex)
    return tuple(np.concatenate(p) for p in zip(profile, near, strict=True))  # type: ignore[return-value]


def _ngram_features(
    hist: csr_matrix,
    recent: list[np.ndarray],
    rows: np.ndarray,
    cols: np.ndarray,
    bounds: np.ndarray,
    space: ItemSpace,
) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate pair: n-gram cosine with the user's profile (log-weighted sum of their
    items' n-gram vectors) and the largest with one of their recent items."""
    x = space.ngram_vectors
    assert x is not None
    profile = ngram_profiles(hist, x)
    to_profile = np.zeros(len(rows), np.float32)
    to_recent = np.zeros(len(rows), np.float32)
    for r in range(len(bounds) - 1):
        lo, hi = bounds[r], bounds[r + 1]
        if hi <= lo:
            continue
        items = x[cols[lo:hi]]
        to_profile[lo:hi] = np.asarray((items @ profile[r].T).todense()).ravel()
        if len(recent[r]):
            to_recent[lo:hi] = np.asarray((items @ x[recent[r]].T).todense()).max(axis=1).ravel()
    return to_profile, to_recent


def frame_features(cands: pd.DataFrame) -> tuple[str, ...]:
    """The ranker's features for these candidates: FEATURES, plus NGRAM_FEATURES when the
    space carried the n-gram channel (so a night without it trains and scores as before)."""
    return FEATURES + NGRAM_FEATURES if NGRAM_FEATURES[0] in cands else FEATURES


def feature_matrix(cands: pd.DataFrame, features: Sequence[str] | None = None) -> np.ndarray:
    return cands[list(features if features is not None else frame_features(cands))].to_numpy(
        np.float32
    )
