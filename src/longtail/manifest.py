"""The output contract for readers: published schemas, partition manifests, the latest pointer.

Stdlib only, so the Airflow side (asset events, the example consumer) and tests can use it without
Spark. The warehouse writes the files (see warehouse.publish.publish_staged_set):

- `<table>/ds=<ds>/_manifest.json`, written into the staged partition after its audit and before
  the swap, so a partition is never visible without it: rows, schema, data files with sizes and
  SHA-256, run id, time of publishing.
- `<table>/_latest.json`, replaced atomically after the swap, naming the newest published ds; a
  backfill of an older date never moves it back.

Both names start with `_`, which Spark, pyarrow, DuckDB and pandas skip: readers see only data,
and content hashes of a partition (the determinism tests) ignore them.
"""

from __future__ import annotations

import functools
import json
import os
import uuid
from datetime import UTC, date, datetime
from importlib import resources
from typing import Any

from longtail.errors import PermanentError

MANIFEST = "_manifest.json"
LATEST = "_latest.json"
MANIFEST_VERSION = 1
# Set by the DAG's operator (the Airflow run id) for the spark-submit of a stage.
RUN_ID_ENV = "LONGTAIL_RUN_ID"
_LOCAL_RUN_ID = f"local-{uuid.uuid4().hex[:12]}"

# Spark SQL type names (DataType.simpleString) -> the contract's (Arrow) type names.
SPARK_TO_CONTRACT = {
    "string": "string",
    "int": "int32",
    "bigint": "int64",
    "double": "double",
    "float": "float",
    "boolean": "bool",
    "date": "date32",
}


class SchemaMismatch(PermanentError, ValueError):
    """The staged table's columns differ from its published schema: nothing is published."""


def current_run_id() -> str:
    """The Airflow run id when launched by the DAG, else one id per process (tests, CLI)."""
    return os.environ.get(RUN_ID_ENV) or _LOCAL_RUN_ID


@functools.cache
def published_schema(table: str) -> dict[str, Any]:
    """The versioned schema of a published table (`longtail/schemas/<table>.json`)."""
    text = resources.files("longtail").joinpath("schemas", f"{table}.json").read_text("utf-8")
    return json.loads(text)


def schema_columns(table: str) -> list[tuple[str, str]]:
    return [(c["name"], c["type"]) for c in published_schema(table)["columns"]]


def added_columns(table: str, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Columns of the current schema that a partition's manifest does not list (an older schema
    version, e.g. recommendations v1 without reason_item_id and reason): readers add them as
    nulls. Raise SchemaMismatch when one of them is not nullable, which no version bump allows."""
    have = {c["name"] for c in manifest.get("schema", [])}
    added = [c for c in published_schema(table)["columns"] if c["name"] not in have]
    strict = [c["name"] for c in added if not c["nullable"]]
    if strict:
        raise SchemaMismatch(
            f"{table} ds={manifest.get('ds')}: schema v{manifest.get('schema_version')} lacks "
            f"non-nullable columns {strict} of v{published_schema(table)['version']}"
        )
    return added


def arrow_schema(table: str) -> Any:
    """The current schema as a pyarrow schema: `pyarrow.dataset.dataset(..., schema=...)` (and
    pandas.read_parquet(schema=...)) then reads partitions of older versions with their added
    columns as nulls. pyarrow is imported here only, so the module stays stdlib for Airflow."""
    import pyarrow as pa

    types = {
        "string": pa.string(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "double": pa.float64(),
        "float": pa.float32(),
        "bool": pa.bool_(),
        "date32": pa.date32(),
    }
    return pa.schema(
        [
            pa.field(c["name"], types[c["type"]], nullable=c["nullable"])
            for c in published_schema(table)["columns"]
        ]
    )


def check_columns(table: str, actual: list[tuple[str, str]]) -> None:
    """Raise SchemaMismatch unless actual (name, contract type) pairs are the schema's, in order."""
    expected = schema_columns(table)
    if actual != expected:
        raise SchemaMismatch(
            f"{table}: written columns {actual} differ from the published schema v"
            f"{published_schema(table)['version']} {expected}; change the code or the schema "
            f"(with a version bump), not one of them"
        )


def manifest_document(
    *,
    table: str,
    ds: date,
    rows: int,
    files: list[dict[str, Any]],
    run_id: str,
    published_at: datetime | None = None,
    users: int | None = None,
    top_n: int | None = None,
    model_version: str | None = None,
) -> dict[str, Any]:
    """What `_manifest.json` holds; keys that do not apply to a table are null."""
    schema = published_schema(table)
    when = (published_at or datetime.now(UTC)).astimezone(UTC)
    return {
        "manifest_version": MANIFEST_VERSION,
        "table": table,
        "ds": ds.isoformat(),
        "rows": int(rows),
        "users": users,
        "top_n": top_n,
        "model_version": model_version,
        "schema_version": schema["version"],
        "schema": [
            {"name": c["name"], "type": c["type"], "nullable": c["nullable"]}
            for c in schema["columns"]
        ],
        "format": schema["format"],
        "files": files,
        "run_id": run_id,
        "published_at": when.isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


def summary(manifest: dict[str, Any], path: str) -> dict[str, Any]:
    """The manifest without its file list and schema, plus where the partition is (run records)."""
    out = {k: v for k, v in manifest.items() if k not in ("files", "schema")}
    out["path"] = path
    return out


def latest_document(manifest: dict[str, Any], path: str) -> dict[str, Any]:
    """What `_latest.json` holds: the newest published partition, where it is, its manifest."""
    return {
        "table": manifest["table"],
        "ds": manifest["ds"],
        "path": path,
        "manifest": f"ds={manifest['ds']}/{MANIFEST}",
        "rows": manifest["rows"],
        "model_version": manifest["model_version"],
        "schema_version": manifest["schema_version"],
        "run_id": manifest["run_id"],
        "published_at": manifest["published_at"],
    }


def advances(current: dict[str, Any] | None, ds: date) -> bool:
    """May a partition of ds replace current as the latest? Never backwards (backfills)."""
    return current is None or date.fromisoformat(current["ds"]) <= ds
