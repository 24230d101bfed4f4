"""Multi-source candidates, fusion features, the ranker's scores and the tail-aware final list.

Everything here is pure numpy/pandas over an `ItemSpace` (per-item arrays, broadcast once) and a
batch of users (their history as arrays), so the same code runs inside Spark's mapInPandas for
the nightly scoring, on the driver for the ranker's training window, and in the benchmark.
Scores are computed for a block of users at a time (block x items), never users x items.

Candidate sources, in the order that names a row's `source` when several propose an item:
als (factor dot product), cooccurrence (items bought together with the user's items), text_ngram
(character n-gram neighbours of the user's items; only on nights whose space carries the n-gram
channel, `longtail.text_ngrams`), content
(text-embedding similarity to the user's profile and to their recent items), category (popular
in the user's categories), tail_explorer (tail items closest to the profile), cold_text (items
with no interactions yet, matched by text), popularity.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from longtail import columns as C
from longtail import rules as business_rules
from longtail.config import ItemSpaceConfig, RankerConfig
from longtail.evaluation import HEAD_SHARE
from longtail.evaluation.split import head_tail
from longtail.retrieval import EXACT_MAX_ITEMS, VectorIndex, content_neighbours, is_excluded
from longtail.rules import ItemRules

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
# Ranker features of the n-gram channel: in the candidates (and the ranker's feature list, see
# frame_features) only when the item space carries it, so nights without it rank as before.
NGRAM_FEATURES = (
    "text_ngram_profile_sim",
    "text_ngram_recent_sim",
)
HIST_ITEMS = "hist_items"
HIST_WEIGHTS = "hist_weights"
HIST_TS = "hist_ts"
EXCLUDED = "excluded"
IS_LONG_TAIL = C.IS_LONG_TAIL
# Items of evidence a user's own tail share is worth against the night's average (shrinkage).
CALIBRATION_PSEUDO = 5.0


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

    @classmethod
    def of(cls, cfg: RankerConfig) -> CandidateCounts:
        return cls(**cfg.candidate_counts())


@dataclass(frozen=True)
class ItemSpace:
    """Per-item arrays in one fixed (sorted id) order; broadcast to every scoring task."""

    item_ids: np.ndarray
    embeddings: np.ndarray  # (I, d) unit rows; zero rows for items without text vectors
    als_factors: np.ndarray  # (I, f); zero rows for items without factors
    has_factors: np.ndarray  # (I,) bool
    cooc: csr_matrix  # (I, I) cosine co-occurrence, top neighbours per row
    popularity: np.ndarray  # (I,) log1p distinct users, all time
    recent_popularity: np.ndarray  # (I,) log1p distinct users, recent window
    age_days: np.ndarray  # (I,) days since first seen (or first interaction)
    is_tail: np.ndarray  # (I,) bool
    is_cold: np.ndarray  # (I,) bool: no interactions at all
    category: np.ndarray  # (I,) int32, -1 = unknown
    n_categories: int
    price: np.ndarray  # (I,) float32, NaN = unknown
    # (I,) bool: items with a title; only those are recommended (a list cannot show a nameless
    # item), while every item still counts as history and training data. None = all.
    titled: np.ndarray | None = None
    # (I,) bool: available on the night and not excluded by the shop's rules (None = all); set
    # by the nightly stages only, so training keeps every item.
    allowed: np.ndarray | None = None
    # The shop's caps and boosts as per-item arrays (longtail.rules); None = no rules.
    rules: ItemRules | None = None

    # The character n-gram channel (longtail.text_ngrams), None on nights it is off:
    # (I, n-grams) unit rows and (I, I) each item's top neighbours by n-gram cosine.
    ngram_vectors: csr_matrix | None = None
    ngram_neighbours: csr_matrix | None = None

    @property
    def recommendable(self) -> np.ndarray | None:
        """The one mask every list is cut by (candidates, popularity fill): titled & allowed."""
        if self.allowed is None:
            return self.titled
        return self.allowed if self.titled is None else self.titled & self.allowed

    @property
    def index(self) -> dict[str, int]:
        return {str(x): i for i, x in enumerate(self.item_ids)}


COOCCURRENCE_TOP = ItemSpaceConfig.default("cooccurrence_top")
COOCCURRENCE_USER_CAP = ItemSpaceConfig.default("cooccurrence_user_cap")


def cooccurrence(
    interactions: pd.DataFrame,
    item_index: dict[str, int],
    n_items: int,
    top: int = COOCCURRENCE_TOP,
    cap: int = COOCCURRENCE_USER_CAP,
) -> csr_matrix:
    """Item-item cosine over users (binary), keeping the top neighbours of each item.

    Each user's history is capped to their `cap` most recent items so heavy users cannot blow
    up the product.
    """
    df = interactions[[C.USER_ID, C.ITEM_ID, "last_ts"]].copy()
    df["j"] = df[C.ITEM_ID].map(item_index)
    df = df.dropna(subset=["j"])
    df = df.sort_values([C.USER_ID, "last_ts", C.ITEM_ID], ascending=[True, False, True])
    df = df.groupby(C.USER_ID, sort=False).head(cap)
    users, u_idx = np.unique(df[C.USER_ID].to_numpy(dtype=str), return_inverse=True)
    x = csr_matrix(
        (np.ones(len(df), np.float32), (u_idx, df["j"].to_numpy(dtype=np.int64))),
        shape=(len(users), n_items),
    )
    x.data[:] = 1.0
    co = (x.T @ x).tocsr().astype(np.float64)  # float64 scores: the Spark path ranks the same
    co.setdiag(0)
    co.eliminate_zeros()
    n = np.asarray(x.sum(axis=0)).ravel()
    norm = np.sqrt(np.maximum(n, 1.0))
    co = csr_matrix(co.multiply(1.0 / norm[:, None]).multiply(1.0 / norm[None, :]))
    return _keep_top(co, top)


def _keep_top(m: csr_matrix, top: int) -> csr_matrix:
    rows, cols, vals = [], [], []
    for r in range(m.shape[0]):
        start, end = m.indptr[r], m.indptr[r + 1]
        if end == start:
            continue
        v = m.data[start:end]
        c = m.indices[start:end]
        if len(v) > top:
            keep = np.lexsort((c, -v))[:top]
            v, c = v[keep], c[keep]
        rows.append(np.full(len(v), r))
        cols.append(c)
        vals.append(v)
    if not rows:
        return csr_matrix(m.shape, dtype=np.float32)
    out = csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=m.shape,
        dtype=np.float32,
    )
    out.sort_indices()
    return out


# Item-sized inputs of assemble_item_space; item_stats.py computes the same frames in Spark.
RECENT_DAYS = ItemSpaceConfig.default("recent_days")
N_USERS = "n_users"
N_RECENT_USERS = "n_recent_users"
FIRST_TS = "first_ts"
NEIGHBOUR_ID = "neighbour_id"


def item_stats_frame(
    interactions: pd.DataFrame, as_of: pd.Timestamp, recent_days: int = RECENT_DAYS
) -> pd.DataFrame:
    """Per item: rows (= distinct users), rows with last_ts in the recent window, first first_ts.

    The pandas twin of item_stats.item_statistics, for callers that hold interactions in memory.
    """
    recent = pd.to_datetime(interactions["last_ts"], utc=True) >= as_of - pd.Timedelta(
        days=recent_days
    )
    frame = pd.DataFrame(
        {
            C.ITEM_ID: interactions[C.ITEM_ID].to_numpy(),
            N_RECENT_USERS: recent.to_numpy(dtype=np.int64),
            FIRST_TS: pd.to_datetime(interactions["first_ts"], utc=True).to_numpy(),
        }
    )
    return (
        frame.groupby(C.ITEM_ID)
        .agg(
            **{
                N_USERS: (N_RECENT_USERS, "size"),
                N_RECENT_USERS: (N_RECENT_USERS, "sum"),
                FIRST_TS: (FIRST_TS, "min"),
            }
        )
        .reset_index()
    )


def cooc_pairs_frame(cooc: csr_matrix, item_ids: np.ndarray) -> pd.DataFrame:
    """A neighbour matrix as (item_id, neighbour_id, score) rows: the shape Spark hands over."""
    coo = cooc.tocoo()
    return pd.DataFrame(
        {C.ITEM_ID: item_ids[coo.row], NEIGHBOUR_ID: item_ids[coo.col], C.SCORE: coo.data}
    )


def build_item_space(
    catalogue: pd.DataFrame,
    interactions: pd.DataFrame,
    embeddings: pd.DataFrame | None,
    item_factors: pd.DataFrame | None,
    as_of: pd.Timestamp,
    recent_days: int = RECENT_DAYS,
    head_share: float = HEAD_SHARE,
) -> ItemSpace:
    """Item arrays as of `as_of` (exclusive) from pandas frames (training window, benchmark).

    interactions: user_id, item_id, weight, first_ts, last_ts (UTC); embeddings: item_id,
    embedding; item_factors: item_id, factors. Reduces interactions to item-sized frames and
    assembles them as the nightly stages do from Spark.
    """
    ids = catalogue.sort_values(C.ITEM_ID)[C.ITEM_ID].astype(str).to_numpy()
    index = {x: i for i, x in enumerate(ids)}
    inter = interactions[interactions[C.ITEM_ID].isin(index)]
    return assemble_item_space(
        catalogue,
        item_stats_frame(inter, as_of, recent_days),
        cooc_pairs_frame(cooccurrence(inter, index, len(ids)), ids),
        embeddings,
        item_factors,
        as_of,
        head_share,
    )


def assemble_item_space(
    catalogue: pd.DataFrame,
    stats: pd.DataFrame,
    pairs: pd.DataFrame,
    embeddings: pd.DataFrame | None,
    item_factors: pd.DataFrame | None,
    as_of: pd.Timestamp,
    head_share: float = HEAD_SHARE,
) -> ItemSpace:
    """Item arrays from item-sized frames only, so no user x item table has to reach the driver.

    stats: item_id, n_users, n_recent_users, first_ts (items without a row have no
    interactions); pairs: item_id, neighbour_id, score (the kept co-occurrence neighbours).
    Items outside the catalogue are ignored.
    """
    cat = catalogue.sort_values(C.ITEM_ID).reset_index(drop=True)
    ids = cat[C.ITEM_ID].astype(str).to_numpy()
    index = {x: i for i, x in enumerate(ids)}
    n = len(ids)
    per_item = stats.set_index(stats[C.ITEM_ID].astype(str).to_numpy()).reindex(ids)
    counts = per_item[N_USERS].fillna(0).to_numpy(dtype=np.float64)
    recent_counts = per_item[N_RECENT_USERS].fillna(0).to_numpy(dtype=np.float64)

    first_seen = pd.to_datetime(cat.get(C.FIRST_SEEN), utc=True, errors="coerce")
    first_inter = pd.to_datetime(per_item[FIRST_TS], utc=True).reset_index(drop=True)
    first = pd.Series(first_seen.to_numpy() if first_seen is not None else pd.NaT, index=range(n))
    first = first.fillna(first_inter)
    age = ((as_of - pd.to_datetime(first, utc=True)).dt.total_seconds() / 86400.0).to_numpy()
    age = np.where(np.isnan(age), 365.0 * 10, np.maximum(age, 0.0))

    emb = _vectors(embeddings, "embedding", index, n)
    fac = _vectors(item_factors, C.FACTORS, index, n)
    has_factors = np.abs(fac).sum(axis=1) > 0 if fac.size else np.zeros(n, bool)
    fac = text_factors(emb, fac, has_factors)

    categories = (
        cat[C.CATEGORY].fillna("").astype(str) if C.CATEGORY in cat else pd.Series([""] * n)
    )
    codes, uniques = pd.factorize(categories.where(categories != "", None), sort=True)
    price = pd.to_numeric(cat.get(C.PRICE), errors="coerce") if C.PRICE in cat else None
    titled = None
    if C.TITLE in cat:
        titled = (cat[C.TITLE].fillna("").astype(str).str.strip() != "").to_numpy()
    return ItemSpace(
        item_ids=ids,
        embeddings=emb,
        als_factors=fac,
        has_factors=has_factors,
        cooc=_pairs_matrix(pairs, index, n),
        popularity=np.log1p(counts).astype(np.float32),
        recent_popularity=np.log1p(recent_counts).astype(np.float32),
        age_days=age.astype(np.float32),
        is_tail=head_tail(counts, head_share),
        is_cold=counts == 0,
        category=codes.astype(np.int32),
        n_categories=len(uniques),
        price=(
            price.to_numpy(dtype=np.float32)
            if price is not None
            else np.full(n, np.nan, np.float32)
        ),
        titled=titled,
    )


FACTOR_MAP_RIDGES = (0.01, 0.1, 1.0, 10.0)


def text_factors(
    emb: np.ndarray,
    fac: np.ndarray,
    has_factors: np.ndarray,
    ridges: Sequence[float] = FACTOR_MAP_RIDGES,
) -> np.ndarray:
    """ALS factors for items without them, predicted from their text (Gantner et al. 2010).

    A ridge map text -> factors is fitted on the warm items that have both, so a never-sold item
    gets a real ALS score instead of the 0 that makes it look like old stock nobody bought. The
    ridge (relative to the mean eigenvalue of the text Gram matrix) is chosen on every fifth warm
    item held out, then the map is refitted on all of them. Warm items keep their own factors;
    `has_factors` still says which factors are learned, so the ALS index holds only those.
    Unchanged when fewer than max(50, 2 x text dimensions) warm items have text.
    """
    has_text = np.abs(emb).sum(axis=1) > 0 if emb.size else np.zeros(len(fac), bool)
    train = np.flatnonzero(has_factors & has_text)
    target = np.flatnonzero(~has_factors & has_text)
    if len(target) == 0 or len(train) < max(50, 2 * emb.shape[1]) or fac.shape[1] < 2:
        return fac
    x = emb[train].astype(np.float64)
    y = fac[train].astype(np.float64)

    def solve(xs: np.ndarray, ys: np.ndarray, ridge: float) -> np.ndarray:
        gram = xs.T @ xs
        scale = max(float(np.trace(gram)) / gram.shape[0], 1e-12)
        return np.linalg.solve(gram + ridge * scale * np.eye(gram.shape[0]), xs.T @ ys)

    held = np.arange(len(train)) % 5 == 4
    errors = [
        float(np.square(x[held] @ solve(x[~held], y[~held], r) - y[held]).sum()) for r in ridges
    ]
    best = ridges[int(np.argmin(errors))]
    out = fac.copy()
    out[target] = (emb[target].astype(np.float64) @ solve(x, y, best)).astype(fac.dtype)
    return out


def _pairs_matrix(pairs: pd.DataFrame, index: dict[str, int], n: int) -> csr_matrix:
    """(item_id, neighbour_id, score) rows as the (I, I) float32 matrix the scorers slice."""
    rows = pairs[C.ITEM_ID].astype(str).map(index)
    cols = pairs[NEIGHBOUR_ID].astype(str).map(index)
    ok = (rows.notna() & cols.notna()).to_numpy()
    m = csr_matrix(
        (
            pairs[C.SCORE].to_numpy(dtype=np.float32)[ok],
            (rows[ok].to_numpy(dtype=np.int64), cols[ok].to_numpy(dtype=np.int64)),
        ),
        shape=(n, n),
        dtype=np.float32,
    )
    m.sort_indices()
    return m


def _vectors(frame: pd.DataFrame | None, column: str, index: dict[str, int], n: int) -> np.ndarray:
    if frame is None or frame.empty:
        return np.zeros((n, 1), np.float32)
    frame = frame[frame[column].notna()]
    dim = len(frame[column].iloc[0])
    out = np.zeros((n, dim), np.float32)
    rows = frame[C.ITEM_ID].astype(str).map(index)
    ok = rows.notna().to_numpy()
    if ok.any():
        out[rows[ok].to_numpy(dtype=np.int64)] = np.stack(frame[column].to_numpy()[ok])
    return out


def history_matrix(
    batch: pd.DataFrame, index: Mapping[str, int], n_items: int
) -> tuple[csr_matrix, list[np.ndarray], csr_matrix]:
    """Users' history (log weights), each user's most recent item indices, and exclusions."""
    rows, cols, vals, recents = [], [], [], []
    ex_rows, ex_cols = [], []
    for r, (items, weights, ts, excl) in enumerate(
        zip(batch[HIST_ITEMS], batch[HIST_WEIGHTS], batch[HIST_TS], batch[EXCLUDED], strict=True)
    ):
        js = [index.get(str(x), -1) for x in (items if items is not None else [])]
        ok = [k for k, jj in enumerate(js) if jj >= 0]
        j_arr = np.array([js[k] for k in ok], dtype=np.int64)
        w_arr = np.array([weights[k] for k in ok], dtype=np.float64)
        t_arr = np.array([ts[k] for k in ok], dtype=np.float64)
        rows.append(np.full(len(j_arr), r))
        cols.append(j_arr)
        vals.append(np.log1p(w_arr))
        recents.append(j_arr[np.lexsort((j_arr, -t_arr))])
        ex = [index[str(x)] for x in (excl if excl is not None else []) if str(x) in index]
        ex_rows.append(np.full(len(ex), r))
        ex_cols.append(np.array(ex, dtype=np.int64))
    shape = (len(batch), n_items)
    hist = csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=shape
    )
    hist.sum_duplicates()
    excluded = csr_matrix(
        (np.ones(sum(len(x) for x in ex_rows)), (np.concatenate(ex_rows), np.concatenate(ex_cols))),
        shape=shape,
    )
    return hist, recents, excluded


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


def retrieval_from_meta(space: ItemSpace, meta: dict) -> tuple[CandidateCounts, Retrieval]:
    """The candidate counts and retrieval a published ranker was trained with."""
    counts = CandidateCounts(**meta["candidate_counts"])
    limit = meta.get("retrieval", {}).get("exact_max_items", EXACT_MAX_ITEMS)
    return counts, build_retrieval(space, counts, int(limit))


def _flat(pos: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(user rows, item positions) of the valid entries of a padded (users x k) answer."""
    ok = pos >= 0
    return np.repeat(rows, ok.sum(axis=1)), pos[ok]


