"""longtail.dagargs.resolve: DAG params -> one validated config per stage (resolve_run)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import pytest

from longtail.config import ConfigError
from longtail.dagargs import STAGE_CONFIGS, resolve
from longtail.registry import NAMES as STAGES

INTERVAL_START = datetime(2026, 2, 4, 1, 30, tzinfo=UTC)


def params(**changes: Any) -> dict[str, Any]:
    base = {
        "ds": None,
        "top_n": 10,
        "landing": "/data/landing",
        "warehouse": "/data/warehouse",
        "overrides": {},
    }
    return {**base, **changes}


def test_every_stage_gets_a_config() -> None:
    out = resolve(params(ds="2026-01-31"), None)
    assert set(out["configs"]) == set(STAGES) == set(STAGE_CONFIGS)
    json.dumps(out)  # travels through XCom and the `tojson` template filter


def test_ds_param_wins_over_the_data_interval() -> None:
    out = resolve(params(ds="2026-01-31"), INTERVAL_START)
    assert out["ds"] == "2026-01-31"
    assert {c["ds"] for c in out["configs"].values()} == {"2026-01-31"}


@pytest.mark.parametrize("ds", [None, ""])
def test_without_ds_the_data_interval_start_date_is_used(ds: str | None) -> None:
    out = resolve(params(ds=ds), INTERVAL_START)
    assert out["ds"] == "2026-02-04"
    assert {c["ds"] for c in out["configs"].values()} == {"2026-02-04"}


def test_no_ds_and_no_interval_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="run date"):
        resolve(params(), None)


@pytest.mark.parametrize("ds", ["2026-02-30", "31/01/2026", "tomorrow"])
def test_malformed_ds_is_a_config_error(ds: str) -> None:
    with pytest.raises(ConfigError):
        resolve(params(ds=ds), None)


def test_configs_carry_landing_warehouse_and_top_n() -> None:
    out = resolve(params(ds="2026-01-31", top_n=7), None)["configs"]
    assert out["ingest"]["landing"] == "/data/landing"
    for stage in STAGES:
        assert out[stage]["warehouse"] == "/data/warehouse", stage
    assert out["score"]["top_n"] == 7
    assert out["publish"]["top_n"] == 7
    for stage in set(STAGES) - {"score", "publish"}:
        assert "top_n" not in out[stage], stage
    for stage in set(STAGES) - {"ingest"}:
        assert "landing" not in out[stage], stage


def test_relative_locations_become_absolute(tmp_path: Any, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    out = resolve(params(ds="2026-01-31", landing="in", warehouse="wh"), None)["configs"]
    assert out["ingest"]["landing"] == os.path.join(str(tmp_path), "in")
    assert out["publish"]["warehouse"] == os.path.join(str(tmp_path), "wh")


def test_overrides_reach_only_their_stage() -> None:
    out = resolve(
        params(ds="2026-01-31", overrides={"train_als": {"factors": 16, "iterations": 3}}), None
    )["configs"]
    assert out["train_als"]["factors"] == 16
    assert out["train_als"]["iterations"] == 3
    assert "factors" not in out["score"]


def test_partial_event_weight_override_keeps_the_other_defaults() -> None:
    out = resolve(
        params(ds="2026-01-31", overrides={"clean": {"event_weights": {"view": 0.5}}}), None
    )
    weights = out["configs"]["clean"]["event_weights"]
    assert weights["view"] == 0.5
    assert weights["purchase"] == 4.0


def test_overrides_for_an_unknown_stage_are_rejected() -> None:
    with pytest.raises(ConfigError, match="train_ALS"):
        resolve(params(ds="2026-01-31", overrides={"train_ALS": {"factors": 8}}), None)


@pytest.mark.parametrize(
    "overrides",
    [
        {"train_als": {"factors": 0}},
        {"train_als": {"factors": 4096}},
        {"train_als": {"alpha": 0}},
        {"train_als": {"no_such_field": 1}},
        {"score": {"top_n": 0}},
        {"clean": {"event_weights": {"click": 1.0}}},
        {"clean": {"bot_max_events_per_day": 0}},
    ],
)
def test_bad_override_values_are_config_errors(overrides: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        resolve(params(ds="2026-01-31", overrides=overrides), None)


@pytest.mark.parametrize("top_n", [0, 1001])
def test_top_n_out_of_range_is_a_config_error(top_n: int) -> None:
    with pytest.raises(ConfigError, match="top_n"):
        resolve(params(ds="2026-01-31", top_n=top_n), None)


@pytest.mark.parametrize(
    "overrides",
    [
        {"clean": {"ds": "2025-12-31"}},
        {"publish": {"warehouse": "/elsewhere"}},
        {"ingest": {"landing": "/elsewhere"}},
        {"train_als": 64},
    ],
)
def test_overrides_cannot_split_the_run(overrides: dict[str, Any]) -> None:
    """One run = one date, warehouse and landing: a stage reading another night's data is a bug."""
    with pytest.raises(ConfigError):
        resolve(params(ds="2026-01-31", overrides=overrides), None)
