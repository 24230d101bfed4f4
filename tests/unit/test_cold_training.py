"""Cold items in training and scoring: text -> factor map, hidden items, cold positives."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd
from tests.unit import fusion_reference

from longtail import columns as C
from longtail import fusion, label_window, ranker
from longtail.fusion import CandidateCounts


def _planted(n_items: int = 300, dim: int = 8, k: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n_items, dim)).astype(np.float32)
    w = rng.normal(size=(dim, k))
    fac = (emb @ w).astype(np.float32)
    return emb, fac, w


def test_exact_linear_map_is_recovered_for_cold_items() -> None:
    emb, fac, w = _planted()
    has = np.ones(len(emb), bool)
    has[-40:] = False
    given = fac.copy()
    given[~has] = 0.0
    out = fusion.text_factors(emb, given, has, ridges=(1e-8,))
    # the cold rows are emb @ w, computed here without the function's solver
    np.testing.assert_allclose(out[~has], emb[~has] @ w, atol=1e-3)
    np.testing.assert_array_equal(out[has], given[has])  # warm items keep their factors


def test_map_equals_a_separate_ridge_solve() -> None:
    emb, fac, _ = _planted(seed=1)
    rng = np.random.default_rng(2)
    fac = fac + rng.normal(scale=2.0, size=fac.shape).astype(np.float32)
    has = np.arange(len(emb)) % 6 != 0
    given = np.where(has[:, None], fac, 0.0).astype(np.float32)
    out = fusion.text_factors(emb, given, has, ridges=(1.0,))
    x, y = emb[has].astype(np.float64), fac[has].astype(np.float64)
    lam = np.trace(x.T @ x) / x.shape[1]
    # ridge regression as the augmented least-squares problem [x; sqrt(lam) I] w = [y; 0]
    xa = np.vstack([x, np.sqrt(lam) * np.eye(x.shape[1])])
    ya = np.vstack([y, np.zeros((x.shape[1], y.shape[1]))])
    w = np.linalg.lstsq(xa, ya, rcond=None)[0]
    np.testing.assert_allclose(out[~has], emb[~has] @ w, rtol=1e-4, atol=1e-4)


def test_no_text_or_too_few_warm_items_leaves_factors_alone() -> None:
    emb, fac, _ = _planted(n_items=60)
    has = np.ones(60, bool)
    has[-20:] = False
    given = np.where(has[:, None], fac, 0.0).astype(np.float32)
    # 40 warm items < 50
    np.testing.assert_array_equal(fusion.text_factors(emb, given, has), given)
    no_text = np.zeros((60, 1), np.float32)
    np.testing.assert_array_equal(fusion.text_factors(no_text, given, has), given)


def test_hidden_items_match_sha1_by_hand(spark) -> None:
    items = [f"item-{i}" for i in range(400)]
    df = spark.createDataFrame([(i,) for i in items], [C.ITEM_ID])
    got = {r[0] for r in df.where(label_window.hidden_items(0.25, 7)).collect()}
    want = {
        i
        for i in items
        if int(hashlib.sha1(f"7:hide:{i}".encode()).hexdigest()[:8], 16) < 0.25 * 2**32
    }
    assert got == want
    assert 60 < len(want) < 140  # about a quarter
    assert df.where(label_window.hidden_items(0.0, 7)).count() == 0


def _cold_space():
    ids = np.array(["a", "b", "c", "d", "new"])
    emb = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.95, 0.05]], np.float32)
    cat = pd.DataFrame({C.ITEM_ID: ids, C.CATEGORY: ["x", "x", "y", "y", "x"]})
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    inter = pd.DataFrame(
        {
            C.USER_ID: ["u1", "u1", "u2", "u2", "u3"],
            C.ITEM_ID: ["a", "b", "c", "d", "a"],
            C.WEIGHT: [1.0] * 5,
            "first_ts": [t0] * 5,
            "last_ts": [t0] * 5,
            "exclude": [True] * 5,
        }
    )
    embeddings = pd.DataFrame({C.ITEM_ID: ids, "embedding": list(emb)})
    space = fusion_reference.build_item_space(
        cat, inter, embeddings, None, t0 + pd.Timedelta(days=1), head_share=0.5
    )
    return space, inter


def test_item_first_bought_in_the_window_is_a_positive() -> None:
    space, inter = _cold_space()
    assert space.is_cold[space.index["new"]]  # never sold before the window start
    counts = CandidateCounts(
        als=0, content=5, cooccurrence=0, category=5, tail_explorer=0, cold_text=5, popularity=5
    )
    users = fusion.user_frame(inter, None)
    ts = ranker.training_set(space, users, {"u1": {"new"}}, counts)
    new = ts.frame[space.item_ids[ts.frame["item_idx"]] == "new"]
    assert len(new) == 1 and int(new["label"].iloc[0]) == 1
    assert float(new["is_cold"].iloc[0]) == 1.0
    assert ts.candidate_recall == 1.0


def test_cold_item_gets_an_als_score_from_predicted_factors() -> None:
    emb, fac, w = _planted(n_items=200, dim=4, k=3, seed=5)
    ids = np.array([f"i{n:03d}" for n in range(200)])
    cat = pd.DataFrame({C.ITEM_ID: ids})
    warm = ids[:-10]
    stats = pd.DataFrame(
        {
            C.ITEM_ID: warm,
            fusion.N_USERS: 3,
            fusion.N_RECENT_USERS: 1,
            fusion.FIRST_TS: pd.Timestamp("2024-01-01", tz="UTC"),
        }
    )
    pairs = pd.DataFrame({C.ITEM_ID: [], fusion.NEIGHBOUR_ID: [], C.SCORE: []})
    space = fusion.assemble_item_space(
        cat,
        stats,
        pairs,
        pd.DataFrame({C.ITEM_ID: ids, "embedding": list(emb)}),
        pd.DataFrame({C.ITEM_ID: warm, C.FACTORS: list(fac[:-10])}),
        pd.Timestamp("2024-02-01", tz="UTC"),
    )
    assert not space.has_factors[-10:].any() and space.is_cold[-10:].all()
    # the smallest default ridge (0.01 of the mean eigenvalue) shrinks by about 1%
    np.testing.assert_allclose(space.als_factors[-10:], emb[-10:] @ w, rtol=0.05, atol=0.05)


def test_last_pairs_are_each_users_latest_items(spark) -> None:
    rows = []
    # u1: 10 items at times 0..9 -> floor(0.2 x 10) = 2 latest: i8, i9
    rows += [("u1", f"i{t}", t) for t in range(10)]
    # u2: 3 items -> max(1, floor(0.6)) = 1; i1 and i2 tie at t=5, the larger id wins
    rows += [("u2", "i0", 1), ("u2", "i1", 5), ("u2", "i2", 5)]
    # u3: 2 items, below the minimum of 3 -> no labels
    rows += [("u3", "i0", 1), ("u3", "i1", 2)]
    firsts = spark.createDataFrame(
        rows, [C.USER_ID, C.ITEM_ID, label_window.PAIR_FIRST]
    ).withColumn(label_window.USER_FIRST, label_window.F.lit(0))
    got = sorted(tuple(r) for r in label_window.last_pairs(firsts, 0.2).collect())
    assert got == [("u1", "i8"), ("u1", "i9"), ("u2", "i2")]


def test_items_listed_in_the_window_get_their_age_at_its_end() -> None:
    from longtail.stages.train_ranker import _listed_in_window_ages

    space, _ = _cold_space()
    start = pd.Timestamp("2024-01-02", tz="UTC")
    end = pd.Timestamp("2024-01-09", tz="UTC")
    listed = {
        "a": "2023-12-01",
        "b": None,
        "c": "2024-01-05",
        "d": "2024-01-08T12:00:00",
        "new": None,
    }
    cat = pd.DataFrame(
        {
            C.ITEM_ID: list(listed),
            C.FIRST_SEEN: pd.to_datetime(list(listed.values()), utc=True, format="ISO8601"),
        }
    )
    out = _listed_in_window_ages(space, cat, start, end)
    ix = out.index
    assert out.age_days[ix["c"]] == 4.0 and out.age_days[ix["d"]] == 0.5
    for item in ("a", "b", "new"):  # listed before the start, or no listing date: unchanged
        assert out.age_days[ix[item]] == space.age_days[ix[item]]


def test_items_without_a_title_are_never_candidates_nor_fill() -> None:
    from longtail.stages.score import popular_order

    space, inter = _cold_space()
    titled = np.array([t != "new" for t in space.item_ids])
    space = dataclasses.replace(space, titled=titled)
    counts = CandidateCounts(
        als=0, content=5, cooccurrence=5, category=5, tail_explorer=5, cold_text=5, popularity=5
    )
    cands = fusion.candidates(fusion.user_frame(inter, None), space, counts, space.index)
    items = set(space.item_ids[cands["item_idx"]])
    assert items and "new" not in items  # "new" is u1's nearest text neighbour, but nameless
    assert "new" not in set(space.item_ids[popular_order(space)])
    assert len(popular_order(space)) == len(space.item_ids) - 1
