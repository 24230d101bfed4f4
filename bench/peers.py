"""Peers trained on the same split as the pipeline, and the registry that tunes them.

Peers: `popularity`, `recent_popularity`, `itemknn`, `rp3beta`, `ease`, implicit `als`
(optionally BM25-weighted) and MLlib `spark_als`. Each returns top-k lists for the eval users,
excluding every item the user interacted with in training, plus its fit and score times.

Shared decisions:

* Item-item peers (itemknn, rp3beta, ease) use the binary user x item matrix (1 where the user
  interacted with the item, whatever the weight): they model co-occurrence, and the published
  reference implementations of RP3beta and EASE are evaluated on binarised implicit data. ALS
  keeps the log-damped confidences of `longtail.als.build_matrix` (optionally BM25-weighted).
* Scores are computed for blocks of users (``SCORE_BLOCK`` rows x all items at a time), never as
  one dense users x items matrix. Ties go to the lower item index (items sorted by id).
* Slots a model cannot fill with evidence (itemknn and rp3beta give 0 to items sharing no
  neighbour with the user's history) and users without training history get the all-time
  popularity order (distinct training users, ties by item id), skipping seen items, so every
  peer returns k items whenever k unseen items exist.

`TUNED_PEERS` lists the peers tuned on a validation window: each `PeerSpec` has an initial grid,
widening rules (`bench.tuning.Axis`), ``run(data, users, k, params, seed)`` and
``skip_reason(data)``. `tune_peer` tunes one spec by validation ndcg@10; the caller then runs the
spec with ``result["best"]`` on the test split.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

import numpy as np
import pandas as pd
import psutil
from scipy.linalg import lapack
from scipy.sparse import csr_matrix
from threadpoolctl import threadpool_limits

from bench import metrics
from bench.tuning import Axis, tune
from longtail import columns as C
from longtail.als import build_matrix, fit_matrix
from longtail.scoring import top_n_indices

SCORE_BLOCK = 1024  # users scored at once: 1024 x 12k items x 4 bytes ~ 50 MB per block

# EASE inverts a dense items x items Gram matrix: one float32 n x n array, inverted in place
# (4 n^2 bytes: 1.2 GiB at 18k items, 3.4 GiB at 30k; measured peak ~1 such array) and ~n^3
# flops for every l2 value tried. Measured on the benchmark's 2 cores (OpenBLAS, both threads):
# ~0.5 s at 4k items, ~2.5 s at 8k, ~7.8 s at 12k, so ~30 s at 18k and ~2.2 min at 30k per l2.
# The tuner fits once per l2 value (3 to 6 on the validation split) plus once for the test run:
# EASE costs ~2-3.5 min at 18k and ~9-16 min at 30k. One eigendecomposition G = V diag(w) V'
# could serve every l2 (P = V diag(1 / (w + l2)) V'), but `scipy.linalg.eigh` (float32, 'evd')
# took ~7x one whole Cholesky fit (17 s at 8k; 'evr' ~40x) and forming P from V is itself a
# ~n^3 product (1.5 s at 8k), so it breaks even only past ~25 l2 values and needs 3 n x n arrays
# (V, its scaled copy, P) instead of 1: every l2 value gets its own Cholesky inverse.
# Above 30k items one l2 value takes over 2 min and tuning alone over 15 min: skipped with a
# reason, as is a catalogue whose n x n arrays do not fit the memory available
# (`ease_memory_skip_reason`).
EASE_MAX_ITEMS = 30_000
# n x n float32 arrays of free memory EASE asks for: 1 at its peak, 1 more as headroom for the
# Gram matrix's sparse form, the scoring blocks and whatever else the process holds.
EASE_MEMORY_ARRAYS = 2

# BM25 weighting defaults of implicit's `bm25_weight` (used by its own ALS examples).
BM25_K1 = 100.0
BM25_B = 0.8
# implicit's BM25Recommender defaults, for the itemknn "bm25" similarity.
ITEMKNN_BM25_K1 = 1.2
ITEMKNN_BM25_B = 0.75


@dataclass
class PeerResult:
    recs: dict[str, list[str]]
    fit_s: float
    score_s: float
    params: dict = field(default_factory=dict)


class PeerSkipped(RuntimeError):
    """A peer cannot run on this data; ``reason`` is meant for the benchmark row."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Training data shared by the peers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Matrix:
    conf: csr_matrix  # users x items, log-damped confidences (longtail.als.build_matrix)
    binary: csr_matrix  # same pattern, all ones, float32
    user_ids: np.ndarray  # sorted
    item_ids: np.ndarray  # sorted
    user_pos: dict[str, int]
    popular: np.ndarray  # item indices, most distinct users first, ties by item id


