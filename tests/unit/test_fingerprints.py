"""Config fingerprints are part of every model version: an unchanged config keeps its fingerprint.

The values below were computed before the configs became pydantic models (issue 24); a change
to a config class (a new field, a renamed one, another default, another serialisation) that
moves any of them changes the model versions of every night. A new field must leave the
fingerprint alone while it holds its default (`StageConfig.fingerprint`).
"""

from __future__ import annotations

from typing import Any

import pytest

from longtail import config as cfgs

DS = "2026-01-31"
WH = "/tmp/wh"

DEFAULTS = {
    cfgs.IngestConfig: "c148557a5cf9",
    cfgs.CleanConfig: "01eada153c39",
    cfgs.ContentConfig: "b5ead948f516",  # default batch_size 32 -> 8
    cfgs.AlsConfig: "5baec205dd9f",
    cfgs.ItemSpaceConfig: "696e745cdd60",
    cfgs.RankerConfig: "4fb96d1b99e8",
    cfgs.ScoreConfig: "21105a490eb9",  # tail_spread 0 -> 2 (new field, its default changes lists)
    cfgs.PublishConfig: "ba30cac350f3",
    cfgs.SimilarItemsConfig: "5face4b9cbed",
    cfgs.ItemAudiencesConfig: "47b1f03a7039",
    cfgs.QualityConfig: "966a653d6afe",
    cfgs.RetentionConfig: "f3cd6772cc85",
}

CHANGED: list[tuple[type, dict[str, Any], str]] = [
    (
        cfgs.AlsConfig,
        {"factors": 128, "regularization": 0.5, "select": False, "regularization_grid": [1, 2.5]},
        "ce29502411ff",
    ),
    (
        cfgs.RankerConfig,
        {"k_als": 150, "learning_rate": 0.1, "n_estimators": 200, "item_dropout": 0.0},
        "89ff0361b740",
    ),
    (
        cfgs.ScoreConfig,
        {"top_n": 10, "tail_target": 0.5, "strategy": "als", "calibrate_tail": False},
        "21e3d7edb0ec",  # tail_spread joined the fingerprint (default 2)
    ),
    (cfgs.CleanConfig, {"event_weights": {"view": 0.5}}, "b8afa103c490"),
    (cfgs.RetentionConfig, {"keep_published_nights": 60}, "4cf01ef18435"),
    (cfgs.ItemAudiencesConfig, {"include_long_tail": True, "audience_size": 100}, "c63d14f42b48"),
    (cfgs.ContentConfig, {"ngram_channel": "on", "batch_size": 32}, "46329c81b35f"),
    # locations are not part of the fingerprint
    (cfgs.IngestConfig, {"landing": "/tmp/other"}, "c148557a5cf9"),
]


@pytest.mark.parametrize(
    ("cls", "expected"), DEFAULTS.items(), ids=lambda v: getattr(v, "__name__", v)
)
def test_default_config_fingerprints_are_pinned(cls: type, expected: str) -> None:
    assert cls(ds=DS, warehouse=WH).fingerprint() == expected


@pytest.mark.parametrize(("cls", "changes", "expected"), CHANGED)
def test_changed_config_fingerprints_are_pinned(
    cls: type, changes: dict[str, Any], expected: str
) -> None:
    assert cls(ds=DS, warehouse=WH, **changes).fingerprint() == expected


@pytest.mark.parametrize(("cls", "changes", "expected"), CHANGED)
def test_a_recorded_config_parses_back_to_the_same_fingerprint(
    cls: type, changes: dict[str, Any], expected: str
) -> None:
    """Run records hold `to_dict()`; parsed back, the config is the one that ran."""
    recorded = cls(ds=DS, warehouse=WH, **changes).to_dict()
    assert cls(**recorded).fingerprint() == expected


def test_new_fields_count_only_when_they_differ_from_their_default() -> None:
    base = cfgs.RankerConfig(ds=DS, warehouse=WH)
    assert set(base.to_dict()) >= cfgs.RankerConfig.NEW_FIELDS  # recorded, like every field
    spelled = {name: base.default(name) for name in cfgs.RankerConfig.NEW_FIELDS}
    assert (
        cfgs.RankerConfig(ds=DS, warehouse=WH, **spelled).fingerprint()
        == DEFAULTS[cfgs.RankerConfig]
    )
    for name, value in {"colsample_bytree": 0.8, "k_text_ngram": 10, "valid_share": 0.3}.items():
        changed = cfgs.RankerConfig(ds=DS, warehouse=WH, **{name: value})
        assert changed.fingerprint() != DEFAULTS[cfgs.RankerConfig], name


def test_an_integer_for_a_number_field_hashes_as_it_did() -> None:
    """`{"alpha": 10}` in an override: kept as given, so its model version is what it was."""
    cfg = cfgs.AlsConfig(ds=DS, warehouse=WH, alpha=10)
    assert cfg.alpha == 10 and isinstance(cfg.alpha, int)
    assert cfg.fingerprint() == "40e8be64c93b"  # computed before the change
