"""Offline ranking and long-tail metrics on pandas/numpy inputs: one definition of each.

Any system's top-K lists can be scored without Spark (``spark`` computes the same metrics, with
the same names, on Spark DataFrames). Every metric first turns the recommendations into one
"long" frame (``frames.long_frame``): each list is cut to its first k entries and repeats of an
item are dropped (the first occurrence keeps its position), so a duplicated recommendation can
never earn a hit, a tail slot or a count twice.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

import numpy as np
import pandas as pd

from longtail.columns import ITEM_ID, USER_ID
from longtail.evaluation import HEAD_SHARE
from longtail.evaluation.frames import (
    NAN,
    POS,
    Counts,
    Recs,
    Truth,
    catalogue_index,
    counts_series,
    long_frame,
    recs_from_frame,
    top_k,
    truth_frame,
)
from longtail.evaluation.split import head_tail_split, n_head, popularity_order

# Metrics that ``per_user`` decomposes into per-user numerators and denominators.
PER_USER_METRICS = ("ndcg@10", "recall@20", "tail_recall@20")

__all__ = [
    "HEAD_SHARE",
    "PER_USER_METRICS",
    "aplt_at_k",
    "candidate_recall",
    "cold_item_recall_at_k",
    "coverage_at_k",
    "evaluate",
    "gini_at_k",
    "head_tail_split",
    "ideal_dcg",
    "ndcg_at_k",
    "ndcg_grouped",
    "ndcg_grouped_blocks",
    "novelty_at_k",
    "per_user",
    "per_user_metric",
    "popularity_curve",
    "recall_at_k",
    "recs_from_frame",
    "tail_recall_at_k",
]


# --------------------------------------------------------------------------------------------
# Implementations on the long frames (shared by the public wrappers and evaluate())
# --------------------------------------------------------------------------------------------


def _hits(long: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """Recommended rows that are held-out pairs, joined once and then cut per k.

    The join is the expensive step; both sides are de-duplicated, so each pair matches once.
    """
    return long.merge(pairs, on=[USER_ID, ITEM_ID], how="inner")


def ideal_dcg(k: int) -> np.ndarray:
    """IDCG@k of a user with 1..k relevant items (binary relevance): entry n - 1 for n items."""
    return np.cumsum(1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64)))


def _ndcg_users(hits: pd.DataFrame, sizes: pd.Series, k: int) -> pd.Series:
    """NDCG@k of every judged user (non-empty truth), in ``sizes`` order."""
    sizes = sizes[sizes > 0]
    hits = top_k(hits, k)
    gain = 1.0 / np.log2(hits[POS].to_numpy(dtype=np.float64) + 2.0)
    dcg = pd.Series(gain).groupby(hits[USER_ID].to_numpy()).sum()
    dcg = dcg.reindex(sizes.index, fill_value=0.0).to_numpy()
    idcg = ideal_dcg(k)[np.minimum(sizes.to_numpy(), k) - 1]
    return pd.Series(dcg / idcg, index=sizes.index, dtype=np.float64)


def _recall_users(hits: pd.DataFrame, sizes: pd.Series, k: int) -> pd.Series:
    """Recall@k (hits over min(k, |truth_u|)) of every judged user, in ``sizes`` order."""
    sizes = sizes[sizes > 0]
    n_hits = top_k(hits, k)[USER_ID].value_counts()
    n_hits = n_hits.reindex(sizes.index, fill_value=0).to_numpy(dtype=np.float64)
    return pd.Series(n_hits / np.minimum(sizes.to_numpy(), k), index=sizes.index)


def _user_mean(values: pd.Series) -> float:
    return NAN if values.empty else float(np.mean(values.to_numpy(dtype=np.float64)))


def _ndcg(hits: pd.DataFrame, sizes: pd.Series, k: int) -> float:
    return _user_mean(_ndcg_users(hits, sizes, k))


def _recall(hits: pd.DataFrame, sizes: pd.Series, k: int) -> float:
    return _user_mean(_recall_users(hits, sizes, k))


def _aplt(long: pd.DataFrame, tail_items: Collection[str], k: int, users: pd.Index) -> float:
    users = users.unique()
    if users.empty:
        return NAN
    top = top_k(long, k)
    share = top[ITEM_ID].isin(tail_items).groupby(top[USER_ID].to_numpy()).mean()
    return float(share.reindex(users, fill_value=0.0).mean())


def _subset_recall(
    hits: pd.DataFrame, pairs: pd.DataFrame, items: Collection[str], k: int
) -> float:
    n_pairs = int(pairs[ITEM_ID].isin(items).sum())
    if n_pairs == 0:
        return NAN
    return int(top_k(hits, k)[ITEM_ID].isin(items).sum()) / n_pairs


def _item_rec_counts(long: pd.DataFrame, k: int) -> pd.Series:
    return top_k(long, k)[ITEM_ID].value_counts()


def _coverage(long: pd.DataFrame, cat: pd.Index, k: int) -> float:
    if cat.empty:
        return NAN
    return float(cat.isin(top_k(long, k)[ITEM_ID].unique()).sum() / len(cat))


def _gini(long: pd.DataFrame, cat: pd.Index, k: int) -> float:
    if cat.empty:
        return NAN
    counts = _item_rec_counts(long, k).reindex(cat, fill_value=0).to_numpy(dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return 0.0
    x = np.sort(counts)
    n = len(x)
    i = np.arange(1, n + 1, dtype=np.float64)
    return float(np.sum((2.0 * i - n - 1.0) * x) / (n * total))


def _novelty(
    long: pd.DataFrame, counts: pd.Series, n_train_users: int, k: int, users: pd.Index | None
) -> float:
    if n_train_users < 1:
        raise ValueError(f"n_train_users must be >= 1, got {n_train_users}")
    top = top_k(long, k)
    if users is not None:
        top = top[top[USER_ID].isin(users)]
    if top.empty:
        return NAN
    c = top[ITEM_ID].map(counts).fillna(0).to_numpy(dtype=np.float64)
    p = np.clip(c / n_train_users, 1.0 / n_train_users, 1.0)
    info = pd.Series(-np.log2(p)).groupby(top[USER_ID].to_numpy()).mean()
    return float(info.mean())


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def ndcg_at_k(recs: Recs, truth: Truth, k: int = 10) -> float:
    """Binary-relevance NDCG@k averaged over truth users; users without recs score 0.

    IDCG assumes min(k, |truth_u|) hits at the top, so a perfect list always scores 1. Users with
    an empty truth set cannot be judged and are left out; NaN if no user can be judged.
    """
    pairs, sizes = truth_frame(truth)
    return _ndcg(_hits(long_frame(recs, k)[0], pairs), sizes, k)


def ndcg_grouped(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int = 10) -> float:
    """``ndcg_at_k`` in LightGBM's grouped layout (the ranker's validation score).

    ``groups`` are the sizes of consecutive row blocks (one per user); each block is ranked by
    ``scores`` descending, ties by row order (NaN last), and a row with ``labels`` > 0 is
    relevant (binary). A block without a relevant row scores 0 and still counts in the mean,
    unlike a truth user without items in ``ndcg_at_k``; NaN without blocks.
    """
    values = ndcg_grouped_blocks(scores, labels, groups, k)
    return NAN if not len(values) else float(np.mean(values))


def ndcg_grouped_blocks(
    scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int = 10
) -> np.ndarray:
    """``ndcg_grouped``'s value of every block, in block order (0 for a block without a relevant
    row): what a paired comparison of two scorings of the same blocks needs."""
    sizes = np.asarray(groups, dtype=np.int64)
    if len(sizes) == 0:
        return np.zeros(0, np.float64)
    n = int(sizes.sum())
    block = np.repeat(np.arange(len(sizes)), sizes)
    order = np.lexsort((np.arange(n), -np.asarray(scores, dtype=np.float64), block))
    pos = np.arange(n) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    relevant = np.asarray(labels)[order] > 0
    hits = pd.DataFrame({USER_ID: block[order][relevant], POS: pos[relevant]})
    n_relevant = pd.Series(np.bincount(block[order][relevant], minlength=len(sizes)))
    values = _ndcg_users(hits, n_relevant, k).reindex(n_relevant.index, fill_value=0.0)
    return values.to_numpy(dtype=np.float64)


def recall_at_k(recs: Recs, truth: Truth, k: int = 20) -> float:
    """Hits in top-k over min(k, |truth_u|), averaged over truth users (empty truth left out)."""
    pairs, sizes = truth_frame(truth)
    return _recall(_hits(long_frame(recs, k)[0], pairs), sizes, k)


def aplt_at_k(
    recs: Recs, tail_items: Collection[str], k: int = 10, users: Iterable[str] | None = None
) -> float:
    """Average Percentage of Long Tail items (Abdollahpouri et al.) in each user's top-k.

    Per user: tail items in the list / min(k, list length), so short lists are not penalised
    for slots they never filled. Averaged over ``users`` (default: every user in recs); users
    with no or an empty list count 0. NaN if there are no users.
    """
    long, rec_users = long_frame(recs, k)
    eval_users = rec_users if users is None else pd.Index(list(users), dtype=object)
    return _aplt(long, tail_items, k, eval_users)


def tail_recall_at_k(recs: Recs, truth: Truth, tail_items: Collection[str], k: int = 20) -> float:
    """Share of held-out (user, tail item) pairs found in that user's top-k; NaN if none exist.

    Pooled over pairs rather than averaged over users, because most users have no tail
    purchases and a per-user mean would be dominated by the few that do.
    """
    pairs = truth_frame(truth)[0]
    return _subset_recall(_hits(long_frame(recs, k)[0], pairs), pairs, tail_items, k)


def cold_item_recall_at_k(
    recs: Recs, truth: Truth, cold_items: Collection[str], k: int = 20
) -> float:
    """Share of held-out (user, cold item) pairs found in top-k; NaN if no cold pairs exist.

    Cold items had no training interactions, so only content/side-information can surface them.
    """
    pairs = truth_frame(truth)[0]
    return _subset_recall(_hits(long_frame(recs, k)[0], pairs), pairs, cold_items, k)


def candidate_recall(candidates: Recs, truth: Truth) -> float:
    """Share of held-out (user, item) pairs among the user's candidates, whatever their rank:
    the ceiling that retrieval sets for any ranker. Pooled over pairs; NaN without pairs."""
    total = sum(len(items) for items in truth.values())
    if not total:
        return float("nan")
    found = sum(len(set(items) & set(candidates.get(u, ()))) for u, items in truth.items())
    return found / total


def coverage_at_k(recs: Recs, catalogue: Iterable[str], k: int = 10) -> float:
    """Share of catalogue items in at least one user's top-k; NaN for an empty catalogue."""
    return _coverage(long_frame(recs, k)[0], catalogue_index(catalogue), k)


