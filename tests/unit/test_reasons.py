"""Reasons ("because you bought ...") on the tiny hand-made space of test_fusion, by hand.

Space (test_fusion.space): text angles a 0, b 10, c 90, d 95, e 180, f 5 degrees; co-occurrence
a-c 0.9; ALS factors a (1, 0), b (0.9, 0), c (0, 1), d (0, 0.5), e and f none; categories
a, b, f in 0 and c, d, e in 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix
from test_fusion import space, users

from longtail import columns as C
from longtail import fusion, reasons
from longtail.stages.score import fill_lists, popular_order


def _lists(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    """(user, item, source) rows as a final list."""
    return pd.DataFrame(
        {
            C.USER_ID: [r[0] for r in rows],
            C.RANK: np.arange(1, len(rows) + 1, dtype=np.int32),
            C.ITEM_ID: [r[1] for r in rows],
            C.SOURCE: [r[2] for r in rows],
        }
    )


def _why(
    sp: fusion.ItemSpace, hist: dict[str, list[str]], rows: list[tuple[str, str, str]]
) -> list[tuple[str | None, str | None]]:
    batch = users([{"user": u, "items": i} for u, i in hist.items()])
    out = reasons.explain(_lists(rows), batch, sp)
    return list(zip(out[C.REASON_ITEM_ID], out[C.REASON], strict=True))


def test_each_source_names_its_supporting_history_item() -> None:
    got = _why(
        space(),
        {"u": ["a", "c"], "v": ["a", "b"]},
        [
            ("u", "d", "content"),  # d (95) is 5 degrees from c, 95 from a
            ("u", "b", "content"),  # b (10) is 10 degrees from a
            ("u", "f", "cold_text"),  # f (5): a
            ("u", "b", "als"),  # b . a = 0.9, b . c = 0
            ("u", "d", "als"),  # d . c = 0.5
            ("u", "d", "category"),  # category 1: only c
            ("u", "e", "popularity"),
            ("v", "c", "cooccurrence"),  # a-c 0.9; b-c none
            ("v", "d", "tail_explorer"),  # d: 85 degrees from b, 95 from a
        ],
    )
    assert got == [
        ("c", "similar_text"),
        ("a", "similar_text"),
        ("a", "new_in_your_taste"),
        ("a", "similar_taste"),
        ("c", "similar_taste"),
        ("c", "popular_in_your_category"),
        (None, "popular"),
        ("a", "bought_together"),
        ("b", "similar_text"),
    ]


def test_no_supporting_item_gives_no_reason() -> None:
    # e (180 degrees) is orthogonal to c and opposite a: no positive similarity; no ALS factor
    got = _why(space(), {"u": ["a", "c"]}, [("u", "e", "cold_text"), ("u", "e", "als")])
    assert got == [(None, None), (None, None)]


def test_ties_go_to_the_lower_item_id_and_category_to_the_heaviest() -> None:
    cooc = csr_matrix(
        (np.full(4, 0.5, np.float32), ([0, 1, 2, 2], [2, 2, 0, 1])), shape=(6, 6)
    )  # a-c and b-c equally
    assert _why(space(cooc=cooc), {"u": ["b", "a"]}, [("u", "c", "cooccurrence")]) == [
        ("a", "bought_together")
    ]
    u = users([{"user": "u", "items": ["a", "b"]}])
    u[fusion.HIST_WEIGHTS] = [[1.0, 3.0]]
    out = reasons.explain(_lists([("u", "f", "category")]), u, space())
    assert out[C.REASON_ITEM_ID].tolist() == ["b"]  # category 0 holds a (1) and b (3)


def test_text_ngram_uses_the_ngram_vectors() -> None:
    vectors = csr_matrix(
        np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0.6, 0.8], [0, 0, 0], [1, 0, 0]], np.float32)
    )
    sp = space(ngram_vectors=vectors)
    got = _why(sp, {"u": ["a", "b", "c"]}, [("u", "d", "text_ngram")])
    assert got == [("c", "similar_text")]  # 0.8 with c, 0.6 with b


def test_recommend_lists_get_reasons_from_their_own_history() -> None:
    sp = space()
    u = users(
        [
            {"user": "u", "items": ["a", "c"], "factors": [0.5, 0.5]},
            {"user": "v", "items": ["b"], "factors": [1.0, 0.0]},
        ]
    )
    lists = fusion.recommend(u, sp, fusion.CandidateCounts(), None, fusion.ListShape(3, 0.34))
    before = lists.copy()
    out = reasons.explain(lists, u, sp)
    pd.testing.assert_frame_equal(lists, before)  # the lists themselves are untouched
    own = {"u": {"a", "c"}, "v": {"b"}}
    for user, source, item, why in zip(
        lists[C.USER_ID], lists[C.SOURCE], out[C.REASON_ITEM_ID], out[C.REASON], strict=True
    ):
        assert why in (reasons.BY_SOURCE[source], None)
        assert (item is None) == (why not in reasons.ITEM_REASONS)
        assert item is None or item in own[user]


def test_the_popularity_fill_has_no_reason_item() -> None:
    sp = space()
    u = users([{"user": "u", "items": ["a"]}])
    empty = pd.DataFrame(columns=[C.USER_ID, C.RANK, C.ITEM_ID, C.SCORE, C.SOURCE, C.IS_LONG_TAIL])
    filled = fill_lists(empty, u, sp, popular_order(sp), 3)
    out = reasons.explain(filled, u, sp)
    assert filled[C.SOURCE].tolist() == ["popularity"] * 3
    assert out[C.REASON].tolist() == ["popular"] * 3
    assert out[C.REASON_ITEM_ID].tolist() == [None] * 3


@pytest.mark.parametrize("source", fusion.SOURCES)
def test_every_source_has_a_documented_code(source: str) -> None:
    assert reasons.BY_SOURCE[source] in reasons.CODES


def test_the_als_strategy_uses_the_same_codes() -> None:
    from longtail import scoring

    assert reasons.BY_SOURCE[scoring.SOURCE_ALS] == scoring.REASON_SIMILAR_TASTE
    assert reasons.BY_SOURCE[scoring.SOURCE_POPULARITY] == scoring.REASON_POPULAR


def test_the_cooccurrence_block_equals_the_matrix_sliced_by_rows_then_columns() -> None:
    rng = np.random.default_rng(3)
    dense = rng.random((30, 40)) * (rng.random((30, 40)) < 0.15)
    dense[5] = 0.0  # a history item without neighbours
    m = csr_matrix(dense.astype(np.float32))
    for _ in range(100):
        rows = np.unique(rng.integers(0, 30, int(rng.integers(0, 8))))
        cols = rng.permutation(40)[: int(rng.integers(0, 12))]
        if rng.random() < 0.2:
            cols = np.r_[cols, cols[:1]]  # a repeated column goes through scipy
        got = reasons._sparse_block(m, rows, cols)
        expected = dense.astype(np.float32).astype(np.float64)[rows][:, cols]
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, expected)
