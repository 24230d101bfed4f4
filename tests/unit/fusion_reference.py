"""The pandas item-space build, the reference the Spark build (`longtail.item_stats`,
`stages.fusion_inputs`) is tested against; production never calls it.

Reduces interactions held in memory to the item-sized frames `fusion.assemble_item_space`
takes: `item_stats_frame` (the twin of `item_stats.item_statistics`) and `cooccurrence` /
`cooc_pairs_frame` (the twin of `item_stats.cooccurrence_pairs`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from longtail import columns as C
from longtail.evaluation import HEAD_SHARE
from longtail.fusion import FIRST_TS, N_RECENT_USERS, N_USERS, NEIGHBOUR_ID, assemble_item_space
from longtail.fusion.space import COOCCURRENCE_TOP, COOCCURRENCE_USER_CAP, RECENT_DAYS, ItemSpace


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
