"""The ranker's fallback blend and the tail- and new-item-aware final lists."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from longtail import columns as C
from longtail import rules as business_rules
from longtail.evaluation.ranking import ideal_dcg
from longtail.fusion.candidates import (
    TAIL_LOOKUP,
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


# The floors hold at the end of every block of this many positions (10, 20, ..., and top_n).
FLOOR_BLOCK = 10


def tail_rerank(
    scores: np.ndarray,
    is_tail: np.ndarray,
    n: int,
    tail_target: float,
    is_new: np.ndarray | None = None,
    new_target: float = 0.0,
    block: int = FLOOR_BLOCK,
    lookup: np.ndarray | None = None,
    floor_scores: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A list of n positions whose top-k holds at least floor(tail_target * k) tail items and
    floor(new_target * k) new items (never sold: `is_new`) for k = block, 2 * block, ... and n,
    when the candidates allow. Every other position follows the scores; an item placed to meet a
    floor goes as late as its block allows, so it displaces the weakest of the block's picks
    rather than its best. A new item is a tail item too. Returns (positions, output scores);
    output scores are the fused scores capped by the previous rank's, so they never increase.

    `lookup` marks candidates only the tail lookups found (candidates.TAIL_LOOKUP). A tail
    position goes to a new item exactly when the best tail candidate without them is new;
    otherwise to the best warm tail item, looked-up ones included. So the lookups compete with
    the warm tail items only, never for the positions new items get: they score above most new
    items, and took those positions from them (fewer new products shown, new-item recall down).

    `floor_scores` (default: `scores`) order the candidates a floor takes from (new, tail and
    warm tail); every other position follows `scores`. So a floor can rotate which tail item it
    shows (tail_order's exposure term) without moving an item that wins its position on score.

    The new-item slots exist because the ranker, trained for accuracy, rightly rates a product
    nobody has bought below one many have: left to it, a new product is never shown, so it never
    sells, so it never earns a better score. The best-scored new candidates of each shopper (found
    by text similarity to what they bought) get those few slots.
    """
    order = np.lexsort((np.arange(len(scores)), -scores))
    new = np.zeros(len(scores), bool) if is_new is None else np.asarray(is_new, bool)
    tail = np.asarray(is_tail, bool) | new
    taken = np.zeros(len(scores), bool)
    # Each queue: the candidates of its kind, best first, as plain ints (read one at a time).
    floor = (
        order
        if floor_scores is None
        else np.lexsort((np.arange(len(scores)), -np.asarray(floor_scores, np.float64)))
    )
    queues = {"new": floor[new[floor]].tolist(), "tail": floor[tail[floor]].tolist()}
    queues["all"] = order.tolist()
    looked = np.asarray(lookup, bool) if lookup is not None and np.any(lookup) else None
    if looked is not None:
        queues["tail"] = floor[(tail & ~looked)[floor]].tolist()
        queues["warm"] = floor[(tail & ~new)[floor]].tolist()
    heads = dict.fromkeys(queues, 0)

    def best(q: str) -> int | None:
        qi, at = queues[q], heads[q]
        while at < len(qi) and taken[qi[at]]:
            at += 1
        heads[q] = at
        return qi[at] if at < len(qi) else None

    size = min(n, len(scores))
    ends = sorted({*range(block, n, block), n}) if block > 0 else [n]
    picked: list[int] = []
    n_tail = n_new = 0
    while len(picked) < size:
        k = len(picked) + 1
        end = next(e for e in ends if e >= k)
        left = end - k + 1  # positions up to the block's end, this one included
        need_new = math.floor(new_target * end + 1e-9) - n_new
        need_tail = math.floor(tail_target * end + 1e-9) - n_tail
        pick = best("new") if need_new >= left else None
        if pick is None and need_tail >= left:
            pick = best("tail")
            if looked is not None and (pick is None or not new[pick]):
                warm = best("warm")
                pick = warm if warm is not None else pick
        if pick is None:
            pick = best("all")
        assert pick is not None
        taken[pick] = True
        picked.append(pick)
        n_tail += int(tail[pick])
        n_new += int(new[pick])
    pos = np.array(picked, dtype=np.int64)
    out = np.minimum.accumulate(scores[pos]) if len(pos) else np.zeros(0)
    return pos, out


def top_new_scores(
    users: np.ndarray, scores: np.ndarray, is_new: np.ndarray, cap: int
) -> np.ndarray:
    """Each user's `cap` best scores among their new candidates, pooled (new_item_threshold's
    input: only these can earn a slot)."""
    new = np.asarray(is_new, bool)
    frame = pd.DataFrame(
        {"u": np.asarray(users).astype(str)[new], "s": np.asarray(scores, np.float64)[new]}
    )
    frame = frame.sort_values(["u", "s"], ascending=[True, False], kind="stable")
    return frame["s"].to_numpy()[frame.groupby("u").cumcount().to_numpy() < cap]