def _prepare(interactions: pd.DataFrame) -> _Matrix:
    conf, user_ids, item_ids = build_matrix(interactions)
    binary = conf.copy()
    binary.data = np.ones_like(binary.data, dtype=np.float32)
    counts = np.diff(binary.tocsc().indptr)
    popular = np.argsort(-counts, kind="stable")
    return _Matrix(
        conf,
        binary,
        user_ids,
        item_ids,
        {str(u): i for i, u in enumerate(user_ids)},
        popular,
    )


@dataclass(eq=False)
class PeerData:
    """One training period: what every tuned peer may learn from.

    interactions: (user_id, item_id, weight), one row per pair (repeats are summed);
    events: (user_id, item_id, ts [UTC], weight), the training events behind them;
    cutoff: first instant after training (pd.Timestamp, UTC). The sparse matrices are built
    once per PeerData and shared by every peer and every tuning trial.
    """

    interactions: pd.DataFrame
    events: pd.DataFrame
    cutoff: pd.Timestamp

    @classmethod
    def from_events(cls, events: pd.DataFrame, cutoff: pd.Timestamp) -> PeerData:
        """Training events (ts < cutoff) and their per-pair weight sums."""
        ts = pd.to_datetime(events[C.TS], utc=True)
        train = events.loc[ts < cutoff, [C.USER_ID, C.ITEM_ID, C.TS, C.WEIGHT]].copy()
        train[C.TS] = pd.to_datetime(train[C.TS], utc=True)
        inter = train.groupby([C.USER_ID, C.ITEM_ID], as_index=False)[C.WEIGHT].sum()
        return cls(inter, train.reset_index(drop=True), pd.Timestamp(cutoff))

    @cached_property
    def matrix(self) -> _Matrix:
        return _prepare(self.interactions)

    @property
    def n_items(self) -> int:
        return len(self.matrix.item_ids)


# --------------------------------------------------------------------------------------------
# Blocked top-k with popularity fill
# --------------------------------------------------------------------------------------------


def _fill(
    items: list[int], seen: np.ndarray, popular: np.ndarray, k: int, item_ids: np.ndarray
) -> list[str]:
    out = list(items)
    if len(out) < k:
        skip = set(seen.tolist()) | set(out)
        for j in popular:
            if j not in skip:
                out.append(int(j))
                if len(out) == k:
                    break
    return [str(item_ids[j]) for j in out]


def _rank_blocked(
    m: _Matrix,
    users: Sequence[str],
    k: int,
    score_rows: Callable[[np.ndarray], np.ndarray],
    *,
    evidence_only: bool,
    block: int = SCORE_BLOCK,
) -> dict[str, list[str]]:
    """Top-k unseen items per user from ``score_rows(user_rows) -> (len, n_items)`` blocks.

    ``evidence_only``: scores <= 0 mean "no evidence" (sparse similarity models) and those
    slots are filled from popularity like the slots of users without history.
    """
    recs: dict[str, list[str]] = {}
    known = [u for u in users if u in m.user_pos]
    rows = np.array([m.user_pos[u] for u in known], dtype=np.int64)
    seen_all = m.binary
    for start in range(0, len(rows), block):
        r = rows[start : start + block]
        scores = np.array(score_rows(r), dtype=np.float32)
        sub = seen_all[r]
        scores[np.repeat(np.arange(len(r)), np.diff(sub.indptr)), sub.indices] = -np.inf
        if evidence_only:
            scores[scores <= 0] = -np.inf
        best = top_n_indices(scores, k)
        for j, u in enumerate(known[start : start + block]):
            items = [int(i) for i in best[j] if np.isfinite(scores[j, i])]
            seen = sub.indices[sub.indptr[j] : sub.indptr[j + 1]]
            recs[u] = _fill(items, seen, m.popular, k, m.item_ids)
    empty = np.empty(0, dtype=np.int64)
    cold = _fill([], empty, m.popular, k, m.item_ids) if len(m.item_ids) else []
    return {u: recs[u] if u in recs else list(cold) for u in users}


