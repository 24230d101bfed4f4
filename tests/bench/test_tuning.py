"""The widening grid search: finds optima outside the initial grid, respects bounds, caches."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from bench.tuning import METRIC, Axis, tune


class Counted:
    """An objective that records how often each point is evaluated."""

    def __init__(self, fn):
        self.fn = fn
        self.calls: Counter = Counter()

    def __call__(self, params: dict) -> float:
        self.calls[tuple(sorted(params.items()))] += 1
        return self.fn(params)


def _no_duplicates(result: dict, objective: Counted) -> None:
    assert max(objective.calls.values()) == 1
    assert result["evaluations"] == len(result["trials"]) == sum(objective.calls.values())
    keys = [tuple(sorted((k, v) for k, v in t.items() if k != METRIC)) for t in result["trials"]]
    assert len(set(keys)) == len(keys)


# --------------------------------------------------------------------------------------------
# Axis rules
# --------------------------------------------------------------------------------------------


def test_axis_log_integer_steps_and_bounds():
    axis = Axis("log", factor=2.0, lo=1, hi=512, integer=True)
    assert axis.outward(64, +1) == 128
    assert axis.outward(64, -1) == 32
    assert axis.outward(3, -1) == 2  # round(1.5) == 2
    assert axis.outward(1, -1) is None  # at the lower bound
    assert axis.outward(400, +1) == 512  # clamped to the bound, still a new value
    assert axis.outward(512, +1) is None
    assert axis.at_bound(512, +1)
    assert not axis.at_bound(512, -1)


def test_axis_integer_never_repeats_the_edge():
    # 2 * 1.3 = 2.6 -> 3 (fine); 1 * 1.3 = 1.3 -> 1 would repeat the edge: take 2
    axis = Axis("log", factor=1.3, lo=1, hi=100, integer=True)
    assert axis.outward(1, +1) == 2
    assert axis.outward(2, +1) == 3


def test_axis_linear_float_steps_are_clean():
    axis = Axis("linear", step=0.2, lo=0.0, hi=1.0)
    assert axis.outward(0.4, +1) == 0.6  # not 0.6000000000000001
    assert axis.outward(0.2, -1) == 0.0
    assert axis.outward(0.0, -1) is None
    assert axis.outward(0.9, +1) == 1.0  # clamped
    assert axis.outward(1.0, +1) is None


def test_axis_rejects_bad_rules():
    with pytest.raises(ValueError):
        Axis("log", factor=1.0)
    with pytest.raises(ValueError):
        Axis("linear", step=0.0)
    with pytest.raises(ValueError):
        Axis("log", lo=5, hi=1)


# --------------------------------------------------------------------------------------------
# Search
# --------------------------------------------------------------------------------------------


def _peak(params: dict) -> float:
    # optimum at x = 64 (log scale), y = 0.8: both outside the initial grid below
    return -((math.log2(params["x"]) - 6.0) ** 2) - (params["y"] - 0.8) ** 2


@pytest.mark.parametrize("strategy", ["grid", "coordinate"])
def test_optimum_outside_the_grid_is_found_and_ends_interior(strategy):
    objective = Counted(_peak)
    result = tune(
        {"x": (2, 4, 8), "y": (0.0, 0.2)},
        objective,
        {
            "x": Axis("log", factor=2.0, lo=1, hi=512, integer=True),
            "y": Axis("linear", step=0.2, lo=0.0, hi=1.0),
        },
        strategy=strategy,
        max_rounds=10,
        max_evaluations=100,
    )
    assert result["best"] == {"x": 64, "y": 0.8}
    assert result["best_on_edge"] is False
    assert result["at_bound"] == []
    # the grid grew one step past the optimum on each axis, and no further
    assert result["grid"]["x"] == [2, 4, 8, 16, 32, 64, 128]
    assert result["grid"]["y"] == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert result["trials"][0].keys() == {"x", "y", METRIC}
    assert result["seconds"] >= 0
    _no_duplicates(result, objective)


def test_grid_strategy_evaluates_the_whole_product_first():
    objective = Counted(lambda p: -abs(p["x"] - 2) - abs(p["y"] - 20))
    result = tune(
        {"x": (1, 2, 3), "y": (10, 20, 30)},
        objective,
        {"x": Axis("linear", step=1), "y": Axis("linear", step=10)},
    )
    assert result["evaluations"] == 9  # interior optimum: nothing to widen
    assert result["rounds"] == 0
    assert result["best"] == {"x": 2, "y": 20}
    assert result["best_on_edge"] is False
    _no_duplicates(result, objective)


def test_coordinate_strategy_is_cheaper_than_the_product():
    def objective(p: dict) -> float:
        return -abs(p["a"] - 3) - abs(p["b"] - 30) - abs(p["c"] - 0.3) - (p["d"] == "no")

    counted = Counted(objective)
    grid = {"a": (1, 2, 3, 4), "b": (10, 20, 30, 40), "c": (0.1, 0.2, 0.3, 0.4), "d": ("no", "yes")}
    result = tune(grid, counted, strategy="coordinate")
    assert result["best"] == {"a": 3, "b": 30, "c": 0.3, "d": "yes"}
    assert result["evaluations"] < 4 * 4 * 4 * 2 / 4
    _no_duplicates(result, counted)


def test_hard_bounds_are_respected_and_reported():
    # increasing in beta and factors, decreasing in neighbours: every optimum is a bound
    objective = Counted(lambda p: p["beta"] + math.log(p["factors"]) - p["neighbours"])
    axes = {
        "beta": Axis("linear", step=0.25, lo=0.0, hi=1.0),
        "factors": Axis("log", factor=2.0, lo=8, hi=512, integer=True),
        "neighbours": Axis("log", factor=2.0, lo=1, hi=2000, integer=True),
    }
    result = tune(
        {"beta": (0.25, 0.5), "factors": (64, 128), "neighbours": (4, 8)},
        objective,
        axes,
        max_rounds=20,
        max_evaluations=200,
    )
    assert result["best"] == {"beta": 1.0, "factors": 512, "neighbours": 1}
    assert sorted(result["at_bound"]) == ["beta", "factors", "neighbours"]
    assert result["best_on_edge"] is False
    for t in result["trials"]:
        assert 0.0 <= t["beta"] <= 1.0
        assert 8 <= t["factors"] <= 512
        assert t["neighbours"] >= 1
    _no_duplicates(result, objective)


def test_budget_exhausted_on_an_open_edge_reports_best_on_edge():
    objective = Counted(lambda p: p["x"])  # no maximum
    result = tune({"x": (1, 2, 4)}, objective, {"x": Axis("log", factor=2.0)}, max_rounds=3)
    assert result["best"] == {"x": 32}
    assert result["grid"]["x"] == [1, 2, 4, 8, 16, 32]
    assert result["rounds"] == 3
    assert result["best_on_edge"] is True
    assert result["at_bound"] == []

    capped = tune({"x": (1, 2, 4)}, Counted(lambda p: p["x"]), {"x": Axis()}, max_evaluations=5)
    assert capped["evaluations"] == 5
    assert capped["best_on_edge"] is True


def test_ties_go_to_the_cheaper_value_and_nan_loses():
    scores = {1: 0.5, 2: 0.7, 3: 0.7, 4: float("nan")}
    result = tune({"x": (4, 3, 2, 1)}, lambda p: scores[p["x"]], {"x": Axis("linear", lo=1, hi=4)})
    assert result["best"] == {"x": 2}  # 2 and 3 tie: the lower value wins
    assert result["grid"]["x"] == [1, 2, 3, 4]
    assert result["best_on_edge"] is False

    # categorical parameters: the earlier listed value wins a tie, and they never widen
    result = tune({"sim": ("bm25", "cosine")}, lambda p: 1.0)
    assert result["best"] == {"sim": "bm25"}
    assert result["best_on_edge"] is False
    assert result["evaluations"] == 2


def test_single_value_axes_widen_both_ways_and_fixed_ones_do_not():
    objective = Counted(lambda p: -abs(p["it"] - 20) + 0 * p["fixed"])
    result = tune(
        {"it": (10,), "fixed": (7,)},
        objective,
        {"it": Axis("linear", step=10, lo=5, hi=60, integer=True)},
    )
    assert result["best"] == {"it": 20, "fixed": 7}
    assert result["grid"] == {"it": [5, 10, 20, 30], "fixed": [7]}
    assert result["best_on_edge"] is False
    _no_duplicates(result, objective)


def test_same_inputs_same_trials():
    grid = {"x": (2, 4, 8), "y": (0.0, 0.2)}
    axes = {"x": Axis("log", integer=True, lo=1), "y": Axis("linear", step=0.2, lo=0, hi=1)}
    a = tune(grid, _peak, axes, strategy="coordinate", max_rounds=10)
    b = tune(grid, _peak, axes, strategy="coordinate", max_rounds=10)
    assert a["trials"] == b["trials"]
    assert a["best"] == b["best"]


def test_bad_arguments():
    with pytest.raises(ValueError, match="not in the grid"):
        tune({"x": (1,)}, lambda p: 0.0, {"y": Axis()})
    with pytest.raises(ValueError, match="empty grid"):
        tune({"x": ()}, lambda p: 0.0)
    with pytest.raises(ValueError, match="strategy"):
        tune({"x": (1,)}, lambda p: 0.0, strategy="random")  # type: ignore[arg-type]


def test_coordinate_start_outside_the_grid_joins_the_axis():
    objective = Counted(lambda p: -abs(p["x"] - 5))
    result = tune({"x": (1, 2, 3)}, objective, strategy="coordinate", start={"x": 5})
    assert result["trials"][0] == {"x": 5, METRIC: 0.0}
    assert result["best"] == {"x": 5}
    assert result["grid"]["x"] == [1, 2, 3, 5]
    _no_duplicates(result, objective)
