"""Benchmark peers against hand-computed values on tiny matrices, plus a contract every tuned peer
in the registry must meet."""

from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bench import metrics, peers
from bench.peers import PeerData, PeerSkipped, _checkpoint_dir

UTC = "UTC"
CUTOFF = pd.Timestamp("2024-01-10", tz=UTC)


def _events(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": [r[0] for r in rows],
            "item_id": [r[1] for r in rows],
            "ts": pd.to_datetime([r[2] for r in rows], utc=True),
            "weight": 1.0,
        }
    )


def _data(pairs: list[tuple[str, str]]) -> PeerData:
    return PeerData.from_events(_events([(u, i, "2024-01-01") for u, i in pairs]), CUTOFF)


# u1 {a, b}, u2 {a, c}, u3 {a, b, d}: item users a 3, b 2, c 1, d 1
GRAPH = _data(
    [("u1", "a"), ("u1", "b"), ("u2", "a"), ("u2", "c"), ("u3", "a"), ("u3", "b"), ("u3", "d")]
)
R2, R3 = math.sqrt(2.0), math.sqrt(3.0)


def test_peer_data_builds_one_matrix_from_events():
    data = PeerData.from_events(
        _events(
            [
                ("u1", "a", "2024-01-01"),
                ("u1", "a", "2024-01-02"),  # repeat: summed into one interaction
                ("u2", "b", "2024-01-03"),
                ("u2", "c", "2024-01-10"),  # at the cutoff: not training
            ]
        ),
        CUTOFF,
    )
    assert data.interactions.to_dict("records") == [
        {"user_id": "u1", "item_id": "a", "weight": 2.0},
        {"user_id": "u2", "item_id": "b", "weight": 1.0},
    ]
    assert len(data.events) == 3
    assert data.matrix.item_ids.tolist() == ["a", "b"]
    assert data.matrix.binary.toarray().tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert data.matrix is data.matrix  # built once, shared by every trial


# --------------------------------------------------------------------------------------------
# EASE
# --------------------------------------------------------------------------------------------

# u1 {a, b}, u2 {b, c}, u3 {a}. X'X = [[2,1,0],[1,2,1],[0,1,1]]; with l2 = 1
# G = [[3,1,0],[1,3,1],[0,1,2]], det G = 3*5 - 1*2 = 13, cofactors give
# P = G^-1 = [[5,-2,1],[-2,6,-3],[1,-3,8]] / 13 and B_ij = -P_ij / P_jj, B_jj = 0:
EASE_DATA = _data([("u1", "a"), ("u1", "b"), ("u2", "b"), ("u2", "c"), ("u3", "a")])
EASE_B = np.array(
    [
        [0.0, 2 / 6, -1 / 8],
        [2 / 5, 0.0, 3 / 8],
        [-1 / 5, 3 / 6, 0.0],
    ]
)


def test_ease_weights_match_the_closed_form_by_hand():
    b = peers.ease_weights(EASE_DATA.matrix.binary, 1.0)
    assert b.dtype == np.float32
    assert b.flags.c_contiguous
    np.testing.assert_allclose(b, EASE_B, rtol=1e-5, atol=1e-7)


def test_ease_scores_by_hand_keep_negative_scores_and_drop_seen_items():
    # u3 = row a of B: b 1/3, c -1/8 (negative, but still a ranking); u1 = rows a + b: c 1/4;
    # u2 = rows b + c: a 2/5 - 1/5 = 1/5. The popularity fill never runs: every item is scored.
    res = peers.ease(EASE_DATA, ["u1", "u2", "u3"], 2, {"l2": 1.0})
    assert res.recs == {"u1": ["c"], "u2": ["a"], "u3": ["b", "c"]}
    assert res.params == {"l2": 1.0}


def test_ease_larger_catalogue_against_an_explicit_inverse():
    rng = np.random.default_rng(3)
    x = (rng.random((40, 25)) < 0.2).astype(np.float64)
    pairs = [(f"u{u:02d}", f"i{i:02d}") for u, i in zip(*np.nonzero(x), strict=True)]
    data = _data(pairs)
    x = x[:, x.sum(axis=0) > 0]
    x = x[x.sum(axis=1) > 0]
    g = x.T @ x + 30.0 * np.eye(x.shape[1])
    p = np.linalg.inv(g)
    expected = -p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(peers.ease_weights(data.matrix.binary, 30.0), expected, atol=2e-6)