def recommend_from_factors(
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    seen: csr_matrix,
    users: Sequence[str],
    k: int,
    block: int = 2048,
) -> dict[str, list[str]]:
    """Blocked exact top-k (users x items in blocks, never the whole matrix), seen items removed."""
    pos = {u: i for i, u in enumerate(user_ids)}
    rows = np.array([pos[u] for u in users if u in pos], dtype=np.int64)
    names = [u for u in users if u in pos]
    recs: dict[str, list[str]] = {u: [] for u in users}
    for start in range(0, len(rows), block):
        r = rows[start : start + block]
        scores = user_factors[r] @ item_factors.T
        sub = seen[r]
        scores[np.repeat(np.arange(len(r)), np.diff(sub.indptr)), sub.indices] = -np.inf
        best = top_n_indices(scores, k)
        for j, u in enumerate(names[start : start + block]):
            recs[u] = [str(item_ids[i]) for i in best[j] if np.isfinite(scores[j, i])]
    return recs


# --------------------------------------------------------------------------------------------
# Popularity peers
# --------------------------------------------------------------------------------------------


def popularity(interactions: pd.DataFrame, users: Sequence[str], k: int) -> PeerResult:
    t0 = time.perf_counter()
    order = (
        interactions.groupby(C.ITEM_ID)[C.USER_ID]
        .nunique()
        .reset_index(name="n")
        .sort_values(["n", C.ITEM_ID], ascending=[False, True])[C.ITEM_ID]
        .tolist()
    )
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    seen = interactions.groupby(C.USER_ID)[C.ITEM_ID].agg(set).to_dict()
    recs = {}
    for u in users:
        s = seen.get(u, set())
        out = []
        for item in order:
            if item not in s:
                out.append(item)
                if len(out) == k:
                    break
        recs[u] = out
    return PeerResult(recs, fit_s, time.perf_counter() - t0)


def _by_distinct_users(frame: pd.DataFrame) -> list[str]:
    n = frame.groupby(C.ITEM_ID)[C.USER_ID].nunique().reset_index(name="n")
    n[C.ITEM_ID] = n[C.ITEM_ID].astype(str)
    return n.sort_values(["n", C.ITEM_ID], ascending=[False, True])[C.ITEM_ID].tolist()


def recent_popularity(
    events: pd.DataFrame,
    cutoff: pd.Timestamp,
    users: Sequence[str],
    k: int,
    window_days: float,
    interactions: pd.DataFrame | None = None,
) -> PeerResult:
    """Items by distinct users over [cutoff - window_days, cutoff), ties by item id.

    Items outside the window follow in all-time order (distinct users over every training event
    before the cutoff, ties by item id), which fills lists when the window holds fewer than k
    unseen items. Seen items: every (user, item) in the training events or ``interactions``.
    """
    t0 = time.perf_counter()
    cutoff = pd.Timestamp(cutoff)
    ts = pd.to_datetime(events[C.TS], utc=True)
    train = events.loc[ts < cutoff, [C.USER_ID, C.ITEM_ID]].astype(str)
    ts = ts[ts < cutoff]
    start = cutoff - pd.Timedelta(days=float(window_days))
    recent = _by_distinct_users(train[(ts >= start).to_numpy()])
    in_recent = set(recent)
    order = recent + [i for i in _by_distinct_users(train) if i not in in_recent]
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    pairs = train
    if interactions is not None:
        pairs = pd.concat([train, interactions[[C.USER_ID, C.ITEM_ID]].astype(str)])
    seen = pairs.groupby(C.USER_ID)[C.ITEM_ID].agg(set).to_dict()
    recs = {}
    for u in users:
        s = seen.get(u, ())
        recs[u] = list(itertools.islice((i for i in order if i not in s), k))
    return PeerResult(recs, fit_s, time.perf_counter() - t0, {"window_days": window_days})


# --------------------------------------------------------------------------------------------
# Item-item peers
# --------------------------------------------------------------------------------------------


