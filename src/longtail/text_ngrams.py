"""A language-independent text channel: character n-gram TF-IDF over title, category and brand.

The pretrained encoder reads what its vocabulary holds; a Chinese (or mixed) catalogue comes out
mostly as unknown tokens, and its dense neighbours are noise. Character n-grams need no
vocabulary: two titles sharing 保温杯 share n-grams whatever the language. The channel is
deterministic (vocabulary in sorted order, float32 products whose rows do not depend on how they
are blocked), so a re-run gives the same vectors and neighbours.

The content stage decides each night whether the channel is on (`ContentConfig.ngram_channel`)
and records it in its run record; the readers of the item space attach the vectors and each
item's top neighbours to `fusion.ItemSpace` from the catalogue itself (`attach`), so training
and scoring of one night see the same channel.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import csr_matrix

from longtail import columns as C
from longtail.fusion import ItemSpace

NGRAM_RANGE = (2, 3)
# Neighbours kept per item: the candidate source reads them, like co-occurrence's top 50.
NEIGHBOURS = 50
# N-grams in more items than this are dropped: too common to tell neighbours apart, and each
# one makes the item x item product quadratic in its frequency. Never applies to catalogues of
# at most this many items.
MAX_ITEMS_PER_NGRAM = 1000
# Entries of one block of the similarity product (rows x items): bounds its memory.
BLOCK_ENTRIES = 4_000_000
_SPACES = re.compile(r"\s+")


def ngram_text(title: Any, category: Any, brand: Any) -> str:
    """The text the channel sees: title, category and brand, lowercased, spaces collapsed.

    No description: long generic copy would dilute the short fields that name the product.
    """
    parts = [str(p) for p in (title, category, brand) if _present(p)]
    return _SPACES.sub(" ", " ".join(parts)).strip().lower()


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, float) and np.isnan(value))


def catalogue_texts(catalogue: pd.DataFrame) -> list[str]:
    """ngram_text of every catalogue row, in the frame's order (brand optional)."""
    n = len(catalogue)
    column = lambda c: catalogue[c] if c in catalogue else [None] * n  # noqa: E731
    return [
        ngram_text(t, c, b)
        for t, c, b in zip(column(C.TITLE), column(C.CATEGORY), column(C.BRAND), strict=True)
    ]


def vectorise(texts: list[str], max_items_per_ngram: int = MAX_ITEMS_PER_NGRAM) -> csr_matrix:
    """(texts, n-grams) float32 rows: char 2-3-grams, sublinear tf, smoothed idf, unit length;
    an empty text (or one with only dropped n-grams) is a zero row.

    Plain `char` n-grams, not `char_wb`: Chinese and Japanese titles have no spaces, so word
    padding would give each whole title rare edge n-grams (" 儿童") that outweigh the product
    noun in the middle (保温杯) and pair a children's cup with children's shoes.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectoriser = TfidfVectorizer(
        analyzer="char",
        ngram_range=NGRAM_RANGE,
        lowercase=False,  # ngram_text lowercased already
        sublinear_tf=True,
        norm="l2",
        max_df=max(int(max_items_per_ngram), 1),
        dtype=np.float32,
    )
    try:
        x = vectoriser.fit_transform(texts)
    except ValueError:  # no n-gram at all (empty catalogue or texts)
        return csr_matrix((len(texts), 0), dtype=np.float32)
    x = csr_matrix(x, dtype=np.float32)
    x.sort_indices()
    return x


def neighbours(
    x: csr_matrix, k: int = NEIGHBOURS, block_entries: int = BLOCK_ENTRIES
) -> csr_matrix:
    """(I, I) float32: each item's k most similar other items (cosine > 0), ties to the lower
    position. Blocks of rows against all items, so at most block_entries similarities are held
    at a time: never a dense items x items matrix."""
    n = x.shape[0]
    if n == 0 or x.shape[1] == 0 or k <= 0:
        return csr_matrix((n, n), dtype=np.float32)
    xt = csr_matrix(x.T)
    step = max(1, min(n, block_entries // max(n, 1)))
    rows, cols, vals = [], [], []
    for start in range(0, n, step):
        sims = (x[start : start + step] @ xt).tocoo()
        r, c, v = sims.row.astype(np.int64) + start, sims.col.astype(np.int64), sims.data
        keep = (v > 0) & (r != c)
        r, c, v = r[keep], c[keep], v[keep]
        order = np.lexsort((c, -v, r))
        r, c, v = r[order], c[order], v[order]
        take = np.arange(len(r)) - np.searchsorted(r, r, side="left") < k
        rows.append(r[take])
        cols.append(c[take])
        vals.append(v[take])
    out = csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, n),
        dtype=np.float32,
    )
    out.sort_indices()
    return out


def attach(space: ItemSpace, catalogue: pd.DataFrame, k: int = NEIGHBOURS) -> ItemSpace:
    """The space with n-gram vectors and neighbours for its items (catalogue rows matched by
    item id; items missing from the catalogue get no text)."""
    by_id = catalogue.assign(_id=catalogue[C.ITEM_ID].astype(str)).drop_duplicates("_id")
    rows = by_id.set_index("_id").reindex([str(i) for i in space.item_ids])
    x = vectorise(catalogue_texts(rows.reset_index(drop=True)))
    return dataclasses.replace(space, ngram_vectors=x, ngram_neighbours=neighbours(x, k))


def channel_on(content_record: Mapping[str, Any] | None) -> bool:
    """Whether the night's content stage switched the channel on (no record: off)."""
    return bool(((content_record or {}).get("ngram_channel") or {}).get("on", False))


def decide(mode: str, unknown_share: float, warn_share: float) -> tuple[bool, str]:
    """(on, why) for the night: `on`/`off` as configured, `auto` on above the warn share."""
    if mode == "on":
        return True, "configured on"
    if mode == "off":
        return False, "configured off"
    if unknown_share > warn_share:
        return True, f"auto: unknown-token share {unknown_share:.4f} > {warn_share:g}"
    return False, f"auto: unknown-token share {unknown_share:.4f} <= {warn_share:g}"
