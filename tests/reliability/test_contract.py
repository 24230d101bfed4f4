"""The reading contract of the published tables, on two nights run in-process.

Each published partition's `_manifest.json` is checked against the partition itself with tools
that are not the pipeline's (DuckDB's count(*), hashlib, file sizes, pyarrow's schema), the
written Parquet against the versioned schema in `longtail/schemas/`, and each table's
`_latest.json` against the nights published. A backfill of an older night and a failed publish
leave the pointer and the manifests alone.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from reliability_kit import (
    DS,
    EARLIER_DS,
    TOP_N,
    copy_warehouse,
    file_snapshot,
    leftovers,
    read_json,
    resolved_configs,
    run_record,
    run_stage,
)

from longtail import gates, tables
from longtail.config import PublishConfig
from longtail.manifest import published_schema

# The contract's type names, as pyarrow names the Parquet types.
ARROW = {
    "string": pa.string(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "double": pa.float64(),
    "bool": pa.bool_(),
}
PUBLISHING_STAGE = {"recommendations": "publish", "similar_items": "similar_items"}
PUBLISHING_STAGE |= {"item_audiences": "item_audiences", "quality_metrics": "quality"}


def _data_files(partition: Path) -> list[Path]:
    return sorted(p for p in partition.iterdir() if not p.name.startswith(("_", ".")))


def _manifest(partition: Path) -> dict[str, Any]:
    return read_json(partition / "_manifest.json")


@pytest.mark.parametrize("table", tables.PUBLISHED)
@pytest.mark.parametrize("ds", [EARLIER_DS, DS])
def test_manifest_describes_its_partition(reference_published: Path, table: str, ds: Any) -> None:
    partition = reference_published / table / f"ds={ds}"
    manifest = _manifest(partition)
    assert (manifest["table"], manifest["ds"]) == (table, ds.isoformat())

    con = duckdb.connect()
    glob = f"{partition}/*.parquet"
    (rows,) = con.execute("SELECT count(*) FROM read_parquet(?)", [glob]).fetchone()
    assert manifest["rows"] == rows > 0

    files = _data_files(partition)
    assert [f["path"] for f in manifest["files"]] == [p.name for p in files]
    for entry, path in zip(manifest["files"], files, strict=True):
        assert entry["bytes"] == path.stat().st_size
        assert entry["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()

    schema = published_schema(table)
    assert manifest["schema_version"] == schema["version"]
    assert manifest["schema"] == [
        {"name": c["name"], "type": c["type"], "nullable": c["nullable"]} for c in schema["columns"]
    ]
    assert manifest["run_id"] and manifest["published_at"].endswith("Z")

    if table == "recommendations":
        users, versions, top = con.execute(
            "SELECT count(DISTINCT user_id), list(DISTINCT model_version), max(rank) "
            "FROM read_parquet(?)",
            [glob],
        ).fetchone()
        assert (manifest["users"], manifest["top_n"]) == (users, top) == (users, TOP_N)
        assert [manifest["model_version"]] == versions
    else:
        assert manifest["users"] is None
    # the run record carries the manifest's summary (what the asset event's extra is made of)
    summary = run_record(reference_published, ds, PUBLISHING_STAGE[table])["manifests"][table]
    assert summary == {
        **{k: v for k, v in manifest.items() if k not in ("files", "schema")},
        "path": str(partition),
    }


@pytest.mark.parametrize("table", tables.PUBLISHED)
def test_written_parquet_matches_the_published_schema(
    reference_published: Path, table: str
) -> None:
    """The schema test: names, order and types of what readers get, against the schema file."""
    schema = published_schema(table)
    for ds in (EARLIER_DS, DS):
        partition = reference_published / table / f"ds={ds}"
        for path in _data_files(partition):
            written = pq.read_schema(path)
            assert written.names == [c["name"] for c in schema["columns"]], path
            for column in schema["columns"]:
                assert written.field(column["name"]).type == ARROW[column["type"]], column
        if table != "quality_metrics":  # its metrics are null on a night with nothing to score
            data = pq.read_table(partition)
            for column in schema["columns"]:
                if not column["nullable"]:
                    assert data.column(column["name"]).null_count == 0, column


@pytest.mark.parametrize("table", tables.PUBLISHED)
def test_latest_names_the_newest_night(reference_published: Path, table: str) -> None:
    latest = read_json(reference_published / table / "_latest.json")
    partition = reference_published / table / f"ds={DS}"
    assert latest["ds"] == DS.isoformat() and latest["path"] == str(partition)
    assert (reference_published / table / latest["manifest"]).is_file()
    assert latest["rows"] == _manifest(partition)["rows"]
    # readers of the whole table skip `_latest.json` and `_manifest.json`: rows of both nights
    data = pads.dataset(str(reference_published / table), format="parquet")
    assert data.count_rows() == sum(
        _manifest(reference_published / table / f"ds={d}")["rows"] for d in (EARLIER_DS, DS)
    )


def _contract_files(warehouse: Path) -> dict[str, str]:
    """Every manifest and latest pointer of the published tables -> sha256 of its bytes."""
    out = {}
    for table in tables.PUBLISHED:
        snap = file_snapshot(warehouse / table)
        out.update({f"{table}/{k}": v for k, v in snap.items() if k.endswith(".json")})
    return out


def test_a_backfill_of_an_older_night_does_not_move_latest(
    spark: Any, standard_landing: Path, reference_published: Path, tmp_path: Path
) -> None:
    wh = copy_warehouse(reference_published, tmp_path / "warehouse")
    before = read_json(wh / "quality_metrics" / "_latest.json")
    old = _manifest(wh / "quality_metrics" / f"ds={EARLIER_DS}")
    run_stage(spark, "quality", resolved_configs(standard_landing, wh, EARLIER_DS)["quality"])
    assert read_json(wh / "quality_metrics" / "_latest.json") == before
    new = _manifest(wh / "quality_metrics" / f"ds={EARLIER_DS}")
    assert new["published_at"] >= old["published_at"] and new["ds"] == EARLIER_DS.isoformat()
    assert leftovers(wh) == []


def test_a_failed_publish_changes_no_contract_file(
    spark: Any, standard_landing: Path, reference_published: Path, tmp_path: Path
) -> None:
    """Publish with a top_n the staged lists do not have: the gate fails, nothing moves."""
    wh = copy_warehouse(reference_published, tmp_path / "warehouse")
    # score staged a fresh attempt for DS, as a re-run would; publish then disagrees on top_n
    run_stage(spark, "score", resolved_configs(standard_landing, wh, DS)["score"])
    before = _contract_files(wh)
    publish_record = (wh / "_runs" / f"ds={DS}" / "publish.json").read_bytes()
    with pytest.raises(gates.GateFailed, match="gate 'recommendations' failed"):
        run_stage(spark, "publish", PublishConfig(ds=DS, warehouse=str(wh), top_n=TOP_N - 1))
    assert _contract_files(wh) == before
    assert (wh / "_runs" / f"ds={DS}" / "publish.json").read_bytes() == publish_record
    assert leftovers(wh) == []
    assert json.loads(publish_record)["manifests"]["recommendations"]["ds"] == DS.isoformat()
