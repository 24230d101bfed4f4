"""Run records beside the data: one JSON per stage and night, its failures, its gates' results.

Paths are layout's (`_runs/ds=<ds>/...`); the Airflow side reads the same files through
`longtail.warehouse.files`.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from longtail.warehouse.fs import Fs
from longtail.warehouse.layout import (
    failure_record_name,
    gate_page_path,
    gate_record_name,
    run_record_path,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# An audit may hand over a rendered report (e.g. GX data docs) under this key of its result, or
# as this attribute of the exception it raises; it is kept beside the JSON as <table>.html.
DATA_DOCS_HTML = "data_docs_html"
log = logging.getLogger("longtail")


def write_record(spark: SparkSession, warehouse: str, ds: date, name: str, record: dict) -> None:
    """Run records (config, counts, gate results) live beside the data, one JSON per stage."""
    uri = run_record_path(warehouse, ds, name)
    Fs(spark, uri).write_text(uri, json.dumps(record, indent=2, sort_keys=True, default=str))


def read_record(spark: SparkSession, warehouse: str, ds: date, name: str) -> dict | None:
    uri = run_record_path(warehouse, ds, name)
    fs = Fs(spark, uri)
    return json.loads(fs.read_text(uri)) if fs.exists(uri) else None


def write_failure(
    spark: SparkSession, warehouse: str, ds: date, stage: str, exc: BaseException, permanent: bool
) -> None:
    """Record why `stage` failed for ds: the data-docs site shows the night and its reason even
    when the stage failed before its first gate (a landing without a required column, a rules
    file that does not parse)."""
    record = {
        "stage": stage,
        "error": type(exc).__name__,
        "message": " ".join(str(exc).split()),
        "permanent": permanent,
        "failed_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }
    write_record(spark, warehouse, ds, failure_record_name(stage), record)


def clear_failure(spark: SparkSession, warehouse: str, ds: date, stage: str) -> None:
    uri = run_record_path(warehouse, ds, failure_record_name(stage))
    fs = Fs(spark, uri)
    if fs.exists(uri):
        fs.delete(uri)


def write_gate_record(
    spark: SparkSession,
    warehouse: str,
    ds: date,
    table: str,
    record: dict[str, Any],
    html: str | None,
) -> None:
    """A gate's result (pass or fail), and its rendered report when the audit made one."""
    try:
        write_record(spark, warehouse, ds, gate_record_name(table), record)
        if html:
            uri = gate_page_path(warehouse, ds, table)
            Fs(spark, uri).write_text(uri, html)
    except Exception:  # never let bookkeeping mask the gate's own outcome
        log.warning("could not record the gate result of %s ds=%s", table, ds, exc_info=True)
