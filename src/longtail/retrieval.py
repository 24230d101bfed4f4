"""Top-k retrieval over item vectors without scoring every user against every item.

A `VectorIndex` answers "the k items with the largest inner product with this query" for a block
of queries, optionally within a subset of items (tail, cold) and skipping each query's excluded
items. Small catalogues are searched exactly (one matrix product per block: below about 10,000
items that is as fast as a graph index and gives the exact answer); larger ones with a faiss
HNSW graph, whose cost per query grows with log(items) instead of items. The graph is built on
one thread from items in a fixed order, so the same inputs give the same graph and the same
answers on every run.

`content_neighbours` gives every item its nearest texts from the same index: the recent-item
candidates and `similar_items` read it instead of an items x items product.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from longtail.config import RankerConfig
from longtail.scoring import top_n_indices

# Catalogues up to this many items are searched exactly (the ranker's config holds the default).
# Measured on one core with 384-dim text vectors: exact 0.5 ms per query at 12k items, growing
# with items; HNSW (M 32, ef 128) 0.3-0.6 ms at 96-98% recall, nearly flat.
EXACT_MAX_ITEMS = RankerConfig.default("retrieval_exact_max_items")
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 40
HNSW_EF_SEARCH = 128


def _faiss() -> Any:
    import faiss  # heavy native library: imported where an index is built or searched

    return faiss


@dataclass
class VectorIndex:
    """Inner-product top-k over `vectors[rows]`; answers are positions in the full item space."""

    rows: np.ndarray  # (n,) int64 item positions covered, ascending
    vectors: np.ndarray  # (n, d) float32, the vectors of those rows
    graph: np.ndarray | None = None  # serialized faiss HNSW index, None = exact search
    _live: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def build(
        cls, vectors: np.ndarray, rows: np.ndarray, exact_max_items: int = EXACT_MAX_ITEMS
    ) -> VectorIndex:
        rows = np.asarray(rows, dtype=np.int64)
        sub = np.ascontiguousarray(vectors[rows], dtype=np.float32)
        if len(rows) <= exact_max_items or sub.shape[1] == 0:
            return cls(rows, sub)
        faiss = _faiss()
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # one thread: the same graph on every run
        try:
            index = faiss.IndexHNSWFlat(sub.shape[1], HNSW_M, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            index.add(sub)
        finally:
            faiss.omp_set_num_threads(before)
        return cls(rows, sub, faiss.serialize_index(index))

    @property
    def exact(self) -> bool:
        return self.graph is None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_live": None}  # the native index is rebuilt from its bytes

    def _index(self) -> Any:
        if self._live is None:
            self._live = _faiss().deserialize_index(self.graph)
        return self._live

    def search(
        self,
        queries: np.ndarray,
        k: int,
        excluded: Sequence[np.ndarray],
        subset: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per query the k best (item positions, scores), best first, -1/-inf padded.

        subset: bool mask over the full item space limiting the answers; excluded: per query,
        item positions never to return. Exact search breaks ties by the lower position.
        """
        n_q = len(queries)
        pos = np.full((n_q, k), -1, np.int64)
        val = np.full((n_q, k), -np.inf, np.float32)
        rows = self.rows if subset is None else self.rows[subset[self.rows]]
        if k <= 0 or n_q == 0 or not len(rows):
            return pos, val
        if self.exact or len(rows) < len(self.rows) // 4:
            vecs = self.vectors if subset is None else self.vectors[subset[self.rows]]
            scores = np.asarray(queries, np.float32) @ vecs.T
            for r, ex in enumerate(excluded):
                if len(ex):
                    hit = np.searchsorted(rows, ex)
                    hit = hit[(hit < len(rows)) & (rows[np.minimum(hit, len(rows) - 1)] == ex)]
                    scores[r, hit] = -np.inf
            best = top_n_indices(scores, min(k, len(rows)))
            got = np.take_along_axis(scores, best, axis=1)
            ok = np.isfinite(got)
            pos[:, : best.shape[1]] = np.where(ok, rows[best], -1)
            val[:, : best.shape[1]] = np.where(ok, got, -np.inf)
            return pos, val
        return self._search_graph(queries, k, excluded, subset, pos, val)

    def _search_graph(
        self,
        queries: np.ndarray,
        k: int,
        excluded: Sequence[np.ndarray],
        subset: np.ndarray | None,
        pos: np.ndarray,
        val: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        faiss = _faiss()
        index = self._index()
        params = faiss.SearchParametersHNSW()
        # The selector reads this bitmap through a raw pointer and does not own it: the name must
        # never be rebound in this function, or the bitmap is freed before the later searches,
        # which then answer outside the subset, differently from run to run.
        bitmap = None
        if subset is not None:
            bitmap = np.packbits(subset[self.rows].astype(np.uint8), bitorder="little")
            params.sel = faiss.IDSelectorBitmap(len(self.rows), faiss.swig_ptr(bitmap))
        n_ex = np.array([len(e) for e in excluded], dtype=np.int64)
        # Queries that skip many items ask for more: group them so one heavy user does not widen
        # the search of the whole block.
        for extra in np.unique(np.minimum(_round_up(n_ex), len(self.rows))):
            who = np.flatnonzero(np.minimum(_round_up(n_ex), len(self.rows)) == extra)
            kk = int(min(k + extra, len(self.rows)))
            params.efSearch = max(HNSW_EF_SEARCH, kk)
            q = np.ascontiguousarray(queries[who], dtype=np.float32)
            dist, lab = index.search(q, kk, params=params)
            r = np.repeat(who, kk)
            ok = lab.ravel() >= 0
            r, p, v = r[ok], self.rows[lab.ravel()[ok]], dist.ravel()[ok]
            keep = ~is_excluded(r, p, excluded)
            r, p, v = r[keep], p[keep], v[keep]
            order = np.lexsort((p, -v, r))  # per query best first, ties: lower position first
            r, p, v = r[order], p[order], v[order]
            rank = np.arange(len(r)) - np.searchsorted(r, r, side="left")
            take = rank < k
            pos[r[take], rank[take]] = p[take]
            val[r[take], rank[take]] = v[take]
        return pos, val


def is_excluded(rows: np.ndarray, items: np.ndarray, excluded: Sequence[np.ndarray]) -> np.ndarray:
    """For (query row, item position) pairs: is the item among that row's exclusions?"""
    lengths = np.array([len(e) for e in excluded], dtype=np.int64)
    if not lengths.sum():
        return np.zeros(len(rows), bool)
    span = int(max(items.max(initial=0), max(int(e.max(initial=0)) for e in excluded))) + 1
    keys = np.sort(np.repeat(np.arange(len(excluded)), lengths) * span + np.concatenate(excluded))
    probe = rows.astype(np.int64) * span + items
    at = np.minimum(np.searchsorted(keys, probe), len(keys) - 1)
    return keys[at] == probe


def _round_up(n: np.ndarray) -> np.ndarray:
    """Extra answers to ask for when skipping n items: n rounded up to a power of two."""
    return np.where(n > 0, 2 ** np.ceil(np.log2(np.maximum(n, 1))).astype(np.int64), 0)


def content_neighbours(
    index: VectorIndex, k: int, n_items: int, block: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """(positions (n_items, k) int32, sims (n_items, k)) of every covered item's k nearest
    vectors, the item itself included; rows of items outside the index are -1."""
    pos = np.full((n_items, k), -1, np.int32)
    val = np.full((n_items, k), -np.inf, np.float32)
    none: list[np.ndarray] = [np.zeros(0, np.int64)] * block
    for start in range(0, len(index.rows), block):
        rows = index.rows[start : start + block]
        p, v = index.search(index.vectors[start : start + block], k, none[: len(rows)])
        pos[rows], val[rows] = p, v
    return pos, val