def _top_sparse(m: csr_matrix, k: int, excluded: csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k largest positive entries outside its exclusions; ties to the lower column."""
    coo = m.tocoo()
    keep = coo.data > 0
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


def _rowwise_dot(a: np.ndarray, rows: np.ndarray, b: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """a[rows[i]] . b[cols[i]] for every pair, in chunks so the gathered rows stay small."""
    out = np.zeros(len(rows), np.float32)
    step = max(1, 4_000_000 // max(1, a.shape[1]))
    for s in range(0, len(rows), step):
        out[s : s + step] = np.einsum(
            "ij,ij->i", a[rows[s : s + step]], b[cols[s : s + step]], dtype=np.float32
        )
    return out


def text_profiles(hist: csr_matrix, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shoppers' text profiles: the log-weighted sum of their items' vectors, unit length, and
    whether they have one (some history item has a vector)."""
    profile = np.asarray(hist @ vectors, dtype=np.float32)
    norms = np.linalg.norm(profile, axis=1, keepdims=True)
    profile = np.divide(profile, norms, out=np.zeros_like(profile), where=norms > 0)
    return profile, norms.ravel() > 0


def ngram_profiles(hist: csr_matrix, x: csr_matrix) -> csr_matrix:
    """text_profiles on the character n-gram channel (sparse rows, unit length or empty)."""
    profile = (hist @ x).tocsr()
    norms = np.sqrt(np.asarray(profile.multiply(profile).sum(axis=1)).ravel())
    return csr_matrix(profile.multiply(1.0 / np.maximum(norms, 1e-12)[:, None]))


def candidates(
    batch: pd.DataFrame,
    space: ItemSpace,
    counts: CandidateCounts,
    index: dict[str, int],
    retrieval: Retrieval | None = None,
) -> pd.DataFrame:
    """Candidate rows with features for a batch of users (see module doc for the columns).

    Each source retrieves its own top-k (index search, sparse lookups, per-category lists);
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
    found = {
        "als": search(re.als, u, users_u, counts.als),
        "cooccurrence": _top_sparse(cooc, counts.cooccurrence, excluded),
        "text_ngram": _ngram_candidates(hist, recent, excluded, ex, space, counts.text_ngram),
        "content": tuple(np.concatenate(p) for p in zip(profile_hits, recent_hits, strict=True)),
        "category": _category_candidates(user_cat, ex, space, re, counts.category),
        "tail_explorer": search(re.text, profile, users_p, counts.tail_explorer, space.is_tail),
        "cold_text": search(re.text, profile, users_p, counts.cold_text, space.is_cold),
        "popularity": _popular_candidates(ex, re, counts.popularity),
    }
    # One key per (user, item) and source; a pair's source is the first in SOURCES naming it.
    per_source = [np.unique(found[s][0] * n_items + found[s][1]) for s in SOURCES]
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


def blend_score(frame: pd.DataFrame) -> np.ndarray:
    """Fixed blend used when no ranker could be trained (too little labelled history)."""
    return (
        frame["als_score"].to_numpy()
        + frame["content_profile_sim"].to_numpy()
        + 0.5 * frame["content_recent_sim"].to_numpy()
        + np.log1p(frame["cooccurrence"].to_numpy())
        + 0.05 * frame["item_recent_popularity"].to_numpy()
    )


def tail_rerank(
    scores: np.ndarray,
    is_tail: np.ndarray,
    n: int,
    tail_target: float,
    is_new: np.ndarray | None = None,
    new_target: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy list of n positions holding at least floor(tail_target * k) tail items and
    floor(new_target * k) new items (never sold: `is_new`) in every top-k prefix, when the
    candidates allow, otherwise in score order. A new item is a tail item too. Returns
    (positions, output scores); output scores are the fused scores capped by the previous rank's,
    so they never increase.

    The new-item slots exist because the ranker, trained for accuracy, rightly rates a product
    nobody has bought below one many have: left to it, a new product is never shown, so it never
    sells, so it never earns a better score. The best-scored new candidates of each shopper (found
    by text similarity to what they bought) get those few slots.
    """
    order = np.lexsort((np.arange(len(scores)), -scores))
    new = np.zeros(len(scores), bool) if is_new is None else np.asarray(is_new, bool)
    tail = np.asarray(is_tail, bool) | new
    taken = np.zeros(len(scores), bool)
    queues = {
        q: [i for i in order if m[i]] for q, m in (("new", new), ("tail", tail), ("head", ~tail))
    }
    heads = dict.fromkeys(queues, 0)

    def best(q: str) -> int | None:
        qi, at = queues[q], heads[q]
        while at < len(qi) and taken[qi[at]]:
            at += 1
        heads[q] = at
        return qi[at] if at < len(qi) else None

    picked: list[int] = []
    n_tail = n_new = 0
    while len(picked) < min(n, len(scores)):
        k = len(picked) + 1
        pick = None
        if n_new < np.floor(new_target * k + 1e-9):
            pick = best("new")
        if pick is None and n_tail < np.floor(tail_target * k + 1e-9):
            pick = best("tail")
        if pick is None:  # best of both, a tie going to the tail item
            t, h = best("tail"), best("head")
            pick = t if h is None or (t is not None and scores[t] >= scores[h]) else h
        assert pick is not None
        taken[pick] = True
        picked.append(pick)
        n_tail += int(tail[pick])
        n_new += int(new[pick])
    pos = np.array(picked, dtype=np.int64)
    out = np.minimum.accumulate(scores[pos]) if len(pos) else np.zeros(0)
    return pos, out


def tail_shares(batch: pd.DataFrame, space: ItemSpace, index: dict[str, int]) -> np.ndarray:
    """(tail items, distinct items) of each user's history in the batch, as an (n, 2) array."""
    out = np.zeros((len(batch), 2), np.float64)
    for r, items in enumerate(batch[HIST_ITEMS]):
        js = np.unique([index.get(str(x), -1) for x in (items if items is not None else [])])
        js = js[js >= 0]
        out[r] = space.is_tail[js].sum(), len(js)
    return out


def tail_calibration(
    shares: np.ndarray, tail_target: float, pseudo: float = CALIBRATION_PSEUDO
) -> tuple[float, float]:
    """(prior, shift) for calibrated_targets from every user's (tail items, distinct items):
    prior = the mean user's tail share; shift = what puts the mean target at tail_target. The
    same sums, computed in Spark, are `stages.score.night_tail_calibration`."""
    has = shares[:, 1] > 0
    t, n = shares[has, 0], shares[has, 1]
    if not len(n):
        return 0.0, tail_target
    prior = float(np.mean(t / n))
    mean_own = float(np.mean(t / (n + pseudo)) + pseudo * prior * np.mean(1.0 / (n + pseudo)))
    return prior, tail_target - mean_own


def calibrated_targets(
    shares: np.ndarray, prior: float, shift: float, pseudo: float = CALIBRATION_PSEUDO
) -> np.ndarray:
    """Each user's own tail target (calibration, Steck 2018): their history's tail share,
    shrunk towards `prior` by `pseudo` items (one item says little), plus the night's `shift`,
    which puts the mean over every user at the configured tail_target; clipped to [0, 1]."""
    own = (shares[:, 0] + pseudo * prior) / (shares[:, 1] + pseudo)
    return np.clip(own + shift, 0.0, 1.0)


def final_lists(
    cands: pd.DataFrame,
    scores: np.ndarray,
    space: ItemSpace,
    n: int,
    tail_target: float | Mapping[str, float],
    new_target: float = 0.0,
) -> pd.DataFrame:
    """Per user: tail- and new-item-aware top-n of the scored candidates -> user_id, rank,
    item_id, score, source, is_long_tail. `tail_target` is one share for all or one per user."""
    columns = [C.USER_ID, C.RANK, C.ITEM_ID, C.SCORE, C.SOURCE, IS_LONG_TAIL]
    # Users in sorted order, each user's rows in their given order (as groupby(sort=True)), read
    # as numpy slices: one frame for the whole block, not one per user.
    codes, users = pd.factorize(cands[C.USER_ID], sort=True)
    keep = np.flatnonzero(codes >= 0)  # groupby drops missing keys
    rows = keep[np.argsort(codes[keep], kind="stable")]
    if not len(rows):
        return pd.DataFrame(columns=columns)
    codes = codes[rows]
    item_idx = cands["item_idx"].to_numpy()[rows]
    score = np.asarray(scores)[rows]
    source = cands[C.SOURCE].to_numpy()[rows]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    picked, out_scores, ranks, lengths = [], [], [], []
    per_user = isinstance(tail_target, Mapping)
    for a, b in zip(starts, ends, strict=True):
        ids = item_idx[a:b]
        target = tail_target[str(users[codes[a]])] if per_user else tail_target  # type: ignore[index]
        block, keep = score[a:b], np.arange(b - a)
        if space.rules is not None:  # boosts, then the capped candidates only (longtail.rules)
            boosted, keep = business_rules.apply(space.rules, block, ids)
            block, ids = boosted[keep], ids[keep]
        pos, sc = tail_rerank(
            block, space.is_tail[ids], n, float(target), space.is_cold[ids], new_target
        )
        pos = keep[pos]
        picked.append(pos + a)
        out_scores.append(sc.astype(np.float64))
        ranks.append(np.arange(1, len(pos) + 1, dtype=np.int32))
        lengths.append(len(pos))
    at = np.concatenate(picked).astype(np.int64)
    idx = item_idx[at]
    return pd.DataFrame(
        {
            C.USER_ID: np.repeat(np.asarray(users, dtype=object)[codes[starts]], lengths),
            C.RANK: np.concatenate(ranks),
            C.ITEM_ID: space.item_ids[idx],
            C.SCORE: np.concatenate(out_scores),
            C.SOURCE: source[at],
            IS_LONG_TAIL: space.is_tail[idx],
        },
        columns=columns,
    )


def user_frame(interactions: pd.DataFrame, user_factors: pd.DataFrame | None) -> pd.DataFrame:
    """pandas equivalent of the Spark users frame: history arrays, exclusions, factors."""
    df = interactions.sort_values([C.USER_ID, C.ITEM_ID])
    ts = pd.to_datetime(df["last_ts"], utc=True).astype("int64") / 1e9
    df = df.assign(_ts=ts)
    grouped = df.groupby(C.USER_ID, sort=True)
    out = pd.DataFrame(
        {
            HIST_ITEMS: grouped[C.ITEM_ID].agg(list),
            HIST_WEIGHTS: grouped[C.WEIGHT].agg(list),
            HIST_TS: grouped["_ts"].agg(list),
            EXCLUDED: grouped.apply(
                lambda g: g.loc[g["exclude"].astype(bool), C.ITEM_ID].tolist(), include_groups=False
            ),
        }
    ).reset_index()
    if user_factors is not None:
        out = out.merge(user_factors[[C.USER_ID, C.FACTORS]], on=C.USER_ID, how="left")
    else:
        out[C.FACTORS] = None
    return out


def recommend(
    users: pd.DataFrame,
    space: ItemSpace,
    counts: CandidateCounts,
    booster: object | None,
    n: int,
    tail_target: float,
    block: int = 256,
    index: dict[str, int] | None = None,
    retrieval: Retrieval | None = None,
    new_target: float = 0.0,
    calibration: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Candidates -> ranker (or blend) -> tail- and new-item-aware top-n, block by block.
    With `calibration` (prior, shift) each user gets their own tail target (calibrated_targets)
    instead of `tail_target`."""
    index = index if index is not None else space.index
    retrieval = retrieval if retrieval is not None else build_retrieval(space, counts)
    parts = []
    for start in range(0, len(users), block):
        batch = users.iloc[start : start + block].reset_index(drop=True)
        cands = candidates(batch, space, counts, index, retrieval)
        if cands.empty:
            continue
        scores = (
            booster.predict(feature_matrix(cands))  # type: ignore[attr-defined]
            if booster is not None
            else blend_score(cands)
        )
        scores = np.asarray(scores, np.float64)
        target: float | dict[str, float] = tail_target
        if calibration is not None:
            own = calibrated_targets(tail_shares(batch, space, index), *calibration)
            target = dict(zip(batch[C.USER_ID].astype(str), own.tolist(), strict=True))
        parts.append(final_lists(cands, scores, space, n, target, new_target))
    if not parts:
        return final_lists(
            pd.DataFrame(columns=[C.USER_ID, "item_idx", C.SOURCE]), np.zeros(0), space, n, 0
        )
    return pd.concat(parts, ignore_index=True)


def frame_features(cands: pd.DataFrame) -> tuple[str, ...]:
    """The ranker's features for these candidates: FEATURES, plus NGRAM_FEATURES when the
    space carried the n-gram channel (so a night without it trains and scores as before)."""
    return FEATURES + NGRAM_FEATURES if NGRAM_FEATURES[0] in cands else FEATURES


def feature_matrix(cands: pd.DataFrame, features: Sequence[str] | None = None) -> np.ndarray:
    return cands[list(features if features is not None else frame_features(cands))].to_numpy(
        np.float32
    )