def itemknn_similarity(
    binary: csr_matrix, similarity: Literal["cosine", "bm25"], neighbours: int
) -> csr_matrix:
    """implicit's item-item kNN similarity (items x items, row i = the top-K items for i).

    cosine: S_ij = |U_i & U_j| / sqrt(|U_i| |U_j|) on the binary matrix; bm25: implicit's
    BM25Recommender (K1=1.2, B=0.75) item vectors, S_ij = their dot product. Each row keeps its
    ``neighbours`` largest entries, the item itself included (as implicit does).
    """
    from implicit.nearest_neighbours import ItemItemRecommender, bm25_weight
    from implicit.nearest_neighbours import normalize as l2_rows

    # What CosineRecommender.fit / BM25Recommender.fit do, but handing all_pairs_knn the CSR
    # matrix it expects (they pass COO, which implicit converts with a warning every fit).
    if similarity == "cosine":
        weighted = l2_rows(binary.T).T.tocsr()
    elif similarity == "bm25":
        weighted = bm25_weight(binary.T, ITEMKNN_BM25_K1, ITEMKNN_BM25_B).T.tocsr()
    else:
        raise ValueError(f"unknown similarity {similarity!r}")
    model = ItemItemRecommender(K=int(neighbours))
    model.fit(weighted, show_progress=False)
    sim = csr_matrix(model.similarity, dtype=np.float32)
    sim.sort_indices()
    return sim


def itemknn(
    data: PeerData, users: Sequence[str], k: int, params: Mapping[str, Any], seed: int = 42
) -> PeerResult:
    """Item kNN: score_ui = sum over the user's items j of S_ji (implicit's similarity).

    Uses `implicit.nearest_neighbours` (CosineRecommender / BM25Recommender) to build S on the
    binary matrix, then scores blocks of users as X_u @ S here (so seen-item removal, ties and the
    popularity fill are the same as for every other peer).
    """
    m = data.matrix
    t0 = time.perf_counter()
    sim = itemknn_similarity(m.binary, params["similarity"], params["neighbours"])
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    recs = _rank_blocked(m, users, k, lambda r: (m.binary[r] @ sim).toarray(), evidence_only=True)
    return PeerResult(recs, fit_s, time.perf_counter() - t0, dict(params))


