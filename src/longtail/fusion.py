"""Multi-source candidates, fusion features, the ranker's scores and the tail-aware final list.

Everything here is pure numpy/pandas over an `ItemSpace` (per-item arrays, broadcast once) and a
batch of users (their history as arrays), so the same code runs inside Spark's mapInPandas for
the nightly scoring, on the driver for the ranker's training window, and in the benchmark.
Scores are computed for a block of users at a time (block x items), never users x items.

Candidate sources, in the order that names a row's `source` when several propose an item:
als (factor dot product), cooccurrence (items bought together with the user's items), content
(text-embedding similarity to the user's profile and to their recent items), category (popular
in the user's categories), tail_explorer (tail items closest to the profile), cold_text (items
with no interactions yet, matched by text), popularity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from longtail import columns as C
from longtail.scoring import top_n_indices

SOURCES = (
    "als",
    "cooccurrence",
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
HIST_ITEMS = "hist_items"
HIST_WEIGHTS = "hist_weights"
HIST_TS = "hist_ts"
EXCLUDED = "excluded"
IS_LONG_TAIL = C.IS_LONG_TAIL


@dataclass(frozen=True)
class CandidateCounts:
    als: int = 100
    content: int = 50
    cooccurrence: int = 50
    category: int = 20
    tail_explorer: int = 30
    cold_text: int = 20
    popularity: int = 20
    recent_items: int = 5


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

    @property
    def index(self) -> dict[str, int]:
        return {str(x): i for i, x in enumerate(self.item_ids)}


def head_tail(counts: np.ndarray, head_share: float = 0.8) -> np.ndarray:
    """is_tail per item: outside the fewest most-interacted items holding head_share of all."""
    order = np.lexsort((np.arange(len(counts)), -counts))
    total = counts.sum()
    is_tail = np.ones(len(counts), bool)
    if total <= 0:
        return is_tail
    cum = np.cumsum(counts[order])
    n_head = int(np.searchsorted(cum, head_share * total - 1e-9) + 1)
    is_tail[order[:n_head]] = False
    return is_tail


def cooccurrence(
    interactions: pd.DataFrame,
    item_index: dict[str, int],
    n_items: int,
    top: int = 50,
    cap: int = 200,
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
    co = (x.T @ x).tocsr().astype(np.float32)
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


def build_item_space(
    catalogue: pd.DataFrame,
    interactions: pd.DataFrame,
    embeddings: pd.DataFrame | None,
    item_factors: pd.DataFrame | None,
    as_of: pd.Timestamp,
    recent_days: int = 28,
    head_share: float = 0.8,
) -> ItemSpace:
    """Item arrays as of `as_of` (exclusive) from pandas frames.

    interactions: user_id, item_id, weight, first_ts, last_ts (UTC); embeddings: item_id,
    embedding; item_factors: item_id, factors.
    """
    cat = catalogue.sort_values(C.ITEM_ID).reset_index(drop=True)
    ids = cat[C.ITEM_ID].astype(str).to_numpy()
    index = {x: i for i, x in enumerate(ids)}
    n = len(ids)
    inter = interactions[interactions[C.ITEM_ID].isin(index)]
    j = inter[C.ITEM_ID].map(index).to_numpy(dtype=np.int64)

    counts = np.bincount(j, minlength=n).astype(np.float64)
    recent = pd.to_datetime(inter["last_ts"], utc=True) >= as_of - pd.Timedelta(days=recent_days)
    recent_counts = np.bincount(j[recent.to_numpy()], minlength=n).astype(np.float64)

    first_seen = pd.to_datetime(cat.get(C.FIRST_SEEN), utc=True, errors="coerce")
    first_inter = (
        pd.Series(pd.to_datetime(inter["first_ts"], utc=True).to_numpy(), index=j)
        .groupby(level=0)
        .min()
    )
    first = pd.Series(first_seen.to_numpy() if first_seen is not None else pd.NaT, index=range(n))
    first = first.fillna(first_inter.reindex(range(n)))
    age = ((as_of - pd.to_datetime(first, utc=True)).dt.total_seconds() / 86400.0).to_numpy()
    age = np.where(np.isnan(age), 365.0 * 10, np.maximum(age, 0.0))

    emb = _vectors(embeddings, "embedding", index, n)
    fac = _vectors(item_factors, C.FACTORS, index, n)
    has_factors = np.abs(fac).sum(axis=1) > 0 if fac.size else np.zeros(n, bool)

    categories = (
        cat[C.CATEGORY].fillna("").astype(str) if C.CATEGORY in cat else pd.Series([""] * n)
    )
    codes, uniques = pd.factorize(categories.where(categories != "", None), sort=True)
    price = pd.to_numeric(cat.get(C.PRICE), errors="coerce") if C.PRICE in cat else None
    return ItemSpace(
        item_ids=ids,
        embeddings=emb,
        als_factors=fac,
        has_factors=has_factors,
        cooc=cooccurrence(inter, index, n),
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
    )


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


def _history(
    batch: pd.DataFrame, index: dict[str, int], n_items: int
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
    hist, recents, excluded = _history(batch, index, n_items)
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

    selections = {
        "als": _top_mask(als, counts.als, allowed & has_u[:, None] & space.has_factors[None, :]),
        "cooccurrence": _top_mask(cooc, counts.cooccurrence, allowed & (cooc > 0)),
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
        }
    )


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
    scores: np.ndarray, is_tail: np.ndarray, n: int, tail_target: float
) -> tuple[np.ndarray, np.ndarray]:
    """Greedy list of n positions holding at least floor(tail_target * k) tail items in every
    top-k prefix (when the candidates allow), otherwise in score order. Returns (positions,
    output scores); output scores are the fused scores capped by the previous rank's, so they
    never increase.
    """
    order = np.lexsort((np.arange(len(scores)), -scores))
    tail_q = [i for i in order if is_tail[i]]
    head_q = [i for i in order if not is_tail[i]]
    picked: list[int] = []
    n_tail = 0
    ti = hi = 0
    while len(picked) < min(n, len(scores)):
        k = len(picked) + 1
        need_tail = n_tail < np.floor(tail_target * k + 1e-9)
        if ti < len(tail_q) and (
            need_tail or hi >= len(head_q) or scores[tail_q[ti]] >= scores[head_q[hi]]
        ):
            picked.append(tail_q[ti])
            ti += 1
            n_tail += 1
        else:
            picked.append(head_q[hi])
            hi += 1
    pos = np.array(picked, dtype=np.int64)
    out = np.minimum.accumulate(scores[pos]) if len(pos) else np.zeros(0)
    return pos, out


def final_lists(
    cands: pd.DataFrame,
    scores: np.ndarray,
    space: ItemSpace,
    n: int,
    tail_target: float,
) -> pd.DataFrame:
    """Per user: tail-aware top-n of the scored candidates -> user_id, rank, item_id, score,
    source, is_long_tail."""
    out = []
    cands = cands.assign(_score=scores)
    for user, grp in cands.groupby(C.USER_ID, sort=True):
        idx = grp["item_idx"].to_numpy()
        pos, sc = tail_rerank(grp["_score"].to_numpy(), space.is_tail[idx], n, tail_target)
        out.append(
            pd.DataFrame(
                {
                    C.USER_ID: user,
                    C.RANK: np.arange(1, len(pos) + 1, dtype=np.int32),
                    C.ITEM_ID: space.item_ids[idx[pos]],
                    C.SCORE: sc.astype(np.float64),
                    C.SOURCE: grp[C.SOURCE].to_numpy()[pos],
                    IS_LONG_TAIL: space.is_tail[idx[pos]],
                }
            )
        )
    if not out:
        return pd.DataFrame(columns=[C.USER_ID, C.RANK, C.ITEM_ID, C.SCORE, C.SOURCE, IS_LONG_TAIL])
    return pd.concat(out, ignore_index=True)


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
) -> pd.DataFrame:
    """Candidates -> ranker (or blend) -> tail-aware top-n, block by block."""
    index = index if index is not None else space.index
    parts = []
    for start in range(0, len(users), block):
        batch = users.iloc[start : start + block].reset_index(drop=True)
        cands = candidates(batch, space, counts, index)
        if cands.empty:
            continue
        scores = (
            booster.predict(feature_matrix(cands))  # type: ignore[attr-defined]
            if booster is not None
            else blend_score(cands)
        )
        parts.append(final_lists(cands, np.asarray(scores, np.float64), space, n, tail_target))
    if not parts:
        return final_lists(
            pd.DataFrame(columns=[C.USER_ID, "item_idx", C.SOURCE]), np.zeros(0), space, n, 0
        )
    return pd.concat(parts, ignore_index=True)


def feature_matrix(cands: pd.DataFrame, features: Sequence[str] = FEATURES) -> np.ndarray:
    return cands[list(features)].to_numpy(np.float32)
