"""Turn DAG params into validated per-stage configs (runs inside Airflow: nothing heavy)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from longtail import registry
from longtail.config import ConfigError, StageConfig

# stage -> its config class, in registry order
STAGE_CONFIGS: dict[str, type[StageConfig]] = {s.name: s.config_class for s in registry.STAGES}


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
    unknown = set(overrides) - set(registry.NAMES)
    if unknown:
        raise ConfigError(f"overrides for unknown stages: {sorted(unknown)}")
    for stage, fields in overrides.items():
        if not isinstance(fields, dict):
            raise ConfigError(f"overrides for {stage} must be an object, got {fields!r}")
        # One run is one date, one warehouse and one landing: a stage must not read or write
        # another's data.
        shared = sorted(set(fields) & set(registry.RUN_FIELDS))
        if shared:
            raise ConfigError(f"overrides for {stage} may not set {shared}: use the run's params")
    configs = registry.build_configs(
        ds,
        params["warehouse"],
        landing=params["landing"],
        top_n=params["top_n"],
        overrides=overrides,
    )
    return {"ds": ds, "configs": {name: cfg.to_dict() for name, cfg in configs.items()}}