def test_ease_skips_above_the_item_cap(monkeypatch):
    monkeypatch.setattr(peers, "EASE_MAX_ITEMS", 2)
    reason = peers.TUNED_PEERS["ease"].skip_reason(EASE_DATA)
    assert reason is not None and "3 items > EASE_MAX_ITEMS=2" in reason
    with pytest.raises(PeerSkipped) as err:
        peers.ease(EASE_DATA, ["u1"], 2, {"l2": 1.0})
    assert err.value.reason == reason
    tuned = peers.tune_peer(peers.TUNED_PEERS["ease"], EASE_DATA, {"u1": {"c"}}, 2)
    assert tuned["skipped"] == reason
    assert tuned["best"] is None
    assert tuned["evaluations"] == 0 and tuned["trials"] == []
    monkeypatch.setattr(peers, "EASE_MAX_ITEMS", 3)
    assert peers.TUNED_PEERS["ease"].skip_reason(EASE_DATA) is None


def test_ease_cap_admits_30k_item_catalogues_that_fit_in_memory():
    assert peers.EASE_MAX_ITEMS >= 30_000
    assert peers.ease_skip_reason(18_000) is None
    assert peers.ease_skip_reason(30_000) is None
    assert "30001 items > EASE_MAX_ITEMS" in peers.ease_skip_reason(30_001)
    # 30k items: 3.4 GiB per float32 n x n array, two asked for
    assert peers.ease_memory_skip_reason(30_000, available_bytes=24 * 2**30) is None
    reason = peers.ease_memory_skip_reason(30_000, available_bytes=4 * 2**30)
    assert reason == (
        "ease skipped: 30000 items need ~6.7 GiB of memory (2 float32 items x items arrays), "
        "4.0 GiB available"
    )


def test_ease_memory_check_runs_once_before_tuning_not_per_trial(monkeypatch):
    monkeypatch.setattr(peers, "EASE_MEMORY_ARRAYS", 2**60)  # no machine has that much
    reason = peers.TUNED_PEERS["ease"].skip_reason(EASE_DATA)
    assert reason is not None and "GiB of memory" in reason
    # a trial already under way is not aborted by a fresh memory reading
    assert peers.ease(EASE_DATA, ["u1"], 1, {"l2": 1.0}).recs == {"u1": ["c"]}


@pytest.mark.parametrize("l2", [0.5, 30.0, 800.0])
def test_ease_weights_match_a_float64_inverse_for_every_tuned_scale(l2):
    rng = np.random.default_rng(7)
    x = (rng.random((60, 30)) < 0.15).astype(np.float64)
    x[0] = 1.0  # every item used, so the matrix keeps all 30 columns
    pairs = [(f"u{u:02d}", f"i{i:02d}") for u, i in zip(*np.nonzero(x), strict=True)]
    data = _data(pairs)
    x = x[x.sum(axis=1) > 0]
    p = np.linalg.inv(x.T @ x + l2 * np.eye(x.shape[1]))
    expected = -p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    b = peers.ease_weights(data.matrix.binary, l2)
    np.testing.assert_allclose(b, expected, rtol=1e-4, atol=1e-6)


# --------------------------------------------------------------------------------------------
# RP3beta
# --------------------------------------------------------------------------------------------

# GRAPH: P_ui rows u1 (a 1/2, b 1/2), u2 (a 1/2, c 1/2), u3 (a 1/3, b 1/3, d 1/3);
# P_iu rows a (u1..u3 1/3 each), b (u1 1/2, u3 1/2), c (u2 1), d (u3 1). Then P_iu @ P_ui:
#   a: a 4/9,  b 5/18, c 1/6, d 1/9
#   b: a 5/12, b 5/12, c 0,   d 1/6
#   c: a 1/2,  c 1/2
#   d: a 1/3,  b 1/3,  d 1/3
# divided by pop_j^0.5 (a 3, b 2, c 1, d 1), diagonal zeroed:
RP3_W = np.array(
    [
        [0.0, 5 / 18 / R2, 1 / 6, 1 / 9],
        [5 / 12 / R3, 0.0, 0.0, 1 / 6],
        [1 / 2 / R3, 0.0, 0.0, 0.0],
        [1 / 3 / R3, 1 / 3 / R2, 0.0, 0.0],
    ]
)


