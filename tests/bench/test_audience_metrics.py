"""The benchmark's audience recall and its two baseline audiences, by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from bench import audiences as ev
from bench.table import audience_table
from longtail import columns as C


def test_audience_recall_pools_pairs_and_averages_items() -> None:
    buyers = {"x": {"u1", "u2", "u3", "u4"}, "y": {"u5"}, "z": set()}
    audiences = {"x": ["u1", "u9", "u2"], "y": ["u8", "u5"]}
    got = ev.audience_recall(audiences, buyers, k=3)
    # x: 2 of 4 found; y: 1 of 1; z has no buyers and does not count
    assert got["micro"] == pytest.approx(3 / 5)
    assert got["macro"] == pytest.approx((2 / 4 + 1) / 2)
    assert got["items_with_audience"] == 1.0
    # only the first k of an audience count
    assert ev.audience_recall(audiences, buyers, k=1)["micro"] == pytest.approx(1 / 5)
    assert math.isnan(ev.audience_recall(audiences, {"z": set()}, 3)["micro"])


def test_buyers_of_inverts_the_held_out_pairs_for_the_given_items() -> None:
    truth = {"u1": {"x", "w"}, "u2": {"x"}, "u3": {"y"}}
    assert ev.buyers_of(truth, ["x", "y"]) == {"x": {"u1", "u2"}, "y": {"u3"}}


def _inter(pairs: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=[C.USER_ID, C.ITEM_ID])


def test_popularity_audience_is_the_most_active_shoppers() -> None:
    inter = _inter([("b", "1"), ("b", "2"), ("a", "1"), ("a", "2"), ("c", "1"), ("a", "1")])
    # a and b have 2 distinct items (tie: lower id first), c has 1
    assert ev.popularity_audience(inter, ["x", "y"], 2) == {"x": ["a", "b"], "y": ["a", "b"]}


def test_content_neighbour_audience_follows_the_closest_sold_items() -> None:
    def unit(deg: float) -> list[float]:
        return [math.cos(math.radians(deg)), math.sin(math.radians(deg))]

    ids = np.array(["new", "p", "q", "r"])
    emb = np.array([unit(0), unit(10), unit(60), unit(150)], np.float32)
    # p (10 degrees from new) bought by u2, u1; q (60) by u3, u1; r (150, cosine < 0) by u4
    inter = _inter([("u2", "p"), ("u1", "p"), ("u3", "q"), ("u1", "q"), ("u4", "r")])
    got = ev.content_neighbour_audience(ids, emb, inter, ["new"], k=5)
    # u1 and u2 through p (u1 keeps its best), then u3 through q; never u4
    assert got == {"new": ["u1", "u2", "u3"]}
    assert ev.content_neighbour_audience(ids, emb, inter, ["new"], k=5, neighbours=1) == {
        "new": ["u1", "u2"]
    }


def test_from_table_orders_each_items_shoppers_by_rank() -> None:
    table = pd.DataFrame(
        {C.ITEM_ID: ["x", "x", "y"], C.RANK: [2, 1, 1], C.USER_ID: ["u2", "u1", "u3"]}
    )
    assert ev.from_table(table) == {"x": ["u1", "u2"], "y": ["u3"]}


def test_audience_table_renders_each_system() -> None:
    report = {
        "dataset": "shop",
        "cold_start": {
            "audiences": {
                "protocol": {"n_items_with_buyers": 7, "n_pairs": 30, "audience_size": 500},
                "systems": {"published": {"micro": 0.5, "macro": 0.25, "items_with_audience": 1.0}},
            }
        },
    }
    text = audience_table([report])
    assert "| published | 0.5000 | 0.2500 | 1.0000 |" in text and "| 7 | 30 | 500 |" in text
