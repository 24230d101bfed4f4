"""Turn DAG params into validated per-stage configs (stdlib only: runs inside Airflow)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from longtail.config import (
    AlsConfig,
    CleanConfig,
    ConfigError,
    ContentConfig,
    IngestConfig,
    ItemAudiencesConfig,
    ItemSpaceConfig,
    PublishConfig,
    QualityConfig,
    RankerConfig,
    RetentionConfig,
    ScoreConfig,
    SimilarItemsConfig,
    StageConfig,
)

STAGE_CONFIGS: dict[str, type[StageConfig]] = {
    "ingest": IngestConfig,
    "clean": CleanConfig,
    "content": ContentConfig,
    "train_als": AlsConfig,
    "item_space": ItemSpaceConfig,
    "train_ranker": RankerConfig,
    "score": ScoreConfig,
    "publish": PublishConfig,
    "similar_items": SimilarItemsConfig,
    "item_audiences": ItemAudiencesConfig,
    "quality": QualityConfig,
    "retention": RetentionConfig,
}


def resolve(params: dict[str, Any], interval_start: datetime | None) -> dict[str, Any]:
    """Run date from the ds param, else the data interval start; every stage config validated."""
    if params.get("ds"):
        ds = str(params["ds"])
    elif interval_start is not None:
        ds = interval_start.date().isoformat()
    else:
        raise ConfigError(
            "no run date: give the ds param (YYYY-MM-DD) or trigger with a logical date"
        )
    overrides = params.get("overrides") or {}
    unknown = set(overrides) - set(STAGE_CONFIGS)
    if unknown:
        raise ConfigError(f"overrides for unknown stages: {sorted(unknown)}")
    for stage, fields in overrides.items():
        if not isinstance(fields, dict):
            raise ConfigError(f"overrides for {stage} must be an object, got {fields!r}")
        # One run is one date in one warehouse: a stage must not read or write another's data.
        shared = sorted(set(fields) & {"ds", "warehouse"})
        if shared:
            raise ConfigError(f"overrides for {stage} may not set {shared}: use the run's params")
    common = {"ds": ds, "warehouse": params["warehouse"]}
    per_stage = {
        "ingest": {"landing": params["landing"]},
        "score": {"top_n": params["top_n"]},
        "publish": {"top_n": params["top_n"]},
    }
    configs = {}
    for stage, cls in STAGE_CONFIGS.items():
        fields = {**common, **per_stage.get(stage, {}), **overrides.get(stage, {})}
        try:
            cfg = cls(**fields)
        except TypeError as exc:
            raise ConfigError(f"{stage}: {exc}") from exc
        configs[stage] = cfg.to_dict()
    return {"ds": ds, "configs": configs}
