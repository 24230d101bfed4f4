"""The item space: per-item arrays in one fixed order, broadcast to every scoring task.

`assemble_item_space` builds it from item-sized frames (item statistics, co-occurrence pairs,
text vectors, ALS factors) that the nightly stages compute in Spark (`longtail.item_stats`);
`text_factors` gives never-sold items ALS factors from their text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from longtail import columns as C
from longtail.config import ItemSpaceConfig
from longtail.evaluation import HEAD_SHARE
from longtail.evaluation.split import head_tail
from longtail.rules import ItemRules


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

# Item-sized inputs of assemble_item_space; item_stats.py computes the same frames in Spark.
RECENT_DAYS = ItemSpaceConfig.default("recent_days")
N_USERS = "n_users"
N_RECENT_USERS = "n_recent_users"
FIRST_TS = "first_ts"
NEIGHBOUR_ID = "neighbour_id"


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
