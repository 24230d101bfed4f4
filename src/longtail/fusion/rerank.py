"""The ranker's fallback blend and the tail- and new-item-aware final lists."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from longtail import columns as C
from longtail import rules as business_rules
from longtail.fusion.candidates import (
    CandidateCounts,
    Retrieval,
    build_retrieval,
    candidates,
    feature_matrix,
)
from longtail.fusion.history import HIST_ITEMS
from longtail.fusion.space import ItemSpace

IS_LONG_TAIL = C.IS_LONG_TAIL
# Items of evidence a user's own tail share is worth against the night's average (shrinkage).
CALIBRATION_PSEUDO = 5.0


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
