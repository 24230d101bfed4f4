"""Top-N scoring: partial sort with ties, exclusions, popularity fallback and fill, Spark wiring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.testing import assertDataFrameEqual

from longtail.scoring import (
    RECOMMENDATION_SCHEMA,
    ScoringModel,
    recommend_batch,
    score_all,
    top_n_indices,
    users_to_score,
)

NEG_INF = -np.inf


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, [[1], [0], [3], [0]]),
        (2, [[1, 2], [0, 2], [3, 2], [0, 1]]),
        (3, [[1, 2, 3], [0, 2, 3], [3, 2, 0], [0, 1, 2]]),
        (4, [[1, 2, 3, 0], [0, 2, 3, 1], [3, 2, 0, 1], [0, 1, 2, 3]]),
        (9, [[1, 2, 3, 0], [0, 2, 3, 1], [3, 2, 0, 1], [0, 1, 2, 3]]),
    ],
)
def test_top_n_indices_orders_best_first_and_breaks_ties_by_lower_index(n, expected):
    scores = np.array(
        [
            [0.1, 0.5, 0.5, 0.2],
            [3.0, 1.0, 3.0, 3.0],
            [-1.0, NEG_INF, 0.0, 2.0],
            [7.0, 7.0, 7.0, 7.0],
        ]
    )
    assert top_n_indices(scores, n).tolist() == expected


@pytest.mark.parametrize(
    ("row", "n", "expected"),
    [
        ([0.0, 0.0, 2.0, 2.0], 3, [2, 3, 0]),
        ([0.0, 0.0, 1.0, 1.0, 0.0], 3, [2, 3, 0]),
        ([2.0, 2.0, 0.0, 0.0, 2.0, 2.0, 0.0], 3, [0, 1, 4]),
        ([1.0, 1.0, 9.0, 1.0, 1.0, 1.0, 0.0, 8.0], 4, [2, 7, 0, 1]),
        ([5.0, NEG_INF, NEG_INF, 4.0, NEG_INF], 3, [0, 3, 1]),
    ],
)
def test_top_n_indices_tie_at_the_cut_keeps_the_lowest_indices(row, n, expected):
    assert top_n_indices(np.array([row]), n).tolist() == [expected]


MODEL = ScoringModel(
    item_ids=np.array(["a", "b", "c", "d"]),
    item_factors=np.array([[1, 0], [0, 1], [1, 1], [-1, 0]], dtype=np.float32),
    popular_ids=np.array(["d", "c", "b", "a", "e", "f"]),
    popular_scores=np.array([6.0, 5.0, 4.0, 3.0, 2.0, 1.0]),
    top_n=3,
    min_user_items=2,
    model_version="v1",
)
INDEX = {"a": 0, "b": 1, "c": 2, "d": 3}


def _vec(*xs: float) -> np.ndarray:
    return np.array(xs, dtype=np.float32)


BATCH = pd.DataFrame(
    {
        "user_id": ["uA", "uB", "uC", "uD", "uE", "uF"],
        "factors": [_vec(2, 1), _vec(1, 2), None, _vec(1, 1), _vec(1, 1), _vec(1, 0)],
        "n_items": [3, 2, 5, 1, 2, 2],
        "excluded": [
            np.array(["c"]),
            np.array(["b", "c", "d"]),
            np.array(["d"]),
            np.array(["c"]),
            np.array([], dtype=str),
            np.array(["a", "b", "c"]),
        ],
    }
)

EXPECTED = [
    # ALS: a=2, b=1, c excluded, d=-2
    ("uA", 1, "a", 2.0, "als"),
    ("uA", 2, "b", 1.0, "als"),
    ("uA", 3, "d", -2.0, "als"),
    # ALS has only a (=1) left; filled from popularity below 0, skipping b, c, d
    ("uB", 1, "a", 1.0, "als"),
    ("uB", 2, "e", -1.0, "popularity"),
    ("uB", 3, "f", -2.0, "popularity"),
    # no factors: popularity without d
    ("uC", 1, "c", 5.0, "popularity"),
    ("uC", 2, "b", 4.0, "popularity"),
    ("uC", 3, "a", 3.0, "popularity"),
    # too few items for ALS: popularity without c
    ("uD", 1, "d", 6.0, "popularity"),
    ("uD", 2, "b", 4.0, "popularity"),
    ("uD", 3, "a", 3.0, "popularity"),
    # ALS: c=2, a=1, b=1 (tie: lower index first), d=-1
    ("uE", 1, "c", 2.0, "als"),
    ("uE", 2, "a", 1.0, "als"),
    ("uE", 3, "b", 1.0, "als"),
    # ALS has only d (=-1) left; the fill goes below it
    ("uF", 1, "d", -1.0, "als"),
    ("uF", 2, "e", -2.0, "popularity"),
    ("uF", 3, "f", -3.0, "popularity"),
]


def test_recommend_batch_literal_model():
    out = recommend_batch(BATCH, MODEL, INDEX)
    expected = pd.DataFrame(
        EXPECTED, columns=["user_id", "rank", "item_id", "score", "source"]
    ).assign(model_version="v1")
    expected["rank"] = expected["rank"].astype(np.int32)
    pd.testing.assert_frame_equal(out, expected)


def test_recommend_batch_contract():
    out = recommend_batch(BATCH, MODEL, INDEX)
    for _, row in BATCH.iterrows():
        recs = out[out["user_id"] == row["user_id"]]
        assert len(recs) == 3
        assert recs["rank"].tolist() == [1, 2, 3]
        assert recs["item_id"].is_unique
        assert not set(recs["item_id"]) & set(row["excluded"])
        assert recs["score"].is_monotonic_decreasing


def test_recommend_batch_all_popularity_when_model_has_no_items():
    empty = ScoringModel(
        item_ids=np.array([], dtype=str),
        item_factors=np.zeros((0, 2), dtype=np.float32),
        popular_ids=MODEL.popular_ids,
        popular_scores=MODEL.popular_scores,
        top_n=2,
        min_user_items=1,
        model_version="v0",
    )
    out = recommend_batch(BATCH.iloc[[0]].reset_index(drop=True), empty, {})
    assert out[["item_id", "score", "source"]].values.tolist() == [
        ["d", 6.0, "popularity"],
        ["b", 4.0, "popularity"],
    ]


def test_score_all_through_spark(spark):
    interactions = spark.createDataFrame(
        [
            ("uA", "a", False),
            ("uA", "c", True),
            ("uA", "b", False),
            ("uC", "d", True),
            ("uB", "a", False),
            ("uB", "b", True),
            ("uB", "c", True),
            ("uB", "d", True),
        ],
        "user_id string, item_id string, exclude boolean",
    )
    user_factors = spark.createDataFrame(
        [("uA", [2.0, 1.0]), ("uB", [1.0, 2.0]), ("uZ", [1.0, 1.0])],
        "user_id string, factors array<float>",
    )
    users = users_to_score(interactions, user_factors)
    assertDataFrameEqual(
        users,
        [
            ("uA", [2.0, 1.0], 3, ["c"]),
            ("uB", [1.0, 2.0], 4, ["b", "c", "d"]),
            ("uC", None, 1, ["d"]),
        ],
    )
    out = score_all(spark, users, MODEL)
    assertDataFrameEqual(
        out,
        spark.createDataFrame(
            [
                ("uA", 1, "a", 2.0, "als", "v1"),
                ("uA", 2, "b", 1.0, "als", "v1"),
                ("uA", 3, "d", -2.0, "als", "v1"),
                ("uB", 1, "a", 1.0, "als", "v1"),
                ("uB", 2, "e", -1.0, "popularity", "v1"),
                ("uB", 3, "f", -2.0, "popularity", "v1"),
                ("uC", 1, "c", 5.0, "popularity", "v1"),
                ("uC", 2, "b", 4.0, "popularity", "v1"),
                ("uC", 3, "a", 3.0, "popularity", "v1"),
            ],
            RECOMMENDATION_SCHEMA,
        ),
    )


def test_als_reasons_name_the_strongest_history_item(spark):
    from longtail.scoring import with_als_reasons

    recs = spark.createDataFrame(
        [
            ("uA", 1, "a", 2.0, "als", "v1"),  # a . e = 1 beats a . b = 0 and a . d = -1
            ("uA", 2, "c", 1.0, "als", "v1"),  # c . b = 1 (tie with c . e = 1: lower id b)
            ("uA", 3, "f", 0.5, "popularity", "v1"),
        ],
        RECOMMENDATION_SCHEMA,
    )
    history = spark.createDataFrame(
        [("uA", "b"), ("uA", "d"), ("uA", "e"), ("uA", "g")], "user_id string, item_id string"
    )  # g has no factors
    factors = spark.createDataFrame(
        [
            ("a", [1.0, 0.0]),
            ("b", [0.0, 1.0]),
            ("c", [1.0, 1.0]),
            ("d", [-1.0, 0.0]),
            ("e", [1.0, 0.0]),
        ],
        "item_id string, factors array<float>",
    )
    assert (
        with_als_reasons(recs, history.where("item_id = 'd'"), factors)
        .where("item_id = 'a'")
        .first()["reason"]
        is None
    )  # only a negative dot product: no reason
    out = with_als_reasons(recs, history, factors)
    got = {r["item_id"]: (r["reason_item_id"], r["reason"]) for r in out.collect()}
    assert got == {"a": ("e", "similar_taste"), "c": ("b", "similar_taste"), "f": (None, "popular")}