def gini_at_k(recs: Recs, catalogue: Iterable[str], k: int = 10) -> float:
    """Gini index of top-k recommendation counts over the whole catalogue (unshown items = 0).

    0 means exposure is spread evenly, (n-1)/n means every slot goes to one item; 0 when nothing
    is recommended at all, NaN for an empty catalogue.
    """
    return _gini(long_frame(recs, k)[0], catalogue_index(catalogue), k)


def novelty_at_k(
    recs: Recs,
    train_counts: Counts,
    n_train_users: int,
    k: int = 10,
    users: Iterable[str] | None = None,
) -> float:
    """Mean self-information -log2(p_i) of top-k items, averaged per user then across users.

    p_i = train_counts[i] / n_train_users, clipped to [1/n_train_users, 1] so cold items get the
    maximum novelty instead of infinity. Users with empty lists have nothing to score and are
    skipped; ``users`` restricts the mean (default: every user in recs). NaN if nothing is left.
    """
    eval_users = None if users is None else pd.Index(list(users), dtype=object)
    return _novelty(
        long_frame(recs, k)[0], counts_series(train_counts), n_train_users, k, eval_users
    )


def evaluate(
    recs: Recs,
    truth: Truth,
    catalogue: Iterable[str],
    train_counts: Counts,
    n_train_users: int,
    tail_items: Collection[str],
    cold_items: Collection[str],
) -> dict[str, float]:
    """All benchmark metrics for one system, normalising the inputs only once.

    Per-user beyond-accuracy means (APLT, novelty) are taken over the evaluation users (those
    in ``truth``), so a system cannot look better by recommending to a different population.
    """
    long, _ = long_frame(recs, 20)
    pairs, sizes = truth_frame(truth)
    hits = _hits(long, pairs)
    cat = catalogue_index(catalogue)
    eval_users = sizes.index
    tail = set(tail_items)
    cold = set(cold_items)
    return {
        "ndcg@10": _ndcg(hits, sizes, 10),
        "recall@20": _recall(hits, sizes, 20),
        "aplt@10": _aplt(long, tail, 10, eval_users),
        "tail_recall@20": _subset_recall(hits, pairs, tail, 20),
        "coverage@10": _coverage(long, cat, 10),
        "gini@10": _gini(long, cat, 10),
        "novelty@10": _novelty(long, counts_series(train_counts), n_train_users, 10, eval_users),
        "cold_item_recall@20": _subset_recall(hits, pairs, cold, 20),
    }