def test_rp3beta_weights_by_hand():
    w = peers.rp3beta_similarity(GRAPH.matrix.binary, alpha=1.0, beta=0.5, neighbours=10)
    np.testing.assert_allclose(w.toarray(), RP3_W, rtol=1e-6)


def test_rp3beta_keeps_the_top_neighbours_per_row():
    # row a: b 0.196 > c 0.167 > d 0.111 -> d dropped; other rows have at most 2 entries
    w = peers.rp3beta_similarity(GRAPH.matrix.binary, 1.0, 0.5, neighbours=2).toarray()
    expected = RP3_W.copy()
    expected[0, 3] = 0.0
    np.testing.assert_allclose(w, expected, rtol=1e-6)


def test_rp3beta_alpha_raises_the_transition_probabilities():
    # alpha = 2, beta = 0: W_ab = sum_u P_au^2 P_ub^2 = (1/3)^2 (1/2)^2 [u1] + (1/3)^2 (1/3)^2 [u3]
    w = peers.rp3beta_similarity(GRAPH.matrix.binary, alpha=2.0, beta=0.0, neighbours=10)
    assert w[0, 1] == pytest.approx(1 / 36 + 1 / 81, rel=1e-6)
    # W_ca = P_cu2^2 P_u2a^2 = 1 * 1/4
    assert w[2, 0] == pytest.approx(1 / 4, rel=1e-6)


def test_rp3beta_normalised_rows_sum_to_one():
    w = peers.rp3beta_similarity(GRAPH.matrix.binary, 1.0, 0.5, 10, normalize=True).toarray()
    np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(w[1], RP3_W[1] / RP3_W[1].sum(), rtol=1e-6)


def test_rp3beta_scores_by_hand():
    # u1 {a, b}: c = W_ac + W_bc = 1/6, d = W_ad + W_bd = 1/9 + 1/6 -> d, c
    # u2 {a, c}: b = W_ab + W_cb = 0.196, d = W_ad + W_cd = 1/9 -> b, d
    res = peers.rp3beta(GRAPH, ["u1", "u2"], 2, {"alpha": 1.0, "beta": 0.5, "neighbours": 10})
    assert res.recs == {"u1": ["d", "c"], "u2": ["b", "d"]}


# --------------------------------------------------------------------------------------------
# Item kNN
# --------------------------------------------------------------------------------------------

# GRAPH item user-sets: a {u1,u2,u3}, b {u1,u3}, c {u2}, d {u3}; cosine = overlap / sqrt(sizes)
COS = np.array(
    [
        [1.0, 2 / math.sqrt(6), 1 / R3, 1 / R3],
        [2 / math.sqrt(6), 1.0, 0.0, 1 / R2],
        [1 / R3, 0.0, 1.0, 0.0],
        [1 / R3, 1 / R2, 0.0, 1.0],
    ]
)


def test_itemknn_cosine_similarity_by_hand():
    sim = peers.itemknn_similarity(GRAPH.matrix.binary, "cosine", 10)
    np.testing.assert_allclose(sim.toarray(), COS, rtol=1e-6)
    # K = 2 keeps each item's two largest entries, the item itself included (as implicit does)
    top2 = peers.itemknn_similarity(GRAPH.matrix.binary, "cosine", 2).toarray()
    assert (top2 > 0).sum(axis=1).tolist() == [2, 2, 2, 2]
    assert top2[0, 1] == pytest.approx(COS[0, 1]) and top2[0, 2] == 0.0


def test_itemknn_scores_by_hand_and_popularity_fill():
    # u1 {a, b}: c = cos(a,c) = 0.577, d = cos(a,d) + cos(b,d) = 1.284 -> d, c
    # u2 {a, c}: b = cos(a,b) = 0.816, d = cos(a,d) = 0.577 -> b, d
    full = peers.itemknn(GRAPH, ["u1", "u2"], 2, {"similarity": "cosine", "neighbours": 10})
    assert full.recs == {"u1": ["d", "c"], "u2": ["b", "d"]}
    # K = 2: u2's rows a {a, b} and c {c, a} give b evidence only; the second slot is the most
    # popular unseen item (a 3, b 2, c 1, d 1 users -> d after the seen a, c and the chosen b)
    knn2 = peers.itemknn(GRAPH, ["u2", "nobody"], 3, {"similarity": "cosine", "neighbours": 2})
    assert knn2.recs["u2"] == ["b", "d"]
    assert knn2.recs["nobody"] == ["a", "b", "c"]