def new_item_threshold(top_scores: np.ndarray, n_users: int, per_list: float) -> float:
    """The night's bar for a new-item slot: the ranker score at or above which the sampled
    users' new candidates fill `per_list` slots a list on average (`top_scores`: each user's
    best new-candidate scores, as many as one list may take, pooled; see top_new_scores).
    -inf when every such candidate is needed to reach the average, +inf when no slot is given."""
    want = round(per_list * n_users)
    if want <= 0:
        return float("inf")
    if want >= len(top_scores):
        return float("-inf")
    return float(np.sort(np.asarray(top_scores, np.float64))[::-1][want - 1])


def new_item_counts(
    users: np.ndarray, scores: np.ndarray, is_new: np.ndarray, threshold: float, cap: int
) -> dict[str, int]:
    """Each user's new-item slots: how many of their new candidates score at or above the
    night's `threshold`, at most `cap` (0 for a user without one)."""
    hit = np.asarray(is_new, bool) & (np.asarray(scores, np.float64) >= threshold)
    per_user = pd.Series(hit).groupby(np.asarray(users).astype(str), sort=False).sum()
    return {str(u): int(n) for u, n in per_user.clip(upper=cap).items()}


def exposure_penalty(shown: np.ndarray, is_new: np.ndarray | None = None) -> np.ndarray:
    """Per item, log(1 + e / mean e): e = how many lists' top-10 show it (a sample of the
    night's users), the mean over the items shown at all. 0 for an item nobody is shown, and
    for new items (`is_new`): their slots are there to show them, and a penalty would hand a
    shopper's slot to a new item that matches them less."""
    shown = np.asarray(shown, np.float64)
    mean = shown[shown > 0].mean() if (shown > 0).any() else 1.0
    out = np.log1p(shown / mean)
    return out if is_new is None else np.where(np.asarray(is_new, bool), 0.0, out)


def spread_scores(
    users: np.ndarray, scores: np.ndarray, item_idx: np.ndarray, penalty: np.ndarray
) -> np.ndarray:
    """Each user's candidate scores standardised (mean 0, sd 1 over their candidates), minus
    `penalty` of the item (strength x exposure_penalty): between two candidates the shopper
    rates alike, the one fewer other lists already show wins, so the night's lists cover more of
    the catalogue. Standardising puts every user's and every ranker's scores on one scale."""
    codes, _ = pd.factorize(np.asarray(users), sort=False)
    return _user_z(codes, np.asarray(scores, np.float64)) - np.asarray(penalty)[item_idx]


