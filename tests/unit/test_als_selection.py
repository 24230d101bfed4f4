"""The nightly ALS's choice of regularisation and alpha on its own validation window."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from longtail import als_selection as sel
from longtail.als import IndexedInteractions
from longtail.config import AlsConfig, ConfigError


def _ii(pairs: list[tuple[int, int]]) -> IndexedInteractions:
    u = np.array([p[0] for p in pairs], np.int32)
    i = np.array([p[1] for p in pairs], np.int32)
    n_u, n_i = int(u.max()) + 1, int(i.max()) + 1
    return IndexedInteractions(
        u,
        i,
        np.ones(len(pairs)),
        np.array([f"u{k}" for k in range(n_u)]),
        np.array([f"i{k}" for k in range(n_i)]),
    )


def _choose(
    pairs: list[tuple[int, int]], firsts: np.ndarray, share: float, max_users: int
) -> tuple[sel.Selection, sel.ValidationSplit]:
    """choose() with small fixed ALS settings: 2 factors, 2 iterations, 2 x 2 grid, 50 users."""
    return sel.choose(
        _ii(pairs),
        firsts,
        factors=2,
        regularization=0.05,
        alpha=2.0,
        iterations=2,
        seed=0,
        num_threads=1,
        regularizations=(0.05, 5.0),
        alpha_factors=(4.0,),
        share=share,
        max_users=max_users,
        min_users=50,
    )


def test_validation_split_holds_out_the_newest_pairs_on_known_users_and_items() -> None:
    # first events 1..10; share 0.3 -> start = the 0.7 quantile ("higher") = 8: pairs 8, 9, 10
    pairs = [(0, 0), (0, 1), (1, 1), (1, 2), (2, 0), (2, 3), (0, 2), (0, 4), (1, 3), (3, 1)]
    firsts = np.arange(1, 11)
    split = sel.validation_split(_ii(pairs), firsts, 0.3, max_users=10, seed=0)
    assert split.start_us == 8
    # held out: (0,4) item 4 unseen before -> dropped; (1,3) kept (item 3 seen by user 2);
    # (3,1) user 3 has nothing before -> dropped
    assert split.users.tolist() == [1]
    assert split.truth.toarray()[1].tolist() == [0, 0, 0, 1, 0]
    assert split.truth.nnz == 1
    train = split.train.toarray() > 0
    assert train.sum() == 7 and not train[0, 4] and not train[1, 3] and not train[3, 1]


def test_validation_split_samples_at_most_max_users_reproducibly() -> None:
    # 30 users buy item 0 at t=0 and item 1 at t=1; user 30 bought item 1 at t=0 (so it is known)
    pairs = [(u, 0) for u in range(30)] + [(u, 1) for u in range(30)] + [(30, 1)]
    firsts = np.r_[np.zeros(30), np.ones(30), [0]].astype(np.int64)
    a = sel.validation_split(_ii(pairs), firsts, 0.4, max_users=7, seed=3)
    b = sel.validation_split(_ii(pairs), firsts, 0.4, max_users=7, seed=3)
    assert a.start_us == 1 and a.truth.nnz == 7
    assert len(a.users) == 7 and a.users.tolist() == b.users.tolist()
    assert a.users.tolist() == sorted(a.users.tolist())


def test_ndcg_excludes_training_items_and_matches_a_hand_computation() -> None:
    train = csr_matrix(np.array([[1, 0, 0, 0], [0, 0, 0, 1]], np.float32))
    truth = csr_matrix(np.array([[0, 0, 1, 0], [1, 1, 0, 0]], np.float32))
    split = sel.ValidationSplit(train, truth, np.array([0, 1]), 0)
    users = np.array([[1.0], [1.0]])
    items = np.array([[4.0], [3.0], [2.0], [1.0]])  # order 0, 1, 2, 3 for both users
    # user 0: item 0 is owned -> list 1, 2, 3: hit at rank 2 -> (1/log2 3) / 1
    # user 1: item 3 owned -> list 0, 1, 2: hits at ranks 1, 2 -> ideal too -> 1.0
    got = sel.ndcg_at_k(users, items, split, k=3)
    assert got == pytest.approx((1 / math.log2(3) + 1.0) / 2)


def test_select_extends_past_an_edge_winner_then_tries_alpha() -> None:
    calls: list[tuple[float, float]] = []
    best_reg, best_alpha = 500.0, 8.0

    def fit(train: csr_matrix, reg: float, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        calls.append((reg, alpha))
        quality = -abs(math.log10(reg / best_reg)) - abs(math.log2(alpha / best_alpha))
        return np.array([[quality]]), np.array([[1.0]])

    split = sel.ValidationSplit(csr_matrix((1, 1)), csr_matrix(np.ones((1, 1))), np.array([0]), 0)
    # the fits are judged by the planted quality, which the fake user factor carries
    got = sel.select(
        split, fit, (0.5, 5.0, 50.0), 2.0, (0.25, 4.0), score=lambda uf, vf, s: float(uf[0, 0])
    )
    # 50 wins at the edge -> 500 tried and wins -> 5000 tried and loses; then alpha 0.5, 8;
    # 8 wins at the edge -> 32 tried and loses
    assert [c[0] for c in calls] == [0.5, 5.0, 50.0, 500.0, 5000.0, 500.0, 500.0, 500.0]
    assert [c[1] for c in calls[-3:]] == [0.5, 8.0, 32.0]
    assert got.chosen == {"regularization": 500.0, "alpha": 8.0}
    assert len(got.trials) == 8


def test_too_few_validation_users_keep_the_configured_values() -> None:
    pairs = [(0, 0), (0, 1), (1, 0), (1, 1)]
    picked, split = _choose(pairs, np.array([1, 2, 1, 2]), share=0.5, max_users=10)
    assert picked.chosen == {"regularization": 0.05, "alpha": 2.0}
    assert "fewer than 50" in picked.record(split)["kept_configured"]
    assert picked.trials == []


def test_config_grids_are_validated_and_kept_as_tuples() -> None:
    cfg = AlsConfig(ds="2024-01-02", warehouse="/tmp/w", regularization_grid=[1, 10])
    assert cfg.regularization_grid == (1.0, 10.0)
    for bad in ([], [0.0], ["x"], "1"):
        with pytest.raises(ConfigError, match="regularization_grid"):
            AlsConfig(ds="2024-01-02", warehouse="/tmp/w", regularization_grid=bad)


def test_last_items_rule_holds_out_each_users_own_newest_pairs() -> None:
    # u0: items 0..4 at t 1..5; u1: items 0, 1 (too few to hold out); u2: items 2, 1, 0 at t 9, 8, 7
    pairs = [(0, i) for i in range(5)] + [(1, 0), (1, 1), (2, 2), (2, 1), (2, 0)]
    firsts = np.array([1, 2, 3, 4, 5, 1, 1, 9, 8, 7])
    split = sel.validation_split(_ii(pairs), firsts, 0.2, max_users=10, seed=0, rule="last_items")
    # ceil(0.2 * 5) = 1 for u0 (item 4, t=5), ceil(0.2 * 3) = 1 for u2 (item 2, t=9); but item 4
    # is nobody's before-item, so u0's truth is empty: only u2 judges
    assert split.rule == "last_items" and split.users.tolist() == [2]
    assert split.truth.toarray()[2].tolist() == [0, 0, 1, 0, 0]
    assert split.train.toarray()[0, 4] == 0 and split.train.toarray()[1].sum() > 0


def test_choose_falls_back_to_each_users_newest_pairs() -> None:
    # 60 users, 10 items each, one after another: the shop's newest 10% are 6 users' pairs only,
    # and each user's newest item differs (rotated), so every held-out item is known
    pairs = [(u, (i + u) % 10) for u in range(60) for i in range(10)]
    firsts = np.array([u * 100 + i for u in range(60) for i in range(10)])
    picked, split = _choose(pairs, firsts, share=0.1, max_users=100)
    assert split.rule == "last_items" and len(split.users) == 60
    assert picked.record(split)["validation_rule"] == "last_items"
    assert len(picked.trials) >= 3
