"""Audiences for new products on the tiny hand-made space of test_fusion, by hand.

Space (test_fusion.space): text angles a 0, b 10, c 90, d 95, e 180, f 5 degrees; e and f never
sold (age 1 day), the others 100 days old; tail: c, d, e, f. A shopper's profile is the
direction of the (equally weighted) sum of their items' vectors; the score of an item is the
cosine of the angle between it and that direction times log(1 + the shopper's distinct items).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.sparse import csr_matrix
from test_fusion import space, users

from longtail import audiences
from longtail import columns as C
from longtail.fusion import ItemSpace


def _cos(deg: float) -> float:
    return float(np.cos(np.radians(deg)))


LN2, LN3 = float(np.log(2)), float(np.log(3))  # activity weights of one and two items


def _ids(sp: ItemSpace, positions: np.ndarray) -> list[str]:
    return [str(x) for x in sp.item_ids[positions]]


def test_targets_are_new_or_never_sold_items_that_may_be_shown() -> None:
    sp = space(age_days=np.array([100, 100, 100, 10, 1, 1], np.float32))
    items, is_new, skipped = audiences.targets(sp, new_item_days=14)
    assert _ids(sp, items) == ["d", "e", "f"] and is_new.tolist() == [True] * 3 and skipped == 0
    # a shorter window: d (10 days old, sold) is no longer new; e and f have never sold
    items, _, _ = audiences.targets(sp, new_item_days=7)
    assert _ids(sp, items) == ["e", "f"]
    # with the long tail: c as well, not new
    items, is_new, _ = audiences.targets(sp, new_item_days=7, include_long_tail=True)
    assert _ids(sp, items) == ["c", "d", "e", "f"] and is_new.tolist() == [False, False, True, True]


def test_targets_skip_items_that_may_not_be_shown_or_have_no_text() -> None:
    emb = space().embeddings.copy()
    emb[4] = 0.0  # e has no text vector
    sp = space(embeddings=emb, allowed=np.array([1, 1, 1, 1, 1, 0], bool))  # f unavailable
    items, _, skipped = audiences.targets(sp, new_item_days=14)
    assert len(items) == 0 and skipped == 1  # f: not shown, not counted; e: no text


HISTORY = {
    "u": ["a"],  # profile at 0 degrees
    "v": ["c"],  # 90
    "w": ["a", "c"],  # 45
    "y": ["f"],  # owns f
    "z": ["d"],  # 95
}


def _block(rows: dict[str, list[str]], k: int, chunk_users: int = 4096) -> pd.DataFrame:
    sp = space()
    items, is_new, _ = audiences.targets(sp, new_item_days=14)
    batch = users([{"user": u, "items": i} for u, i in rows.items()])
    return audiences.block_audiences(batch, sp, items, is_new, k, chunk_users=chunk_users)


def test_block_audiences_by_hand() -> None:
    got = _block(HISTORY, k=3)
    rows = {(r.item_id, r.user_id): (r.score, r.reason_item_id) for r in got.itertuples()}
    # f (5 degrees): u at 5 degrees, w at 40, v at 85 (y owns it; z is at 90: cosine 0)
    # e (180 degrees): only z (95 degrees) is within 90 degrees of it
    assert set(rows) == {("f", "u"), ("f", "w"), ("f", "v"), ("e", "z")}
    assert rows[("f", "u")][0] == pytest.approx(_cos(5) * LN2, abs=1e-6)
    assert rows[("f", "w")][0] == pytest.approx(_cos(40) * LN3, abs=1e-6)  # two items: first
    assert rows[("f", "v")][0] == pytest.approx(_cos(85) * LN2, abs=1e-6)
    assert rows[("e", "z")][0] == pytest.approx(_cos(85) * LN2, abs=1e-6)
    # the history item closest to the target: w's a (5 degrees from f) rather than c (85)
    assert {key: v[1] for key, v in rows.items()} == {
        ("f", "u"): "a",
        ("f", "w"): "a",
        ("f", "v"): "c",
        ("e", "z"): "d",
    }
    assert got[audiences.IS_NEW].all()


def test_activity_weights_count_distinct_items() -> None:
    from scipy.sparse import csr_matrix as csr

    hist = csr(np.array([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 5.0]]))
    assert audiences.activity_weights(hist) == pytest.approx([np.log(3), 0.0, np.log(2)])


def test_block_keeps_each_items_best_k() -> None:
    got = _block(HISTORY, k=2)
    # w (cos 40 x ln 3 = 0.84) and u (cos 5 x ln 2 = 0.69), not v (cos 85 x ln 2 = 0.06)
    assert sorted(got.loc[got[C.ITEM_ID] == "f", C.USER_ID]) == ["u", "w"]


def test_merging_blocks_gives_the_single_block_answer() -> None:
    whole = audiences.merge(_block(HISTORY, k=2), 2)
    first = _block({u: HISTORY[u] for u in ("v", "y")}, k=2)
    second = _block({u: HISTORY[u] for u in ("u", "w", "z")}, k=2)
    merged = audiences.merge(pd.concat([second, first], ignore_index=True), 2)
    pd.testing.assert_frame_equal(merged, whole)
    assert whole[[C.ITEM_ID, C.RANK, C.USER_ID]].values.tolist() == [
        ["e", 1, "z"],
        ["f", 1, "w"],
        ["f", 2, "u"],
    ]


@pytest.mark.parametrize("chunk_users", [1, 2, 3])
def test_a_block_searched_in_chunks_gives_the_whole_blocks_answer(chunk_users: int) -> None:
    whole = _block(HISTORY, k=2)
    pd.testing.assert_frame_equal(_block(HISTORY, k=2, chunk_users=chunk_users), whole)
    # f's best two by hand: w (cos 40 x ln 3 = 0.84), then u (cos 5 x ln 2 = 0.69)
    f = whole[whole[C.ITEM_ID] == "f"]
    assert f[C.USER_ID].tolist() == ["w", "u"]
    assert f[C.SCORE].tolist() == pytest.approx([_cos(40) * LN3, _cos(5) * LN2], rel=1e-5)


def test_keep_best_merges_a_later_chunk_with_ties_to_the_lower_position() -> None:
    pos = np.array([[0, 1, -1], [2, 3, 4]])
    val = np.array([[0.9, 0.5, -np.inf], [0.8, 0.7, 0.6]], dtype=np.float32)
    # row 0: 0.7 enters between, 0.5 ties the running 0.5 and goes after it (higher position);
    # row 1: nothing beats its third best 0.6 (the tie at 0.6 loses), so it stays as it was
    audiences.keep_best(
        pos,
        val,
        np.array([[7, 8, -1], [9, -1, -1]]),
        np.array([[0.7, 0.5, -np.inf], [0.6, -np.inf, -np.inf]], dtype=np.float32),
    )
    assert pos.tolist() == [[0, 7, 1], [2, 3, 4]]
    assert val.ravel().tolist() == pytest.approx([0.9, 0.7, 0.5, 0.8, 0.7, 0.6])


def test_merge_breaks_score_ties_by_the_lower_user_id() -> None:
    blocks = pd.DataFrame(
        {
            C.ITEM_ID: ["x", "x", "x"],
            C.USER_ID: ["u3", "u1", "u2"],
            C.SCORE: [0.5, 0.5, 0.9],
            audiences.IS_NEW: [True] * 3,
            C.REASON_ITEM_ID: [None] * 3,
        }
    )
    got = audiences.merge(blocks, 2)
    assert got[C.USER_ID].tolist() == ["u2", "u1"] and got[C.RANK].tolist() == [1, 2]


def test_the_ngram_channel_scores_by_ngram_cosine() -> None:
    # three n-grams; a and f share n-gram 0, c and e share n-gram 2
    x = csr_matrix(
        np.array(
            [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 0], [0, 0.6, 0.8], [0.8, 0.6, 0]],
            np.float32,
        )
    )
    sp = space(ngram_vectors=x, ngram_neighbours=csr_matrix((6, 6), dtype=np.float32))
    items, is_new, _ = audiences.targets(sp, new_item_days=14)
    batch = users([{"user": u, "items": i} for u, i in {"u": ["a"], "v": ["c"]}.items()])
    got = audiences.block_audiences(batch, sp, items, is_new, 5)
    rows = {(r.item_id, r.user_id): r.score for r in got.itertuples()}
    assert set(rows) == {("f", "u"), ("e", "v")}
    assert rows[("f", "u")] == pytest.approx(0.8 * LN2) and rows[("e", "v")] == pytest.approx(
        0.8 * LN2
    )


def test_spark_blocks_and_merge_equal_the_pandas_reference(spark: Any) -> None:
    from longtail.stages.item_audiences import BLOCK_SCHEMA, merged, partition_audiences

    sp = space()
    items, is_new, _ = audiences.targets(sp, new_item_days=14)
    batch = users([{"user": u, "items": i} for u, i in HISTORY.items()]).drop(columns=[C.FACTORS])

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for found in partition_audiences(batches, sp, items, is_new, 3):
            yield found.assign(block=uuid.uuid4().hex)

    # Arrow batches of one shopper: each partition must still be searched as one block
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key)
    spark.conf.set(key, "1")
    try:
        frame = spark.createDataFrame(batch).repartition(2, C.USER_ID)
        blocks = (
            frame.sortWithinPartitions(C.USER_ID)
            .mapInPandas(run, f"{BLOCK_SCHEMA.simpleString()[7:-1]},block:string")
            .cache()
        )
        per_block = [r["count"] for r in blocks.groupBy("block").count().collect()]
        got = merged(blocks.drop("block"), 2).toPandas()
    finally:
        spark.conf.set(key, before)
    # one block per partition (not one per Arrow batch), each at most targets x 3 rows
    assert 1 <= len(per_block) <= 2 and max(per_block) <= len(items) * 3
    got = got.sort_values([C.ITEM_ID, C.RANK]).reset_index(drop=True)
    expected = audiences.merge(audiences.block_audiences(batch, sp, items, is_new, 3), 2)
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    assert got[[C.ITEM_ID, C.USER_ID]].values.tolist() == [["e", "z"], ["f", "w"], ["f", "u"]]
