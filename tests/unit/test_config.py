"""Stage configs: validated at construction, parsed from argv, fingerprinted without locations."""

from __future__ import annotations

import json
import os
from datetime import date

import pytest

from longtail.config import (
    DEFAULT_EVENT_WEIGHTS,
    AlsConfig,
    CleanConfig,
    ConfigError,
    IngestConfig,
    RankerConfig,
    ScoreConfig,
)

WH = "/tmp/wh"


@pytest.mark.parametrize("top_n", [0, -1, 1001])
def test_score_config_rejects_top_n_out_of_range(top_n: int) -> None:
    with pytest.raises(ConfigError, match=r"top_n must be in 1\.\.1000"):
        ScoreConfig(ds="2024-05-01", warehouse=WH, top_n=top_n)


@pytest.mark.parametrize("top_n", [1, 1000])
def test_score_config_accepts_top_n_bounds(top_n: int) -> None:
    assert ScoreConfig(ds="2024-05-01", warehouse=WH, top_n=top_n).top_n == top_n


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"new_item_slots": "random"}, "new_item_slots must be 'matched' or 'even'"),
        ({"new_item_max_share": 0.05}, r"new_item_max_share must be in \[new_item_share, 1\]"),
        ({"new_item_max_share": 1.5}, r"new_item_max_share must be in \[new_item_share, 1\]"),
        ({"k_cold_text": -1}, r"k_cold_text must be in 0..1000"),
        ({"tail_cooccurrence": -0.5}, r"tail_cooccurrence and tail_spread must be in \[0, 10\]"),
        ({"tail_spread": 11}, r"tail_cooccurrence and tail_spread must be in \[0, 10\]"),
        ({"k_als_tail": -1}, r"k_als_tail and k_cooccurrence_tail must be in 0..1000"),
        ({"k_cooccurrence_tail": 1001}, r"k_als_tail and k_cooccurrence_tail must be in 0..1000"),
    ],
)
def test_score_config_rejects_bad_new_item_slots(fields: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ScoreConfig(ds="2024-05-01", warehouse=WH, **fields)


def test_score_config_new_item_slot_defaults_keep_the_pinned_fingerprint() -> None:
    # Fields added after the fingerprints were pinned leave a default config's fingerprint as
    # it was; set to anything else, they change it.
    base = ScoreConfig(ds="2024-05-01", warehouse=WH)
    same = ScoreConfig(ds="2024-05-01", warehouse=WH, new_item_slots="matched")
    other = ScoreConfig(ds="2024-05-01", warehouse=WH, new_item_slots="even")
    assert base.fingerprint() == same.fingerprint() != other.fingerprint()


def test_clean_config_rejects_unknown_event_weight_type() -> None:
    with pytest.raises(ConfigError, match=r"unknown event types: \['click'\]"):
        CleanConfig(ds="2024-05-01", warehouse=WH, event_weights={"click": 1.0})


def test_clean_config_rejects_non_positive_weight() -> None:
    with pytest.raises(ConfigError, match="event weights must be > 0"):
        CleanConfig(ds="2024-05-01", warehouse=WH, event_weights={"view": 0.0})


def test_als_config_rejects_zero_factors() -> None:
    with pytest.raises(ConfigError, match=r"factors must be in 1\.\.1024"):
        AlsConfig(ds="2024-05-01", warehouse=WH, factors=0)


def test_bad_run_date_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="run date must be YYYY-MM-DD"):
        ScoreConfig(ds="05/01/2024", warehouse=WH)


def test_partial_event_weights_override_keeps_defaults() -> None:
    cfg = CleanConfig(ds="2024-05-01", warehouse=WH, event_weights={"view": 0.5})
    assert cfg.event_weights == {
        "view": 0.5,
        "add_to_cart": 2.0,
        "purchase": 4.0,
        "rating": 3.0,
        "review": 4.0,
    }
    # the module default is not mutated by an override
    assert DEFAULT_EVENT_WEIGHTS["view"] == 1.0


def test_ds_and_paths_are_normalised() -> None:
    cfg = IngestConfig(ds="2024-05-01", warehouse="rel/wh", landing="s3a://bucket/landing/")
    assert cfg.ds == date(2024, 5, 1)
    assert cfg.warehouse == os.path.join(os.getcwd(), "rel/wh")
    assert cfg.landing == "s3a://bucket/landing"


