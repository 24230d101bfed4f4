"""The fusion ranker learns a planted interaction no single feature can express."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from longtail import columns as C
from longtail import ranker
from longtail.fusion import FEATURES


def planted(n_users: int = 400, per_user: int = 30, seed: int = 0) -> ranker.TrainingSet:
    rng = np.random.default_rng(seed)
    rows = n_users * per_user
    frame = pd.DataFrame({f: rng.random(rows).astype(np.float32) for f in FEATURES})
    frame[C.USER_ID] = np.repeat([f"u{i:04d}" for i in range(n_users)], per_user)
    frame["item_idx"] = np.tile(np.arange(per_user), n_users)
    # relevant when BOTH als_score and cooccurrence are high: each alone is a weak signal
    both = (frame["als_score"] > 0.6) & (frame["cooccurrence"] > 0.6)
    frame["label"] = both.astype(np.int32)
    has_pos = frame.groupby(C.USER_ID)["label"].transform("max") > 0
    frame = frame[has_pos].reset_index(drop=True)
    groups = frame.groupby(C.USER_ID, sort=True).size().to_numpy()
    return ranker.TrainingSet(frame, groups, 1.0, len(groups))


def test_ranker_beats_its_best_single_feature() -> None:
    ts = planted()
    _, report = ranker.fit(ts, {"n_estimators": 100, "min_child_samples": 20}, seed=1)
    best_single = max(report["valid_ndcg@10_single_features"].values())
    assert report["valid_ndcg@10"] > best_single + 0.1
    assert report["best_single_feature"] in ("als_score", "cooccurrence")
    top2 = sorted(report["importance_gain"], key=report["importance_gain"].get)[-2:]
    assert set(top2) == {"als_score", "cooccurrence"}


def test_ranker_is_deterministic() -> None:
    ts = planted(n_users=100)
    b1, _ = ranker.fit(ts, {"n_estimators": 30, "min_child_samples": 20}, seed=3)
    b2, _ = ranker.fit(ts, {"n_estimators": 30, "min_child_samples": 20}, seed=3)
    x = ts.frame[list(FEATURES)].to_numpy(np.float32)
    assert np.array_equal(b1.predict(x), b2.predict(x))


def test_new_pairs_and_window() -> None:
    ev = pd.DataFrame(
        {
            C.USER_ID: ["u1", "u1", "u2", "u1", "u3", "u2"],
            C.ITEM_ID: ["a", "b", "a", "a", "c", "d"],
            C.TS: pd.to_datetime(
                [
                    "2024-01-01",
                    "2024-01-02",
                    "2024-01-03",
                    "2024-01-09",
                    "2024-01-09",
                    "2024-01-10",
                ],
                utc=True,
            ),
        }
    )
    before, inside = ev.iloc[:3], ev.iloc[3:]
    # u1/a is not new; u3 has no history before; u2/d is new
    assert ranker.new_pairs(before, inside) == {"u2": {"d"}}
    end = pd.Timestamp("2024-01-11", tz="UTC")
    assert ranker.label_window_start(ev, end, 2, 64, 1) == pd.Timestamp("2024-01-09", tz="UTC")
    # asking for more pairs than exist falls back to the maximum window
    assert ranker.label_window_start(ev, end, 2, 16, 99) == end - pd.Timedelta(days=16)


def test_sample_users_is_deterministic_and_bounded() -> None:
    users = [f"u{i}" for i in range(100)]
    a = ranker.sample_users(users, 10, 7)
    assert a == ranker.sample_users(list(reversed(users)), 10, 7)
    assert len(a) == 10 and a != ranker.sample_users(users, 10, 8)


def _report(**kw: object) -> dict:
    base = {
        "train_users": 400,
        "best_iteration": 40,
        "valid_ndcg@10": 0.30,
        "valid_ndcg@10_single_features": {"als_score": 0.20, "cooccurrence": 0.25},
        "best_single_feature": "cooccurrence",
    }
    base.update(kw)
    return base


def test_a_strong_model_stays() -> None:
    assert ranker.fallback(_report()) is None
    assert ranker.fallback(_report(best_single_feature=None)) is None


def test_fallback_reasons() -> None:
    few = ranker.fallback(_report(train_users=8))
    assert few is not None and few[0] == "cooccurrence" and "8 training users" in few[1]
    trees = ranker.fallback(_report(best_iteration=1))
    assert trees is not None and "best iteration 1" in trees[1]
    weak = ranker.fallback(_report(**{"valid_ndcg@10": 0.2}))
    assert weak is not None and weak[0] == "cooccurrence" and "0.2000" in weak[1]


def test_a_single_feature_replaces_the_model_only_beyond_the_validation_noise() -> None:
    # The feature leads by 0.01. With a standard error of 0.01 the margin is 1.645 x 0.01 =
    # 0.01645 > 0.01: the model stays. With 0.005 it is 0.008225 < 0.01: the feature ranks.
    noisy = _report(**{"valid_ndcg@10": 0.24, "valid_ndcg@10_gap_se": 0.01})
    assert ranker.fallback(noisy) is None
    clear = ranker.fallback(_report(**{"valid_ndcg@10": 0.24, "valid_ndcg@10_gap_se": 0.005}))
    assert clear is not None and clear[0] == "cooccurrence"
    assert "1.645 standard errors (0.0082)" in clear[1]


def test_paired_se_by_hand() -> None:
    # differences 1, 2, 3: sd (ddof 1) = 1, so se = 1 / sqrt(3)
    assert ranker.paired_se(np.array([1.0, 2.0, 3.0]), np.zeros(3)) == pytest.approx(3**-0.5)
    assert ranker.paired_se(np.array([0.5]), np.array([0.1])) == 0.0


def test_single_feature_scorer_ranks_by_its_column() -> None:
    meta = {"features": list(FEATURES), "single_feature": FEATURES[2]}
    scorer = ranker.load_scorer("", meta)
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    x = np.pad(x, ((0, 0), (0, len(FEATURES) - 4)))
    np.testing.assert_array_equal(scorer.predict(x), [2.0, 6.0, 10.0])
    assert ranker.load_scorer("", {"features": list(FEATURES)}) is None


def test_fit_reports_cold_positives() -> None:
    ts = planted(n_users=100)
    ts.frame["is_cold"] = (ts.frame["item_idx"] % 2).astype(np.float32)
    _, report = ranker.fit(ts, {"n_estimators": 20, "min_child_samples": 20}, seed=3)
    cold = ts.frame[(ts.frame["is_cold"] > 0)]["label"].sum()
    assert report["cold_positives"] == int(cold) > 0


def test_spread_strength_is_chosen_on_the_validation_users_with_the_published_scorer() -> None:
    from longtail import fusion
    from longtail.config import RankerConfig

    ts = planted(n_users=60)
    ts.frame["is_tail"] = (ts.frame["item_idx"] >= 20).astype(np.float32)
    ts.frame["is_cold"] = np.float32(0)
    cfg = RankerConfig(ds="2024-01-01", warehouse="w", valid_share=0.25, seed=5)
    scorer = ranker.SingleFeature(list(FEATURES).index("als_score"))
    got = ranker.choose_spread_strength(ts, scorer, cfg, 20, 0.3, 0.1)
    # The validation users by hand: the 15 of 60 users whose sha1("<seed + 1>:<user>") comes
    # first, the seeded sample fit also holds out.
    users = sorted(ts.frame[C.USER_ID].unique())
    held = sorted(users, key=lambda u: hashlib.sha1(f"6:{u}".encode()).hexdigest())[:15]
    valid = ts.frame[ts.frame[C.USER_ID].isin(held)].reset_index(drop=True)
    best, values = fusion.choose_spread(
        valid, valid["als_score"].to_numpy(np.float64), (0.0, 0.1, 0.2, 0.3, 0.4), 20, 0.3, 0.1
    )
    assert got["users"] == len(held) == 15
    assert got["strength"] == best
    assert got["valid_ndcg@10"] == {str(k): v for k, v in values.items()}
    none = RankerConfig(ds="2024-01-01", warehouse="w", valid_share=0.0)
    assert ranker.choose_spread_strength(ts, scorer, none, 20, 0.3, 0.1)["strength"] == 0.0
