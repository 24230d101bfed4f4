"""The users frame two ways agree: `user_histories.fusion_users` (Spark: scoring, the ranker's
training rows, the audiences) and `fusion.user_frame` (pandas: the benchmark and the tests).

Both give, per user, the history sorted by item id with its weights and timestamps, the excluded
items and the user's factors. The timestamps' unit differs (Spark: epoch microseconds; pandas:
the frame's datetime resolution over 1e9), which is harmless while every reader only orders a
user's items by them (`fusion.history_matrix`, `reasons`): checked here as the same order.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pytest

from longtail import columns as C
from longtail import fusion
from longtail.user_histories import N_ITEMS, fusion_users

INTERACTIONS = "user_id string, item_id string, weight double, last_ts timestamp, exclude boolean"
ROWS = [
    ("u1", "c", 2.0, dt.datetime(2024, 1, 3, 12), True),
    ("u1", "a", 1.0, dt.datetime(2024, 1, 5), False),
    ("u1", "b", 3.5, dt.datetime(2024, 1, 4, 6), False),
    ("u2", "b", 1.0, dt.datetime(2024, 1, 1), True),
    ("u3", "a", 0.5, dt.datetime(2024, 1, 2), False),
    ("u3", "d", 1.5, dt.datetime(2024, 1, 6), True),
]
FACTORS = [("u1", [0.5, 1.0]), ("u3", [-1.0, 0.25])]  # u2 has none


def _plain(value: Any) -> Any:
    """Arrays and lists as lists, missing values as None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return [v.item() if hasattr(v, "item") else v for v in value]


@pytest.mark.parametrize("with_factors", [True, False], ids=["factors", "no_factors"])
def test_spark_and_pandas_user_frames_agree(spark: Any, with_factors: bool) -> None:
    interactions = spark.createDataFrame(ROWS, INTERACTIONS)
    factors = spark.createDataFrame(FACTORS, "user_id string, factors array<float>")
    got = fusion_users(interactions, factors if with_factors else None).toPandas()
    want = fusion.user_frame(interactions.toPandas(), factors.toPandas() if with_factors else None)

    assert set(got.columns) - set(want.columns) == {N_ITEMS}
    got = got.sort_values(C.USER_ID).reset_index(drop=True)
    assert got[C.USER_ID].tolist() == want[C.USER_ID].tolist() == ["u1", "u2", "u3"]
    for column in (fusion.HIST_ITEMS, fusion.HIST_WEIGHTS, fusion.EXCLUDED, C.FACTORS):
        assert [_plain(v) for v in got[column]] == [_plain(v) for v in want[column]], column
    assert got[N_ITEMS].tolist() == [len(v) for v in want[fusion.HIST_ITEMS]]
    assert got[fusion.HIST_ITEMS].tolist()[0].tolist() == ["a", "b", "c"]  # sorted by item id
    for spark_ts, pandas_ts in zip(got[fusion.HIST_TS], want[fusion.HIST_TS], strict=True):
        assert np.argsort(spark_ts).tolist() == np.argsort(pandas_ts).tolist()


def test_text_profiles_equal_the_whole_matrix_product_and_skip_empty_shoppers() -> None:
    """Touching only the history items' vectors gives the product over the whole matrix, bit for
    bit (float64 products of the same terms in the same order), normalised."""
    import numpy as np
    from scipy.sparse import diags
    from scipy.sparse import random as sparse_random

    from longtail.fusion.history import text_profiles

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    hist = sparse_random(40, 500, density=0.02, format="csr", random_state=4, dtype=np.float64)
    hist.data = np.log1p(hist.data * 5)
    keep = np.ones(40)
    keep[[0, 7]] = 0  # two shoppers without any history item
    hist = (diags(keep) @ hist).tocsr()
    hist.eliminate_zeros()
    whole = np.asarray(hist @ vectors, dtype=np.float32)  # the widened whole-matrix product
    norms = np.linalg.norm(whole, axis=1)
    profile, has = text_profiles(hist, vectors)
    assert has.tolist() == (norms > 0).tolist() and (~has).any()
    assert np.array_equal(profile[has], whole[has] / norms[has][:, None])
    assert not profile[~has].any()