def test_from_argv_config_json() -> None:
    payload = {"ds": "2024-05-01", "warehouse": WH, "factors": 8, "seed": 7}
    cfg = AlsConfig.from_argv(["--config-json", json.dumps(payload)])
    assert cfg.ds == date(2024, 5, 1)
    assert cfg.warehouse == WH
    assert cfg.factors == 8
    assert cfg.seed == 7
    assert cfg.iterations == 15  # default kept


def test_from_argv_config_json_unknown_field_is_config_error() -> None:
    payload = {"ds": "2024-05-01", "warehouse": WH, "no_such_field": 1}
    with pytest.raises(ConfigError, match="no_such_field"):
        AlsConfig.from_argv(["--config-json", json.dumps(payload)])


def test_from_argv_field_options() -> None:
    cfg = CleanConfig.from_argv(
        [
            "--ds",
            "2024-05-02",
            "--warehouse",
            WH,
            "--event-weights",
            '{"rating": 1.5}',
            "--bot-max-events-per-day",
            "7",
        ]
    )
    assert cfg.ds == date(2024, 5, 2)
    assert cfg.bot_max_events_per_day == 7
    assert cfg.event_weights["rating"] == 1.5
    assert cfg.event_weights["purchase"] == 4.0
    assert cfg.min_valid_date == "1995-01-01"


def test_from_argv_numeric_fields_are_typed() -> None:
    cfg = AlsConfig.from_argv(
        ["--ds", "2024-05-01", "--warehouse", WH, "--regularization", "0.5", "--factors", "3"]
    )
    assert cfg.regularization == 0.5
    assert cfg.factors == 3


def test_fingerprint_ignores_locations_but_not_factors() -> None:
    a = AlsConfig(ds="2024-05-01", warehouse="/tmp/wh-a", factors=16)
    b = AlsConfig(ds="2024-05-01", warehouse="/tmp/wh-b", factors=16)
    c = AlsConfig(ds="2024-05-01", warehouse="/tmp/wh-a", factors=32)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != c.fingerprint()
    assert len(a.fingerprint()) == 12


def test_fingerprint_ignores_landing() -> None:
    a = IngestConfig(ds="2024-05-01", warehouse="/tmp/wh-a", landing="/tmp/land-a")
    b = IngestConfig(ds="2024-05-01", warehouse="/tmp/wh-b", landing="/tmp/land-b")
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != IngestConfig(ds="2024-05-02", warehouse=WH).fingerprint()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("factors", 64.5),
        ("factors", "x"),
        ("factors", "64"),
        ("factors", True),
        ("alpha", "2"),
        ("alpha", True),
        ("select", "yes"),
        ("regularization_grid", ["x"]),
        ("regularization_grid", []),
    ],
)
def test_types_are_strict(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        AlsConfig(ds="2024-05-01", warehouse=WH, **{field: value})


def test_numbers_take_integers_and_grids_become_decimals() -> None:
    cfg = AlsConfig(ds="2024-05-01", warehouse=WH, alpha=10, regularization_grid=[1, 2.5])
    assert cfg.alpha == 10
    assert cfg.regularization_grid == (1.0, 2.5)


def test_unknown_fields_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="no_such_field"):
        ScoreConfig(ds="2024-05-01", warehouse=WH, no_such_field=1)


def test_configs_are_frozen() -> None:
    cfg = AlsConfig(ds="2024-05-01", warehouse=WH)
    with pytest.raises(ValueError):
        cfg.factors = 8  # type: ignore[misc]


def test_a_run_record_parses_back_into_its_config() -> None:
    cfg = AlsConfig(ds="2024-05-01", warehouse=WH, factors=8, alpha_factors=[0.5])
    record = json.loads(json.dumps({"config": cfg.to_dict()}))
    assert AlsConfig.from_record(record) == cfg


def test_the_ranker_config_is_the_one_source_of_candidate_counts_and_lightgbm_settings() -> None:
    from longtail.fusion import CandidateCounts

    cfg = RankerConfig(ds="2024-05-01", warehouse=WH)
    assert CandidateCounts() == CandidateCounts.of(cfg)
    assert CandidateCounts.of(RankerConfig(ds="2024-05-01", warehouse=WH, k_text_ngram=7)) == (
        CandidateCounts(text_ngram=7)
    )
    # what ranker.fit had hard-coded
    assert RankerConfig.default_lightgbm() == {
        "n_estimators": 300,
        "learning_rate": 0.05,
        "num_leaves": 31,
        "min_child_samples": 50,
        "colsample_bytree": 0.9,
        "num_threads": 2,
        "early_stopping_rounds": 30,
        "valid_share": 0.2,
    }
    assert cfg.lightgbm() == RankerConfig.default_lightgbm()
