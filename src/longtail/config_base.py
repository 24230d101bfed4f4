"""The machinery every stage's config model shares: `StageConfig` (the pydantic base: strict
types, frozen, unknown fields refused, `check()`, `fingerprint()`, `from_argv`, `json_schema`),
the `Number` type, `ConfigError`, `normalise_location` and `parse_ds`. The stage models are in
`longtail.config`, which re-exports all of these.

Light at import (the stdlib and pydantic): the DAG file and resolve_run import it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
from datetime import date
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from longtail.errors import PermanentError

_URI = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# A number: an integer or a decimal, never a bool or a string; kept as given (10 stays 10, so
# a config recorded before these models hashes the same).
Number = Annotated[StrictInt | StrictFloat, WithJsonSchema({"type": "number"})]


class ConfigError(PermanentError, ValueError):
    """A configuration value is invalid; raised before any work starts."""


def normalise_location(path: str) -> str:
    """Absolute local paths (so Spark and Airflow agree), URIs (hdfs://, s3a://) untouched."""
    if not path:
        raise ConfigError("empty path")
    if _URI.match(path):
        return path.rstrip("/")
    return os.path.abspath(path)


def parse_ds(value: str | date) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"run date must be YYYY-MM-DD, got {value!r}") from exc


def _config_error(cls: type, exc: ValidationError) -> ConfigError:
    """One ConfigError for a failed validation: a ConfigError a validator raised, as it was;
    otherwise every type error, with the field and the value given."""
    for err in exc.errors():
        cause = (err.get("ctx") or {}).get("error")
        if isinstance(cause, ConfigError):
            return cause
    parts = []
    for err in exc.errors(include_url=False):
        field = ".".join(str(p) for p in err["loc"] if p not in ("int", "float"))
        got = "" if err["type"] == "missing" else f" (got {err.get('input')!r})"
        parts.append(f"{field}: {err['msg']}{got}")
    return ConfigError(f"{cls.__name__}: " + "; ".join(dict.fromkeys(parts)))


class StageConfig(BaseModel):
    """Fields shared by every stage: which night, which warehouse."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=False)

    # Fields added after the fingerprints were pinned (tests/unit/test_fingerprints.py): while
    # such a field holds its default it is left out of the fingerprint, so a setting that names
    # what the code already did changes no model version; any other value counts like every
    # other field. A new field that changes results by its default does not belong here.
    NEW_FIELDS: ClassVar[frozenset[str]] = frozenset()

    ds: date
    warehouse: StrictStr

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise _config_error(type(self), exc) from None

    @field_validator("ds", mode="before")
    @classmethod
    def _ds(cls, value: Any) -> date:
        return parse_ds(value)

    @field_validator("warehouse")
    @classmethod
    def _warehouse(cls, value: str) -> str:
        return normalise_location(value)

    @model_validator(mode="after")
    def _checked(self) -> Self:
        self.check()
        return self

    def check(self) -> None:
        """Subclasses raise ConfigError on values that make no sense (types are checked first)."""

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(cls.model_fields)

    @classmethod
    def default(cls, name: str) -> Any:
        """A field's default value (the one source of every default)."""
        return cls.model_fields[name].get_default(call_default_factory=True)

    @classmethod
    def json_schema(cls, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
        """JSON Schema of the fields (less `exclude`): typed, no others allowed."""
        schema = cls.model_json_schema()
        props = {k: v for k, v in schema["properties"].items() if k not in exclude}
        return {
            "type": "object",
            "title": schema.get("title", cls.__name__),
            **({"description": cls.__doc__.strip().splitlines()[0]} if cls.__doc__ else {}),
            "properties": props,
            "additionalProperties": False,
        }

    def to_dict(self) -> dict[str, Any]:
        out = self.model_dump()
        out["ds"] = self.ds.isoformat()
        return out

    def fingerprint(self, exclude: tuple[str, ...] = ("warehouse", "landing")) -> str:
        """Hash of what changes results (locations excluded: moving data changes nothing; a
        NEW_FIELDS field only when it differs from its default)."""
        payload = {
            k: v
            for k, v in self.to_dict().items()
            if k not in exclude and not (k in self.NEW_FIELDS and v == self.default(k))
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:12]

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        """The config a stage ran with, from its run record (`config`)."""
        return cls(**record["config"])

    @classmethod
    def from_argv(cls, argv: list[str] | None = None) -> Self:
        """Build from `--field value` arguments (or one `--config-json '{...}'`), defaults kept."""
        argv = list(argv or [])
        if argv[:1] == ["--config-json"]:
            if len(argv) != 2:
                raise ConfigError("--config-json takes exactly one JSON object")
            try:
                given = json.loads(argv[1])
            except json.JSONDecodeError as exc:
                raise ConfigError(f"--config-json is not JSON: {exc}") from exc
            if not isinstance(given, dict):
                raise ConfigError("--config-json takes exactly one JSON object")
            return cls(**given)
        parser = argparse.ArgumentParser(prog=cls.__name__)
        properties = cls.model_json_schema()["properties"]
        for name, info in cls.model_fields.items():
            kind = properties[name].get("type")
            option = f"--{name.replace('_', '-')}"
            required = info.is_required()
            if kind == "boolean":
                parser.add_argument(
                    option, type=lambda s: s.lower() in ("1", "true", "yes"), required=required
                )
            elif kind in ("integer", "number"):
                parser.add_argument(
                    option, type=int if kind == "integer" else float, required=required
                )
            elif kind == "string":
                parser.add_argument(option, type=str, required=required)
            else:  # lists, objects and nullable fields are given as JSON
                parser.add_argument(option, type=json.loads, required=required)
        ns = parser.parse_args(argv)
        return cls(**{k: v for k, v in vars(ns).items() if v is not None})
