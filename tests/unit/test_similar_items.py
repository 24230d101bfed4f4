"""similar_items' candidate-only scoring against an exhaustive scan of every item pair."""

from __future__ import annotations

import numpy as np
import pytest
from tests.unit.test_retrieval import random_shop

from longtail.retrieval import VectorIndex
from longtail.stages.similar_items import SIMILAR_ITEM_ID, similar_block


def exhaustive(space, rows, k, w):  # type: ignore[no-untyped-def]
    emb = space.embeddings.astype(np.float64)
    score = emb[rows] @ emb.T + w * np.asarray(space.cooc[rows].todense(), dtype=np.float64)
    score[np.arange(len(rows)), rows] = -np.inf
    out = []
    for r in range(len(rows)):
        order = sorted(range(score.shape[1]), key=lambda j: (-score[r, j], j))[:k]
        out.append([(space.item_ids[j], score[r, j]) for j in order])
    return out


@pytest.mark.parametrize("w", [0.0, 1.0, 5.0])
def test_exact_index_gives_the_exhaustive_neighbours(w: float) -> None:
    sp, _ = random_shop(11, n_items=300, n_users=200)
    text = VectorIndex.build(sp.embeddings, np.flatnonzero(np.abs(sp.embeddings).sum(axis=1) > 0))
    rows = np.arange(0, 300, 3)
    got = similar_block(rows, sp, 10, w, text)
    want = exhaustive(sp, rows, 10, w)
    for r, pos in enumerate(rows):
        mine = got[got["item_id"] == sp.item_ids[pos]]
        assert mine[SIMILAR_ITEM_ID].tolist() == [i for i, _ in want[r]]
        np.testing.assert_allclose(mine["score"], [s for _, s in want[r]], atol=1e-5)
        assert mine["rank"].tolist() == list(range(1, 11))


def test_graph_index_finds_nearly_all_neighbours() -> None:
    sp, _ = random_shop(12, n_items=2000, n_users=300)
    has_text = np.flatnonzero(np.abs(sp.embeddings).sum(axis=1) > 0)
    text = VectorIndex.build(sp.embeddings, has_text, exact_max_items=0)
    rows = np.arange(0, 2000, 10)
    got = similar_block(rows, sp, 10, 1.0, text)
    want = exhaustive(sp, rows, 10, 1.0)
    hits = sum(
        len(set(got[got["item_id"] == sp.item_ids[p]][SIMILAR_ITEM_ID]) & {i for i, _ in want[r]})
        for r, p in enumerate(rows)
    )
    assert len(got) == 10 * len(rows) and hits / len(got) > 0.9