def _per_user_subset(
    hits: pd.DataFrame, pairs: pd.DataFrame, items: Collection[str], k: int, users: pd.Index
) -> tuple[np.ndarray, np.ndarray]:
    """(hits in top-k, held-out pairs) on ``items``, per user of ``users``, as int64 arrays."""
    top = top_k(hits, k)
    found = top[USER_ID][top[ITEM_ID].isin(items)].value_counts()
    held = pairs[USER_ID][pairs[ITEM_ID].isin(items)].value_counts()
    return (
        found.reindex(users, fill_value=0).to_numpy(dtype=np.int64),
        held.reindex(users, fill_value=0).to_numpy(dtype=np.int64),
    )


def per_user(
    recs: Recs,
    truth: Truth,
    tail_items: Collection[str],
    cold_items: Collection[str] | None = None,
) -> pd.DataFrame:
    """Per-user contributions to the headline metrics, so a bootstrap over users is exact.

    One row per user in ``truth`` (the evaluation users, in ``truth`` order; index name
    ``user_id``) and, for each metric of ``PER_USER_METRICS`` (plus ``cold_item_recall@20``
    when ``cold_items`` is given), a ``<metric>_num`` and a ``<metric>_den`` column such that
    the metric over any multiset of users is sum(num) / sum(den) (``per_user_metric``):

    * ``ndcg@10``, ``recall@20`` are means over judged users: num = the user's value, den = 1
      (0 and 0 for a user with an empty truth set, who is not judged, as in ``evaluate``);
    * ``tail_recall@20``, ``cold_item_recall@20`` are pooled over held-out (user, item) pairs:
      num = the user's tail (cold) items found in their top-20, den = their held-out tail (cold)
      items.

    On the full sample, ``per_user_metric`` equals ``evaluate``'s value bit for bit.
    """
    long, _ = long_frame(recs, 20)
    pairs, sizes = truth_frame(truth)
    hits = _hits(long, pairs)
    users = sizes.index
    judged = (sizes > 0).to_numpy()
    columns: dict[str, np.ndarray] = {}
    for metric, values in (
        ("ndcg@10", _ndcg_users(hits, sizes, 10)),
        ("recall@20", _recall_users(hits, sizes, 20)),
    ):
        columns[f"{metric}_num"] = values.reindex(users, fill_value=0.0).to_numpy(np.float64)
        columns[f"{metric}_den"] = judged.astype(np.int64)
    subsets = [("tail_recall@20", set(tail_items))]
    if cold_items is not None:
        subsets.append(("cold_item_recall@20", set(cold_items)))
    for metric, items in subsets:
        num, den = _per_user_subset(hits, pairs, items, 20, users)
        columns[f"{metric}_num"], columns[f"{metric}_den"] = num, den
    return pd.DataFrame(columns, index=pd.Index(users, dtype=object, name=USER_ID))


