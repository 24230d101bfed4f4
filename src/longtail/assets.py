"""Airflow Assets for the published tables, and the asset events their publishing tasks emit.

Imported by the DAG files at parse time: Airflow's SDK and the stdlib only.

One asset per published table, named `longtail.<table>`, its URI the table's folder in the
deployment's warehouse. A publishing task emits one event per successful publish, with the night's
`ds` as the event's partition key (Airflow 3.3 partitioned assets: consumers scheduled with
`PartitionedAssetTimetable` get one run per night) and extra = {ds, rows, users, model_version,
path}, read from the manifest summary the stage wrote into its run record. A failed stage writes
no record and its task raises before this runs, so it emits nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from airflow.sdk import Asset

from longtail import registry, tables
from longtail.warehouse.files import read_json
from longtail.warehouse.layout import run_record_path

GROUP = "longtail"
# stage (= DAG task id) -> the published table whose asset it updates
PUBLISHED_BY = registry.PUBLISHED_BY
EXTRA_KEYS = ("ds", "rows", "users", "model_version", "path")


class AssetEventError(RuntimeError):
    """The stage succeeded but its run record does not describe this run's publish."""


def asset_name(table: str) -> str:
    return f"{GROUP}.{table}"


def asset_uri(warehouse: str, table: str) -> str:
    """`file:///abs/warehouse/<table>` for a local warehouse; other URIs (hdfs://, s3a://) as is."""
    if "://" in warehouse:
        return f"{warehouse.rstrip('/')}/{table}"
    return f"file://{os.path.abspath(warehouse)}/{table}"


def table_asset(warehouse: str, table: str) -> Asset:
    return Asset(name=asset_name(table), uri=asset_uri(warehouse, table), group=GROUP)


def table_of(asset: Asset) -> str:
    prefix = f"{GROUP}."
    if not asset.name.startswith(prefix) or asset.name[len(prefix) :] not in tables.PUBLISHED:
        raise AssetEventError(f"{asset.name} is not a Longtail published table")
    return asset.name[len(prefix) :]


def event_extra(summary: Mapping[str, Any]) -> dict[str, Any]:
    """An asset event's extra from a manifest summary (run record `manifests.<table>`)."""
    return {k: summary.get(k) for k in EXTRA_KEYS}


def run_record(warehouse: str, ds: str, stage: str) -> dict[str, Any] | None:
    return read_json(run_record_path(warehouse, ds, stage))


def config_from_args(application_args: Iterable[str]) -> dict[str, Any]:
    """The stage config a StageSubmitOperator passed as `[<stage>] --config-json <json>`."""
    args = list(application_args)
    if len(args) == 3:  # jobs/run_stage.py <stage> --config-json <json>
        args = args[1:]
    if args[:1] != ["--config-json"] or len(args) != 2:
        raise AssetEventError(f"expected [<stage>] --config-json <json>, got {args!r}")
    return json.loads(args[1])


def emit_published(
    outlet_events: Any,
    outlets: Iterable[Any],
    stage: str,
    config: Mapping[str, Any],
    run_id: str | None = None,
) -> list[dict[str, Any]]:
    """Fill the outlet events of a publishing task that succeeded; returns the extras set.

    run_id: this task's Airflow run id, which the stage wrote into its manifest; a record of
    another run (say, one left by an earlier run while this one published nothing) is an error,
    not an event.
    """
    outlets = [o for o in outlets if isinstance(o, Asset)]
    if not outlets:
        return []
    record = run_record(str(config["warehouse"]), str(config["ds"]), stage)
    if record is None:
        raise AssetEventError(f"{stage} ds={config['ds']} succeeded but wrote no run record")
    extras = []
    for asset in outlets:
        table = table_of(asset)
        summary = (record.get("manifests") or {}).get(table)
        if summary is None:
            raise AssetEventError(f"the {stage} record for ds={config['ds']} has no {table}")
        if summary["ds"] != str(config["ds"]):
            raise AssetEventError(f"{table}: record is for ds={summary['ds']}, not {config['ds']}")
        if run_id is not None and summary.get("run_id") != run_id:
            raise AssetEventError(
                f"{table} ds={config['ds']}: the manifest is run {summary.get('run_id')!r}'s, "
                f"not this run's ({run_id!r})"
            )
        event = outlet_events[asset]
        event.extra.update(event_extra(summary))
        event.add_partitions(summary["ds"])
        extras.append(dict(event.extra))
    return extras