def _top_per_row(block: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, col, value) of the n largest positive entries of each row, ties to lower col."""
    positive = block > 0
    many = np.flatnonzero(positive.sum(axis=1) > n)
    positive[many] = False
    rows, cols = np.nonzero(positive)  # rows with at most n positives keep all of them
    if len(many):
        top = top_n_indices(block[many], n)
        rows = np.concatenate([rows, np.repeat(many, top.shape[1])])
        cols = np.concatenate([cols, top.ravel()])
    return rows, cols, block[rows, cols]


def rp3beta_similarity(
    binary: csr_matrix,
    alpha: float,
    beta: float,
    neighbours: int,
    normalize: bool = False,
    block: int = 512,
) -> csr_matrix:
    """RP3beta item-item weights (Paudel et al. 2017), as the reference implementation builds them.

    P_ui = X row-normalised (user -> item), P_iu = X' row-normalised (item -> user); both raised
    element-wise to ``alpha`` (as in Ferrari Dacrema et al.'s RP3betaRecommender; alpha=1 is
    the plain random walk). W_ij = (P_iu^alpha @ P_ui^alpha)_ij / pop_j^beta with pop_j the
    number of users of j (0 for items nobody used), diagonal set to 0, then only the
    ``neighbours`` largest entries of each row are kept (ties to the lower item index) and,
    with ``normalize``, each row is L1-normalised. Computed ``block`` item rows at a time, so
    memory is O(block x items + items x neighbours).
    """
    x = csr_matrix(binary, dtype=np.float64)
    x.data[:] = 1.0
    n_items = x.shape[1]
    user_deg = np.asarray(x.sum(axis=1)).ravel()
    item_deg = np.asarray(x.sum(axis=0)).ravel()
    p_ui = csr_matrix(x.multiply(1.0 / np.maximum(user_deg, 1.0)[:, None]))
    p_iu = csr_matrix(x.T.multiply(1.0 / np.maximum(item_deg, 1.0)[:, None]))
    if alpha != 1.0:
        p_ui.data **= alpha
        p_iu.data **= alpha
    scale = np.zeros(n_items)
    nz = item_deg > 0
    scale[nz] = item_deg[nz] ** (-beta)
    rows, cols, vals = [], [], []
    for start in range(0, n_items, block):
        stop = min(start + block, n_items)
        w = (p_iu[start:stop] @ p_ui).toarray()
        w *= scale[None, :]
        w[np.arange(stop - start), np.arange(start, stop)] = 0.0
        r, c, v = _top_per_row(w, int(neighbours))
        rows.append(r + start)
        cols.append(c)
        vals.append(v)
    rr, cc, vv = (np.concatenate(a) if a else np.empty(0) for a in (rows, cols, vals))
    sim = csr_matrix((vv, (rr, cc)), shape=(n_items, n_items))
    if normalize:
        sums = np.asarray(sim.sum(axis=1)).ravel()
        sim = csr_matrix(sim.multiply(1.0 / np.where(sums > 0, sums, 1.0)[:, None]))
    sim.sort_indices()
    return sim.astype(np.float32)


def rp3beta(
    data: PeerData, users: Sequence[str], k: int, params: Mapping[str, Any], seed: int = 42
) -> PeerResult:
    """RP3beta on the binary matrix: score_u = X_u @ W (see `rp3beta_similarity`)."""
    m = data.matrix
    t0 = time.perf_counter()
    sim = rp3beta_similarity(
        m.binary,
        float(params["alpha"]),
        float(params["beta"]),
        int(params["neighbours"]),
        bool(params.get("normalize", False)),
    )
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    recs = _rank_blocked(m, users, k, lambda r: (m.binary[r] @ sim).toarray(), evidence_only=True)
    return PeerResult(recs, fit_s, time.perf_counter() - t0, dict(params))


def ease_skip_reason(n_items: int) -> str | None:
    """Why EASE is not run on ``n_items`` items (time: ~n^3 flops per l2 value), or None."""
    if n_items > EASE_MAX_ITEMS:
        return (
            f"ease skipped: {n_items} items > EASE_MAX_ITEMS={EASE_MAX_ITEMS} (dense items x items "
            f"inverse: {4 * n_items**2 / 2**30:.1f} GiB per float32 copy and ~n^3 flops per "
            "l2 value, too slow on the benchmark's cores)"
        )
    return None


def ease_memory_skip_reason(n_items: int, available_bytes: int | None = None) -> str | None:
    """Why EASE does not fit in ``available_bytes`` (default: memory available now), or None.

    Asks for EASE_MEMORY_ARRAYS float32 n x n arrays, so an oversized catalogue becomes a
    benchmark row with a reason instead of an out-of-memory kill. Checked once per peer, before
    tuning (`PeerSpec.skip_reason`), not per trial: a live reading could flip between trials.
    """
    if available_bytes is None:
        available_bytes = int(psutil.virtual_memory().available)
    need = EASE_MEMORY_ARRAYS * 4 * n_items**2
    if need > available_bytes:
        return (
            f"ease skipped: {n_items} items need ~{need / 2**30:.1f} GiB of memory "
            f"({EASE_MEMORY_ARRAYS} float32 items x items arrays), "
            f"{available_bytes / 2**30:.1f} GiB available"
        )
    return None


def _symmetrize_from_upper(a: np.ndarray, block: int = 1024) -> None:
    """Copy the upper triangle of square ``a`` onto its lower triangle, in place."""
    n = a.shape[0]
    for i0 in range(0, n, block):
        i1 = min(i0 + block, n)
        d = a[i0:i1, i0:i1]
        d[...] = np.triu(d) + np.triu(d, 1).T
        if i1 < n:
            a[i1:, i0:i1] = a[i0:i1, i1:].T


def ease_weights(binary: csr_matrix, l2: float) -> np.ndarray:
    """EASE (Steck 2019) item-item weights B (items x items, float32, C order).

    G = X'X + l2 * I on the binary X, P = G^-1 (Cholesky, in place), B_ij = -P_ij / P_jj
    (each column divided by its diagonal entry), B_jj = 0. float32: G holds integer counts
    (exact below 2^24) and G + l2 I is well conditioned for the l2 values tuned, so float32
    ranks like float64 at half the memory and about half the time. A fresh Cholesky per l2
    value beats sharing one eigendecomposition across the tuner's l2 values (see
    EASE_MAX_ITEMS). Peak memory: the one n x n array, factorised and normalised in place.
    """
    n = binary.shape[1]
    if n == 0:
        return np.zeros((0, 0), dtype=np.float32)
    x = csr_matrix(binary, dtype=np.float32)
    x.data[:] = 1.0
    g = (x.T @ x).toarray().astype(np.float32, copy=False)
    g[np.diag_indices(n)] += np.float32(l2)
    a = g if g.flags.f_contiguous else g.T  # symmetric: a Fortran view lets LAPACK work in place
    # The runs pin BLAS to one thread for implicit; this O(n^3) step is the one place where
    # every core helps (about 2x on two cores).
    with threadpool_limits(limits=os.cpu_count() or 1, user_api="blas"):
        c, info = lapack.spotrf(a, lower=False, overwrite_a=True, clean=False)
        if info != 0:
            raise np.linalg.LinAlgError(f"ease: Cholesky failed (info={info}); raise l2")
        p, info = lapack.spotri(c, lower=False, overwrite_c=True)
    if info != 0:
        raise np.linalg.LinAlgError(f"ease: inverse failed (info={info})")
    p = np.asarray(p)
    _symmetrize_from_upper(p)
    p = np.ascontiguousarray(p.T)  # symmetric: a free C-ordered view when p is Fortran-ordered
    diag = np.diag(p).copy()
    p /= -diag[None, :]
    np.fill_diagonal(p, 0.0)
    return p


def ease(
    data: PeerData, users: Sequence[str], k: int, params: Mapping[str, Any], seed: int = 42
) -> PeerResult:
    """EASE on the binary matrix, score_u = X_u @ B; raises PeerSkipped above EASE_MAX_ITEMS."""
    reason = ease_skip_reason(data.n_items)
    if reason:
        raise PeerSkipped(reason)
    m = data.matrix
    t0 = time.perf_counter()
    b = ease_weights(m.binary, float(params["l2"]))
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    recs = _rank_blocked(m, users, k, lambda r: m.binary[r] @ b, evidence_only=False)
    return PeerResult(recs, fit_s, time.perf_counter() - t0, dict(params))


# --------------------------------------------------------------------------------------------
# ALS peers
# --------------------------------------------------------------------------------------------


def bm25_matrix(conf: csr_matrix, k1: float = BM25_K1, b: float = BM25_B) -> csr_matrix:
    """BM25-weighted confidences, as implicit's examples weight item x user play counts.

    `implicit.nearest_neighbours.bm25_weight` on the item x user matrix: idf per user, length
    normalisation per item (its number of users' total weight), then back to users x items.
    """
    from implicit.nearest_neighbours import bm25_weight

    weighted = bm25_weight(conf.T.tocsr(), K1=k1, B=b).T.tocsr().astype(np.float32)
    weighted.sort_indices()
    return weighted


def _als_matrix(conf: csr_matrix, params: Mapping[str, Any]) -> csr_matrix:
    return bm25_matrix(conf) if params.get("bm25", False) else conf


def als_peer(
    data: PeerData, users: Sequence[str], k: int, params: Mapping[str, Any], seed: int = 42
) -> PeerResult:
    """implicit ALS (`longtail.als.fit_matrix`) on the confidences, BM25-weighted if ``bm25``."""
    m = data.matrix
    t0 = time.perf_counter()
    uf, itf = fit_matrix(
        _als_matrix(m.conf, params),
        int(params["factors"]),
        float(params["regularization"]),
        float(params["alpha"]),
        int(params["iterations"]),
        seed,
    )
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    recs = _rank_blocked(m, users, k, lambda r: uf[r] @ itf.T, evidence_only=False)
    return PeerResult(recs, fit_s, time.perf_counter() - t0, dict(params))


DEFAULT_GRID = {
    "factors": (32, 64, 128),
    "regularization": (0.01, 0.1),
    "alpha": (1.0, 10.0),
    "iterations": (15,),
}


def tune_als(
    val_train: pd.DataFrame,
    val_truth: dict[str, set[str]],
    grid: dict[str, Sequence] = DEFAULT_GRID,
    seed: int = 42,
    k: int = 20,
) -> tuple[dict, list[dict]]:
    """Fixed grid search on the validation window (ndcg@10); superseded by `tune_peer`."""
    matrix, user_ids, item_ids = build_matrix(val_train)
    users = sorted(val_truth)
    trials = []
    for factors, reg, alpha, iters in itertools.product(
        grid["factors"], grid["regularization"], grid["alpha"], grid["iterations"]
    ):
        uf, itf = fit_matrix(matrix, factors, reg, alpha, iters, seed)
        recs = recommend_from_factors(uf, itf, user_ids, item_ids, matrix, users, k)
        params = {"factors": factors, "regularization": reg, "alpha": alpha, "iterations": iters}
        trials.append({**params, "val_ndcg@10": metrics.ndcg_at_k(recs, val_truth, 10)})
    best = max(trials, key=lambda t: (t["val_ndcg@10"], -t["factors"]))
    return {k_: best[k_] for k_ in ("factors", "regularization", "alpha", "iterations")}, trials


def als(
    interactions: pd.DataFrame, users: Sequence[str], k: int, params: dict, seed: int = 42
) -> PeerResult:
    """implicit ALS; params factors, regularization, alpha, iterations and optional ``bm25``.

    Users without training history get an empty list (as `spark_als`); the registry's `als`
    (`als_peer`) gives them the popularity list instead.
    """
    t0 = time.perf_counter()
    matrix, user_ids, item_ids = build_matrix(interactions)
    uf, itf = fit_matrix(
        _als_matrix(matrix, params),
        params["factors"],
        params["regularization"],
        params["alpha"],
        params["iterations"],
        seed,
    )
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    recs = recommend_from_factors(uf, itf, user_ids, item_ids, matrix, users, k)
    return PeerResult(recs, fit_s, time.perf_counter() - t0, params)


SPARK_ALS_MAX_RANK = 64


_CHECKPOINT_LOCK = threading.Lock()


def _checkpoint_dir(spark: Any) -> str:
    """The context's checkpoint folder, set once: it is global to the SparkContext, so replacing
    (and deleting) it per fit would pull it from under a fit running in another thread. Spark
    checkpoints each RDD into a subfolder of its own; the folder goes when the process ends."""
    sc = spark.sparkContext
    current = sc.getCheckpointDir()
    if current is not None:
        return current
    with _CHECKPOINT_LOCK:
        if sc.getCheckpointDir() is None:
            folder = tempfile.mkdtemp(prefix="longtail-als-checkpoint-")
            atexit.register(shutil.rmtree, folder, True)
            sc.setCheckpointDir(folder)
        return sc.getCheckpointDir()


def spark_als(
    spark, interactions: pd.DataFrame, users: Sequence[str], k: int, params: dict, seed: int = 42
) -> PeerResult:
    """Spark MLlib ALS (implicitPrefs) with the same hyper-parameters (and BM25 weighting if
    ``params["bm25"]``); scored like `als`.

    The rank is capped at `SPARK_ALS_MAX_RANK`: MLlib solves each normal equation in pure JVM
    code here (no native BLAS), so rank 512 on MovieLens takes over 18 minutes alone and rank
    128 on amazon-beauty about 17 minutes on 2 cores; at most 64 keeps the whole benchmark inside
    its hour. It is a reference for the same model on Spark, not a tuned peer (`als` is). The
    returned params say which rank was used.
    """
    from pyspark.ml.recommendation import ALS

    params = {**params, "factors": min(int(params["factors"]), SPARK_ALS_MAX_RANK)}

    matrix, user_ids, item_ids = build_matrix(interactions)
    coo = _als_matrix(matrix, params).tocoo()
    frame = pd.DataFrame(
        {"u": coo.row.astype(np.int32), "i": coo.col.astype(np.int32), "r": coo.data.astype(float)}
    )
    # MLlib's ALS lineage grows with every iteration; past ~15 it overflows the JVM stack when
    # serialised unless it is checkpointed (checkpointInterval needs a checkpoint folder).
    _checkpoint_dir(spark)
    t0 = time.perf_counter()
    model = ALS(
        rank=params["factors"],
        checkpointInterval=5,
        maxIter=params["iterations"],
        regParam=params["regularization"],
        alpha=params["alpha"],
        implicitPrefs=True,
        userCol="u",
        itemCol="i",
        ratingCol="r",
        seed=seed,
        coldStartStrategy="drop",
    ).fit(spark.createDataFrame(frame))
    uf_pdf = model.userFactors.toPandas().sort_values("id")
    if_pdf = model.itemFactors.toPandas().sort_values("id")
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    uf = np.zeros((len(user_ids), params["factors"]), np.float32)
    itf = np.zeros((len(item_ids), params["factors"]), np.float32)
    uf[uf_pdf["id"].to_numpy()] = np.stack(uf_pdf["features"].to_numpy())
    itf[if_pdf["id"].to_numpy()] = np.stack(if_pdf["features"].to_numpy())
    recs = recommend_from_factors(uf, itf, user_ids, item_ids, matrix, users, k)
    return PeerResult(recs, fit_s, time.perf_counter() - t0, params)


# --------------------------------------------------------------------------------------------
# Registry of tuned peers
# --------------------------------------------------------------------------------------------

RunFn = Callable[[PeerData, Sequence[str], int, Mapping[str, Any], int], PeerResult]


def _never(data: PeerData) -> str | None:
    return None


def _ease_skip(data: PeerData) -> str | None:
    return ease_skip_reason(data.n_items) or ease_memory_skip_reason(data.n_items)


def _run_recent(
    data: PeerData, users: Sequence[str], k: int, params: Mapping[str, Any], seed: int = 42
) -> PeerResult:
    return recent_popularity(
        data.events, data.cutoff, users, k, params["window_days"], data.interactions
    )


@dataclass(frozen=True)
class PeerSpec:
    """A tuned peer: initial grid, widening rules and how to run it.

    ``strategy`` and the budgets are passed to `bench.tuning.tune`.
    """

    name: str
    grid: Mapping[str, Sequence]
    axes: Mapping[str, Axis]
    run: RunFn
    skip_reason: Callable[[PeerData], str | None] = _never
    strategy: Literal["grid", "coordinate"] = "grid"
    max_rounds: int = 4
    max_evaluations: int = 24


TUNED_PEERS: dict[str, PeerSpec] = {
    spec.name: spec
    for spec in (
        PeerSpec(
            "recent_popularity",
            {"window_days": (7, 14, 28, 56)},
            {"window_days": Axis("log", factor=2.0, lo=1, hi=3650, integer=True)},
            _run_recent,
            max_evaluations=12,
        ),
        PeerSpec(
            "itemknn",
            {"similarity": ("cosine", "bm25"), "neighbours": (20, 50, 100, 200)},
            {"neighbours": Axis("log", factor=2.0, lo=1, hi=2000, integer=True)},
            itemknn,
            max_evaluations=16,
        ),
        PeerSpec(
            "rp3beta",
            {"alpha": (0.5, 1.0), "beta": (0.0, 0.25, 0.5), "neighbours": (50, 200)},
            {
                "alpha": Axis("linear", step=0.25, lo=0.0, hi=2.0),
                "beta": Axis("linear", step=0.25, lo=0.0, hi=1.0),
                "neighbours": Axis("log", factor=2.0, lo=1, hi=2000, integer=True),
            },
            rp3beta,
            # Three numeric axes: a full grid widened on every round grows as a product, so
            # search one axis at a time around the best point instead.
            strategy="coordinate",
            max_rounds=6,
            max_evaluations=36,
        ),
        PeerSpec(
            "ease",
            {"l2": (50.0, 200.0, 800.0)},
            {"l2": Axis("log", factor=4.0, lo=0.1, hi=1e6)},
            ease,
            skip_reason=_ease_skip,
            max_evaluations=6,
        ),
        PeerSpec(
            "als",
            {
                "factors": (32, 64, 128),
                "regularization": (0.01, 0.1, 1.0),
                "alpha": (1.0, 4.0, 16.0),
                "iterations": (10, 20),
                "bm25": (False, True),
            },
            {
                "factors": Axis("log", factor=2.0, lo=8, hi=512, integer=True),
                "regularization": Axis("log", factor=10.0, lo=1e-4, hi=1e3),
                "alpha": Axis("log", factor=4.0, lo=0.01, hi=1e3),
                "iterations": Axis("linear", step=10, lo=5, hi=60, integer=True),
            },
            als_peer,
            strategy="coordinate",
            max_rounds=8,
            max_evaluations=64,
        ),
    )
}


def tune_peer(
    spec: PeerSpec,
    val_data: PeerData,
    val_truth: Mapping[str, set[str]],
    k: int,
    seed: int = 42,
) -> dict[str, Any]:
    """Tune ``spec`` on the validation window: maximise ndcg@10 of its top-k for the truth users.

    Returns `bench.tuning.tune`'s dict plus ``"skipped"``: None, or the reason string
    (then nothing is evaluated: ``best`` is None and ``trials`` empty).
    """
    t0 = time.perf_counter()
    reason = spec.skip_reason(val_data)
    if reason:
        return {
            "grid": {p: list(v) for p, v in spec.grid.items()},
            "best": None,
            "best_on_edge": False,
            "at_bound": [],
            "trials": [],
            "evaluations": 0,
            "rounds": 0,
            "seconds": round(time.perf_counter() - t0, 3),
            "skipped": reason,
        }
    users = sorted(val_truth)

    def evaluate(params: dict) -> float:
        recs = spec.run(val_data, users, k, params, seed).recs
        return metrics.ndcg_at_k(recs, val_truth, 10)

    result = tune(
        spec.grid,
        evaluate,
        spec.axes,
        strategy=spec.strategy,
        max_rounds=spec.max_rounds,
        max_evaluations=spec.max_evaluations,
    )
    result["seconds"] = round(time.perf_counter() - t0, 3)
    result["skipped"] = None
    return result