def per_user_metric(frame: pd.DataFrame, metric: str) -> float:
    """sum(num) / sum(den) of a ``per_user`` frame's metric; NaN when the denominator is 0.

    Rows with a zero denominator add nothing (their numerator is 0 too) and are left out of the
    sum, so the result is exactly ``evaluate``'s value on the same users.
    """
    num = frame[f"{metric}_num"].to_numpy(dtype=np.float64)
    den = frame[f"{metric}_den"].to_numpy(dtype=np.float64)
    keep = den > 0
    total = np.sum(den[keep])
    return float(np.sum(num[keep]) / total) if total > 0 else NAN


def popularity_curve(
    recs: Recs,
    train_counts: Counts,
    catalogue: Iterable[str],
    k: int = 10,
    head_share: float = HEAD_SHARE,
) -> pd.DataFrame:
    """Per catalogue item, most interacted first: the data behind the long-tail curve.

    Columns: ``popularity_rank`` (1 = most interacted in training, ties by item id ascending,
    as in ``head_tail_split``), ``item_id``, ``train_count``, ``rec_count`` (top-k slots the
    item got over all lists), ``is_head`` (``head_tail_split``'s head for ``head_share``), and
    the cumulative shares ``catalogue_share`` (rank / catalogue size), ``train_cum_share`` (of
    all training interactions) and ``rec_cum_share`` (of all top-k slots; NaN when nothing was
    recommended). Plotting ``rec_cum_share`` over ``catalogue_share`` gives the long-tail curve.
    """
    frame = popularity_order(train_counts, catalogue).rename(columns={"n": "train_count"})
    n = len(frame)
    frame.insert(0, "popularity_rank", np.arange(1, n + 1, dtype=np.int64))
    rec_counts = _item_rec_counts(long_frame(recs, k)[0], k)
    frame["rec_count"] = frame[ITEM_ID].map(rec_counts).fillna(0).astype(np.int64)
    frame["is_head"] = np.arange(n) < n_head(frame["train_count"].to_numpy(), head_share)
    frame["catalogue_share"] = frame["popularity_rank"].to_numpy(dtype=np.float64) / max(n, 1)
    for column, source in (("train_cum_share", "train_count"), ("rec_cum_share", "rec_count")):
        cum = frame[source].cumsum().to_numpy(dtype=np.float64)
        total = cum[-1] if n else 0.0
        frame[column] = cum / total if total > 0 else np.full(n, NAN)
    return frame[
        [
            "popularity_rank",
            ITEM_ID,
            "train_count",
            "rec_count",
            "is_head",
            "catalogue_share",
            "train_cum_share",
            "rec_cum_share",
        ]
    ]
