"""Judging `item_audiences` on the cold-start protocol: audience recall and two baselines.

Audience recall@k: of the held-out buyers of each cold item, the share found among the first k
shoppers of that item's audience; pooled over (item, buyer) pairs (`micro`) and averaged over
the items (`macro`). Baselines, built from the same cold-start training data:

- `popularity`: the k most active shoppers (most distinct items), the same audience for every item;
- `content_neighbours`: the buyers of the item's `NEIGHBOURS` nearest items by text (lookalikes of
  similar products), each shopper scored by the closest neighbour they bought.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import numpy as np
import pandas as pd

from longtail import columns as C

Audiences = Mapping[str, Sequence[str]]
NEIGHBOURS = 50


def audience_recall(
    audiences: Audiences, buyers: Mapping[str, Collection[str]], k: int
) -> dict[str, float]:
    """{micro, macro, items_with_audience}: NaN recall when no item has held-out buyers."""
    items = [i for i, b in buyers.items() if len(b)]
    if not items:
        return {"micro": float("nan"), "macro": float("nan"), "items_with_audience": 0.0}
    found = [len(set(audiences.get(i, ())[:k]) & set(buyers[i])) for i in items]
    sizes = [len(set(buyers[i])) for i in items]
    return {
        "micro": sum(found) / sum(sizes),
        "macro": float(np.mean([f / s for f, s in zip(found, sizes, strict=True)])),
        "items_with_audience": float(np.mean([len(audiences.get(i, ())) > 0 for i in items])),
    }


def buyers_of(truth: Mapping[str, Collection[str]], items: Collection[str]) -> dict[str, set[str]]:
    """Invert per-user held-out items into item -> held-out buyers, for the given items."""
    wanted = set(items)
    out: dict[str, set[str]] = {}
    for user, held in truth.items():
        for item in held:
            if item in wanted:
                out.setdefault(item, set()).add(user)
    return out


def from_table(table: pd.DataFrame) -> dict[str, list[str]]:
    """item -> shoppers in rank order, from an `item_audiences` partition."""
    df = table.sort_values([C.ITEM_ID, C.RANK])
    return {str(i): g[C.USER_ID].astype(str).tolist() for i, g in df.groupby(C.ITEM_ID, sort=True)}


def popularity_audience(
    interactions: pd.DataFrame, items: Collection[str], k: int
) -> dict[str, list[str]]:
    """The k shoppers with the most distinct items (ties: lower id), for every item."""
    counts = interactions.groupby(C.USER_ID)[C.ITEM_ID].nunique()
    order = sorted(counts.items(), key=lambda uc: (-uc[1], str(uc[0])))
    top = [str(u) for u, _ in order[:k]]
    return {str(i): top for i in items}


def content_neighbour_audience(
    item_ids: np.ndarray,
    embeddings: np.ndarray,
    interactions: pd.DataFrame,
    items: Collection[str],
    k: int,
    neighbours: int = NEIGHBOURS,
) -> dict[str, list[str]]:
    """Per item: the buyers of its nearest sold items by text cosine, each scored by the most
    similar neighbour they bought (ties: lower id), the first k."""
    index = {str(x): n for n, x in enumerate(item_ids)}
    sold = interactions.assign(_pos=interactions[C.ITEM_ID].astype(str).map(index))
    sold = sold.dropna(subset=["_pos"]).astype({"_pos": np.int64})
    sold_pos = np.unique(sold["_pos"].to_numpy(np.int64))
    sold_pos = sold_pos[np.abs(embeddings[sold_pos]).sum(axis=1) > 0]
    by_item = sold.groupby("_pos")[C.USER_ID].agg(lambda s: sorted(set(map(str, s))))
    out: dict[str, list[str]] = {}
    for item in items:
        at = index.get(str(item))
        if at is None or not np.abs(embeddings[at]).sum() or not len(sold_pos):
            out[str(item)] = []
            continue
        cand = sold_pos[sold_pos != at]
        sims = embeddings[cand] @ embeddings[at]
        order = np.lexsort((cand, -sims))[:neighbours]
        best: dict[str, float] = {}
        for pos, sim in zip(cand[order], sims[order], strict=True):
            if sim <= 0:
                continue
            for user in by_item.get(int(pos), []):
                best.setdefault(user, float(sim))  # neighbours come best first
        ranked = sorted(best.items(), key=lambda us: (-us[1], us[0]))
        out[str(item)] = [u for u, _ in ranked[:k]]
    return out