def test_itemknn_bm25_similarity_is_nonnegative_and_rejects_unknown_kinds():
    sim = peers.itemknn_similarity(GRAPH.matrix.binary, "bm25", 10).toarray()
    assert sim.shape == (4, 4) and (sim >= 0).all() and sim[0, 1] > 0
    with pytest.raises(ValueError, match="unknown similarity"):
        peers.itemknn_similarity(GRAPH.matrix.binary, "jaccard", 10)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Recent popularity
# --------------------------------------------------------------------------------------------

RECENT = _events(
    [
        ("u1", "x", "2024-01-08"),
        ("u1", "x", "2024-01-09"),  # same user again: still one distinct user
        ("u2", "x", "2024-01-09"),
        ("u3", "y", "2024-01-07"),  # exactly cutoff - 3 days: inside a 3-day window
        ("u1", "y", "2024-01-01"),
        ("u2", "y", "2024-01-01"),
        ("u4", "y", "2024-01-01"),
        ("u4", "z", "2024-01-09"),
        ("u1", "w", "2024-01-02"),
        ("u2", "w", "2024-01-02"),
        ("u3", "w", "2024-01-02"),
        ("u5", "v", "2024-01-10"),  # at the cutoff: not training at all
    ]
)


@pytest.mark.parametrize(
    ("window_days", "order"),
    [
        (3, ["x", "y", "z", "w"]),  # window: x 2, y 1, z 1 (tie by id); then all-time: w
        (1, ["x", "z", "y", "w"]),  # window: x 2 (u1, u2), z 1; then all-time: y 4, w 3
        (30, ["y", "w", "x", "z"]),  # all-time: y 4, w 3, x 2, z 1
    ],
)
def test_recent_popularity_window(window_days, order):
    res = peers.recent_popularity(RECENT, CUTOFF, ["u5", "u3", "u4"], 4, window_days)
    assert res.recs["u5"] == order  # no training history: the whole order
    assert res.recs["u3"] == [i for i in order if i not in {"y", "w"}]
    assert res.recs["u4"] == [i for i in order if i not in {"y", "z"}]
    assert res.params == {"window_days": window_days}


def test_recent_popularity_excludes_pairs_from_interactions_too():
    extra = pd.DataFrame({"user_id": ["u5"], "item_id": ["x"], "weight": [1.0]})
    res = peers.recent_popularity(RECENT, CUTOFF, ["u5"], 2, 3, interactions=extra)
    assert res.recs["u5"] == ["y", "z"]


# --------------------------------------------------------------------------------------------
# ALS with BM25 weighting
# --------------------------------------------------------------------------------------------


def test_bm25_matrix_weights_item_by_user_as_implicit_does():
    conf = GRAPH.matrix.binary
    w = peers.bm25_matrix(conf, k1=100.0, b=0.8).toarray()
    # implicit's bm25_weight on the item x user matrix: idf per user column, length per item row
    x = conf.toarray().T  # items x users
    n = x.shape[0]
    idf = np.log(n) - np.log1p((x > 0).sum(axis=0))
    length = x.sum(axis=1)
    norm = 0.2 + 0.8 * length / length.mean()
    expected = np.where(x > 0, x * 101.0 / (100.0 * norm[:, None] + x) * idf[None, :], 0.0)
    np.testing.assert_allclose(w, expected.T, rtol=1e-5)


def test_als_function_accepts_bm25_and_keeps_its_old_contract():
    inter = GRAPH.interactions
    params = {"factors": 4, "regularization": 0.1, "alpha": 2.0, "iterations": 3}
    plain = peers.als(inter, ["u1", "nobody"], 2, params, seed=1)
    assert plain.recs["nobody"] == []  # as before: no history, no list
    assert set(plain.recs["u1"]) == {"c", "d"}
    weighted = peers.als(inter, ["u1"], 2, {**params, "bm25": True}, seed=1)
    assert set(weighted.recs["u1"]) == {"c", "d"}


# --------------------------------------------------------------------------------------------
# Contract shared by every tuned peer
# --------------------------------------------------------------------------------------------


