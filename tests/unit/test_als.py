"""ALS on the driver: the interaction matrix, determinism, and a planted-signal sanity check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from longtail.als import build_matrix, factors_frame, fit_als

LN2, LN4, LN8 = 0.6931472, 1.3862944, 2.0794415


def _interactions(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "item_id", "weight"])


def test_build_matrix_three_by_three():
    matrix, users, items = build_matrix(
        _interactions(
            [
                ("u2", "c", 7.0),
                ("u1", "a", 1.0),
                ("u3", "b", 3.0),
                ("u1", "c", 3.0),
                ("u2", "a", 1.0),
            ]
        )
    )
    assert users.tolist() == ["u1", "u2", "u3"]
    assert items.tolist() == ["a", "b", "c"]
    assert matrix.shape == (3, 3)
    assert matrix.dtype == np.float32
    assert matrix.nnz == 5
    assert matrix.has_sorted_indices
    np.testing.assert_allclose(
        matrix.toarray(),
        [
            [LN2, 0.0, LN4],
            [LN2, 0.0, LN8],
            [0.0, LN4, 0.0],
        ],
        rtol=1e-6,
    )


def test_build_matrix_ids_sort_as_strings():
    # numeric-looking ids are indexed as text: "10" sorts before "9"
    _, users, items = build_matrix(
        _interactions([("9", "200", 1.0), ("10", "30", 1.0), ("10", "200", 1.0)])
    )
    assert users.tolist() == ["10", "9"]
    assert items.tolist() == ["200", "30"]


SMALL = _interactions(
    [
        ("u1", "a", 1.0),
        ("u1", "b", 4.0),
        ("u2", "b", 2.0),
        ("u2", "c", 1.0),
        ("u3", "a", 8.0),
        ("u3", "c", 1.0),
        ("u4", "d", 3.0),
    ]
)


def test_fit_als_is_deterministic_for_a_seed():
    kw = dict(factors=4, iterations=5, seed=7, num_threads=1)
    first = fit_als(SMALL, **kw)
    second = fit_als(SMALL, **kw)
    other_seed = fit_als(SMALL, **{**kw, "seed": 8})

    assert first.user_ids.tolist() == ["u1", "u2", "u3", "u4"]
    assert first.item_ids.tolist() == ["a", "b", "c", "d"]
    assert first.user_factors.shape == (4, 4)
    assert first.item_factors.shape == (4, 4)
    assert first.user_factors.dtype == np.float32
    np.testing.assert_array_equal(first.user_factors, second.user_factors)
    np.testing.assert_array_equal(first.item_factors, second.item_factors)
    assert not np.array_equal(first.item_factors, other_seed.item_factors)


def test_planted_groups_recommend_within_their_group():
    # Two shops in one: group A users only touch p-items, group B users only q-items.
    rows = []
    for g, prefix in (("A", "p"), ("B", "q")):
        for u in range(6):
            for i in range(5):
                if i != u % 5:  # each user misses one item of their own group
                    rows.append((f"{g}{u}", f"{prefix}{i}", 1.0 + (u + i) % 3))
    model = fit_als(
        _interactions(rows), factors=4, regularization=1.0, iterations=15, seed=1, num_threads=1
    )
    scores = model.user_factors @ model.item_factors.T
    for row, user in enumerate(model.user_ids):
        own = "p" if user.startswith("A") else "q"
        top5 = model.item_ids[np.argsort(-scores[row], kind="stable")[:5]]
        assert all(item.startswith(own) for item in top5), (user, top5.tolist())


@pytest.mark.parametrize("key", ["user_id", "item_id"])
def test_factors_frame(key):
    ids = np.array(["x", "y"])
    vectors = np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float64)
    frame = factors_frame(ids, vectors, key)
    assert frame.columns.tolist() == [key, "factors"]
    assert frame[key].tolist() == ["x", "y"]
    assert frame["factors"].iloc[1].dtype == np.float32
    assert frame["factors"].iloc[1].tolist() == [3.0, 4.0]


def test_spark_indexed_matrix_fits_the_same_factors(spark):
    from longtail.stages.train_als import collect_indexed

    # ids that sort differently as numbers, by case, and past ASCII (code point order)
    users = ["u1", "U2", "10", "9", "é", "z", "Ω", "ab"]
    items = ["a", "B", "200", "30", "ü", "c", "€", "x y"]
    rng = np.random.default_rng(5)
    pairs = {(u, i) for u in users for i in items if rng.random() < 0.45}
    rows = [(u, i, float(rng.integers(1, 20)) / 3.0) for u, i in sorted(pairs)]
    rng.shuffle(rows)
    frame = _interactions(rows)

    indexed = collect_indexed(
        spark.createDataFrame(frame, "user_id string, item_id string, weight double")
    )
    assert indexed.user_idx.dtype == np.int32 and indexed.item_idx.dtype == np.int32
    want, want_users, want_items = build_matrix(frame)
    got, got_users, got_items = build_matrix(indexed)
    assert got_users.tolist() == want_users.tolist() and got_users.dtype == want_users.dtype
    assert got_items.tolist() == want_items.tolist() and got_items.dtype == want_items.dtype
    for part in ("data", "indices", "indptr"):
        np.testing.assert_array_equal(getattr(got, part), getattr(want, part))

    kw = dict(factors=4, iterations=5, seed=7, num_threads=1)
    expected, actual = fit_als(frame, **kw), fit_als(indexed, **kw)
    np.testing.assert_array_equal(actual.user_ids, expected.user_ids)
    np.testing.assert_array_equal(actual.item_ids, expected.item_ids)
    np.testing.assert_array_equal(actual.user_factors, expected.user_factors)
    np.testing.assert_array_equal(actual.item_factors, expected.item_factors)