def _user_z(codes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """values standardised within each user's rows (codes: the rows' user codes); 0 where a
    user's values are all equal."""
    n = np.bincount(codes).astype(np.float64)
    mean = np.bincount(codes, values) / n
    sd = np.sqrt(np.maximum(np.bincount(codes, values * values) / n - mean * mean, 0.0))
    sd = np.where(sd > 1e-12, sd, 1.0)
    return (values - mean[codes]) / sd[codes]


def tail_order(
    users: np.ndarray,
    scores: np.ndarray,
    is_tail: np.ndarray,
    cooccurrence: np.ndarray,
    weight: float,
    exposure: np.ndarray | None = None,
) -> np.ndarray:
    """The scores with each user's tail candidates re-ordered among themselves by
    z(score) + weight x z(log1p(cooccurrence)) - exposure (z over the user's candidates;
    `exposure`: a penalty per row, default none): the tail keeps
    the scores, so the positions, the ranker gave it, but which tail item takes each is decided
    with the co-occurrence with the shopper's own items too. The ranker learns mostly from head
    positives and ranks the tail by popularity-like features, so every shopper would get the same
    few tail items; co-occurrence is the evidence a rarely-sold item has for this shopper. Ties
    keep the ranker's order, then the candidates' order."""
    scores = np.asarray(scores, np.float64)
    rows = np.flatnonzero(np.asarray(is_tail, bool))
    if (weight == 0 and exposure is None) or not len(rows):
        return scores
    codes, _ = pd.factorize(np.asarray(users), sort=False)
    key = _user_z(codes, scores) + weight * _user_z(
        codes, np.log1p(np.asarray(cooccurrence, np.float64))
    )
    if exposure is not None:
        key = key - np.asarray(exposure, np.float64)
    by_score = rows[np.lexsort((rows, -scores[rows], codes[rows]))]
    by_key = rows[np.lexsort((rows, -scores[rows], -key[rows], codes[rows]))]
    out = scores.copy()
    out[by_key] = scores[by_score]
    return out


def ordered_tail(
    cands: pd.DataFrame,
    scores: np.ndarray,
    space: ItemSpace,
    weight: float,
    penalty: np.ndarray | None = None,
) -> np.ndarray:
    """tail_order on a candidate frame: its warm tail rows (tail, not new) by co-occurrence, and
    less by `penalty` (per item) when given."""
    items = cands["item_idx"].to_numpy()
    warm_tail = space.is_tail[items] & ~space.is_cold[items]
    return tail_order(
        cands[C.USER_ID].to_numpy(),
        scores,
        warm_tail,
        cands["cooccurrence"].to_numpy(),
        weight,
        None if penalty is None else np.asarray(penalty, np.float64)[items],
    )


def choose_spread(
    frame: pd.DataFrame,
    scores: np.ndarray,
    strengths: tuple[float, ...],
    n: int,
    tail_target: float,
    new_target: float,
) -> tuple[float, dict[float, float]]:
    """The exposure-penalty strength whose re-ranked lists score the best ndcg@10 on labelled
    users (`frame`: user_id, item_idx, is_tail, is_cold, label, one block of rows per user),
    ties to the stronger spread; with the ndcg of every strength. The exposure is measured on
    these users' own lists at strength 0, as the score stage measures it on a sample."""
    if frame.empty:
        return 0.0, dict.fromkeys(map(float, strengths), 0.0)
    users = frame[C.USER_ID].to_numpy()
    item_idx = frame["item_idx"].to_numpy()
    n_items = int(item_idx.max()) + 1
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    tail = frame["is_tail"].to_numpy() > 0
    new = frame["is_cold"].to_numpy() > 0
    labels = frame["label"].to_numpy()

    idcg = ideal_dcg(10)
    gains = 1.0 / np.log2(np.arange(2, 12, dtype=np.float64))

    def lists(s: np.ndarray) -> list[np.ndarray]:
        """Each user's re-ranked rows (positions into the frame), as score builds them."""
        return [
            a + tail_rerank(s[a:b], tail[a:b], n, tail_target, new[a:b], new_target)[0]
            for a, b in zip(starts, ends, strict=True)
        ]

    def ndcg(rows: list[np.ndarray]) -> float:
        """Mean ndcg@10 over the users (binary labels; a user without a label scores 0). Not
        evaluation's ndcg_grouped: that ranks every candidate row, so an item left out of a list
        shorter than 10 would still earn credit."""
        out = []
        for (a, b), r in zip(zip(starts, ends, strict=True), rows, strict=True):
            n_rel = int((labels[a:b] > 0).sum())
            top = labels[r[:10]] > 0
            out.append(
                float(gains[: len(top)][top].sum() / idcg[min(n_rel, 10) - 1]) if n_rel else 0.0
            )
        return float(np.mean(out)) if out else 0.0

    base = lists(np.asarray(scores, np.float64))
    shown = np.bincount(item_idx[np.concatenate([r[:10] for r in base])], minlength=n_items)
    penalty = exposure_penalty(shown, np.bincount(item_idx[new], minlength=n_items) > 0)
    values: dict[float, float] = {}
    for strength in strengths:
        s = spread_scores(users, scores, item_idx, strength * penalty)
        values[float(strength)] = ndcg(lists(s))
    best = max(values, key=lambda k: (round(values[k], 12), k))
    return best, values


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
    new_target: float | Mapping[str, float] = 0.0,
    floor_scores: np.ndarray | None = None,
) -> pd.DataFrame:
    """Per user: tail- and new-item-aware top-n of the scored candidates -> user_id, rank,
    item_id, score, source, is_long_tail. `tail_target` and `new_target` are each one share for
    all or one per user; `floor_scores` order what the floors take (tail_rerank)."""
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
    looked = cands[TAIL_LOOKUP].to_numpy(bool)[rows] if TAIL_LOOKUP in cands else None
    floor = None if floor_scores is None else np.asarray(floor_scores, np.float64)[rows]
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    allowed = np.ones(len(rows), bool)  # the candidates a list may take
    if space.rules is not None:  # boosts, then the capped candidates only (longtail.rules)
        score, kept = business_rules.apply(space.rules, score, item_idx, codes)
        allowed[:] = False
        allowed[kept] = True
    picked, out_scores, ranks, lengths = [], [], [], []
    for a, b in zip(starts, ends, strict=True):
        ids = item_idx[a:b]
        user = str(users[codes[a]])
        target = tail_target[user] if isinstance(tail_target, Mapping) else tail_target
        new_share = new_target[user] if isinstance(new_target, Mapping) else new_target
        keep = np.flatnonzero(allowed[a:b])
        block, ids = score[a:b][keep], ids[keep]
        pos, sc = tail_rerank(
            block,
            space.is_tail[ids],
            n,
            float(target),
            space.is_cold[ids],
            float(new_share),
            lookup=None if looked is None else looked[a:b][keep],
            floor_scores=None if floor is None else floor[a:b][keep],
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


def scored_candidates(
    batch: pd.DataFrame,
    space: ItemSpace,
    counts: CandidateCounts,
    booster: object | None,
    index: dict[str, int],
    retrieval: Retrieval,
) -> tuple[pd.DataFrame, np.ndarray]:
    """A batch of users' candidates and their ranker scores (the fixed blend without a ranker)."""
    cands = candidates(batch, space, counts, index, retrieval)
    if cands.empty:
        return cands, np.zeros(0)
    scores = (
        booster.predict(feature_matrix(cands))  # type: ignore[attr-defined]
        if booster is not None
        else blend_score(cands)
    )
    return cands, np.asarray(scores, np.float64)


def scored_blocks(
    users: pd.DataFrame,
    space: ItemSpace,
    counts: CandidateCounts,
    booster: object | None,
    block: int = 256,
    index: dict[str, int] | None = None,
    retrieval: Retrieval | None = None,
) -> Iterator[tuple[pd.DataFrame, pd.DataFrame, np.ndarray]]:
    """(users, their candidates, ranker scores) for each block of `block` users that has any
    candidates: the scores come from the ranker, or the fixed blend without one."""
    index = index if index is not None else space.index
    retrieval = retrieval if retrieval is not None else build_retrieval(space, counts)
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
        yield batch, cands, np.asarray(scores, np.float64)


@dataclass(frozen=True, eq=False)
class ListShape:
    """How scored candidates become lists (block_lists, recommend): top `n` with at least
    `tail_target` tail and `new_target` new items by rank k. With `calibration` (prior, shift)
    each user gets their own tail target (calibrated_targets) instead; with `penalty` (per item)
    the scores are spread (spread_scores); with `new_slots` (threshold, cap) each user gets one
    new-item slot per new candidate scored at or above the night's threshold, at most cap
    (new_item_counts), instead of `new_target`; with `tail_cooccurrence` > 0 the warm tail
    candidates are re-ordered among themselves (tail_order); with `tail_penalty` (per item) the
    tail positions the floors fill go to the warm tail items fewer other lists show (tail_order
    with that exposure term, as the floors' order: tail_rerank's floor_scores)."""

    n: int
    tail_target: float
    new_target: float = 0.0
    calibration: tuple[float, float] | None = None
    penalty: np.ndarray | None = None
    new_slots: tuple[float, int] | None = None
    tail_cooccurrence: float = 0.0
    tail_penalty: np.ndarray | None = None


def block_lists(
    batch: pd.DataFrame,
    cands: pd.DataFrame,
    scores: np.ndarray,
    space: ItemSpace,
    shape: ListShape,
    index: dict[str, int] | None = None,
) -> pd.DataFrame:
    """One block's scored candidates -> tail- and new-item-aware top-n (see ListShape)."""
    index = index if index is not None else space.index
    user_ids = cands[C.USER_ID].to_numpy()
    item_idx = cands["item_idx"].to_numpy()
    is_new = space.is_cold[item_idx]
    n = shape.n
    floor = None
    if shape.tail_penalty is not None:
        floor = ordered_tail(cands, scores, space, shape.tail_cooccurrence, shape.tail_penalty)
    if shape.tail_cooccurrence:
        scores = ordered_tail(cands, scores, space, shape.tail_cooccurrence)
    new: float | dict[str, float] = shape.new_target
    if shape.new_slots is not None:
        counts = new_item_counts(user_ids, scores, is_new, *shape.new_slots)
        new = {u: k / n for u, k in counts.items()}
    if shape.penalty is not None:
        scores = spread_scores(user_ids, scores, item_idx, shape.penalty)
    target: float | dict[str, float] = shape.tail_target
    if shape.calibration is not None:
        own = calibrated_targets(tail_shares(batch, space, index), *shape.calibration)
        target = dict(zip(batch[C.USER_ID].astype(str), own.tolist(), strict=True))
    return final_lists(cands, scores, space, n, target, new, floor)


def recommend(
    users: pd.DataFrame,
    space: ItemSpace,
    counts: CandidateCounts,
    booster: object | None,
    shape: ListShape,
    block: int = 256,
    index: dict[str, int] | None = None,
    retrieval: Retrieval | None = None,
) -> pd.DataFrame:
    """Candidates -> ranker (or blend) -> tail- and new-item-aware top-n (`shape`), block by
    block."""
    index = index if index is not None else space.index
    parts = [
        block_lists(batch, cands, scores, space, shape, index)
        for batch, cands, scores in scored_blocks(
            users, space, counts, booster, block, index, retrieval
        )
    ]
    if not parts:
        return final_lists(
            pd.DataFrame(columns=[C.USER_ID, "item_idx", C.SOURCE]), np.zeros(0), space, shape.n, 0
        )
    return pd.concat(parts, ignore_index=True)