def _contract_data() -> PeerData:
    rng = np.random.default_rng(11)
    rows = []
    for u in range(30):
        n = 1 + u % 6
        for i in rng.choice(15, size=n, replace=False):
            day = 1 + int(rng.integers(0, 9))
            rows.append((f"u{u:02d}", f"i{i:02d}", f"2024-01-{day:02d}"))
    return PeerData.from_events(_events(rows), CUTOFF)


CONTRACT = _contract_data()


def _small_params(spec: peers.PeerSpec) -> list[dict]:
    """First values of the grid, plus every categorical alternative (bm25 on, bm25 kNN)."""
    base = {p: v[0] for p, v in spec.grid.items()}
    variants = [base]
    for p, values in spec.grid.items():
        if p not in spec.axes:
            variants += [{**base, p: v} for v in values[1:]]
    if spec.name == "als":
        variants = [{**v, "factors": 8, "iterations": 3} for v in variants]
    return variants


CASES = [
    (name, params) for name, spec in peers.TUNED_PEERS.items() for params in _small_params(spec)
]


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_every_tuned_peer_meets_the_contract(name, params):
    spec = peers.TUNED_PEERS[name]
    k = 5
    users = [*sorted(CONTRACT.matrix.user_pos), "nobody"]
    seen = CONTRACT.interactions.groupby("user_id")["item_id"].agg(set).to_dict()
    first = spec.run(CONTRACT, users, k, params, 3)
    second = spec.run(CONTRACT, users, k, params, 3)
    assert first.recs == second.recs  # deterministic
    assert set(first.recs) == set(users)
    assert first.fit_s >= 0 and first.score_s >= 0
    assert first.params == params
    n_items = len(CONTRACT.matrix.item_ids)
    for u, items in first.recs.items():
        assert len(set(items)) == len(items)
        assert not set(items) & seen.get(u, set())
        assert len(items) == min(k, n_items - len(seen.get(u, set())))
    # a user without history still gets a list: the most popular items (recent ones first for
    # recent_popularity, all-time for the others)
    if name != "recent_popularity":
        popular = peers.popularity(CONTRACT.interactions, ["x"], k).recs["x"]
        assert first.recs["nobody"] == popular
    assert spec.skip_reason(CONTRACT) is None


def test_registry_grids_and_rules_are_consistent():
    assert set(peers.TUNED_PEERS) == {"recent_popularity", "itemknn", "rp3beta", "ease", "als"}
    for name, spec in peers.TUNED_PEERS.items():
        assert spec.name == name
        assert set(spec.axes) <= set(spec.grid)
        for p, axis in spec.axes.items():
            assert all(axis.lo <= v <= axis.hi for v in spec.grid[p]), (name, p)
    assert peers.TUNED_PEERS["als"].strategy == "coordinate"


def test_tune_peer_scores_trials_with_validation_ndcg():
    truth = {"u3": {"x"}, "u4": {"w"}}
    spec = peers.TUNED_PEERS["recent_popularity"]
    data = PeerData.from_events(RECENT, CUTOFF)
    result = peers.tune_peer(spec, data, truth, k=2, seed=0)
    assert result["skipped"] is None
    assert result["evaluations"] == len(result["trials"])
    for trial in result["trials"]:
        recs = spec.run(data, sorted(truth), 2, {"window_days": trial["window_days"]}, 0).recs
        assert trial["val_ndcg@10"] == pytest.approx(metrics.ndcg_at_k(recs, truth, 10))
    best = max(t["val_ndcg@10"] for t in result["trials"])
    assert result["best"]["window_days"] == min(
        t["window_days"] for t in result["trials"] if t["val_ndcg@10"] == best
    )
    assert set(result) >= {"grid", "best", "best_on_edge", "at_bound", "trials", "seconds"}


def test_the_als_checkpoint_folder_is_set_once_per_context(spark: Any) -> None:
    """Fits in parallel threads share one folder; a fit never replaces another's."""
    barrier = threading.Barrier(4)

    def call(_: int) -> str:
        barrier.wait(30)
        return _checkpoint_dir(spark)

    with ThreadPoolExecutor(max_workers=4) as pool:
        folders = set(pool.map(call, range(4)))
    assert len(folders) == 1
    assert folders == {spark.sparkContext.getCheckpointDir()}
    assert _checkpoint_dir(spark) == folders.pop()
