"""The seed-spread benchmark's arithmetic, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest

from bench.seeds import published_metrics, spread


def test_spread_is_mean_sample_sd_min_max() -> None:
    got = spread([0.030, 0.034, 0.038])
    assert got["mean"] == pytest.approx(0.034)
    # deviations -0.004, 0, 0.004: sum of squares 3.2e-5 over n - 1 = 2
    assert got["sd"] == pytest.approx(math.sqrt(1.6e-5))
    assert (got["min"], got["max"]) == (0.030, 0.038)


def test_one_seed_has_no_spread() -> None:
    assert spread([0.5])["sd"] == 0.0


def test_published_metrics_count_users_without_a_list() -> None:
    truth = {"a": {"x"}, "b": {"y"}}
    recs = {"a": ["z", "x"]}  # b got nothing
    got = published_metrics(recs, truth, tail={"x"}, users=["a", "b"])
    # a: hit at rank 2 -> 1 / log2(3); IDCG 1. b: 0. Mean over both users.
    assert got["ndcg@10"] == pytest.approx(0.5 / math.log2(3))
    # a: one tail item of two; b: no list counts 0
    assert got["aplt@10"] == pytest.approx(0.25)
