"""The published schemas and what manifests and latest pointers hold (pure; no Spark).

The schemas are a contract with downstream readers: a column's name, type or nullability may only
change with a version bump. PUBLISHED_VERSIONS pins each version's columns; changing a schema file
without a bump fails here, and so does a bump that is not recorded here (that is the review).
The written Parquet is checked against the schema files in tests/reliability/test_contract.py.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, date, datetime

import pytest

from longtail import columns as C
from longtail import manifest as mf
from longtail import tables

# table -> {version: sha256 of its [[name, type, nullable], ...] (first 16 hex digits)}
PUBLISHED_VERSIONS = {
    # v2: reason_item_id and reason (nullable) after is_long_tail
    "recommendations": {1: "37e96827db373ad1", 2: "411b464ee6169180"},
    "similar_items": {1: "f49b8816245a93bb"},
    "item_audiences": {1: "872a7aa93b621439"},
    "quality_metrics": {1: "9608eb167b075043"},
}
ARROW_TYPES = {"string", "int32", "int64", "double", "float", "bool", "date32"}


def _fingerprint(schema: dict) -> str:
    cols = [[c["name"], c["type"], c["nullable"]] for c in schema["columns"]]
    return hashlib.sha256(json.dumps(cols).encode()).hexdigest()[:16]


def test_every_published_table_has_a_schema_and_only_they() -> None:
    assert set(PUBLISHED_VERSIONS) == set(tables.PUBLISHED)
    files = {p.stem for p in mf.resources.files("longtail").joinpath("schemas").iterdir()}
    assert files == set(tables.PUBLISHED)


@pytest.mark.parametrize("table", tables.PUBLISHED)
def test_a_column_change_needs_a_version_bump(table: str) -> None:
    schema = mf.published_schema(table)
    versions = PUBLISHED_VERSIONS[table]
    assert schema["version"] in versions, (
        f"{table} schema v{schema['version']} is not recorded: add its fingerprint "
        f"{_fingerprint(schema)} to PUBLISHED_VERSIONS"
    )
    assert _fingerprint(schema) == versions[schema["version"]], (
        f"{table}: columns changed but the version did not; bump 'version' in "
        f"longtail/schemas/{table}.json and record the new fingerprint"
    )
    assert schema["version"] == max(versions), "versions only go up"


@pytest.mark.parametrize("table", tables.PUBLISHED)
def test_schema_files_are_well_formed(table: str) -> None:
    schema = mf.published_schema(table)
    assert schema["table"] == table and schema["format"] == "parquet"
    names = [c["name"] for c in schema["columns"]]
    assert len(names) == len(set(names))
    assert {c["type"] for c in schema["columns"]} <= ARROW_TYPES
    assert all(c["description"] for c in schema["columns"])
    assert all(set(key) <= set(names) for key in schema["unique"])
    assert [p["name"] for p in schema["partitioning"]] == ["ds"]


def test_recommendations_schema_is_the_output_contract_of_the_code() -> None:
    assert tuple(n for n, _ in mf.schema_columns("recommendations")) == C.RECOMMENDATION_COLUMNS


def test_check_columns_names_what_differs() -> None:
    cols = mf.schema_columns("similar_items")
    mf.check_columns("similar_items", cols)
    renamed = [("item", "string"), *cols[1:]]
    with pytest.raises(mf.SchemaMismatch, match="published schema v1"):
        mf.check_columns("similar_items", renamed)
    retyped = [cols[0], ("rank", "int64"), *cols[2:]]
    with pytest.raises(mf.SchemaMismatch):
        mf.check_columns("similar_items", retyped)
    with pytest.raises(mf.SchemaMismatch):
        mf.check_columns("similar_items", list(reversed(cols)))


def test_manifest_document() -> None:
    files = [{"path": "part-0.parquet", "bytes": 10, "sha256": "ab"}]
    doc = mf.manifest_document(
        table="recommendations",
        ds=date(2026, 1, 31),
        rows=40,
        files=files,
        run_id="r1",
        published_at=datetime(2026, 2, 1, 1, 45, 3, tzinfo=UTC),
        users=4,
        top_n=10,
        model_version="fusion-2026-01-31-x",
    )
    assert doc["ds"] == "2026-01-31" and doc["rows"] == 40 and doc["users"] == 4
    assert doc["top_n"] == 10 and doc["model_version"] == "fusion-2026-01-31-x"
    assert doc["files"] == files and doc["run_id"] == "r1"
    assert doc["published_at"] == "2026-02-01T01:45:03Z"
    assert doc["schema_version"] == 2
    assert [(c["name"], c["type"]) for c in doc["schema"]] == mf.schema_columns("recommendations")
    json.dumps(doc)

    path = "/wh/recommendations/ds=2026-01-31"
    latest = mf.latest_document(doc, path)
    assert latest["ds"] == "2026-01-31" and latest["path"] == path
    assert latest["manifest"] == "ds=2026-01-31/_manifest.json"
    short = mf.summary(doc, path)
    assert "files" not in short and "schema" not in short and short["path"] == path


def test_an_older_partition_lacks_only_nullable_columns() -> None:
    v1 = [
        {"name": n, "type": t, "nullable": False}
        for n, t in mf.schema_columns("recommendations")[:7]
    ]
    added = mf.added_columns("recommendations", {"ds": "2026-01-01", "schema": v1})
    assert [c["name"] for c in added] == [C.REASON_ITEM_ID, C.REASON]
    assert all(c["nullable"] for c in added)
    current = mf.manifest_document(
        table="recommendations", ds=date(2026, 1, 31), rows=0, files=[], run_id="r"
    )
    assert mf.added_columns("recommendations", current) == []
    with pytest.raises(mf.SchemaMismatch, match="non-nullable"):
        mf.added_columns("recommendations", {"schema": v1[1:]})
    arrow = mf.arrow_schema("recommendations")
    assert arrow.names == [n for n, _ in mf.schema_columns("recommendations")]
    assert arrow.field(C.REASON).nullable and not arrow.field(C.USER_ID).nullable


def test_latest_never_moves_back() -> None:
    assert mf.advances(None, date(2026, 1, 1))
    current = {"ds": "2026-01-31"}
    assert mf.advances(current, date(2026, 2, 1))
    assert mf.advances(current, date(2026, 1, 31))  # a re-run of the newest night
    assert not mf.advances(current, date(2026, 1, 30))  # a backfill


def test_run_id_comes_from_the_dag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mf.RUN_ID_ENV, "scheduled__2026-02-01T01:30:00+00:00")
    assert mf.current_run_id() == "scheduled__2026-02-01T01:30:00+00:00"
    monkeypatch.delenv(mf.RUN_ID_ENV)
    assert mf.current_run_id().startswith("local-")
