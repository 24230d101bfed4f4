"""An example downstream reader: one user segment's recommendations of a night, to a CSV outbox.

What `dags/longtail_segment_export.py` runs when the `longtail.recommendations` asset gets a new
partition. It shows the reading contract: take the partition from the asset event (or, run by
hand, from `_latest.json`), read exactly the files its `_manifest.json` lists, and check the
manifest's row count before exporting anything. A partition of an older schema version
(recommendations v1 has no reason columns) is read with the columns it lacks as nulls, so one export
reads every night. A segment is a stable hash bucket of the user id (say, an A/B test arm):
`segment_of(user_id) == segment`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from pathlib import PurePosixPath
from typing import Any

from longtail import manifest as mf
from longtail import tables
from longtail.warehouse.files import read_json, write_text
from longtail.warehouse.layout import latest_path, manifest_path

BUCKETS = 10
COLUMNS = ("user_id", "rank", "item_id", "score", "reason", "reason_item_id")


class ExportError(RuntimeError):
    """The partition does not match its manifest: nothing is exported."""


def segment_of(user_id: str, buckets: int = BUCKETS) -> int:
    return zlib.crc32(user_id.encode("utf-8")) % buckets


def newest_extra(events: Iterable[Any]) -> dict[str, Any] | None:
    """The extra of the latest of a run's triggering events (a re-run of a night sends another)."""
    events = sorted(events, key=lambda e: e.timestamp)
    return dict(events[-1].extra) if events else None


def latest_partition(warehouse: str, table: str = tables.RECOMMENDATIONS) -> dict[str, Any]:
    """A run by hand exports the newest published partition, named by `_latest.json`."""
    latest = read_json(latest_path(warehouse, table))
    if latest is None:
        raise ExportError(f"{table} has no published partition yet in {warehouse}")
    return latest


def default_outbox(partition: str) -> str:
    """`<warehouse>/../outbox`: beside the warehouse, not in it."""
    return str(PurePosixPath(partition).parents[2] / "outbox")


def read_partition(
    partition: str, manifest: Mapping[str, Any], table: str = tables.RECOMMENDATIONS
) -> Any:
    """The partition's files (exactly those its manifest lists) as a pyarrow Table in the current
    schema: columns an older schema version lacked (`manifest.added_columns`) come back null."""
    import pyarrow as pa

    data = _read_rows(partition, manifest)
    for column in mf.added_columns(table, dict(manifest)):
        field = mf.arrow_schema(table).field(column["name"])
        data = data.append_column(field, pa.nulls(data.num_rows, field.type))
    return data.select(mf.arrow_schema(table).names)


def _read_rows(partition: str, manifest: Mapping[str, Any]) -> Any:
    import pyarrow.dataset as pads

    files = [f"{partition}/{f['path']}" for f in manifest["files"]]
    filesystem = None
    if "://" in partition and not partition.startswith("file://"):
        import fsspec

        filesystem, _ = fsspec.core.url_to_fs(partition)
        files = [f.split("://", 1)[1] for f in files]
    else:
        files = [f.removeprefix("file://") for f in files]
    return pads.dataset(files, format="parquet", filesystem=filesystem).to_table()


def checked_partition(partition: str, table: str) -> tuple[Any, dict[str, Any]]:
    """(rows as a pyarrow Table, manifest) of a published partition whose files hold exactly the
    rows its manifest counts; ExportError otherwise."""
    manifest = read_json(manifest_path(partition))
    if manifest is None:
        raise ExportError(f"{partition} has no {mf.MANIFEST}: not a published partition")
    if manifest.get("table") != table:
        raise ExportError(f"{partition} holds {manifest.get('table')}, not {table}")
    data = read_partition(partition, manifest, table)
    if data.num_rows != manifest["rows"]:
        raise ExportError(
            f"{partition}: {data.num_rows} rows in its files, {manifest['rows']} in its manifest"
        )
    return data, manifest


def export_segment(partition: str, segment: int, outbox: str) -> dict[str, Any]:
    """Write `<outbox>/recommendations/segment=<n>/ds=<ds>.csv`; returns what was written."""
    data, manifest = checked_partition(partition, tables.RECOMMENDATIONS)
    frame = data.select(list(COLUMNS)).to_pandas()
    mine = frame[[segment_of(u) == segment for u in frame["user_id"]]]
    mine = mine.sort_values(["user_id", "rank"], kind="stable")
    folder = f"{outbox.rstrip('/')}/{tables.RECOMMENDATIONS}/segment={segment}"
    target = f"{folder}/ds={manifest['ds']}.csv"
    write_text(target, mine.to_csv(index=False))
    return {
        "ds": manifest["ds"],
        "segment": segment,
        "users": int(mine["user_id"].nunique()),
        "rows": len(mine),
        "model_version": manifest["model_version"],
        "csv": target,
    }


AUDIENCE_COLUMNS = ("item_id", "rank", "user_id", "score", "reason_item_id")


def export_audiences(partition: str, outbox: str, new_only: bool = True) -> dict[str, Any]:
    """A campaign tool's import: `<outbox>/item_audiences/ds=<ds>.csv`, one row per (item,
    shopper) in rank order; new_only leaves out long-tail-only targets (`is_new` false)."""
    data, manifest = checked_partition(partition, tables.ITEM_AUDIENCES)
    frame = data.to_pandas()
    if new_only:
        frame = frame[frame["is_new"]]
    frame = frame.sort_values(["item_id", "rank"], kind="stable")[list(AUDIENCE_COLUMNS)]
    target = f"{outbox.rstrip('/')}/{tables.ITEM_AUDIENCES}/ds={manifest['ds']}.csv"
    write_text(target, frame.to_csv(index=False))
    return {
        "ds": manifest["ds"],
        "items": int(frame["item_id"].nunique()),
        "rows": len(frame),
        "model_version": manifest["model_version"],
        "csv": target,
    }
