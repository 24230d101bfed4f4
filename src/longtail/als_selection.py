"""The nightly ALS's regularisation and confidence scaling, chosen on the shop's own past.

implicit's regularisation is absolute: it is added to Y'CY, whose scale grows with the data and
with alpha, so no single value suits every shop (a fixed 0.05 leaves a dense rating catalogue
badly over-fitted while suiting a sparse shop). Each night therefore holds out its newest pairs
(first seen at or after the validation start), fits on the rest for a small grid, scores ALS's
top-10 on the held-out pairs of a seeded sample of users, and keeps the best; the night's model is
then fitted on everything with the chosen values. It all runs on the interaction matrix that the
driver holds for ALS anyway; scoring touches only the sample, block by block.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix

from longtail.als import IndexedInteractions, build_matrix, fit_matrix

K = 10
_BLOCK = 256


@dataclass(frozen=True)
class ValidationSplit:
    train: csr_matrix  # (users, items) confidences of the pairs first seen before `start_us`
    truth: csr_matrix  # (users, items) 1 for each held-out new pair of a sampled user
    users: np.ndarray  # sampled validation users (row indices), sorted
    start_us: int  # validation start, epoch microseconds (0 for last_items)
    rule: str = "temporal"


@dataclass
class Selection:
    chosen: dict[str, float]
    trials: list[dict[str, Any]] = field(default_factory=list)
    reason: str = ""  # why the configured values were kept, when they were

    def record(self, split: ValidationSplit) -> dict[str, Any]:
        out: dict[str, Any] = {"chosen": self.chosen, "trials": self.trials}
        out["validation_rule"] = split.rule
        out["validation_start_us"] = split.start_us
        out["validation_users"] = len(split.users)
        out["validation_pairs"] = int(split.truth.nnz)
        if self.reason:
            out["kept_configured"] = self.reason
        return out


def validation_split(
    ii: IndexedInteractions,
    first_us: np.ndarray,
    share: float,
    max_users: int,
    seed: int,
    rule: str = "temporal",
) -> ValidationSplit:
    """Held-out pairs, and a sampled user's held-out pairs on items that also occur in training
    as the truth (an item nobody had bought cannot be found by ALS, and is the text channels'
    job). `temporal`: the newest `share` of all pairs by first event. `last_items`: each user's
    own newest `share` (at least one; users with 3 pairs or more), for rating data, where the
    newest pairs of the shop belong to a handful of users."""
    first_us = np.asarray(first_us, dtype=np.int64)
    if rule == "temporal":
        start = int(np.quantile(first_us, 1.0 - share, method="higher")) if len(first_us) else 0
        before = first_us < start
    elif rule == "last_items":
        start = 0
        user = np.asarray(ii.user_idx, dtype=np.int64)
        order = np.lexsort((np.asarray(ii.item_idx), first_us, user))
        n_u = np.bincount(user, minlength=len(ii.user_ids))
        group_start = np.r_[0, np.cumsum(n_u)[:-1]]
        from_end = np.empty(len(user), np.int64)
        from_end[order] = n_u[user[order]] - (np.arange(len(user)) - group_start[user[order]])
        held_n = np.maximum(1, np.ceil(share * n_u).astype(np.int64))
        before = ~((n_u[user] >= 3) & (from_end <= held_n[user]))
    else:
        raise ValueError(f"unknown validation rule {rule!r}")
    matrix, _, _ = build_matrix(ii)
    n_users, n_items = matrix.shape
    keep = csr_matrix(
        (before.astype(np.float32), (ii.user_idx, ii.item_idx)), shape=(n_users, n_items)
    )
    keep.sum_duplicates()
    train = matrix.multiply(keep > 0).tocsr()
    train.eliminate_zeros()
    train.sort_indices()
    known_user = np.diff(train.indptr) > 0
    known_item = np.bincount(train.indices, minlength=n_items) > 0
    held = ~before & known_user[ii.user_idx] & known_item[ii.item_idx]
    truth = csr_matrix(
        (np.ones(int(held.sum()), np.float32), (ii.user_idx[held], ii.item_idx[held])),
        shape=(n_users, n_items),
    )
    truth.sum_duplicates()
    truth.data[:] = 1.0
    candidates = np.flatnonzero(np.diff(truth.indptr) > 0)
    if len(candidates) > max_users:
        rng = np.random.default_rng(seed)
        candidates = np.sort(rng.choice(candidates, max_users, replace=False))
        sampled = np.zeros(n_users, np.float32)
        sampled[candidates] = 1.0
        truth = csr_matrix(truth.multiply(sampled[:, None]))
        truth.eliminate_zeros()
    return ValidationSplit(train, truth, candidates, start, rule)


def ndcg_at_k(
    user_factors: np.ndarray,
    item_factors: np.ndarray,
    split: ValidationSplit,
    k: int = K,
) -> float:
    """Mean binary NDCG@k of the factors' top-k over the split's users, training items excluded."""
    if not len(split.users):
        return float("nan")
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    total = 0.0
    for lo in range(0, len(split.users), _BLOCK):
        rows = split.users[lo : lo + _BLOCK]
        scores = user_factors[rows] @ item_factors.T
        seen = split.train[rows]
        scores[np.repeat(np.arange(len(rows)), np.diff(seen.indptr)), seen.indices] = -np.inf
        kk = min(k, scores.shape[1])
        top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        order = np.lexsort((top, -np.take_along_axis(scores, top, axis=1)), axis=1)
        top = np.take_along_axis(top, order, axis=1)
        truth = split.truth[rows]
        for r in range(len(rows)):
            relevant = truth.indices[truth.indptr[r] : truth.indptr[r + 1]]
            hits = np.isin(top[r], relevant)
            ideal = discounts[: min(len(relevant), k)].sum()
            total += float((hits * discounts[:kk]).sum() / ideal)
    return total / len(split.users)


Fit = Callable[[csr_matrix, float, float], tuple[np.ndarray, np.ndarray]]


def select(
    split: ValidationSplit,
    fit: Fit,
    regularizations: Sequence[float],
    alpha: float,
    alpha_factors: Sequence[float],
    max_extensions: int = 2,
    score: Callable[[np.ndarray, np.ndarray, ValidationSplit], float] = ndcg_at_k,
) -> Selection:
    """Regularisation first (at the configured alpha), extended a decade past an edge winner up
    to `max_extensions` times, then alpha scaled by each of `alpha_factors` at the chosen
    regularisation, extended the same way by the smallest or largest factor. Ties keep the
    earlier trial, so the choice is a function of the data."""
    trials: list[dict[str, Any]] = []
    scored: dict[tuple[float, float], float] = {}

    def trial(reg: float, a: float) -> float:
        key = (float(reg), float(a))
        if key not in scored:
            uf, vf = fit(split.train, key[0], key[1])
            scored[key] = score(uf, vf, split)
            trials.append({"regularization": key[0], "alpha": key[1], "val_ndcg@10": scored[key]})
        return scored[key]

    def best(keys: list[tuple[float, float]]) -> tuple[float, float]:
        top, top_score = keys[0], trial(*keys[0])
        for key in keys[1:]:
            if (value := trial(*key)) > top_score:
                top, top_score = key, value
        return top

    regs = sorted(float(r) for r in regularizations)
    chosen = best([(r, alpha) for r in regs])
    for _ in range(max_extensions):
        if len(regs) > 1 and chosen[0] == regs[0]:
            regs.insert(0, regs[0] / 10)
        elif len(regs) > 1 and chosen[0] == regs[-1]:
            regs.append(regs[-1] * 10)
        else:
            break
        chosen = best([(r, alpha) for r in regs])
    alphas = sorted({float(alpha), *(alpha * f for f in alpha_factors)})
    chosen = best([chosen, *[(chosen[0], a) for a in alphas if a != alpha]])
    low, high = min(alpha_factors, default=1.0), max(alpha_factors, default=1.0)
    for _ in range(max_extensions):
        if len(alphas) > 1 and chosen[1] == alphas[0] and low < 1:
            alphas.insert(0, alphas[0] * low)
        elif len(alphas) > 1 and chosen[1] == alphas[-1] and high > 1:
            alphas.append(alphas[-1] * high)
        else:
            break
        chosen = best([chosen, *[(chosen[0], a) for a in alphas if a != chosen[1]]])
    return Selection({"regularization": chosen[0], "alpha": chosen[1]}, trials)


def choose(
    ii: IndexedInteractions,
    first_us: np.ndarray,
    *,
    factors: int,
    regularization: float,
    alpha: float,
    iterations: int,
    seed: int,
    num_threads: int,
    regularizations: Sequence[float],
    alpha_factors: Sequence[float],
    share: float,
    max_users: int,
    min_users: int,
) -> tuple[Selection, ValidationSplit]:
    """The night's (regularization, alpha): chosen on its validation window (the shop's newest
    pairs, or each user's own newest where those have fewer than `min_users` users), or the
    configured pair, with the reason, when neither has `min_users` users to judge by."""
    split = validation_split(ii, first_us, share, max_users, seed)
    if len(split.users) < min_users:  # rating data: each user's own newest pairs instead
        split = validation_split(ii, first_us, share, max_users, seed, "last_items")
    if len(split.users) < min_users:
        reason = f"{len(split.users)} validation users, fewer than {min_users}"
        return Selection({"regularization": regularization, "alpha": alpha}, reason=reason), split

    def fit(train: csr_matrix, reg: float, a: float) -> tuple[np.ndarray, np.ndarray]:
        return fit_matrix(train, factors, reg, a, iterations, seed, num_threads)

    return select(split, fit, regularizations, alpha, alpha_factors), split
