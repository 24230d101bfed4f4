"""Peers trained on the same split as the pipeline: popularity, tuned implicit ALS, MLlib ALS.

Each returns top-k lists for the eval users, excluding every item the user interacted with in
training, plus its fit and score times.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from longtail import columns as C
from longtail.als import build_matrix, fit_matrix
from longtail.bench import metrics
from longtail.scoring import top_n_indices


@dataclass
class PeerResult:
    recs: dict[str, list[str]]
    fit_s: float
    score_s: float
    params: dict = field(default_factory=dict)


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
    """Grid search on the validation window; the criterion is ndcg@10 there."""
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
    t0 = time.perf_counter()
    matrix, user_ids, item_ids = build_matrix(interactions)
    uf, itf = fit_matrix(
        matrix,
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


def spark_als(
    spark, interactions: pd.DataFrame, users: Sequence[str], k: int, params: dict, seed: int = 42
) -> PeerResult:
    """Spark MLlib ALS (implicitPrefs) with the same factors/iterations; scored like `als`."""
    from pyspark.ml.recommendation import ALS

    matrix, user_ids, item_ids = build_matrix(interactions)
    coo = matrix.tocoo()
    frame = pd.DataFrame(
        {"u": coo.row.astype(np.int32), "i": coo.col.astype(np.int32), "r": coo.data.astype(float)}
    )
    t0 = time.perf_counter()
    model = ALS(
        rank=params["factors"],
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
