"""Paired bootstrap over users: hand-computed cases and a slow reference loop."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench import uncertainty
from bench.uncertainty import (
    best_peer,
    bootstrap_ratios,
    ci_protocol,
    ci_table,
    paired_bootstrap_ratio,
)


def _frame(users: list[str], **columns: list[float]) -> pd.DataFrame:
    """A per-user frame (as ``metrics.per_user`` gives) with the given columns."""
    return pd.DataFrame(columns, index=pd.Index(users, name="user_id"))


def _pair(num: list[float], den: list[float], metric: str = "m") -> pd.DataFrame:
    """One system's frame for metric ``m`` over users u000, u001, ..."""
    users = [f"u{j:03d}" for j in range(len(num))]
    return _frame(users, **{f"{metric}_num": num, f"{metric}_den": den})


def _random_pair(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    den = rng.integers(0, 4, n).astype(float)
    num_a = np.minimum(den, rng.integers(0, 3, n))
    num_b = np.minimum(den, rng.integers(0, 2, n))
    return _pair(list(num_a), list(den)), _pair(list(num_b), list(den))


# --- hand-computed cases ----------------------------------------------------------------------


def test_identical_systems_give_exactly_one() -> None:
    a, _ = _random_pair(50, seed=1)
    assert paired_bootstrap_ratio(a, a.copy(), "m", draws=200, seed=3) == [1.0, 1.0, 1.0]


def test_doubled_numerators_give_exactly_two() -> None:
    rng = np.random.default_rng(2)
    num = list(rng.random(80))
    a = _pair([2 * x for x in num], [1.0] * 80)
    b = _pair(num, [1.0] * 80)
    assert paired_bootstrap_ratio(a, b, "m", draws=300, seed=5) == [2.0, 2.0, 2.0]
    assert paired_bootstrap_ratio(b, a, "m", draws=300, seed=5) == [0.5, 0.5, 0.5]


def test_two_users_hand_quantiles() -> None:
    # a scores (1, 0), b scores (1, 1). A draw of two users is {u0,u0} w.p. 1/4 -> ratio 1,
    # {u0,u1} w.p. 1/2 -> 0.5/1, {u1,u1} w.p. 1/4 -> 0: quantiles 2.5%, 50%, 97.5% = 0, 0.5, 1.
    a = _pair([1.0, 0.0], [1.0, 1.0])
    b = _pair([1.0, 1.0], [1.0, 1.0])
    assert paired_bootstrap_ratio(a, b, "m", draws=1000, seed=0) == [0.0, 0.5, 1.0]
    # the 3 possible values turn up with about their probabilities
    ratios = bootstrap_ratios(a, b, "m", draws=4000, seed=0)
    assert set(np.unique(ratios)) == {0.0, 0.5, 1.0}
    assert np.mean(ratios == 0.5) == pytest.approx(0.5, abs=0.04)


def test_peer_at_zero_gives_infinite_draws() -> None:
    # b scores (1, 0): {u0,u0} -> 1/1, {u0,u1} -> 1/0.5 = 2, {u1,u1} -> 1/0 = inf (kept).
    a = _pair([1.0, 1.0], [1.0, 1.0])
    b = _pair([1.0, 0.0], [1.0, 1.0])
    assert paired_bootstrap_ratio(a, b, "m", draws=1000, seed=0) == [1.0, 2.0, math.inf]


def test_zero_denominator_draws_are_dropped() -> None:
    # Only u0 has a denominator: draws without u0 (prob (2/3)^3 = 8/27) have no ratio.
    a = _pair([1.0, 0.0, 0.0], [2.0, 0.0, 0.0])
    b = _pair([2.0, 0.0, 0.0], [2.0, 0.0, 0.0])
    ratios = bootstrap_ratios(a, b, "m", draws=3000, seed=4)
    assert np.isnan(ratios).mean() == pytest.approx(8 / 27, abs=0.03)
    assert set(ratios[~np.isnan(ratios)]) == {0.5}
    assert paired_bootstrap_ratio(a, b, "m", draws=3000, seed=4) == [0.5, 0.5, 0.5]


def test_no_defined_draw_gives_nan() -> None:
    a = _pair([0.0, 0.0], [1.0, 1.0])  # 0 / 0 in every draw
    got = paired_bootstrap_ratio(a, a.copy(), "m", draws=50)
    assert all(math.isnan(x) for x in got)
    empty = _pair([], [])
    assert all(math.isnan(x) for x in paired_bootstrap_ratio(empty, empty, "m", draws=5))


# --- reference implementation, determinism, coverage --------------------------------------------


def _slow_ratios(a: pd.DataFrame, b: pd.DataFrame, draws: int, seed: int) -> np.ndarray:
    """One draw at a time, by fancy indexing, over users sorted by id (the documented stream)."""
    a, b = a.sort_index(), b.loc[a.sort_index().index]
    rng = np.random.default_rng(seed)
    n = len(a)
    out = []
    for _ in range(draws):
        idx = rng.integers(0, n, size=n)
        da, db = a["m_den"].to_numpy()[idx].sum(), b["m_den"].to_numpy()[idx].sum()
        ma = a["m_num"].to_numpy()[idx].sum() / da if da > 0 else math.nan
        mb = b["m_num"].to_numpy()[idx].sum() / db if db > 0 else math.nan
        if math.isnan(ma) or math.isnan(mb) or (ma == 0 and mb == 0):
            out.append(math.nan)
        else:
            out.append(math.inf if mb == 0 else ma / mb)
    return np.array(out)


def test_matches_slow_loop() -> None:
    a, b = _random_pair(37, seed=9)
    fast = bootstrap_ratios(a, b, "m", draws=400, seed=11)
    slow = _slow_ratios(a, b, draws=400, seed=11)
    np.testing.assert_allclose(fast, slow, rtol=1e-12)
    kept = np.sort(slow[~np.isnan(slow)])
    # inverted_cdf quantile = the ceil(q * n)-th smallest value
    expect = [kept[math.ceil(q * len(kept)) - 1] for q in (0.025, 0.5, 0.975)]
    assert paired_bootstrap_ratio(a, b, "m", draws=400, seed=11) == pytest.approx(expect)


def test_deterministic_in_seed_and_not_in_row_order_or_chunking(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = _random_pair(120, seed=3)
    first = paired_bootstrap_ratio(a, b, "m", draws=300, seed=42)
    assert paired_bootstrap_ratio(a, b, "m", draws=300, seed=42) == first
    assert paired_bootstrap_ratio(a, b, "m", draws=300, seed=43) != first
    shuffled = a.sample(frac=1.0, random_state=0)
    assert paired_bootstrap_ratio(shuffled, b, "m", draws=300, seed=42) == first
    whole = bootstrap_ratios(a, b, "m", draws=300, seed=42)
    monkeypatch.setattr(uncertainty, "_CHUNK_CELLS", 7 * 120)  # 7 draws per chunk
    np.testing.assert_array_equal(bootstrap_ratios(a, b, "m", draws=300, seed=42), whole)


def test_interval_contains_point_ratio() -> None:
    rng = np.random.default_rng(12)
    n = 500
    num_a, num_b = rng.random(n) * 0.3 + 0.1, rng.random(n) * 0.3
    a, b = _pair(list(num_a), [1.0] * n), _pair(list(num_b), [1.0] * n)
    low, mid, high = paired_bootstrap_ratio(a, b, "m", draws=1000, seed=0)
    point = num_a.mean() / num_b.mean()
    assert low < point < high
    assert low < mid < high
    assert mid == pytest.approx(point, rel=0.02)
    narrower = paired_bootstrap_ratio(a, b, "m", draws=1000, seed=0, level=0.5)
    assert low < narrower[0] < narrower[2] < high


def test_input_errors() -> None:
    a, b = _random_pair(5, seed=0)
    with pytest.raises(ValueError, match="same users"):
        paired_bootstrap_ratio(a, b.iloc[1:], "m")
    with pytest.raises(ValueError, match="same users"):
        paired_bootstrap_ratio(a, b.rename(index={"u000": "zz"}), "m")
    with pytest.raises(KeyError):
        paired_bootstrap_ratio(a, b, "ndcg@10")
    with pytest.raises(ValueError):
        paired_bootstrap_ratio(a, b, "m", draws=0)
    with pytest.raises(ValueError):
        paired_bootstrap_ratio(a, b, "m", level=1.0)


# --- best peer / table ------------------------------------------------------------------------


def test_best_peer_ignores_published_ablations_skipped_and_missing() -> None:
    systems = {
        "popularity": {"ndcg@10": 0.05, "recall@20": 0.2, "tail_recall@20": 0.0},
        "als": {"ndcg@10": 0.08, "recall@20": 0.2, "tail_recall@20": float("nan")},
        "ease": {"skipped": "needs 40 GiB for 90k items"},
        "spark_als": {"ndcg@10": 0.5, "recall@20": 0.5, "reference_only": "not tuned"},
        "itemknn": {"ndcg@10": 0.07, "recall@20": 0.1, "tail_recall@20": None},
        "published": {"ndcg@10": 0.3, "recall@20": 0.9, "tail_recall@20": 0.5},
        "fusion": {"ndcg@10": 0.2, "recall@20": 0.8, "tail_recall@20": 0.4},
        "content": {"ndcg@10": 0.2, "recall@20": 0.8, "tail_recall@20": 0.4},
        "cooccurrence": {"ndcg@10": 0.2, "recall@20": 0.8, "tail_recall@20": 0.4},
    }
    got = best_peer(systems, metrics=("ndcg@10", "recall@20", "tail_recall@20", "coverage@10"))
    # recall@20 ties at 0.2: the first listed wins; coverage@10 nobody has
    assert got == {"ndcg@10": "als", "recall@20": "popularity", "tail_recall@20": "popularity"}
    assert best_peer(systems, metrics=["ndcg@10"], exclude=()) == {"ndcg@10": "published"}
    assert best_peer({}) == {}


def test_ci_table_uses_best_peer_per_metric() -> None:
    users = ["u1", "u2", "u3", "u4"]

    def frame(ndcg: list[float], tail: list[float]) -> pd.DataFrame:
        return _frame(
            users,
            **{
                "ndcg@10_num": ndcg,
                "ndcg@10_den": [1.0] * 4,
                "tail_recall@20_num": tail,
                "tail_recall@20_den": [2.0] * 4,
            },
        )

    per_user = {
        "published": frame([0.2, 0.4, 0.6, 0.8], [1.0, 1.0, 1.0, 1.0]),
        "als": frame([0.1, 0.2, 0.3, 0.4], [1.0, 0.0, 0.0, 0.0]),
        "popularity": frame([0.2, 0.4, 0.6, 0.8], [1.0, 1.0, 1.0, 1.0]),
    }
    peers = {"ndcg@10": "als", "tail_recall@20": "popularity", "recall@20": "itemknn"}
    got = ci_table(per_user, peers, metrics=("ndcg@10", "tail_recall@20", "recall@20"), draws=50)
    # ndcg: published = 2 x als in every user; tail: published == popularity; recall: no frame
    assert got == {"ndcg@10": [2.0, 2.0, 2.0], "tail_recall@20": [1.0, 1.0, 1.0]}
    assert ci_table({"als": per_user["als"]}, peers) == {}


def test_ci_protocol_block() -> None:
    assert ci_protocol(1000, 7) == {"draws": 1000, "seed": 7, "level": 0.95, "unit": "eval user"}
